"""The sign-up door on a running gateway: new accounts scored against banned accounts, campaigns and bursts."""

from __future__ import annotations

import httpx
import pyarrow as pa
import pytest

from distillguard.campaigns.build import CAMPAIGN_SCHEMA
from distillguard.store import Store
from distillguard.testing.factory import make_account, make_exchange, write_world

TOKEN = "assess-token-0123456789"


@pytest.fixture
def store(tmp_path):
    st = Store(tmp_path / "store", create=True)
    accts = [make_account("old", status="banned", payment_fingerprint="pay-banned", email_local="zq17kx",
                          email_domain="mail.test", signup_ip="203.0.113.5"),
             make_account("c1", payment_fingerprint="pay-camp", email_local="kk", email_domain="corp.test"),
             make_account("c2", payment_fingerprint="pay-camp2", email_local="kk2", email_domain="corp.test")]
    # forty ordinary users; half share the plainest naming pattern at a free-mail domain (too common to mean anything)
    accts += [make_account(f"u{i}", payment_fingerprint=f"pay-u{i}", email_local=f"user{i}" if i % 2 else "jo1",
                           email_domain="freemail.test", signup_ip=f"198.51.{i}.9") for i in range(40)]
    ex = [make_exchange(account_id="old", client_ip="203.0.113.77", tls_ja4="t13d_rare_tooling",
                        header_order_fp="hfp-tool") for _ in range(5)]
    ex += [make_exchange(account_id=f"u{i}", client_ip=f"198.51.{i}.9", tls_ja4="t13d_common_sdk") for i in range(40)]
    ex += [make_exchange(account_id="old", tls_ja4="t13d_common_sdk")]  # the attacker also used the common SDK
    write_world(st, ex, accts)
    camp = {n: None for n in CAMPAIGN_SCHEMA.names}
    camp.update(campaign_id="camp-1", title="t", confidence=0.8, recommended_action="block", status="detected")
    st.write_table("campaigns", pa.Table.from_pylist([camp], schema=CAMPAIGN_SCHEMA))
    st.write_table("campaign_members", pa.table({"campaign_id": ["camp-1", "camp-1"], "account_id": ["c1", "c2"]}))
    return st


def _post(gw, body, token=TOKEN):
    h = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(gw.srv.url + "/v1/accounts/assess", json=body, headers=h, timeout=10)


def test_assess_new_accounts(make_gateway, store, monkeypatch):
    monkeypatch.setenv("DISTILLGUARD_ASSESS_TOKEN", TOKEN)
    gw = make_gateway(store=str(store.path))
    # the banned operator's card comes back on a fresh account
    r = _post(gw, {"account_id": "n1", "email": "fresh@else.test", "payment_fingerprint": "pay-banned",
                   "client_ip": "192.0.2.10"}).json()
    assert r["decision"] == "deny" and "payment instrument matches banned account old" in r["reasons"]
    # a plain newcomer
    r = _post(gw, {"account_id": "n2", "email": "someone@else.test", "payment_fingerprint": "pay-new",
                   "client_ip": "192.0.12.11", "verification_level": 1}).json()
    assert r["decision"] == "allow" and r["reasons"] == [] and r["score"] == 0
    # the banned account's naming pattern (zq17kx -> a99a) alone: verify on the education pathway, allow on standard
    body = {"account_id": "n3", "email": "ab42cd@mail.test", "client_ip": "192.0.13.12", "verification_level": 1}
    std = _post(gw, {**body, "signup_pathway": "standard"}).json()
    edu = _post(gw, {**body, "account_id": "n4", "signup_pathway": "education"}).json()
    assert std["decision"] == "allow" and edu["decision"] == "require_verification"
    assert edu["reasons"] == ["e-mail naming pattern a99a@mail.test matches banned account old"]
    assert std["score"] == edu["score"] > 0
    # a pattern and a client fingerprint that many ordinary users share identify nobody
    r = _post(gw, {"account_id": "n5", "email": "jo7@freemail.test", "tls_ja4": "t13d_common_sdk",
                   "client_ip": "192.0.15.13"}).json()
    assert r["decision"] == "allow" and r["matches"] == []
    # the attacker's own tooling and network
    r = _post(gw, {"account_id": "n6", "tls_ja4": "t13d_rare_tooling", "client_ip": "203.0.113.200"}).json()
    assert {m["kind"] for m in r["matches"]} == {"client", "network"} and r["decision"] == "require_verification"
    # a payment change to a card of a (detected, not yet confirmed) campaign member
    r = _post(gw, {"account_id": "u3", "event": "payment_change", "payment_fingerprint": "pay-camp"}).json()
    assert r["event"] == "payment_change" and r["decision"] == "require_verification"
    assert "matches member of detected campaign camp-1" in r["reasons"][0]
    # stricter pathways: a startup-credit sign-up with no verification must verify even with a clean record
    r = _post(gw, {"account_id": "n7", "signup_pathway": "startup", "client_ip": "192.0.17.14"}).json()
    assert r["decision"] == "require_verification" and "requires verification level 1" in r["reasons"][0]


def test_creation_burst_on_one_pathway(make_gateway, store, monkeypatch):
    monkeypatch.setenv("DISTILLGUARD_ASSESS_TOKEN", TOKEN)
    gw = make_gateway(store=str(store.path), signup={"burst_min": 4})
    out = [_post(gw, {"account_id": f"farm-{i}", "signup_pathway": "research", "client_ip": f"100.64.9.{i}",
                      "verification_level": 2}).json() for i in range(5)]
    assert [o["decision"] for o in out[:3]] == ["allow"] * 3
    assert out[3]["decision"] == "require_verification"
    assert "creation burst: 4 sign-ups on pathway research from network 100.64.9.0/24" in out[3]["reasons"][0]
    # another pathway from the same network is its own window
    assert _post(gw, {"account_id": "x", "signup_pathway": "standard", "client_ip": "100.64.9.99"}).json()[
        "decision"] == "allow"


def test_door_is_closed_without_a_token_and_checks_input(make_gateway, store, monkeypatch):
    monkeypatch.delenv("DISTILLGUARD_ASSESS_TOKEN", raising=False)
    gw = make_gateway(store=str(store.path))
    r = _post(gw, {"account_id": "a"})
    assert r.status_code == 503 and "DISTILLGUARD_ASSESS_TOKEN" in r.json()["error"]["message"]
    monkeypatch.setenv("DISTILLGUARD_ASSESS_TOKEN", TOKEN)
    gw = make_gateway(store=str(store.path))
    assert _post(gw, {"account_id": "a"}, token=None).status_code == 401
    assert _post(gw, {"account_id": "a"}, token=gw.keys["acct-1"]).status_code == 401  # an API key is not the token
    for bad in ({}, {"account_id": "a", "client_ip": "nope"}, {"account_id": "a", "verification_level": 9},
                {"account_id": "a", "event": "login"}):
        r = _post(gw, bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    assert httpx.get(gw.srv.url + "/v1/accounts/assess").status_code == 405
