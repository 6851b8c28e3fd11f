"""Console security under attack (issue 12): revocable sessions, atomic throttling behind a proxy, constant-cost
user lookup, every security event audited in a tamper-evident log, validated query parameters."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from starlette.testclient import TestClient

from distillguard.console import audit
from distillguard.console import config as console_config
from distillguard.console.app import create_app
from distillguard.console.security import client_address, parse_networks

from .helpers import PASSWORDS, csrf_of, login, make_settings

REPO = Path(__file__).resolve().parents[2]
PROXY = ("10.0.0.1", 40000)


def _rows(store) -> list[dict]:
    return sorted(store.read_table("audit_log").to_pylist(), key=lambda r: r["seq"]) if store.has_table(
        "audit_log") else []


def _try(c, user, secret, xff=None):
    page = c.get("/login")
    return c.post("/login", data={"csrf": csrf_of(page.text), "username": user, "secret": secret},
                  headers={"x-forwarded-for": xff} if xff else None)


def test_logout_revokes_the_cookie_server_side(console_store):
    c = TestClient(create_app(console_store, make_settings()))
    login(c, "ana")
    stolen = c.cookies.get("dg_console")
    r = c.post("/logout", data={"csrf": csrf_of(c.get("/campaigns").text)}, follow_redirects=False)
    assert r.status_code == 303
    thief = TestClient(c.app)
    thief.cookies.set("dg_console", stolen)
    assert thief.get("/campaigns", follow_redirects=False).status_code == 303  # the copy is dead too
    # A new app over the same store (a restart) knows the session is gone as well.
    again = TestClient(create_app(console_store, make_settings()))
    again.cookies.set("dg_console", stolen)
    assert again.get("/campaigns", follow_redirects=False).status_code == 303


def test_sessions_expire_when_idle(console_store):
    c = TestClient(create_app(console_store, make_settings(session_idle_s=300)))
    login(c, "vera")
    real = time.time
    try:
        time.time = lambda: real() + 200
        assert c.get("/campaigns", follow_redirects=False).status_code == 200  # used: idle clock restarts
        time.time = lambda: real() + 200 + 301
        assert c.get("/campaigns", follow_redirects=False).status_code == 303
    finally:
        time.time = real


def test_parallel_wrong_passwords_cannot_outrun_the_limit(live_server):
    """60 guesses in parallel against the real server: at most `login_max_failures` reach the password check."""
    def guess(i):
        with httpx.Client(base_url=live_server, timeout=60) as c:
            page = c.get("/login")
            return c.post("/login", data={"csrf": csrf_of(page.text), "username": "ana", "secret": f"guess-{i}"}).status_code

    with ThreadPoolExecutor(max_workers=30) as ex:
        codes = list(ex.map(guess, range(60)))
    assert codes.count(401) == 10 and codes.count(429) == 50, codes


def test_behind_a_trusted_proxy_each_client_is_throttled_alone(console_store):
    app = create_app(console_store, make_settings(login_max_failures=3, trusted_proxies=["10.0.0.0/8"]))
    c = TestClient(app, client=PROXY)
    for _ in range(3):
        assert _try(c, "ana", "wrong", xff="203.0.113.5").status_code == 401
    assert _try(c, "adam", "adam-pass-1", xff="203.0.113.5").status_code == 429  # the guesser's address is blocked
    ok = TestClient(app, client=PROXY)
    r = _try(ok, "vera", "vera-pass-1", xff="198.51.100.7")
    assert r.status_code == 200 and "Campaigns" in r.text  # another analyst behind the same proxy is not
    # An untrusted peer cannot pick its address with the header: it is throttled as itself.
    direct = TestClient(app, client=("192.0.2.9", 1))
    for i in range(3):
        assert _try(direct, "vera", "wrong", xff=f"198.51.100.{i}").status_code == 401
    assert _try(direct, "vera", "vera-pass-1", xff="198.51.100.99").status_code == 429
    detail = [r["detail"] for r in _rows(console_store) if r["action"] == "login_failed"]
    assert sum('"client":"203.0.113.5"' in d for d in detail) == 3 and sum('"client":"192.0.2.9"' in d for d in
                                                                            detail) == 3


def test_per_user_limit_spans_addresses(console_store):
    app = create_app(console_store, make_settings(login_max_failures_per_user=4, trusted_proxies=["10.0.0.1"]))
    c = TestClient(app, client=PROXY)
    for i in range(4):
        assert _try(c, "Ana", "wrong", xff=f"203.0.113.{i}").status_code == 401
    r = _try(c, "ana", "ana-pass-1", xff="203.0.113.200")
    assert r.status_code == 429 and "this user name" in r.text
    assert _try(c, "adam", "adam-pass-1", xff="203.0.113.200").status_code == 200


def test_forwarded_address_parsing():
    trusted = parse_networks(["10.0.0.0/8", "192.168.1.1"])
    assert client_address("10.1.2.3", "203.0.113.5, 192.168.1.1", trusted) == "203.0.113.5"
    assert client_address("10.1.2.3", "6.6.6.6, 203.0.113.5", trusted) == "203.0.113.5"  # spoofed left part ignored
    assert client_address("203.0.113.9", "6.6.6.6", trusted) == "203.0.113.9"
    assert client_address("10.1.2.3", "not-an-ip", trusted) == "10.1.2.3"
    assert client_address("10.1.2.3", "6.6.6.6", []) == "10.1.2.3"


def test_known_and_unknown_names_cost_one_scrypt_each(monkeypatch):
    settings = make_settings()
    calls = []
    real = console_config.verify_secret
    monkeypatch.setattr(console_config, "verify_secret", lambda s, h: calls.append(h) or real(s, h))
    for name, secret in (("ana", "wrong"), ("nobody", "wrong"), ("ana", ""), ("nobody", "")):
        calls.clear()
        assert console_config.authenticate(settings, name, secret) is None
        assert len(calls) == 1, (name, secret)
    calls.clear()
    assert console_config.authenticate(settings, "ana", PASSWORDS["ana"][1]) == ("ana", "analyst") and len(calls) == 1


def test_security_events_are_audited_and_chained(console_store):
    app = create_app(console_store, make_settings(login_max_failures=2))
    c = TestClient(app)
    login(c, "adam")
    c.post("/admin/rebuild", data={"csrf": csrf_of(c.get("/admin/enforcement").text)})
    c.post("/logout", data={"csrf": csrf_of(c.get("/campaigns").text)})
    bad = TestClient(app, client=("198.51.100.3", 1))
    for _ in range(2):
        _try(bad, "vera", "wrong")
    for _ in range(3):
        assert _try(bad, "vera", "vera-pass-1").status_code == 429
    acts = [(r["actor"], r["action"]) for r in _rows(console_store)]
    assert acts == [("adam", "login"), ("adam", "rebuild_aggregates"), ("adam", "logout"), ("vera", "login_failed"),
                    ("vera", "login_failed"), ("vera", "login_refused")]  # one refusal row per window, not three
    check = audit.verify(console_store)
    assert check.ok and check.chained == 6 and check.head_seq == 6
    assert "tampered" not in c.get("/audit").text


def _parts(store) -> list[Path]:
    return sorted((store.path / "tables" / "audit_log").glob("*.parquet"))


def _audited(console_store, n=4):
    c = TestClient(create_app(console_store, make_settings()))
    login(c, "adam")
    for i in range(n - 1):
        page = c.get("/admin/enforcement")
        c.post("/admin/enforcement", data={"csrf": csrf_of(page.text), "subject_type": "org", "subject_id": f"org-{i}",
                                           "action": "allow", "reason": "partner lab"})
    assert audit.verify(console_store).ok and len(_parts(console_store)) == n
    return c


def test_a_rewritten_row_is_detected(console_store):
    c = _audited(console_store)
    assert 'id="audit-ok"' in c.get("/audit").text  # the page has now read (and cached) every part
    p = _parts(console_store)[2]
    t = pq.read_table(p)
    t = t.set_column(t.schema.get_field_index("reason"), "reason", [["nothing to see"]])
    pq.write_table(t, p)
    check = audit.verify(console_store)
    assert check.problems == ["audit row 3 was changed after it was written (hash mismatch)"]
    page = c.get("/audit").text
    assert 'id="audit-tampered"' in page and "audit row 3 was changed" in page


@pytest.mark.parametrize("which, problem", [
    (1, "audit rows 2–2 are missing (deleted)"),
    (-1, "audit rows 4–4 are missing at the end (deleted)"),
])
def test_a_deleted_row_is_detected(console_store, which, problem):
    _audited(console_store)
    _parts(console_store)[which].unlink()
    assert problem in audit.verify(console_store).problems


def test_verify_command_exit_codes(console_store):
    _audited(console_store, n=2)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "distillguard", "console-verify-audit", "--store", str(console_store.path)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("intact: 2 audit rows, 2 chained"), r.stdout + r.stderr
    _parts(console_store)[0].unlink()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and "PROBLEM: audit rows 1–1 are missing (deleted)" in r.stdout


def test_concurrent_appends_keep_one_chain(console_store):
    from datetime import UTC, datetime

    def one(i):
        audit.append(console_store, datetime.now(UTC), f"u{i}", "admin", "refused", "request", "x", "", {"i": i})

    with ThreadPoolExecutor(max_workers=8) as ex:
        list(ex.map(one, range(40)))
    check = audit.verify(console_store)
    assert check.ok and check.chained == 40 and [r["seq"] for r in _rows(console_store)] == list(range(1, 41))


@pytest.mark.parametrize("value", ["1e23", "100000000000000000000000", "-1", "abc", "５"])
def test_bad_members_offset_is_a_400(console_store, value):
    c = TestClient(create_app(console_store, make_settings()))
    login(c, "vera")
    r = c.get(f"/campaigns/camp-cot?members_offset={value}")
    assert r.status_code == 400 and "members_offset must be a whole number" in r.text
    assert c.get("/campaigns/camp-cot?members_offset=5").status_code == 200
