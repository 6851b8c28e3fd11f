"""The official SDKs, unchanged, talk to the gateway as if it were the provider."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests.gateway.conftest import read_exchanges

TOOLS_OAI = [{"type": "function", "function": {"name": "lookup", "description": "look up a fact",
                                               "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]


@pytest.fixture
def gw(make_gateway):
    return make_gateway()


def oai(gw):
    return openai.OpenAI(base_url=gw.url, api_key=gw.keys["acct-1"], max_retries=0)


def ant(gw):
    return anthropic.Anthropic(base_url=gw.srv.url, api_key=gw.keys["acct-1"], max_retries=0)


def test_chat_completions_plain_stream_and_tools(gw):
    c = oai(gw)
    r = c.chat.completions.create(model="mock-reasoner", messages=[{"role": "system", "content": "be brief"},
                                                                   {"role": "user", "content": "what is 2+2"}])
    msg = r.choices[0].message
    assert msg.content and r.choices[0].finish_reason == "stop"
    extra = msg.model_extra or {}
    assert extra["reasoning_content"] and extra["reasoning_signature"].startswith("dg1.")

    parts, reasoning, sig = [], [], None
    for ch in c.chat.completions.create(model="mock-reasoner", messages=[{"role": "system", "content": "be brief"},
                                                                         {"role": "user", "content": "what is 2+2"}],
                                        stream=True, stream_options={"include_usage": True}):
        if ch.choices:
            d = ch.choices[0].delta
            parts.append(d.content or "")
            reasoning.append((d.model_extra or {}).get("reasoning_content") or "")
            sig = (d.model_extra or {}).get("reasoning_signature") or sig
    assert "".join(parts) == msg.content  # same prompt, same deterministic reply, relayed intact
    assert "".join(reasoning) == extra["reasoning_content"]
    assert sig == extra["reasoning_signature"]  # same account, conversation root and text: same binding

    t = c.chat.completions.create(model="mock-reasoner", messages=[{"role": "user", "content": "find the capital"}],
                                  tools=TOOLS_OAI)
    assert t.choices[0].finish_reason == "tool_calls"
    assert t.choices[0].message.tool_calls[0].function.name == "lookup"
    names = []
    for ch in c.chat.completions.create(model="mock-reasoner", messages=[{"role": "user", "content": "find it"}],
                                        tools=TOOLS_OAI, stream=True):
        for tc in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
            if tc.function and tc.function.name:
                names.append(tc.function.name)
    assert names == ["lookup"]

    gw.flush()
    gw.srv.stop()  # shutdown compacts the spool into the store
    rows = read_exchanges(gw.tmp / "store")
    assert len(rows) == 4
    by_stream = {(r["stream"], tuple(r["tool_calls"])) for r in rows}
    assert (True, ("lookup",)) in by_stream and (False, ("lookup",)) in by_stream
    plain = [r for r in rows if r["system_prompt"] == "be brief"][0]
    assert plain["endpoint"] == "chat.completions" and plain["prompt"] == "what is 2+2"
    assert plain["response_text"] == msg.content and plain["reasoning_text"] == extra["reasoning_content"]
    assert plain["sdk_name"] == "openai-python" and plain["action"] == "allow" and plain["http_status"] == 200
    assert plain["api_key_id"].startswith("key-") and gw.keys["acct-1"] not in str(rows)


def test_responses_api_plain_stream_and_tools(gw):
    c = oai(gw)
    r = c.responses.create(model="mock-reasoner", input="explain the plan", reasoning={"effort": "high"})
    assert r.output_text
    rs = [o for o in r.output if o.type == "reasoning"][0]
    assert rs.content[0].text and rs.encrypted_content.startswith("dg1.")
    events = [e.type for e in c.responses.create(model="mock-reasoner", input="explain the plan", stream=True)]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert "response.output_text.delta" in events and "response.reasoning_text.delta" in events
    with c.responses.stream(model="mock-reasoner", input="explain the plan") as s:
        final = s.get_final_response()
    assert final.output_text == r.output_text
    t = c.responses.create(model="mock-reasoner", input="find the capital",
                           tools=[{"type": "function", "name": "lookup", "parameters": {"type": "object"}}])
    assert [o.name for o in t.output if o.type == "function_call"] == ["lookup"]
    gw.flush()
    gw.srv.stop()
    rows = read_exchanges(gw.tmp / "store")
    assert {r["endpoint"] for r in rows} == {"responses"}
    assert any(r["reasoning_effort"] == "high" and r["reasoning_requested"] for r in rows)
    assert any(r["tool_calls"] == ["lookup"] for r in rows)


def test_anthropic_messages_plain_stream_tools_thinking(gw):
    a = ant(gw)
    m = a.messages.create(model="mock-reasoner", max_tokens=2000, system="be kind",
                          messages=[{"role": "user", "content": "plan a trip"}],
                          thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.type for b in m.content] == ["thinking", "text"]
    assert m.content[0].signature.startswith("dg1.") and m.stop_reason == "end_turn"
    with a.messages.stream(model="mock-reasoner", max_tokens=2000, system="be kind",
                           messages=[{"role": "user", "content": "plan a trip"}],
                           thinking={"type": "enabled", "budget_tokens": 1024}) as s:
        texts = list(s.text_stream)
        final = s.get_final_message()
    assert "".join(texts) == m.content[1].text
    assert final.content[0].thinking == m.content[0].thinking
    assert final.content[0].signature == m.content[0].signature
    t = a.messages.create(model="mock-reasoner", max_tokens=500, messages=[{"role": "user", "content": "weather?"}],
                          tools=[{"name": "get_weather", "input_schema": {"type": "object"}}])
    assert t.stop_reason == "tool_use" and t.content[0].name == "get_weather"
    # multi-turn with the (gateway-signed) thinking block sent back: the gateway restores the upstream
    # signature, which the mock upstream checks exactly like the real API would
    follow = a.messages.create(model="mock-reasoner", max_tokens=2000, system="be kind",
                               thinking={"type": "enabled", "budget_tokens": 1024},
                               messages=[{"role": "user", "content": "plan a trip"},
                                         {"role": "assistant", "content": m.content},
                                         {"role": "user", "content": "and back"}])
    assert follow.content[-1].type == "text"
    gw.flush()
    gw.srv.stop()
    rows = read_exchanges(gw.tmp / "store")
    assert {r["endpoint"] for r in rows} == {"messages"}
    assert all(r["sdk_name"] == "anthropic-python" for r in rows)
    assert any(r["thinking_budget"] == 1024 and r["reasoning_text"] for r in rows)
    assert any((r["extra"] or "").find('"reasoning_binding":"valid"') >= 0 for r in rows)


def test_errors_in_each_apis_format(gw):
    with pytest.raises(openai.AuthenticationError) as e:
        openai.OpenAI(base_url=gw.url, api_key="sk-wrong", max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "invalid_api_key"
    with pytest.raises(anthropic.AuthenticationError) as e2:
        anthropic.Anthropic(base_url=gw.srv.url, api_key="sk-wrong", max_retries=0).messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e2.value.body["type"] == "error" and e2.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(openai.InternalServerError):
        oai(gw).chat.completions.create(model="m", messages=[{"role": "user", "content": "please [fail]"}])
    key = gw.keys["acct-1"]
    r = httpx.post(gw.url + "/chat/completions", content=b"{not json", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    big = b'{"messages":[{"role":"user","content":"' + b"x" * (5 << 20) + b'"}]}'
    r = httpx.post(gw.url + "/chat/completions", content=big, headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = httpx.post(gw.srv.url + "/v1/messages", content=big, headers={"x-api-key": key})
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
    models = oai(gw).models.list()
    assert "mock-reasoner" in [m.id for m in models]


def test_upstream_down_and_httpx_client_option(make_gateway):
    from distillguard.testing.net import free_port

    dead = make_gateway(upstream={"url": f"http://127.0.0.1:{free_port()}/v1", "connect_timeout_s": 1})
    with pytest.raises(openai.APIStatusError) as e:
        oai(dead).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 502 and e.value.code == "upstream_unavailable"
    with pytest.raises(anthropic.APIStatusError) as e2:
        ant(dead).messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert e2.value.status_code == 502 and e2.value.body["error"]["type"] == "api_error"
    hx = make_gateway(upstream={"client": "httpx"})
    chunks = list(oai(hx).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True))
    assert chunks and oai(hx).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]).choices


def test_a_gateway_bug_still_answers_in_the_api_format(gw, monkeypatch):
    import distillguard.gateway.proxy as proxy_mod

    def boom(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr(proxy_mod, "parse_request", boom)
    with pytest.raises(openai.InternalServerError) as e:
        oai(gw).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "internal_error"
    with pytest.raises(anthropic.InternalServerError) as e2:
        ant(gw).messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert e2.value.body["error"]["type"] == "api_error"


def test_crlf_framed_sse_upstream(make_gateway):
    """SSE may frame lines with CRLF; the gateway must still relay event by event."""
    import orjson as _o

    from tests.gateway.conftest import ServerThread

    async def crlf_upstream(scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        base = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m"}
        for d in [{"role": "assistant", "content": ""}, {"reasoning_content": "think "},
                  {"content": "hello "}, {"content": "world"}]:
            ev = {**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]}
            await send({"type": "http.response.body", "body": b"data: " + _o.dumps(ev) + b"\r\n\r\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\r\n\r\n"})

    up = ServerThread(crlf_upstream).start()
    try:
        gw = make_gateway(upstream={"url": up.url + "/v1"})
        chunks = list(oai(gw).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                                      stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        sig = [c for c in chunks if c.choices and (c.choices[0].delta.model_extra or {}).get("reasoning_signature")]
        assert text == "hello world" and len(sig) == 1
    finally:
        up.stop()
