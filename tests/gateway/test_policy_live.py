"""Policy in the running gateway: verification codes, shadow mode, hot reload of policy and enforcement."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import anthropic
import httpx
import openai
import orjson
import pytest

from distillguard.events.record import Account, accounts_to_table
from distillguard.store import Store
from tests.gateway.conftest import read_exchanges

MSG = [{"role": "user", "content": "tell me how you think"}]


def _wait(pred, timeout=5.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_verification_required_from_account_facts(make_gateway, tmp_path):
    st = Store(tmp_path / "store", create=True)
    now = datetime.now(UTC)
    st.write_accounts(accounts_to_table([
        Account(account_id="edu-new", org_id="o", created_at=now - timedelta(days=1), signup_pathway="education",
                verification_level=0, signup_country="US", status="active"),
        Account(account_id="old", org_id="o", created_at=now - timedelta(days=400), signup_pathway="education",
                verification_level=0, signup_country="US", status="active")]))
    pol = tmp_path / "policy.yaml"
    pol.write_text("rules:\n  - name: new-edu-reasoning\n    when: {pathway_in: [education], account_age_days_below: 7,"
                   " verification_below: 2, reasoning_requested: true}\n    action: require_verification\n"
                   "    reason: new education account asking for reasoning\n")
    gw = make_gateway(accounts=("edu-new", "old"), policy=str(pol))
    with pytest.raises(openai.PermissionDeniedError) as e:
        openai.OpenAI(base_url=gw.url, api_key=gw.keys["edu-new"], max_retries=0).chat.completions.create(
            model="m", messages=MSG, reasoning_effort="high")
    assert e.value.code == "verification_required"
    assert e.value.response.headers["x-distillguard-error"] == "verification_required"
    with pytest.raises(anthropic.PermissionDeniedError) as e2:
        anthropic.Anthropic(base_url=gw.srv.url, api_key=gw.keys["edu-new"], max_retries=0).messages.create(
            model="m", max_tokens=10, messages=MSG, thinking={"type": "enabled", "budget_tokens": 1024})
    assert e2.value.body["error"]["code"] == "verification_required"
    ok = openai.OpenAI(base_url=gw.url, api_key=gw.keys["old"], max_retries=0)
    assert ok.chat.completions.create(model="m", messages=MSG, reasoning_effort="high").choices
    gw.flush()
    gw.srv.stop()
    rows = read_exchanges(tmp_path / "store")
    v = [r for r in rows if r["account_id"] == "edu-new"]
    assert {r["action"] for r in v} == {"verify"} and all(r["http_status"] == 403 for r in v)
    assert "rule new-edu-reasoning: new education account asking for reasoning" in v[0]["action_reasons"]


def test_shadow_mode_then_hot_reload_to_enforce(make_gateway, tmp_path):
    enf = tmp_path / "enf.jsonl"
    enf.write_bytes(orjson.dumps({"subject_type": "account", "subject_id": "acct-1", "action": "block",
                                  "reason": "cluster 7 extraction", "source": "scan",
                                  "created_at": "2026-01-01T00:00:00Z"}) + b"\n")
    pol = tmp_path / "policy.yaml"
    pol.write_text("mode: shadow\n")
    gw = make_gateway(policy=str(pol), enforcement_file=str(enf))
    c = openai.OpenAI(base_url=gw.url, api_key=gw.keys["acct-1"], max_retries=0)
    assert c.chat.completions.create(model="m", messages=MSG).choices  # shadow: decided block, let through
    pol.write_text("mode: enforce\n# now for real\n")
    assert _wait(lambda: gw.gateway.policy.policy.mode == "enforce")
    with pytest.raises(openai.PermissionDeniedError) as e:
        c.chat.completions.create(model="m", messages=MSG)
    assert e.value.code == "account_blocked"
    # the analyst lifts it: a newer allow row in the enforcement file, picked up without a restart
    with open(enf, "ab") as f:
        f.write(orjson.dumps({"subject_type": "account", "subject_id": "acct-1", "action": "allow",
                              "reason": "false positive", "source": "analyst",
                              "created_at": datetime.now(UTC).isoformat()}) + b"\n")
    assert _wait(lambda: gw.gateway.snapshot.decision("account", "acct-1", time.time()).action == "allow")
    assert c.chat.completions.create(model="m", messages=MSG).choices
    # a broken edit is refused and the last good policy stays
    pol.write_text("mode: enforce\nrules: [{name: x, when: {}, action: block}]\n")
    assert _wait(lambda: gw.gateway.policy.last_error is not None)
    assert "rules.0.when" in gw.gateway.policy.last_error
    assert c.chat.completions.create(model="m", messages=MSG).choices
    ready = httpx.get(gw.srv.url + "/readyz").json()
    assert ready["policy_version"] == 2 and "rules.0.when" in ready["policy_error"]
    gw.flush()
    gw.srv.stop()
    rows = sorted(read_exchanges(tmp_path / "store"), key=lambda r: r["ts"])
    assert [r["action"] for r in rows] == ["block", "block", "allow", "allow"]
    assert [r["http_status"] for r in rows] == [200, 403, 200, 200]
    assert rows[0]["action_reasons"][0].startswith("shadow mode") and orjson.loads(rows[0]["extra"])["shadow"]


def test_metrics_health_and_logs_without_secrets(make_gateway, caplog):
    gw = make_gateway(logging={"access_log": True})
    key = gw.keys["acct-1"]
    secret_prompt = "my very private prompt 12345"
    with caplog.at_level(logging.INFO, logger="distillguard"):
        httpx.post(gw.url + "/chat/completions", headers={"authorization": f"Bearer {key}"},
                   json={"model": "m", "messages": [{"role": "user", "content": secret_prompt}]})
        httpx.post(gw.url + "/chat/completions", headers={"authorization": "Bearer nope"}, json={})
        gw.flush()
    m = httpx.get(gw.srv.url + "/metrics").text
    assert 'distillguard_gateway_requests_total{api="chat.completions",status="200"} 1.0' in m
    assert 'distillguard_gateway_requests_total{api="chat.completions",status="401"} 1.0' in m
    assert 'distillguard_gateway_decisions_total{action="allow",enforced="true"} 1.0' in m
    assert "distillguard_gateway_added_latency_seconds_bucket" in m
    assert httpx.get(gw.srv.url + "/healthz").status_code == 200
    assert httpx.get(gw.srv.url + "/readyz").json()["ready"] is True
    text = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert "request" in text and key not in text and secret_prompt not in text


def test_keys_from_the_store_api_keys_table_hot_reloaded(make_gateway, tmp_path):
    import pyarrow as pa

    from distillguard.gateway.identity import hash_key, pepper_from_env

    gw = make_gateway()
    key = "sk-from-store-table-1"
    c = openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        c.chat.completions.create(model="m", messages=MSG)
    Store(tmp_path / "store").write_table("api_keys", pa.Table.from_pylist([
        {"key_hash": hash_key(key, pepper_from_env("DISTILLGUARD_KEY_PEPPER")), "key_id": "kt-1",
         "account_id": "acct-table", "org_id": "org-t"}]))
    assert _wait(lambda: gw.gateway.keyring.resolve(key) is not None)
    assert c.chat.completions.create(model="m", messages=MSG).choices
    gw.flush()
    gw.srv.stop()
    rows = read_exchanges(tmp_path / "store")
    assert [(r["account_id"], r["api_key_id"], r["org_id"]) for r in rows if r["http_status"] == 200] == \
        [("acct-table", "kt-1", "org-t")]
