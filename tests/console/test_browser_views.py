"""The analyst's views in real Chromium at 800 px and 1400 px: evidence board, charts, paged tables, header."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from distillguard.console.tables import enforcement_rows

from .helpers import browser_login, shot

pytestmark = pytest.mark.browser

WIDTHS = [800, 1400]


@pytest.fixture
def sized(browser, request):
    ctx = browser.new_context(viewport={"width": request.param, "height": 900})
    pg = ctx.new_page()
    pg.errors = []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.width = request.param
    yield pg
    ctx.close()


def _fits(page) -> None:
    """Nothing wider than the window, and "Log out" on screen."""
    over = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    wide = page.evaluate("""() => Array.from(document.querySelectorAll('body *')).filter(
        e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
        .slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id)""")
    assert over <= 0, f"page is {over}px wider than the {page.width}px window: {wide}"
    box = page.locator("form.who button").bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= page.width, box
    assert page.locator("form.who button").is_visible()


@pytest.mark.parametrize("sized", WIDTHS, indirect=True)
def test_campaign_evidence_board_and_charts(sized, live_server):
    page, base = sized, live_server
    browser_login(page, base, "ana")
    _fits(page)
    page.goto(f"{base}/campaigns/camp-cot")
    page.wait_for_selector("div[data-graph][data-drawn='1']")
    for chart in ("timeline", "signals", "harvest"):
        page.wait_for_selector(f"canvas[data-chart={chart}][data-drawn='1']")
    _fits(page)
    # Rarest evidence first: payment before TLS before networks.
    kinds = page.eval_on_selector_all("#evidence-kinds tbody tr", "rs => rs.map(r => r.dataset.kind)")
    assert kinds.index("payment") < kinds.index("ja4") < kinds.index("ip24"), kinds
    first = page.locator("#evidence-kinds tbody tr").first.inner_text()
    assert first.startswith("all 12 of the campaign's accounts share one payment fingerprint"), first
    # The bundled graph: every member is in exactly one group node; the header count is the same number.
    sizes = page.eval_on_selector_all("#evidence-board g.grp text.n", "ts => ts.map(t => +t.textContent)")
    assert sum(sizes) == 12 and len(sizes) < 12
    assert page.locator("#stat-accounts").inner_text() == "12"
    lines = page.locator("#evidence-board svg line").count()
    assert lines < 12 * page.locator("#evidence-board svg rect").count()  # not every account x entity edge
    # Click a group: its accounts are listed as links to their pages.
    page.locator("#evidence-board g.grp").first.click()
    links = page.locator("#evidence-board .group-panel a")
    assert links.count() == sizes[0]
    assert links.first.get_attribute("href").startswith("/accounts/")
    # Signal bars are labelled in words, not detector ids.
    labels = page.evaluate("JSON.parse(document.getElementById('signals').textContent).labels")
    assert labels and not any(label.startswith(("cap_", "sig_")) or "_" in label for label in labels), labels
    shot(page, f"views-campaign-{page.width}")
    assert page.errors == [], page.errors


@pytest.mark.parametrize("sized", WIDTHS, indirect=True)
def test_account_partner_counts_match_the_board(sized, live_server):
    page, base = sized, live_server
    browser_login(page, base, "ana")
    page.goto(f"{base}/campaigns/camp-cot")
    board = dict(page.eval_on_selector_all(
        "#evidence-kinds tbody tr", "rs => rs.map(r => [r.dataset.kind, +r.cells[1].textContent.replace(/,/g, '')])"))
    page.goto(f"{base}/accounts/acct-cot-04")
    page.wait_for_selector("#links[data-enhanced='1']")
    _fits(page)
    rows = page.eval_on_selector_all("#links tbody tr", "rs => rs.map(r => [r.cells[0].textContent.trim(), "
                                                         "+r.cells[2].textContent, +r.cells[3].textContent])")
    by_words = {w: (n, inside) for w, n, inside in rows}
    # "In its campaign" is the board's number for the same entity (this account included); "Shared by" all holders
    assert by_words["payment fingerprint"][1] == board["payment"] and by_words["payment fingerprint"][0] >= board["payment"]
    assert by_words["IP /24"][1] == board["ip24"]
    # Sorting by a header reorders the rows.
    page.locator("#links th", has_text="Shared by").click()
    got = page.eval_on_selector_all("#links tbody tr:not([hidden])", "rs => rs.map(r => +r.cells[2].textContent)")
    assert got == sorted(got)
    # Prompts keep a CJK-capable font stack.
    fam = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "Noto Sans CJK SC" in fam and "Microsoft YaHei" in fam
    shot(page, f"views-account-{page.width}")
    assert page.errors == [], page.errors


@pytest.mark.parametrize("sized", WIDTHS, indirect=True)
def test_enforcement_pages_sorts_and_filters(sized, live_server, console_store):
    page, base = sized, live_server
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    console_store.append_table("enforcement", enforcement_rows([
        {"subject_type": "account", "subject_id": f"bulk-{i:03d}", "action": "throttle" if i % 3 else "block",
         "reason": f"bulk row {i}", "source": "scan", "created_at": t0 + timedelta(minutes=i), "expires_at": None,
         "campaign_id": None, "actor": None} for i in range(237)]))
    browser_login(page, base, "adam")
    page.goto(f"{base}/admin/enforcement")
    _fits(page)
    rows = page.locator("#current-enforcement tbody tr")
    assert rows.count() == 100
    total = int(page.locator("#in-force h2").inner_text().split("(")[1].rstrip(")").replace(",", ""))
    assert total >= 237
    assert page.evaluate("document.documentElement.scrollHeight") < 12000
    page.click("#enf-next")
    assert page.locator("#enforcement-pager").inner_text().startswith("101–200")
    # Filter to one subject.
    page.fill("#in-force input[name=q]", "bulk-042")
    page.click("#in-force form.filters-form button")
    assert rows.count() == 1 and "bulk-042" in rows.first.inner_text()
    # Sort by subject ascending.
    page.goto(f"{base}/admin/enforcement?action=block&sort=subject_id&dir=asc")
    ids = page.eval_on_selector_all("#current-enforcement tbody tr", "rs => rs.map(r => r.cells[0].textContent)")
    assert ids == sorted(ids) and all("block" in r for r in page.eval_on_selector_all(
        "#current-enforcement tbody tr", "rs => rs.map(r => r.cells[1].textContent)"))
    shot(page, f"views-enforcement-{page.width}")
    assert page.errors == [], page.errors
