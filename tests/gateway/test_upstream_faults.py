"""A hostile upstream (distillguard/testing/hostile_upstream.py) behind the gateway, driven by the SDKs.

Whatever the upstream does — hang or break mid-stream, send wrongly typed events or usage, answer
with more bytes than the gateway will hold — the client gets a reply or an error in its API's own
format, and the store gets the exchange with what did arrive.
"""

from __future__ import annotations

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.gateway.conftest import read_exchanges


@pytest.fixture
def gw(make_gateway, hostile_upstream):
    return make_gateway(upstream={"url": hostile_upstream.url + "/v1", "idle_timeout_s": 1.0,
                                  "max_response_bytes": 1 << 20, "max_stream_bytes": 1 << 20})


def _rows(gw):
    gw.flush()
    gw.srv.stop()
    rows = read_exchanges(gw.tmp / "store")
    for r in rows:
        r["extra"] = orjson.loads(r["extra"]) if r["extra"] else {}
    return {r["prompt"]: r for r in rows}


def _msg(mode: str, tag: str = "") -> list[dict]:
    return [{"role": "user", "content": f"go [mode:{mode}] {tag}".strip()}]


@pytest.mark.parametrize("mode,code", [("hang", "upstream_timeout"), ("cut", "upstream_unavailable")])
def test_a_stream_that_hangs_or_breaks_ends_with_an_error_event_and_is_recorded(gw, mode, code):
    key = gw.keys["acct-1"]
    oai = openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0)
    got = []
    with pytest.raises(openai.APIError) as e:
        for ch in oai.chat.completions.create(model="m", messages=_msg(mode, "chat"), stream=True):
            got.append(ch.choices[0].delta.content)
    assert got == ["part0 ", "part1 "] and e.value.code == code and e.value.type == "server_error"

    evs = list(oai.responses.create(model="m", input=f"go [mode:{mode}] responses", stream=True))
    assert [ev.type for ev in evs] == ["response.created", "response.output_text.delta",
                                       "response.output_text.delta", "error"]
    assert evs[-1].code == code and evs[-1].sequence_number == 3

    ant = anthropic.Anthropic(base_url=gw.srv.url, api_key=key, max_retries=0)
    text = []
    with pytest.raises(anthropic.APIStatusError) as e2:
        for ev in ant.messages.create(model="m", max_tokens=10, messages=_msg(mode, "messages"), stream=True):
            if ev.type == "content_block_delta":
                text.append(ev.delta.text)
    assert text == ["part0 ", "part1 "] and e2.value.body["error"]["code"] == code
    assert e2.value.body["error"]["type"] == "api_error"

    rows = _rows(gw)
    for api in ("chat", "responses", "messages"):
        r = rows[f"go [mode:{mode}] {api}"]
        assert r["http_status"] == 200 and r["response_text"] == "part0 part1 "
        assert r["extra"]["upstream_error"] == code and "interrupted" not in r["extra"]
        assert any(x.startswith("upstream failed mid-stream") for x in r["action_reasons"])


def test_wrongly_typed_stream_events_are_relayed_and_recorded_not_truncated(gw):
    url = gw.url
    h = {"authorization": f"Bearer {gw.keys['acct-1']}"}
    for path, body in (("/chat/completions", {"model": "m", "stream": True, "messages": _msg("bad-types", "chat")}),
                       ("/messages", {"model": "m", "stream": True, "max_tokens": 5,
                                      "messages": _msg("bad-types", "messages")}),
                       ("/responses", {"model": "m", "stream": True, "input": "go [mode:bad-types] responses"})):
        with httpx.stream("POST", url + path, headers=h, json=body) as r:
            data = b"".join(r.iter_bytes())
        assert r.status_code == 200
        tail = {"/chat/completions": b"data: [DONE]\n\n", "/messages": b'data: {"type":"message_stop"}\n\n',
                "/responses": b"event: response.completed"}[path]
        assert tail in data, path  # the stream reached its own end
        assert b"event: error" not in data and b'"error":' not in data
    rows = _rows(gw)
    for api in ("chat", "messages"):
        r = rows[f"go [mode:bad-types] {api}"]
        assert r["http_status"] == 200 and r["response_text"].startswith("part0 ") and not r["extra"].get("interrupted")
        assert r["output_tokens"] in (None, 2)
    r = rows["go [mode:bad-types] responses"]
    assert r["http_status"] == 200 and r["input_tokens"] == 5  # the bad "9" skipped, the valid ending folded


def test_wrongly_typed_replies_and_usage_reach_the_client_and_the_record(gw):
    key = gw.keys["acct-1"]
    oai = openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0)
    assert oai.chat.completions.create(model="m", messages=_msg("bad-usage", "chat")).choices[0].message.content \
        == "hostile reply"
    assert oai.responses.create(model="m", input="go [mode:bad-usage] responses").output_text == "hostile reply"
    ant = anthropic.Anthropic(base_url=gw.srv.url, api_key=key, max_retries=0)
    assert ant.messages.create(model="m", max_tokens=5, messages=_msg("bad-usage", "messages")).content[0].text \
        == "hostile reply"
    # a body whose fields all have the wrong types is still the upstream's reply: relayed as it came
    r = httpx.post(gw.url + "/chat/completions", headers={"authorization": f"Bearer {key}"},
                   json={"model": "m", "messages": _msg("bad-types", "raw")})
    assert r.status_code == 200 and r.json()["choices"] == "x"
    rows = _rows(gw)
    for p in ("chat", "responses", "messages", "raw"):
        row = rows[f"go [mode:bad-usage] {p}" if p != "raw" else "go [mode:bad-types] raw"]
        assert row["http_status"] == 200 and not row["extra"].get("interrupted")
        assert row["input_tokens"] is None and row["output_tokens"] is None  # "12"/"9", -3/1e300: not counts
    assert rows["go [mode:bad-usage] chat"]["response_text"] == "hostile reply"


def test_replies_over_the_caps_get_a_clean_error_and_are_recorded(gw):
    key = gw.keys["acct-1"]
    oai = openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0)
    with pytest.raises(openai.InternalServerError) as e:
        oai.chat.completions.create(model="m", messages=_msg("huge", "[size:3000000] chat"))
    assert e.value.status_code == 502 and e.value.code == "upstream_response_too_large"
    ant = anthropic.Anthropic(base_url=gw.srv.url, api_key=key, max_retries=0)
    with pytest.raises(anthropic.InternalServerError) as e2:
        ant.messages.create(model="m", max_tokens=5, messages=_msg("huge", "[size:3000000] messages"))
    assert e2.value.body["error"]["code"] == "upstream_response_too_large"
    # an endless stream is ended with an error event once it passes max_stream_bytes
    with httpx.stream("POST", gw.url + "/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": "m", "stream": True, "messages": _msg("endless", "stream")}) as r:
        data = b"".join(r.iter_bytes())
    last = data.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    assert orjson.loads(last[6:])["error"]["code"] == "upstream_response_too_large"
    assert 1 << 16 < len(data) <= (1 << 20) + 1024  # relayed up to the cap (less the piece that crossed it)
    rows = _rows(gw)
    for p, st in (("[size:3000000] chat", 502), ("[size:3000000] messages", 502), ("stream", 200)):
        row = rows[f"go [mode:{'huge' if st == 502 else 'endless'}] {p}"]
        assert row["http_status"] == st and row["extra"]["upstream_error"] == "upstream_response_too_large"
    assert rows["go [mode:endless] stream"]["response_text"].startswith("part0 part1 part2 ")
