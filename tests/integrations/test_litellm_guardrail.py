"""distillguard as a guardrail inside a real LiteLLM proxy (started here), the mock upstream behind it and
the official openai SDK in front.

LiteLLM's proxy pins older versions of shared libraries (rich, websockets), so it lives in its own
environment: `make litellm` builds .venv-litellm; DISTILLGUARD_LITELLM may name another `litellm` binary.
Without one the test skips and says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from distillguard.events.record import Account, accounts_to_table
from distillguard.gateway.recorder import compact_spool
from distillguard.store import Store
from distillguard.testing.net import free_port

ROOT = Path(__file__).parents[2]
MSG = [{"role": "user", "content": "why is the sky blue?"}]


def _litellm_bin() -> str | None:
    for cand in (os.environ.get("DISTILLGUARD_LITELLM"), str(ROOT / ".venv-litellm" / "bin" / "litellm"),
                 str(Path(sys.executable).parent / "litellm")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


@pytest.fixture(scope="module")
def upstream():
    from distillguard.gateway.mock_upstream import MockUpstream
    from tests.gateway.conftest import ServerThread

    srv = ServerThread(MockUpstream(reasoning_words=60, answer_words=30)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, upstream):
    exe = _litellm_bin()
    if exe is None:
        pytest.skip("LiteLLM proxy not installed: run `make litellm` (builds .venv-litellm) or set DISTILLGUARD_LITELLM")
    tmp = tmp_path_factory.mktemp("litellm")
    st = Store(tmp / "store", create=True)
    old = datetime.now(UTC) - timedelta(days=300)
    st.write_accounts(accounts_to_table([
        Account(account_id="ok", created_at=old, status="active"),
        Account(account_id="banned", created_at=old, status="banned"),
        Account(account_id="prot", created_at=old, status="active", signup_pathway="research"),
        Account(account_id="slow", created_at=old, status="active")]))
    (tmp / "policy.yaml").write_text(yaml.safe_dump({"rules": [
        {"name": "banned", "when": {"account_status_in": ["banned"]}, "action": "block"},
        {"name": "research", "when": {"pathway_in": ["research"]}, "action": "protect_reasoning"}]}))
    (tmp / "gateway.yaml").write_text(yaml.safe_dump({
        "store": str(tmp / "store"), "policy": str(tmp / "policy.yaml"),
        "recorder": {"flush_interval_ms": 5},
        "limits": {"account": {"requests": {"rate": 3, "per_seconds": 60, "burst": 3}}}}))
    port = free_port()
    (tmp / "litellm.yaml").write_text(yaml.safe_dump({
        "model_list": [{"model_name": "mock-reasoner", "litellm_params": {
            "model": "openai/mock-reasoner", "api_base": f"{upstream.url}/v1", "api_key": "sk-upstream"}}],
        "guardrails": [{"guardrail_name": "distillguard", "litellm_params": {
            "guardrail": "distillguard.integrations.litellm.DistillguardGuardrail",
            "mode": ["pre_call", "post_call"], "default_on": True, "distillguard_config": str(tmp / "gateway.yaml"),
            "account_from": ["end_user", "user_id", "key_alias", "token"]}}],
        "general_settings": {"master_key": "sk-master"}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DISTILLGUARD_KEY_PEPPER": "p", "LITELLM_LOG": "ERROR",
           "DISTILLGUARD_REASONING_SECRET": "s",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # no start-up fetch of the remote cost map (offline it retries 3 times before the proxy starts)
    log = open(tmp / "litellm.log", "wb")
    proc = subprocess.Popen([exe, "--config", str(tmp / "litellm.yaml"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    t0 = time.monotonic()
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() - t0 > 120:
            proc.kill()
            pytest.fail("LiteLLM proxy did not start:\n" + (tmp / "litellm.log").read_text()[-3000:])
        time.sleep(0.3)
    yield f"http://127.0.0.1:{port}/v1", tmp, proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(30)


def _client(url):
    return openai.OpenAI(base_url=url, api_key="sk-master", max_retries=0)


def test_litellm_guardrail_end_to_end(proxy):
    url, tmp, proc = proxy
    c = _client(url)
    r = c.chat.completions.create(model="mock-reasoner", messages=MSG, user="ok")
    assert r.choices[0].message.content
    assert getattr(r.choices[0].message, "reasoning_content", None)  # not protected: reasoning passes

    p = c.chat.completions.create(model="mock-reasoner", messages=MSG, user="prot")
    assert p.choices[0].message.content
    assert not getattr(p.choices[0].message, "reasoning_content", None)  # protect_reasoning stripped it
    chunks = list(c.chat.completions.create(model="mock-reasoner", messages=MSG, user="prot", stream=True))
    assert any(ch.choices and ch.choices[0].delta.content for ch in chunks)
    assert not any(ch.choices and getattr(ch.choices[0].delta, "reasoning_content", None) for ch in chunks)

    with pytest.raises(openai.PermissionDeniedError) as e:
        c.chat.completions.create(model="mock-reasoner", messages=MSG, user="banned")
    assert e.value.response.headers["x-distillguard-error"] == "account_blocked"
    assert e.value.body["provider_specific_fields"]["code"] == "account_blocked"

    for _ in range(3):
        assert c.chat.completions.create(model="mock-reasoner", messages=MSG, user="slow").choices
    with pytest.raises(openai.RateLimitError) as e:
        c.chat.completions.create(model="mock-reasoner", messages=MSG, user="slow")
    assert e.value.response.headers["x-distillguard-error"] == "rate_limit_exceeded"
    assert int(e.value.response.headers["retry-after"]) >= 1

    time.sleep(0.5)  # the recorder flushes every 5 ms
    proc.terminate()
    proc.wait(30)
    st = Store(tmp / "store")
    compact_spool(tmp / "store" / "spool", st)
    rows = st.exchanges().to_arrow_table().to_pylist()
    by = {}
    for row in rows:
        by.setdefault(row["account_id"], []).append(row)
    assert len(by["ok"]) == 1 and by["ok"][0]["response_chars"] > 0 and by["ok"][0]["reasoning_chars"] > 0
    assert all(x["action"] == "protect" and x["reasoning_redacted"] for x in by["prot"]) and len(by["prot"]) == 2
    assert [x["action"] for x in by["banned"]] == ["block"] and by["banned"][0]["http_status"] == 403
    assert sorted(x["http_status"] for x in by["slow"]) == [200, 200, 200, 429]
    assert all(x["prompt"] == MSG[0]["content"] for x in rows)
