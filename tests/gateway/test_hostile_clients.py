"""Clients that try to confuse or exhaust the gateway: two credentials, huge or endless headers, slow
bodies, long keys, malformed request shapes. Each case is answered in the API's own error format (or
with a plain 4xx and a closed connection when the request never got as far as the app)."""

from __future__ import annotations

import socket
import time
import tracemalloc

import anthropic
import httpx
import openai
import orjson
import pytest

from distillguard.gateway.config import IdentityConfig
from distillguard.gateway.identity import KeyRing
from tests.gateway.conftest import read_exchanges

MSG = [{"role": "user", "content": "hello there"}]


def _blocking(tmp_path, account: str):
    enf = tmp_path / "enf.jsonl"
    enf.write_bytes(orjson.dumps({"subject_type": "account", "subject_id": account, "action": "block",
                                  "reason": "extraction", "source": "scan",
                                  "created_at": "2026-01-01T00:00:00Z"}) + b"\n")
    return str(enf)


def _raw(port: int, parts, pause: float = 0.0, timeout: float = 20.0) -> bytes:
    """Send ``parts`` (pausing between them) and return what the server answers before closing."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = b""
    try:
        for p in parts:
            try:
                s.sendall(p)
            except OSError:  # the server closed on us: what matters is what it answered
                break
            if pause:
                time.sleep(pause)
        while True:
            try:
                b = s.recv(65536)
            except OSError:
                break
            if not b:
                break
            got += b
    finally:
        s.close()
    return got


def test_a_blocked_key_next_to_a_clean_one_is_refused_not_judged_by_either(make_gateway, tmp_path,
                                                                           hostile_upstream):
    gw = make_gateway(accounts=("clean", "blocked"), enforcement_file=_blocking(tmp_path, "blocked"),
                      upstream={"url": hostile_upstream.url + "/v1"})
    clean, blocked = gw.keys["clean"], gw.keys["blocked"]
    seen = len(hostile_upstream.heads)
    # Two keys in Authorization and x-api-key, both set through the official SDKs' own options.
    with pytest.raises(anthropic.BadRequestError) as e:
        anthropic.Anthropic(base_url=gw.srv.url, api_key=clean, max_retries=0,
                            default_headers={"x-api-key": blocked}).messages.create(
            model="m", max_tokens=10, messages=MSG)
    assert e.value.body["error"]["code"] == "multiple_credentials"
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as e2:
        openai.OpenAI(base_url=gw.url, api_key=blocked, max_retries=0,
                      default_headers={"x-api-key": clean}).chat.completions.create(model="m", messages=MSG)
    assert e2.value.code == "multiple_credentials" and "different keys" in e2.value.message
    # A repeated header cannot be sent through an SDK (they keep one value per name): raw HTTP.
    for dup in ([("authorization", f"Bearer {clean}"), ("authorization", f"Bearer {blocked}")],
                [("authorization", f"Bearer {blocked}"), ("authorization", f"Bearer {clean}")],
                [("x-api-key", clean), ("x-api-key", blocked)],
                [("x-api-key", clean), ("api-key", blocked)]):
        r = httpx.post(gw.url + "/chat/completions", headers=dup, json={"model": "m", "messages": MSG})
        assert r.status_code == 400 and r.json()["error"]["code"] == "multiple_credentials", dup
        assert "x-distillguard-exchange-id" not in r.headers
    assert len(hostile_upstream.heads) == seen  # none of them reached the upstream
    # The same key in both places is one credential: served, and judged by that key.
    r = openai.OpenAI(base_url=gw.url, api_key=clean, max_retries=0, default_headers={"x-api-key": clean})
    assert r.chat.completions.create(model="m", messages=MSG).choices
    with pytest.raises(openai.PermissionDeniedError):
        openai.OpenAI(base_url=gw.url, api_key=blocked, max_retries=0,
                      default_headers={"x-api-key": blocked}).chat.completions.create(model="m", messages=MSG)
    # A non-Bearer Authorization is not silently skipped in favour of x-api-key.
    r = httpx.post(gw.url + "/chat/completions", headers=[("authorization", "Basic Zm9vOmJhcg=="),
                                                         ("x-api-key", clean)], json={"model": "m", "messages": MSG})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_client_credentials_never_reach_the_upstream_when_the_gateway_holds_its_key(make_gateway, hostile_upstream,
                                                                                   monkeypatch):
    monkeypatch.setenv("DG_TEST_UPSTREAM_KEY", "sk-upstream-secret")
    gw = make_gateway(upstream={"url": hostile_upstream.url + "/v1", "api_key": "${DG_TEST_UPSTREAM_KEY}"})
    key = gw.keys["acct-1"]
    c = openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0, organization="org-client",
                      project="proj-client")
    assert c.chat.completions.create(model="m", messages=MSG).choices[0].message.content == "hostile reply"
    a = anthropic.Anthropic(base_url=gw.srv.url, api_key=key, max_retries=0)
    assert a.messages.create(model="m", max_tokens=10, messages=MSG).content[0].text == "hostile reply"
    for head in hostile_upstream.heads[-2:]:
        d = {}
        for k, v in head:
            d.setdefault(k, []).append(v)
        assert d[b"authorization"] == [b"Bearer sk-upstream-secret"] and d[b"x-api-key"] == [b"sk-upstream-secret"]
        assert b"openai-organization" not in d and b"openai-project" not in d and b"api-key" not in d
        assert key.encode() not in b"".join(v for _, v in head)


def test_passthrough_credential_reaches_the_upstream_exactly_once(make_gateway, hostile_upstream):
    gw = make_gateway(upstream={"url": hostile_upstream.url + "/v1"})
    key = gw.keys["acct-1"]
    openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0).chat.completions.create(model="m", messages=MSG)
    head = hostile_upstream.heads[-1]
    assert [v for k, v in head if k in (b"authorization", b"x-api-key", b"api-key")] == [f"Bearer {key}".encode()]


def test_oversized_or_too_many_headers_are_refused_while_they_arrive(make_gateway):
    gw = make_gateway(server={"max_header_bytes": 16384, "max_headers": 50})
    port = gw.srv.port
    line = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
    # 8 MiB Authorization in 64 KiB pieces: refused after the first pieces, not buffered whole.
    big = [line + b"authorization: Bearer "] + [b"k" * 65536] * 128
    out = _raw(port, big)
    assert out.startswith(b"HTTP/1.1 431 ") and b"connection: close" in out
    many = line + b"".join(b"x-h%d: v\r\n" % i for i in range(60)) + b"content-length: 2\r\n\r\n{}"
    assert _raw(port, [many]).startswith(b"HTTP/1.1 431 ")
    refused = gw.gateway.metrics.refused_conn
    assert refused.labels("header_bytes")._value.get() >= 1 and refused.labels("header_lines")._value.get() >= 1
    # Through an SDK: 60 custom headers -> 431, nothing recorded, the gateway still serves.
    with pytest.raises(openai.APIStatusError) as e:
        openai.OpenAI(base_url=gw.url, api_key=gw.keys["acct-1"], max_retries=0,
                      default_headers={f"x-extra-{i}": "v" for i in range(60)}).chat.completions.create(
            model="m", messages=MSG)
    assert e.value.status_code == 431
    assert openai.OpenAI(base_url=gw.url, api_key=gw.keys["acct-1"], max_retries=0).chat.completions.create(
        model="m", messages=MSG).choices


def test_slow_headers_slow_bodies_and_silent_connections_are_cut(make_gateway):
    gw = make_gateway(server={"header_timeout_s": 1.0, "body_timeout_s": 1.0})
    port = gw.srv.port
    key = gw.keys["acct-1"].encode()
    # slowloris: one header byte every 0.1 s, for longer than the header deadline
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-slow: " + b"a" * 40
    out = _raw(port, [head[:10]] + [bytes([b]) for b in head[10:]], pause=0.1)
    assert out.startswith(b"HTTP/1.1 408 ")
    # a connection that never says anything
    assert _raw(port, [], timeout=20).startswith(b"HTTP/1.1 408 ")
    # headers on time, body trickling: 408 in the API's format, connection closed
    req = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer " + key +
           b"\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n")
    out = _raw(port, [req] + [b" "] * 30, pause=0.1)
    assert out.startswith(b"HTTP/1.1 408 ")
    body = out.split(b"\r\n\r\n", 1)[1]
    assert orjson.loads(body)["error"]["code"] == "request_timeout"
    # the same request at normal speed on a kept-alive connection still works, twice
    c = openai.OpenAI(base_url=gw.url, api_key=gw.keys["acct-1"], max_retries=0)
    assert c.chat.completions.create(model="m", messages=MSG).choices
    time.sleep(1.5)  # longer than header_timeout_s: an idle kept-alive connection is not a slow request
    assert c.chat.completions.create(model="m", messages=MSG).choices


def test_long_keys_are_refused_before_hashing_and_the_key_cache_is_bounded_in_bytes(make_gateway):
    gw = make_gateway(identity={"max_key_chars": 256})
    with pytest.raises(openai.AuthenticationError) as e:
        openai.OpenAI(base_url=gw.url, api_key="k" * 300, max_retries=0).chat.completions.create(
            model="m", messages=MSG)
    assert "longer than 256" in e.value.message
    assert gw.gateway.keyring.cache_bytes == 0

    ring = KeyRing(IdentityConfig(unknown_keys="hash", key_cache_bytes=256 << 10))
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(20_000):
        assert ring.resolve(f"sk-{i:06d}-" + "x" * 500) is not None
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert ring.cache_bytes <= 256 << 10
    assert grown < 2 * (256 << 10)  # what the cache really holds, measured, stays near its budget
    assert all(isinstance(k, bytes) and len(k) == 16 for k in ring._hash_cache)  # digests, not keys


def test_malformed_request_shapes_get_a_400_naming_the_field(make_gateway):
    gw = make_gateway()
    c = openai.OpenAI(base_url=gw.url, api_key=gw.keys["acct-1"], max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="m", messages=MSG, tools=[{"function": "x"}])
    assert e.value.code == "invalid_request"
    assert e.value.body["message"] == "tools.0.function: expected an object, got a string"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="m", messages=[{"role": 5, "content": "x"}])
    assert "messages.0.role" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        c.responses.create(model="m", input=[{"role": "user", "content": 7}], reasoning="high")
    assert e.value.body["message"] == "reasoning: expected an object, got a string"
    with pytest.raises(anthropic.BadRequestError) as e:
        anthropic.Anthropic(base_url=gw.srv.url, api_key=gw.keys["acct-1"], max_retries=0).messages.create(
            model="m", max_tokens=10, messages=MSG, system={"text": "x"})
    assert e.value.body["error"]["message"].startswith("system: expected a string or an array")
    assert "Traceback" not in str(e.value.body)
    # the gateway still serves the same client afterwards
    assert c.chat.completions.create(model="m", messages=MSG).choices


def test_exchange_id_header_is_sent_exactly_on_recorded_exchanges(make_gateway, tmp_path):
    gw = make_gateway(accounts=("acct-1", "blocked"), enforcement_file=_blocking(tmp_path, "blocked"),
                      server={"max_request_bytes": 1000})
    url = gw.url + "/chat/completions"
    ok = {"authorization": f"Bearer {gw.keys['acct-1']}"}
    answers = [httpx.post(url, headers={"authorization": "Bearer nope"}, json={"model": "m", "messages": MSG}),
               httpx.post(url, headers=ok, content=b"{not json"),
               httpx.post(url, headers=ok, json={"model": "m", "messages": MSG, "pad": "x" * 2000}),
               httpx.post(url, headers=ok, json={"model": "m", "messages": MSG, "tools": [{"function": "x"}]}),
               httpx.post(url, headers={"authorization": f"Bearer {gw.keys['blocked']}"},
                          json={"model": "m", "messages": MSG}),
               httpx.post(url, headers=ok, json={"model": "m", "messages": MSG})]
    assert [r.status_code for r in answers] == [401, 400, 413, 400, 403, 200]
    ids = [r.headers.get("x-distillguard-exchange-id") for r in answers]
    assert ids[:4] == [None] * 4 and all(ids[4:])
    gw.flush()
    gw.srv.stop()
    rows = read_exchanges(tmp_path / "store")
    assert sorted(r["exchange_id"] for r in rows) == sorted(ids[4:])


def test_bodies_still_arriving_share_one_memory_budget(make_gateway):
    gw = make_gateway(server={"max_pending_body_bytes": 100_000, "body_timeout_s": 30})
    proxy = gw.srv.app.app.prefixed
    key = gw.keys["acct-1"].encode()
    slow = socket.create_connection(("127.0.0.1", gw.srv.port), timeout=20)
    slow.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer " + key +
                 b"\r\ncontent-type: application/json\r\ncontent-length: 200000\r\n\r\n" + b" " * 90_000)
    t0 = time.monotonic()
    while proxy.body_budget.used < 90_000 and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert proxy.body_budget.used == 90_000  # the slow upload holds its part of the budget
    c = openai.OpenAI(base_url=gw.url, api_key=gw.keys["acct-1"], max_retries=0)
    with pytest.raises(openai.InternalServerError) as e:
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x" * 20_000}])
    assert e.value.status_code == 503 and e.value.code == "overloaded"
    slow.close()  # the slow upload goes away: its share of the budget is released
    t0 = time.monotonic()
    while proxy.body_budget.used and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert proxy.body_budget.used == 0
    assert c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x" * 20_000}]).choices
    assert proxy.body_budget.used == 0


def test_header_limits_also_hold_under_another_asgi_server(tmp_path):
    import asyncio

    from distillguard.gateway import build_app
    from distillguard.gateway.config import GatewayConfig

    app = build_app(GatewayConfig.model_validate({"server": {"max_headers": 20, "max_header_bytes": 4096},
                                                  "recorder": {"enabled": False},
                                                  "identity": {"allow_no_keys": True}}))

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            many = await c.post("/v1/messages", headers={f"x-h{i}": "v" for i in range(30)}, json={})
            big = await c.post("/v1/chat/completions", headers={"x-pad": "p" * 5000}, json={})
            return many, big

    many, big = asyncio.run(go())
    assert many.status_code == 431 and many.json()["error"]["code"] == "headers_too_large"
    assert many.json()["type"] == "error"  # Anthropic's shape on the Messages route
    assert big.status_code == 431 and big.json()["error"]["message"] == "request headers over 4096 bytes"
