"""Fast checks of the console over HTTP (starlette TestClient): auth, roles, CSRF, headers, escaping, actions."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from distillguard.console.app import create_app
from distillguard.console.audit import SECURITY_EVENTS
from distillguard.testing.console_fixture import HOSTILE_ACCOUNT, XSS

from .helpers import TOKEN, csrf_of, login, make_settings


@pytest.fixture
def client(app):
    return TestClient(app, follow_redirects=True)


def _decisions(store) -> list[dict]:
    """Audit rows of analyst decisions (the log also holds logins and other security events)."""
    if not store.has_table("audit_log"):
        return []
    return sorted((r for r in store.read_table("audit_log").to_pylist() if r["action"] not in SECURITY_EVENTS),
                  key=lambda r: r["seq"])


def _act(client, subject_type, subject_id, action, reason="looked at the evidence", csrf=None):
    page = client.get(f"/{'campaigns' if subject_type == 'campaign' else 'accounts'}/{subject_id}")
    token = csrf if csrf is not None else csrf_of(page.text)
    return client.post("/act", data={"csrf": token, "subject_type": subject_type, "subject_id": subject_id,
                                     "action": action, "reason": reason})


# ------------------------------------------------------------------------------------------- auth
def test_pages_need_login(client):
    for path in ("/campaigns", "/campaigns/camp-cot", "/accounts/acct-cot-00", "/search?q=x", "/audit"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    r = client.post("/act", data={"subject_type": "campaign", "subject_id": "camp-cot", "action": "confirm"})
    assert r.status_code == 401


def test_wrong_password_and_token_login(client, console_store):
    r = client.get("/login")
    r = client.post("/login", data={"csrf": csrf_of(r.text), "username": "ana", "secret": "nope"})
    assert r.status_code == 401 and "Wrong user name" in r.text
    assert client.get("/campaigns", follow_redirects=False).status_code == 303
    r = client.post("/login", data={"csrf": csrf_of(r.text), "username": "", "secret": TOKEN})
    assert r.status_code == 200 and "bot" in r.text and "analyst" in r.text


def test_session_cookie_is_signed_and_strict(client):
    r = client.get("/login")
    r = client.post("/login", data={"csrf": csrf_of(r.text), "username": "vera", "secret": "vera-pass-1"},
                    follow_redirects=False)
    set_cookie = r.headers.get("set-cookie", "").lower()
    assert "dg_console=" in set_cookie and "httponly" in set_cookie and "samesite=strict" in set_cookie
    cookie = client.cookies.get("dg_console")
    assert client.get("/campaigns", follow_redirects=False).status_code == 200
    client.cookies.clear()
    client.cookies.set("dg_console", cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB"))
    assert client.get("/campaigns", follow_redirects=False).status_code == 303  # tampered → logged out


def test_login_next_is_never_offsite(client):
    r = client.get("/login")
    r = client.post("/login", data={"csrf": csrf_of(r.text), "username": "vera", "secret": "vera-pass-1",
                                    "next": "//evil.example/x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/campaigns"


def test_session_expires(console_store):
    app = create_app(console_store, make_settings(session_max_age_s=60))
    c = TestClient(app)
    login(c, "vera")
    import time as _t

    real = _t.time
    try:
        _t.time = lambda: real() + 120
        assert c.get("/campaigns", follow_redirects=False).status_code == 303
    finally:
        _t.time = real


# ------------------------------------------------------------------------------------------- roles
def test_viewer_cannot_act(client, console_store):
    login(client, "vera")
    page = client.get("/campaigns/camp-cot")
    assert 'action="/act"' not in page.text and "Viewers can look" in page.text
    r = client.post("/act", data={"csrf": csrf_of(page.text), "subject_type": "campaign", "subject_id": "camp-cot",
                                  "action": "confirm", "reason": "try anyway"})
    assert r.status_code == 403
    assert _decisions(console_store) == []
    refused = [r for r in console_store.read_table("audit_log").to_pylist() if r["action"] == "refused"]
    assert [(r["actor"], r["subject_id"], r["reason"]) for r in refused] == [("vera", "POST /act", "role too low")]
    assert console_store.read_table("enforcement").num_rows == 1  # only the fixture's scan row


def test_only_admin_manages_allow_list(client, console_store):
    login(client, "ana")
    assert client.get("/admin/enforcement").status_code == 403
    page = client.get("/campaigns")
    r = client.post("/admin/enforcement", data={"csrf": csrf_of(page.text), "subject_type": "org",
                                                "subject_id": "org-x", "action": "allow", "reason": "partner"})
    assert r.status_code == 403
    assert "/admin/enforcement" not in page.text

    admin = TestClient(client.app)
    login(admin, "adam")
    page = admin.get("/admin/enforcement")
    assert page.status_code == 200
    r = admin.post("/admin/enforcement", data={"csrf": csrf_of(page.text), "subject_type": "ip24",
                                               "subject_id": "192.0.2.0/24", "action": "allow", "reason": "our office",
                                               "expires_days": "30"})
    assert "Decision recorded" in r.text and "192.0.2.0/24" in r.text
    rows = [x for x in console_store.read_table("enforcement").to_pylist() if x["actor"] == "adam"]
    assert len(rows) == 1 and rows[0]["action"] == "allow" and rows[0]["expires_at"] is not None
    audit = console_store.read_table("audit_log").to_pylist()
    assert audit[-1]["action"] == "set_enforcement" and audit[-1]["actor"] == "adam" and audit[-1]["role"] == "admin"


# ------------------------------------------------------------------------------------------- CSRF
@pytest.mark.parametrize("token", ["", "wrong-token"])
def test_csrf_rejected(client, console_store, token):
    login(client, "ana")
    r = _act(client, "campaign", "camp-cot", "confirm", csrf=token)
    assert r.status_code == 403 and "CSRF" in r.text
    assert _decisions(console_store) == []
    assert [r["reason"] for r in console_store.read_table("audit_log").to_pylist() if r["action"] == "refused"] == [
        "CSRF token missing or wrong"]


def test_csrf_from_another_session_rejected(client, console_store):
    other = TestClient(client.app)
    login(other, "ana")
    foreign = csrf_of(other.get("/campaigns").text)
    login(client, "ana")
    assert _act(client, "campaign", "camp-cot", "block", csrf=foreign).status_code == 403
    assert client.post("/logout", data={"csrf": foreign}).status_code == 403
    client.get("/login")
    assert client.post("/login", data={"username": "ana", "secret": "ana-pass-1"}).status_code == 403


def test_csrf_token_rotates_on_login(client):
    before = csrf_of(client.get("/login").text)
    login(client, "ana")
    assert csrf_of(client.get("/campaigns").text) != before


# ------------------------------------------------------------------------------------------- headers and escaping
def test_security_headers_everywhere(client):
    for r in (client.get("/login"), client.get("/static/console.js"), client.get("/nope")):
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
    assert client.get("/login").headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in client.get("/login").headers


def test_hsts_and_secure_cookie_behind_https(console_store):
    c = TestClient(create_app(console_store, make_settings(cookie_secure=True)), base_url="https://testserver")
    r = c.get("/login")
    assert r.headers["strict-transport-security"].startswith("max-age=")
    assert "secure" in r.headers["set-cookie"].lower()


def test_hostile_text_is_escaped_in_html(client):
    login(client, "adam")
    pages = [client.get("/campaigns").text, client.get("/campaigns/camp-cot").text,
             client.get("/accounts/" + quote(HOSTILE_ACCOUNT, safe="")).text,
             client.get("/search", params={"q": "window.__xss", "kind": "text"}).text,
             client.get("/search", params={"q": "<script>", "kind": "all"}).text]
    body = "\n".join(pages)
    for payload in XSS[:3] + [HOSTILE_ACCOUNT]:
        assert payload not in body
    assert "&lt;script&gt;window.__xss = 1" in body
    assert "onerror=&#34;window.__xss=5&#34;" in body or "onerror=&quot;window.__xss=5&quot;" in body
    assert re.findall(r"<script[^>]*>", body) and all(
        s in ('<script src="/static/chart.umd.min.js" defer>', '<script src="/static/console.js" defer>')
        or 'type="application/json"' in s for s in re.findall(r"<script[^>]*>", body))


# ------------------------------------------------------------------------------------------- actions
def test_confirm_writes_enforcement_labels_and_audit(client, console_store):
    login(client, "ana")
    r = _act(client, "campaign", "camp-agent", "confirm", reason="tool-use traces for training")
    assert "8 account(s) and 1 cluster(s) set to &#39;require_verification&#39;" in r.text  # the recommended action
    enf = [x for x in console_store.read_table("enforcement").to_pylist() if x["actor"] == "ana"]
    assert {(x["subject_type"], x["action"]) for x in enf} == {("account", "require_verification"),
                                                              ("cluster", "require_verification")}
    assert all(x["campaign_id"] == "camp-agent" and x["source"] == "analyst" for x in enf)
    labels = console_store.read_table("analyst_labels").to_pylist()
    assert len(labels) == 8 and {x["label"] for x in labels} == {"attack"}
    (a,) = _decisions(console_store)
    assert (a["actor"], a["role"], a["action"], a["subject_type"], a["subject_id"]) == (
        "ana", "analyst", "confirm", "campaign", "camp-agent")
    assert a["reason"] == "tool-use traces for training" and a["at"] is not None
    assert "confirmed" in client.get("/campaigns?status=confirmed").text


def test_dismiss_allow_lists_and_labels_benign(client, console_store):
    login(client, "ana")
    _act(client, "campaign", "camp-uni", "dismiss", reason="university lab with an agreement")
    enf = [x for x in console_store.read_table("enforcement").to_pylist() if x["actor"] == "ana"]
    assert len([x for x in enf if x["subject_type"] == "account"]) == 5 and {x["action"] for x in enf} == {"allow"}
    labels = console_store.read_table("analyst_labels").to_pylist()
    assert {x["label"] for x in labels} == {"benign"} and len(labels) == 5
    page = client.get("/campaigns/camp-uni").text
    assert 'id="campaign-status">dismissed' in page


def test_account_actions_newest_wins(client, console_store):
    login(client, "ana")
    for action in ("require_verification", "block", "unblock"):
        r = _act(client, "account", "acct-legit-03", action, reason=f"step {action}")
        assert r.status_code == 200 and "recorded in the audit log" in r.text
    page = client.get("/accounts/acct-legit-03").text
    assert re.search(r"now <span class=\"badge enf-allow\">allow</span>", page)
    assert [a["action"] for a in _decisions(console_store)] == ["require_verification", "block", "unblock"]
    rows = [x for x in console_store.read_table("enforcement").to_pylist() if x["subject_id"] == "acct-legit-03"]
    assert [x["action"] for x in sorted(rows, key=lambda x: x["created_at"])] == ["require_verification", "block", "allow"]
    assert not [x for x in rows if x["subject_type"] == "cluster"]


def test_action_needs_reason_and_known_subject(client, console_store):
    login(client, "ana")
    r = _act(client, "campaign", "camp-cot", "confirm", reason="  ")
    assert "Not done: a reason" in r.text
    page = client.get("/campaigns")
    r = client.post("/act", data={"csrf": csrf_of(page.text), "subject_type": "campaign", "subject_id": "nope",
                                  "action": "confirm", "reason": "no such thing"})
    assert r.status_code == 404 or "Not done" in r.text
    r = client.post("/act", data={"csrf": csrf_of(page.text), "subject_type": "campaign", "subject_id": "camp-cot",
                                  "action": "delete_everything", "reason": "nope nope"})
    assert "unknown action" in r.text
    assert _decisions(console_store) == []


def test_cluster_summaries_on_campaign_and_account(client):
    login(client, "vera")
    assert "<code>cl-1</code>: 12 accounts, risk 90% — Shared infrastructure" in client.get("/campaigns/camp-cot").text
    page = client.get("/accounts/acct-cot-05").text
    assert "Cluster <code>cl-1</code>: 12 accounts" in page and "payment" in page


def test_audit_page_lists_actions(client):
    login(client, "ana")
    _act(client, "account", "acct-cot-00", "block", reason="seen enough")
    page = client.get("/audit").text
    assert "seen enough" in page and "ana" in page and "block" in page


# ------------------------------------------------------------------------------------------- search
def test_search_kinds(client):
    login(client, "vera")
    r = client.get("/search", params={"q": "agent-0"}).text
    assert "acct-agent-00" in r and "acct-agent-07" in r
    r = client.get("/search", params={"q": "198.18.1.0/24", "kind": "ip"}).text
    assert r.count("/accounts/acct-agent-") >= 8 and "acct-cot-" not in r
    r = client.get("/search", params={"q": "tpl-grade-1", "kind": "template"}).text
    assert "Grade this essay" in r and "acct-uni-00" in r
    r = client.get("/search", params={"q": "Translate to French", "kind": "text"}).text
    assert "Searched prompt text of all" in r and "acct-legit-" in r
    r = client.get("/search", params={"q": "zz", "kind": "text"}).text
    assert "at least 3 characters" in r


def test_text_search_is_bounded(console_store):
    app = create_app(console_store, make_settings(text_scan_rows=1000))
    c = TestClient(app)
    login(c, "vera")
    r = c.get("/search", params={"q": "step", "kind": "text"}).text
    m = re.search(r"Searched prompt text of the ([\d,]+) most recent exchanges \(since (\S+)\) of ([\d,]+)", r)
    assert m, r[-2000:]
    assert int(m.group(1).replace(",", "")) < int(m.group(3).replace(",", ""))


# ------------------------------------------------------------------------------------------- empty store
def test_empty_store_shows_empty_states(tmp_path):
    from distillguard.console.aggregates import build_aggregates
    from distillguard.store import Store
    from distillguard.testing.factory import make_account, make_exchange, write_world

    st = Store(tmp_path / "s", create=True)
    write_world(st, [make_exchange(account_id="only-1")], [make_account("only-1")])
    build_aggregates(st)
    c = TestClient(create_app(st, make_settings()))
    login(c, "ana")
    assert "No campaigns yet" in c.get("/campaigns").text
    assert c.get("/campaigns/x").status_code == 404
    page = c.get("/accounts/only-1")
    assert page.status_code == 200 and "No per-exchange signals" in page.text and "No coordination edges" in page.text
    assert "only-1" in c.get("/search", params={"q": "only"}).text
    audit_page = c.get("/audit").text
    assert "<td>login</td>" in audit_page and 'id="audit-ok"' in audit_page
    r = _act(c, "account", "only-1", "block", reason="manual")
    assert "1 account(s)" in r.text


def test_dismiss_allow_entries_expire_when_configured(console_store):
    from datetime import UTC, datetime, timedelta

    c = TestClient(create_app(console_store, make_settings(allow_days=30)))
    login(c, "ana")
    _act(c, "campaign", "camp-uni", "dismiss", reason="lab agreement for a month")
    rows = [x for x in console_store.read_table("enforcement").to_pylist() if x["actor"] == "ana"]
    assert rows and all(x["action"] == "allow" for x in rows)
    for x in rows:
        assert abs(x["expires_at"] - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)


def test_role_comes_from_current_config(console_store):
    """A session cookie signed under the same key still only gets the role the config gives now."""
    c = TestClient(create_app(console_store, make_settings()))
    login(c, "ana")
    cookie = c.cookies.get("dg_console")
    from .helpers import PASSWORDS

    demoted = make_settings()
    demoted.users = [u.model_copy(update={"role": "viewer"}) if u.name == "ana" else u for u in demoted.users]
    c2 = TestClient(create_app(console_store, demoted))
    c2.cookies.set("dg_console", cookie)
    page = c2.get("/campaigns/camp-cot")
    assert page.status_code == 200 and "Viewers can look" in page.text
    removed = make_settings()
    removed.users = [u for u in removed.users if u.name != "ana"]
    c3 = TestClient(create_app(console_store, removed))
    c3.cookies.set("dg_console", cookie)
    assert c3.get("/campaigns", follow_redirects=False).status_code == 303
    assert PASSWORDS["ana"][0] == "analyst"


def test_campaign_table_sorts_and_ignores_unknown_columns(client):
    login(client, "vera")

    def order(q):
        return re.findall(r'href="/campaigns/(camp-[a-z]+)"', client.get("/campaigns" + q).text)

    assert order("") == ["camp-cot", "camp-agent", "camp-uni"]  # confidence, descending
    assert order("?sort=n_accounts&dir=asc") == ["camp-uni", "camp-agent", "camp-cot"]
    assert order("?sort=title&dir=asc") == ["camp-agent", "camp-cot", "camp-uni"]
    assert order("?sort=confidence;DROP TABLE x&dir=asc") == ["camp-uni", "camp-agent", "camp-cot"]
    assert order("?status=dismissed") == []


def test_stale_aggregates_banner_and_admin_rebuild(client, console_store):
    import time as _t
    from datetime import timedelta

    from distillguard.testing.console_fixture import T0
    from distillguard.testing.factory import make_exchange, write_world

    login(client, "adam")
    assert 'id="stale"' not in client.get("/campaigns").text
    write_world(console_store, [make_exchange(account_id="newcomer-1", ts=T0 + timedelta(days=1))], key="later")
    assert 'id="stale"' in client.get("/campaigns").text
    assert client.get("/accounts/newcomer-1").status_code == 404  # not in the aggregates yet
    page = client.get("/admin/enforcement")
    assert "Behind the store" in page.text
    r = client.post("/admin/rebuild", data={"csrf": csrf_of(page.text)})
    assert "Rebuilding the console aggregates" in r.text
    deadline = _t.time() + 60
    while 'id="stale"' in client.get("/campaigns").text and _t.time() < deadline:
        _t.sleep(0.2)
    assert client.get("/accounts/newcomer-1").status_code == 200

    analyst = TestClient(client.app)
    login(analyst, "ana")
    assert analyst.post("/admin/rebuild", data={"csrf": csrf_of(analyst.get("/campaigns").text)}).status_code == 403


def test_repeated_failed_logins_are_throttled(console_store):
    c = TestClient(create_app(console_store, make_settings(login_max_failures=3)))
    for _ in range(3):
        r = c.post("/login", data={"csrf": csrf_of(c.get("/login").text), "username": "ana", "secret": "guess"})
        assert r.status_code == 401
    r = c.post("/login", data={"csrf": csrf_of(c.get("/login").text), "username": "ana", "secret": "ana-pass-1"})
    assert r.status_code == 429 and "Too many failed logins" in r.text


def test_admin_ip24_subjects_are_canonical(client, console_store):
    login(client, "adam")
    for raw in ("203.0.113.77", "203.0.113.0/24", "203.0.113.128/25"):
        page = client.get("/admin/enforcement")
        r = client.post("/admin/enforcement", data={"csrf": csrf_of(page.text), "subject_type": "ip24",
                                                    "subject_id": raw, "action": "block", "reason": "proxy pool"})
        assert "Decision recorded" in r.text
    page = client.get("/admin/enforcement")
    r = client.post("/admin/enforcement", data={"csrf": csrf_of(page.text), "subject_type": "ip24",
                                                "subject_id": "10.0.0.0/8", "action": "block", "reason": "too wide"})
    assert "wider than one /24" in r.text
    ids = {x["subject_id"] for x in console_store.read_table("enforcement").to_pylist() if x["actor"] == "adam"}
    assert ids == {"203.0.113.0/24"}


def test_member_list_pages(client, monkeypatch):
    import distillguard.console.data as data_mod

    monkeypatch.setattr(data_mod, "MEMBERS_PAGE", 5)
    login(client, "vera")
    seen = []
    url = "/campaigns/camp-cot"
    for _ in range(5):
        page = client.get(url).text
        members = re.search(r'<table class="grid" id="members"[^>]*>(.*?)</table>', page, re.S).group(1)
        seen += re.findall(r'<td><a href="/accounts/([^"]+)"', members)
        nxt = re.search(r'href="(/campaigns/camp-cot\?members_offset=\d+)#accounts" id="members-next"', page)
        if not nxt:
            break
        url = nxt.group(1)
    assert len(seen) == 12 and len(set(seen)) == 12
    # The evidence graph bundles every member, whichever member page is open.
    board = re.search(r'<script type="application/json" id="board-graph">(.*?)</script>',
                      client.get("/campaigns/camp-cot?members_offset=10").text, re.S).group(1)
    assert sum(g["n"] for g in json.loads(board)["groups"]) == 12
    back = re.search(r'href="(/campaigns/camp-cot\?members_offset=\d+)#accounts">← previous', client.get(
        "/campaigns/camp-cot?members_offset=10").text).group(1)
    assert back.endswith("members_offset=5")


def test_vendored_chart_js_is_the_pinned_copy():
    import hashlib
    from pathlib import Path

    static = Path(__file__).resolve().parents[2] / "distillguard" / "console" / "static"
    js = (static / "chart.umd.min.js").read_bytes()
    note = (static / "VENDOR.md").read_text()
    assert b"Chart.js v4.6.1" in js[:200] and "| 4.6.1 |" in note
    assert hashlib.sha256(js).hexdigest() in note
    assert "MIT License" in (static / "LICENSE-chart.js.md").read_text()


def test_admin_reapplies_decisions_a_rewrite_dropped(client, console_store):
    """If another stage replaces `enforcement` wholesale, analyst decisions come back from the console's mirror."""
    login(client, "ana")
    _act(client, "campaign", "camp-cot", "confirm", reason="hydra")
    ours = [x for x in console_store.read_table("enforcement").to_pylist() if x["actor"] == "ana"]
    assert len(ours) == 13
    scan_only = [x for x in console_store.read_table("enforcement").to_pylist() if x["source"] == "scan"]
    from distillguard.console.tables import enforcement_rows

    console_store.write_table("enforcement", enforcement_rows(scan_only))  # what a rewriting stage would do

    admin = TestClient(client.app)
    login(admin, "adam")
    assert 'id="missing-banner"' in admin.get("/campaigns").text
    assert 'id="missing-banner"' not in client.get("/campaigns").text  # analysts cannot fix it: no banner
    page = admin.get("/admin/enforcement")
    assert "13 analyst decision row(s) are missing" in page.text
    r = admin.post("/admin/reapply", data={"csrf": csrf_of(page.text)})
    assert "Re-applied 13 analyst decision row(s)" in r.text and 'id="missing-decisions"' not in r.text
    back = sorted((x["subject_id"], x["created_at"]) for x in console_store.read_table("enforcement").to_pylist()
                  if x["actor"] == "ana")
    assert back == sorted((x["subject_id"], x["created_at"]) for x in ours)
    assert console_store.read_table("audit_log").to_pylist()[-1]["action"] == "reapply_decisions"
    assert "Re-applied 0" in admin.post("/admin/reapply", data={"csrf": csrf_of(r.text)}).text
    assert client.post("/admin/reapply", data={"csrf": csrf_of(client.get("/campaigns").text)}).status_code == 403
