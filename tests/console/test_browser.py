"""The console in real headless Chromium: log in, review, confirm, and prove hostile text never runs."""

from __future__ import annotations

import re

import pytest

from .helpers import browser_login, shot

pytestmark = pytest.mark.browser

ALLOWED_SCRIPTS = ["/static/chart.umd.min.js", "/static/console.js"]


def _no_injection(page) -> None:
    """Nothing a payload would do happened, and the DOM holds no element a payload would create."""
    assert page.evaluate("typeof window.__xss") == "undefined", "an injected script ran"
    assert page.dialogs == [], f"a dialog fired: {page.dialogs}"
    handlers = page.evaluate("""() => Array.from(document.querySelectorAll('*')).filter(
        el => Array.from(el.attributes).some(a => a.name.startsWith('on'))).map(el => el.outerHTML.slice(0, 80))""")
    assert handlers == [], f"elements with inline event handlers: {handlers}"
    srcs = page.evaluate("""() => Array.from(document.scripts).filter(s => s.type !== 'application/json')
                            .map(s => s.getAttribute('src'))""")
    assert srcs == ALLOWED_SCRIPTS, f"unexpected script elements: {srcs}"
    assert page.evaluate("document.querySelectorAll('img').length") == 0


def test_login_open_campaign_confirm_and_see_enforcement(page, live_server, console_store):
    base = live_server
    browser_login(page, base, "ana", screenshot="00-login")
    assert page.locator("#campaigns tbody tr").count() == 3
    shot(page, "01-campaigns")

    page.click("text=Chain-of-thought harvesting via free-trial hydra")
    page.wait_for_url(re.compile(r".*/campaigns/camp-cot$"))
    # Charts were drawn by the vendored Chart.js (loaded from /static, no network).
    page.wait_for_selector("canvas[data-chart=timeline][data-drawn='1']")
    page.wait_for_selector("canvas[data-chart=signals][data-drawn='1']")
    page.wait_for_selector("#evidence-board div[data-graph][data-drawn='1']")
    assert page.locator("#campaign-status").inner_text() == "detected"
    shot(page, "02-campaign")

    page.fill("form.actions input[name=reason]", "12 free-trial accounts, one /24, CoT harvesting")
    page.click("form.actions button[value=confirm]")
    page.wait_for_url(re.compile(r".*/campaigns/camp-cot$"))
    assert "Confirm attack: 12 account(s) and 1 cluster(s) set to 'block'" in page.locator(".flash").inner_text()
    assert page.locator("#campaign-status").inner_text() == "confirmed"
    rows = page.locator("#enforcement-rows tbody tr")
    assert rows.count() >= 13
    assert "block" in rows.first.inner_text() and "ana" in rows.first.inner_text()
    shot(page, "03-campaign-confirmed")

    # The gateway's table has the rows, and the audit log says who, when, what and why.
    enf = console_store.read_table("enforcement").to_pylist()
    mine = [r for r in enf if r["actor"] == "ana"]
    assert sorted({(r["subject_type"], r["action"]) for r in mine}) == [("account", "block"), ("cluster", "block")]
    assert len([r for r in mine if r["subject_type"] == "account"]) == 12
    audit = sorted(console_store.read_table("audit_log").to_pylist(), key=lambda a: a["seq"])
    assert [(a["actor"], a["action"], a["subject_id"]) for a in audit] == [("ana", "login", "ana"),
                                                                         ("ana", "confirm", "camp-cot")]
    audit = audit[1:]
    assert audit[0]["reason"] == "12 free-trial accounts, one /24, CoT harvesting"

    page.click("#members tbody tr:first-child a")
    page.wait_for_selector("#account-title")
    page.wait_for_selector("canvas[data-chart=activity][data-drawn='1']")
    assert page.locator("#links tbody tr").count() >= 2
    shot(page, "04-account")

    page.goto(f"{base}/search?q=198.18.0&kind=all")
    assert page.locator("#res-ips tbody tr").count() > 0
    shot(page, "05-search")
    page.goto(f"{base}/search?q=think+out+loud&kind=text")
    assert page.locator("#res-text tbody tr").count() > 0
    assert "Searched prompt text" in page.locator("#text-note").inner_text()
    shot(page, "06-search-text")
    page.goto(f"{base}/audit")
    assert page.locator("#audit tbody tr").count() == 2  # the login and the confirm: security events are audited
    shot(page, "07-audit")
    assert page.console_errors == [], page.console_errors


def test_planted_payloads_never_run(page, live_server):
    base = live_server
    browser_login(page, base, "adam")
    from urllib.parse import quote

    from distillguard.testing.console_fixture import HOSTILE_ACCOUNT

    urls = ["/campaigns", "/campaigns/camp-cot", "/campaigns/camp-agent", f"/accounts/{quote(HOSTILE_ACCOUNT, safe='')}",
            "/accounts/acct-cot-01", "/accounts/acct-cot-02", "/search?q=img&kind=all", "/search?q=tpl&kind=template",
            "/search?q=window.__xss&kind=text", "/admin/enforcement", "/audit"]
    for u in urls:
        page.goto(base + u)
        page.wait_for_load_state("load")
        _no_injection(page)
    # The payloads are on the pages — as text.
    page.goto(f"{base}/campaigns/camp-cot")
    assert '<script>window.__xss = 1; alert("xss-script")</script>' in page.locator("body").inner_text()
    assert '"><svg onload="window.__xss = 3">' in page.locator("#evidence-kinds").inner_text()
    page.wait_for_selector("#evidence-board div[data-graph][data-drawn='1']")
    page.locator("#evidence-board g.grp").first.click()
    _no_injection(page)
    assert page.locator("#evidence-board svg").count() == 1  # the planted <svg> did not become an element
    page.goto(f"{base}/accounts/{quote(HOSTILE_ACCOUNT, safe='')}")
    assert page.locator("#account-title").inner_text() == HOSTILE_ACCOUNT
    shot(page, "08-hostile-account")
    page.goto(f"{base}/search?q=window.__xss&kind=text")
    assert page.locator("#res-text tbody tr").count() >= 3
    shot(page, "09-hostile-search")
    # An action on the hostile account works and stays inert.
    page.goto(f"{base}/accounts/{quote(HOSTILE_ACCOUNT, safe='')}")
    page.fill("form.actions input[name=reason]", 'blocking <img src=x onerror="window.__xss=9">')
    page.click("form.actions button[value=block]")
    page.wait_for_selector(".flash")
    _no_injection(page)
    page.goto(f"{base}/audit")
    _no_injection(page)
    assert 'onerror="window.__xss=9"' in page.locator("#audit").inner_text()
    page.goto(f"{base}/admin/enforcement")
    _no_injection(page)
    assert page.locator("#current-enforcement tbody tr").count() >= 2
    shot(page, "10-admin-enforcement")


@pytest.mark.slow
def test_screenshot_script(tmp_path, browser):
    """scripts/console_screenshot.py (what makes the README image) works on a store given by path."""
    import subprocess
    import sys
    from pathlib import Path

    from distillguard.testing.console_fixture import write_console_fixture

    write_console_fixture(tmp_path / "s", hostile=False)
    out = tmp_path / "shot.png"
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, str(root / "scripts" / "console_screenshot.py"), "--store", str(tmp_path / "s"),
                        "--out", str(out), "--height", "900"], capture_output=True, text=True, timeout=180,
                       cwd=root, env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
