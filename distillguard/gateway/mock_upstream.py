"""A local stand-in for a paid model API, speaking the OpenAI and Anthropic wire formats.

The gateway's tests and `make gateway-demo` need an upstream that behaves like a reasoning model
(reasoning fields, thinking blocks, tool calls, SSE streams) without a network or a bill. Replies
are deterministic functions of the request so tests can predict them. Markers in the last user
message steer it, because the official SDKs give tests no other easy side channel:

* ``[leak]``        the answer repeats a sentence of the reasoning verbatim (leak-check tests)
* ``[think-tags]``  reasoning is returned inline as ``<think>...</think>`` in the answer text
* ``[slow]``        streams sleep 50 ms between events (kill-mid-stream tests)
* ``[fail]``        answers HTTP 500 in the API's own error format

Anthropic thinking blocks carry an upstream signature ``upsig-<hash>``; a request that sends a
thinking block back with any other signature is refused, as Anthropic's API would, which lets
tests prove the gateway unwraps its own binding before forwarding.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time

import orjson

VOCAB = ("the a of to in for on with is are be this that it we value result step number total first next "
         "then so because therefore check again sum rate time price cost answer question part order case "
         "rule data model input output test small large clear simple exact use find show note add compare "
         "solve verify compute estimate plan method reason idea fact point example pattern").split()

JSON = [(b"content-type", b"application/json")]
SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def words(n: int, seed: int) -> list[str]:
    """``n`` word pieces forming sentences; pieces keep their trailing space so streams send one each."""
    rng = random.Random(seed)
    out, left = [], rng.randint(6, 14)
    cap = True
    for i in range(n):
        w = rng.choice(VOCAB)
        if cap:
            w, cap = w.capitalize(), False
        left -= 1
        if left == 0 or i == n - 1:
            w += "."
            left, cap = rng.randint(6, 14), True
        out.append(w + " ")
    return out


class Reply:
    """What the mock 'model' says to one request, independent of the wire format."""

    def __init__(self, prompt: str, tools: list[str], tool_result: bool, reasoning_words: int,
                 answer_words: int, reasoning: bool):
        seed = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
        self.reasoning = words(reasoning_words, seed) if reasoning else []
        ans = words(answer_words, seed + 1)
        if "[leak]" in prompt and self.reasoning:
            # Copy a long stretch of reasoning into the answer, as a model leaking its CoT would.
            ans = ans[:5] + self.reasoning[: min(40, len(self.reasoning))] + ans[5:]
        self.think_tags = "[think-tags]" in prompt
        if self.think_tags and self.reasoning:
            ans = ["<think>"] + self.reasoning + ["</think>\n"] + ans
            self.reasoning = []
        self.tool_call = None
        if tools and not tool_result:
            self.tool_call = (tools[0], {"query": prompt[:40]})
            ans = []
        self.answer = ans
        self.slow = "[slow]" in prompt
        self.fail = "[fail]" in prompt
        self.input_tokens = max(1, len(prompt) // 4)
        self.output_tokens = len(self.answer) + len(self.reasoning) + (8 if self.tool_call else 0)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)

    @property
    def answer_text(self) -> str:
        return "".join(self.answer)


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def upstream_signature(text: str) -> str:
    return "upsig-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def _sse(obj, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(obj) + b"\n\n"


#: Bench only: a request may size its own reply (words of answer / of reasoning), so a replay of a simulated world
#: receives what the world's teacher produced (bench/loop_replay.py). Without them every reply has the mock's sizes,
#: and every account receives the same lengths: detection's received-output evidence reads nothing.
SIZE_HEADERS = (b"x-mock-answer-words", b"x-mock-reasoning-words")
MAX_WORDS = 8192


def _sizes(scope) -> tuple[int, int] | None:
    got = {k: v for k, v in scope.get("headers") or () if k in SIZE_HEADERS}
    if len(got) != 2:
        return None
    try:
        return tuple(max(0, min(int(got[h]), MAX_WORDS)) for h in SIZE_HEADERS)
    except ValueError:
        return None


class MockUpstream:
    """Pure ASGI app; ``reasoning_words``/``answer_words`` size the replies (or a request's ``SIZE_HEADERS``)."""

    def __init__(self, reasoning_words: int = 200, answer_words: int = 60, delay_s: float = 0.05):
        self.reasoning_words = reasoning_words
        self.answer_words = answer_words
        self.delay_s = delay_s
        self.requests = 0
        self.last_request: dict | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope["path"]
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        self.requests += 1
        if path in ("/v1/models", "/models"):
            return await self._json(send, 200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1767225600, "owned_by": "mock"}
                for m in ("mock-reasoner", "mock-small")]})
        if path in ("/health", "/healthz"):
            return await self._json(send, 200, {"ok": True})
        try:
            req = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            return await self._json(send, 400, {"error": {"message": "bad json", "type": "invalid_request_error"}})
        self.last_request = req
        sizes = _sizes(scope)
        if path.endswith("/chat/completions"):
            return await self._chat(req, send, receive, sizes)
        if path.endswith("/responses"):
            return await self._responses(req, send, receive, sizes)
        if path.endswith("/messages"):
            return await self._messages(req, send, receive, sizes)
        return await self._json(send, 404, {"error": {"message": f"no route {path}", "type": "not_found"}})

    async def _json(self, send, status, obj, headers=()):
        data = orjson.dumps(obj)
        await send({"type": "http.response.start", "status": status,
                    "headers": JSON + [(b"content-length", str(len(data)).encode())] + list(headers)})
        await send({"type": "http.response.body", "body": data})

    async def _stream(self, send, events, slow: bool, receive=None):
        await send({"type": "http.response.start", "status": 200, "headers": SSE})
        if slow:
            for e in events:
                await send({"type": "http.response.body", "body": e, "more_body": True})
                try:  # pace the stream, but stop as soon as the client is gone
                    msg = await asyncio.wait_for(receive(), self.delay_s)
                    if msg["type"] == "http.disconnect":
                        return
                except TimeoutError:
                    pass
        else:
            for i in range(0, len(events), 16):
                await send({"type": "http.response.body", "body": b"".join(events[i:i + 16]), "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    def _reply(self, prompt, tools, tool_result, reasoning, sizes=None):
        if sizes is not None:  # the request's own sizes: reasoning as sized, whatever the request asked
            answer, reas = sizes
            return Reply(prompt, tools, tool_result, reas, answer, reas > 0)
        return Reply(prompt, tools, tool_result, self.reasoning_words, self.answer_words, reasoning)

    # ------------------------------------------------------------------ OpenAI chat completions
    async def _chat(self, req, send, receive, sizes=None):
        msgs = req.get("messages") or []
        users = [m for m in msgs if m.get("role") == "user"]
        prompt = _text_of(users[-1].get("content")) if users else ""
        tools = [t.get("function", {}).get("name", "") for t in req.get("tools") or []]
        r = self._reply(prompt, tools, bool(msgs) and msgs[-1].get("role") == "tool", True, sizes)
        if r.fail:
            return await self._json(send, 500, {"error": {"message": "mock upstream failure", "type": "server_error",
                                                          "param": None, "code": None}})
        model = req.get("model", "mock-reasoner")
        cid = "chatcmpl-" + hashlib.sha256(prompt.encode()).hexdigest()[:20]
        usage = {"prompt_tokens": r.input_tokens, "completion_tokens": r.output_tokens,
                 "total_tokens": r.input_tokens + r.output_tokens,
                 "completion_tokens_details": {"reasoning_tokens": len(r.reasoning)}}
        finish = "tool_calls" if r.tool_call else "stop"
        tc = None
        if r.tool_call:
            tc = {"id": "call_" + cid[-12:], "type": "function",
                  "function": {"name": r.tool_call[0], "arguments": orjson.dumps(r.tool_call[1]).decode()}}
        if not req.get("stream"):
            msg = {"role": "assistant", "content": r.answer_text or None}
            if r.reasoning:
                msg["reasoning_content"] = r.reasoning_text
            if tc:
                msg["tool_calls"] = [tc]
            return await self._json(send, 200, {"id": cid, "object": "chat.completion", "created": int(time.time()),
                                                "model": model, "choices": [{"index": 0, "message": msg,
                                                                             "finish_reason": finish}],
                                                "usage": usage})
        base = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

        def chunk(delta, fin=None):
            return _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": fin}]})

        ev = [chunk({"role": "assistant", "content": ""})]
        ev += [chunk({"reasoning_content": p}) for p in r.reasoning]
        ev += [chunk({"content": p}) for p in r.answer]
        if tc:
            ev.append(chunk({"tool_calls": [{"index": 0, "id": tc["id"], "type": "function",
                                             "function": {"name": tc["function"]["name"], "arguments": ""}}]}))
            args = tc["function"]["arguments"]
            for i in range(0, len(args), 8):
                ev.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 8]}}]}))
        ev.append(chunk({}, finish))
        if (req.get("stream_options") or {}).get("include_usage"):
            ev.append(_sse({**base, "choices": [], "usage": usage}))
        ev.append(b"data: [DONE]\n\n")
        await self._stream(send, ev, r.slow, receive)

    # ------------------------------------------------------------------ OpenAI responses
    async def _responses(self, req, send, receive, sizes=None):
        inp = req.get("input")
        tool_result = False
        if isinstance(inp, str):
            prompt = inp
        else:
            items = inp or []
            users = [i for i in items if isinstance(i, dict) and i.get("role") == "user"]
            prompt = _text_of(users[-1].get("content")) if users else ""
            tool_result = bool(items) and isinstance(items[-1], dict) and items[-1].get("type") == "function_call_output"
        tools = [t.get("name", "") for t in req.get("tools") or [] if t.get("type") == "function"]
        r = self._reply(prompt, tools, tool_result, True, sizes)
        if r.fail:
            return await self._json(send, 500, {"error": {"message": "mock upstream failure", "type": "server_error",
                                                          "param": None, "code": None}})
        rid = "resp_" + hashlib.sha256(prompt.encode()).hexdigest()[:20]
        model = req.get("model", "mock-reasoner")
        output = []
        if r.reasoning:
            output.append({"type": "reasoning", "id": "rs_" + rid[-12:], "summary": [],
                           "content": [{"type": "reasoning_text", "text": r.reasoning_text}]})
        if r.tool_call:
            output.append({"type": "function_call", "id": "fc_" + rid[-12:], "call_id": "call_" + rid[-12:],
                           "name": r.tool_call[0], "arguments": orjson.dumps(r.tool_call[1]).decode(),
                           "status": "completed"})
        else:
            output.append({"type": "message", "id": "msg_" + rid[-12:], "status": "completed", "role": "assistant",
                           "content": [{"type": "output_text", "text": r.answer_text, "annotations": []}]})
        usage = {"input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
                 "total_tokens": r.input_tokens + r.output_tokens,
                 "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens_details": {"reasoning_tokens": len(r.reasoning)}}
        resp = {"id": rid, "object": "response", "created_at": int(time.time()), "status": "completed",
                "model": model, "output": output, "usage": usage, "parallel_tool_calls": True,
                "tool_choice": "auto", "tools": req.get("tools") or [], "error": None, "incomplete_details": None}
        if not req.get("stream"):
            return await self._json(send, 200, resp)
        seq = iter(range(1_000_000))
        ev = [_sse({"type": "response.created", "sequence_number": next(seq),
                    "response": {**resp, "status": "in_progress", "output": [], "usage": None}}, "response.created")]
        for oi, item in enumerate(output):
            empty = {**item}
            if item["type"] == "reasoning":
                empty["content"] = []
            elif item["type"] == "message":
                empty["content"] = []
            ev.append(_sse({"type": "response.output_item.added", "sequence_number": next(seq), "output_index": oi,
                            "item": empty}, "response.output_item.added"))
            part = {"reasoning": {"type": "reasoning_text", "text": ""},
                    "message": {"type": "output_text", "text": "", "annotations": []}}.get(item["type"])
            loc = {"item_id": item["id"], "output_index": oi, "content_index": 0}
            if part:
                ev.append(_sse({"type": "response.content_part.added", "sequence_number": next(seq), **loc,
                                "part": part}, "response.content_part.added"))
            if item["type"] == "reasoning":
                for p in r.reasoning:
                    ev.append(_sse({"type": "response.reasoning_text.delta", "sequence_number": next(seq),
                                    "item_id": item["id"], "output_index": oi, "content_index": 0, "delta": p},
                                   "response.reasoning_text.delta"))
            elif item["type"] == "message":
                for p in r.answer:
                    ev.append(_sse({"type": "response.output_text.delta", "sequence_number": next(seq),
                                    "item_id": item["id"], "output_index": oi, "content_index": 0, "delta": p,
                                    "logprobs": []}, "response.output_text.delta"))
            else:
                ev.append(_sse({"type": "response.function_call_arguments.delta", "sequence_number": next(seq),
                                "item_id": item["id"], "output_index": oi, "delta": item["arguments"]},
                               "response.function_call_arguments.delta"))
            if item["type"] == "reasoning":
                ev.append(_sse({"type": "response.reasoning_text.done", "sequence_number": next(seq), **loc,
                                "text": r.reasoning_text}, "response.reasoning_text.done"))
            elif item["type"] == "message":
                ev.append(_sse({"type": "response.output_text.done", "sequence_number": next(seq), **loc,
                                "text": r.answer_text, "logprobs": []}, "response.output_text.done"))
            if part:
                ev.append(_sse({"type": "response.content_part.done", "sequence_number": next(seq), **loc,
                                "part": {**part, "text": r.reasoning_text if item["type"] == "reasoning"
                                         else r.answer_text}}, "response.content_part.done"))
            ev.append(_sse({"type": "response.output_item.done", "sequence_number": next(seq), "output_index": oi,
                            "item": item}, "response.output_item.done"))
        ev.append(_sse({"type": "response.completed", "sequence_number": next(seq), "response": resp},
                       "response.completed"))
        await self._stream(send, ev, r.slow, receive)

    # ------------------------------------------------------------------ Anthropic messages
    async def _messages(self, req, send, receive, sizes=None):
        msgs = req.get("messages") or []
        for m in msgs:
            if m.get("role") == "assistant" and isinstance(m.get("content"), list):
                for b in m["content"]:
                    if isinstance(b, dict) and b.get("type") == "thinking" and \
                            b.get("signature") != upstream_signature(b.get("thinking", "")):
                        return await self._json(send, 400, {"type": "error", "error": {
                            "type": "invalid_request_error", "message": "Invalid `signature` in `thinking` block"}})
        users = [m for m in msgs if m.get("role") == "user"]
        last = users[-1].get("content") if users else ""
        prompt = _text_of(last)
        tool_result = isinstance(last, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in last)
        tools = [t.get("name", "") for t in req.get("tools") or []]
        thinking = (req.get("thinking") or {}).get("type") == "enabled"
        r = self._reply(prompt, tools, tool_result, thinking, sizes)
        if r.fail:
            return await self._json(send, 500, {"type": "error", "error": {"type": "api_error",
                                                                           "message": "mock upstream failure"}})
        mid = "msg_" + hashlib.sha256(prompt.encode()).hexdigest()[:20]
        model = req.get("model", "mock-reasoner")
        blocks = []
        if r.reasoning:
            blocks.append({"type": "thinking", "thinking": r.reasoning_text, "signature": upstream_signature(r.reasoning_text)})
        if r.answer:
            blocks.append({"type": "text", "text": r.answer_text})
        if r.tool_call:
            blocks.append({"type": "tool_use", "id": "toolu_" + mid[-12:], "name": r.tool_call[0], "input": r.tool_call[1]})
        stop = "tool_use" if r.tool_call else "end_turn"
        usage = {"input_tokens": r.input_tokens, "output_tokens": r.output_tokens}
        msg = {"id": mid, "type": "message", "role": "assistant", "model": model, "content": blocks,
               "stop_reason": stop, "stop_sequence": None, "usage": usage}
        if not req.get("stream"):
            return await self._json(send, 200, msg)
        ev = [_sse({"type": "message_start", "message": {**msg, "content": [], "stop_reason": None,
                                                         "usage": {"input_tokens": r.input_tokens, "output_tokens": 1}}},
                   "message_start")]
        for i, b in enumerate(blocks):
            if b["type"] == "thinking":
                ev.append(_sse({"type": "content_block_start", "index": i,
                                "content_block": {"type": "thinking", "thinking": "", "signature": ""}}, "content_block_start"))
                ev += [_sse({"type": "content_block_delta", "index": i, "delta": {"type": "thinking_delta", "thinking": p}},
                            "content_block_delta") for p in r.reasoning]
                ev.append(_sse({"type": "content_block_delta", "index": i,
                                "delta": {"type": "signature_delta", "signature": b["signature"]}}, "content_block_delta"))
            elif b["type"] == "text":
                ev.append(_sse({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}},
                               "content_block_start"))
                ev += [_sse({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": p}},
                            "content_block_delta") for p in r.answer]
            else:
                ev.append(_sse({"type": "content_block_start", "index": i,
                                "content_block": {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}},
                               "content_block_start"))
                ev.append(_sse({"type": "content_block_delta", "index": i,
                                "delta": {"type": "input_json_delta", "partial_json": orjson.dumps(b["input"]).decode()}},
                               "content_block_delta"))
            ev.append(_sse({"type": "content_block_stop", "index": i}, "content_block_stop"))
        ev.append(_sse({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": r.output_tokens}}, "message_delta"))
        ev.append(_sse({"type": "message_stop"}, "message_stop"))
        await self._stream(send, ev, r.slow, receive)


def serve(port: int, host: str = "127.0.0.1", reasoning_words: int = 200, answer_words: int = 60) -> None:
    import uvicorn

    uvicorn.run(MockUpstream(reasoning_words, answer_words), host=host, port=port, log_level="warning",
                loop="auto", http="auto", timeout_keep_alive=75)
