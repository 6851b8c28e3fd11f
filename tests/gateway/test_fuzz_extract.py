"""Any JSON a client or an upstream can send is either read or refused with a named field, never a 500.

Hypothesis draws arbitrary JSON, biased towards the field names the gateway reads (a purely random
dict almost never has a ``messages`` key), and runs it through everything the request path does
with a parsed body before forwarding, and everything it does with a reply.
"""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distillguard.gateway.extract import (
    CHAT,
    MESSAGES,
    RESPONSES,
    RequestShapeError,
    StreamFold,
    parse_request,
    reply_from_body,
)
from distillguard.gateway.reasoning import Binder, check_carried, rewrite_reply
from distillguard.gateway.streams import make_relay
from distillguard.policy.model import ReasoningPolicy

APIS = (CHAT, RESPONSES, MESSAGES)
NAMES = ["model", "messages", "role", "content", "text", "type", "tools", "function", "name", "input", "output",
         "reasoning", "effort", "reasoning_effort", "reasoning_content", "reasoning_signature", "thinking",
         "signature", "system", "instructions", "conversation", "id", "stream", "stream_options", "include_usage",
         "summary", "encrypted_content", "choices", "delta", "message", "usage", "prompt_tokens",
         "completion_tokens", "input_tokens", "output_tokens", "completion_tokens_details", "output_tokens_details",
         "reasoning_tokens", "tool_calls", "index", "finish_reason", "stop_reason", "status", "item", "part",
         "response", "content_block", "sequence_number", "max_tokens", "n", "temperature", "top_p"]
TEXTS = ["user", "assistant", "system", "developer", "tool", "thinking", "text", "reasoning", "message",
         "function_call", "function_call_output", "output_text", "tool_use", "tool_result", "image_url",
         "text_delta", "thinking_delta", "signature_delta", "enabled", "reasoning_text",
         "content_block_start", "content_block_delta", "message_delta", "message_start",
         "response.output_text.delta", "response.reasoning_text.delta", "response.output_item.done",
         "response.output_item.added", "response.completed", "response.created", "response.content_part.added",
         "<think>hidden</think> shown", "[DONE]", "dg1.o.x.y.z"]

scalars = (st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 63) - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(TEXTS) | st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=6), inner, max_size=6),
    max_leaves=40)
objects = st.dictionaries(st.sampled_from(NAMES), json_values, max_size=8)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _typed(v, types) -> bool:
    return v is None or isinstance(v, types)


@FUZZ
@given(api=st.sampled_from(APIS), body=objects)
def test_any_request_body_is_read_or_refused_by_name(api, body):
    body = orjson.loads(orjson.dumps(body))  # exactly what the gateway's parser would hand over
    try:
        req = parse_request(api, body)
    except RequestShapeError as e:
        assert ": expected " in str(e)  # names the field and the type it needs
        return
    # What reaches the record and the policy has the record's types.
    assert _typed(req.model, str) and _typed(req.system_prompt, str) and _typed(req.prompt, str)
    assert _typed(req.reasoning_effort, str) and _typed(req.conversation_id, str)
    assert all(isinstance(t["role"], str) and isinstance(t["text"], str) for t in req.turns)
    assert all(isinstance(n, str) for n in req.tools_offered)
    assert isinstance(req.stream, bool) and isinstance(req.has_images, bool)
    # The rest of the pre-forward path: conversation key, binding check, re-serialising the body.
    conv = req.conversation_key(None)
    check_carried(req, Binder(secret=b"k"), "acct", conv)
    orjson.dumps(body)


@FUZZ
@given(api=st.sampled_from(APIS), obj=json_values, protect=st.booleans(), mode=st.sampled_from(["strip", "summary"]))
def test_any_reply_body_is_read_and_rewritten_without_raising(api, obj, protect, mode):
    ri = reply_from_body(api, obj)
    for n in (ri.input_tokens, ri.output_tokens, ri.reasoning_tokens):
        assert n is None or (isinstance(n, int) and 0 <= n < 1 << 53)
    assert isinstance(ri.answer, str) and isinstance(ri.reasoning_text, str)
    assert all(isinstance(t, str) for t in ri.tool_calls)
    assert _typed(ri.stop_reason, str)
    if isinstance(obj, dict):
        rewrite_reply(api, obj, protect, ReasoningPolicy(mode=mode), lambda text, up, p: "sig")


@FUZZ
@given(api=st.sampled_from(APIS), evs=st.lists(json_values, max_size=6), protect=st.booleans(),
       mode=st.sampled_from(["strip", "summary"]), names=st.lists(st.sampled_from(TEXTS), max_size=6))
def test_any_stream_events_are_folded_and_relayed_without_raising(api, evs, protect, mode, names):
    fold = StreamFold(api)
    for ev in evs:
        fold.feed(ev)
    ri = fold.finish()
    assert all(isinstance(t, str) for t in ri.tool_calls) and isinstance(ri.answer, str)
    relay = make_relay(api, protect, ReasoningPolicy(mode=mode), lambda text, up, p: "sig")
    seg = b""
    for i, ev in enumerate(evs):
        name = names[i].encode() if i < len(names) else None
        seg += (b"event: " + name + b"\n" if name else b"") + b"data: " + orjson.dumps(ev) + b"\n\n"
    seg += b"data: [DONE]\n\n"
    out = relay.segment(seg)
    if relay.passthrough:
        relay.after(seg)
    out += relay.finish(b"")
    assert isinstance(out, bytes)
