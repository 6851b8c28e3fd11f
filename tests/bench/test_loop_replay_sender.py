"""bench/loop_replay.py's SDK clients send each request with exactly one credential, the account's key.

The gateway refuses a request carrying two keys (400 multiple_credentials) and records nothing of it, so a
replay whose ``messages`` requests carried the client's placeholder key beside the account's silently left
every Anthropic-style exchange (14% of a default world, whole accounts of a hydra) out of what `watch` saw.
"""

from datetime import UTC, datetime

import pytest

httpx = pytest.importorskip("httpx2")  # the HTTP client the openai / anthropic SDKs are built on




@pytest.mark.parametrize("endpoint", ["messages", "chat.completions", "responses"])
def test_one_credential_per_request(endpoint, bench_script):
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append({k: v for k, v in req.headers.items() if k in ("authorization", "x-api-key")})
        return httpx.Response(200, json={}, headers={"x-distillguard-exchange-id": "dg-1"})

    sender = bench_script("loop_replay").Sender(["http://gw.test"], http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    ex = {"account_id": "acct-1", "ts": datetime(2026, 1, 12, tzinfo=UTC), "endpoint": endpoint, "model": "m",
          "client_ip": "198.51.100.7", "user_agent": "ua/1", "conversation_id": None, "system_prompt": "sys",
          "turns": [{"role": "user", "text": "hello"}], "prompt": "hello", "tools_offered": ["run tests"],
          "max_tokens": 64, "temperature": 0.2, "reasoning_requested": False, "reasoning_effort": None}
    assert sender.send(ex, 0) == (200, "dg-1")
    (hdrs,) = seen
    assert len(hdrs) == 1, hdrs  # one credential, never the client's placeholder beside the account's key
    assert next(iter(hdrs.values())) in ("sk-replay-acct-1", "Bearer sk-replay-acct-1")


def test_the_worlds_client_facts_travel_as_edge_headers(bench_script):
    # a world exchange's TLS fingerprint and ASN reach the gateway as a TLS-terminating edge would forward them
    # (gateway identity.ja4_header / asn_header); without them the replay loses the world's client and network ties
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(dict(req.headers))
        return httpx.Response(200, json={}, headers={"x-distillguard-exchange-id": "dg-1"})

    sender = bench_script("loop_replay").Sender(["http://gw.test"], http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    ex = {"account_id": "acct-1", "ts": datetime(2026, 1, 12, tzinfo=UTC), "endpoint": "chat.completions",
          "model": "m", "client_ip": "198.51.100.7", "user_agent": "ua/1", "conversation_id": None,
          "system_prompt": None, "turns": [], "prompt": "hello", "tools_offered": [], "max_tokens": 64,
          "temperature": None, "reasoning_requested": False, "reasoning_effort": None,
          "tls_ja4": "t13d1516h2_aaa_bbb", "client_asn": 64500}
    sender.send(ex, 0)
    sender.send(ex | {"tls_ja4": None, "client_asn": None}, 0)
    assert seen[0]["x-client-ja4"] == "t13d1516h2_aaa_bbb" and seen[0]["x-client-asn"] == "64500"
    assert "x-client-ja4" not in seen[1] and "x-client-asn" not in seen[1]


def test_world_lengths_size_every_reply_with_one_header_set(bench_script):
    # the mock upstream answers as long as the world's teacher did; both headers on every request (a header set
    # that varied by exchange would give the replay a header-order fingerprint the world does not have)
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append({k: v for k, v in req.headers.items() if k.startswith("x-mock-")})
        return httpx.Response(200, json={}, headers={"x-distillguard-exchange-id": "dg-1"})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    ex = {"account_id": "acct-1", "ts": datetime(2026, 1, 12, tzinfo=UTC), "endpoint": "chat.completions",
          "model": "m", "client_ip": "198.51.100.7", "user_agent": "ua/1", "conversation_id": None,
          "system_prompt": None, "turns": [], "prompt": "hello", "tools_offered": [], "max_tokens": 64,
          "temperature": None, "reasoning_requested": False, "reasoning_effort": None}
    lr = bench_script("loop_replay")
    lr.Sender(["http://gw.test"], http_client=client, world_lengths=True).send(
        {**ex, "output_tokens": 900, "reasoning_tokens": 600}, 0)
    lr.Sender(["http://gw.test"], http_client=client, world_lengths=True).send(
        {**ex, "output_tokens": 40, "reasoning_tokens": None}, 0)
    lr.Sender(["http://gw.test"], http_client=client).send({**ex, "output_tokens": 40}, 0)
    assert seen == [{"x-mock-answer-words": "300", "x-mock-reasoning-words": "600"},
                    {"x-mock-answer-words": "40", "x-mock-reasoning-words": "0"}, {}]
