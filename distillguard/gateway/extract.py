"""Read the three wire formats into exchange fields: requests, whole replies and SSE streams.

The gateway records every exchange in the same schema whatever API it came through, and the
policy needs a few request facts (model, prompt, reasoning carried back) before forwarding.
Streams are folded event by event into an accumulator so nothing waits for the whole reply.
"""

from __future__ import annotations

import hashlib
import math

import orjson

CHAT, RESPONSES, MESSAGES = "chat.completions", "responses", "messages"


def _text(content) -> tuple[str, bool]:
    """(text, has_image) of an OpenAI/Anthropic content value (string or list of parts)."""
    if content is None:
        return "", False
    if isinstance(content, str):
        return content, False
    if not isinstance(content, list):
        return "", False
    parts, img = [], False
    for p in content:
        if not isinstance(p, dict):
            continue
        t = p.get("type")
        if t in ("image_url", "image", "input_image"):
            img = True
            parts.append("[image]")
        elif isinstance(p.get("text"), str):
            parts.append(p["text"])
        elif t == "tool_result":
            sub, i = _text(p.get("content"))
            img = img or i
            parts.append(sub)
    return "\n".join(parts), img


class RequestInfo:
    """Request facts shared by policy, binding checks and the exchange record."""

    __slots__ = ("api", "model", "stream", "system_prompt", "turns", "prompt", "tools_offered", "has_images",
                 "max_tokens", "temperature", "top_p", "n", "reasoning_requested", "reasoning_effort",
                 "thinking_budget", "carried", "conversation_id", "include_usage", "invalid")

    def __init__(self, api: str):
        self.api = api
        self.model = self.system_prompt = self.prompt = self.reasoning_effort = self.conversation_id = None
        self.stream = self.has_images = self.reasoning_requested = self.include_usage = False
        self.turns: list[dict] = []
        self.tools_offered: list[str] = []
        self.max_tokens = self.temperature = self.top_p = self.n = self.thinking_budget = None
        #: Reasoning the client sent back: list of (container dict, text key, signature key) to verify/unwrap.
        self.carried: list[tuple[dict, str, str]] = []
        #: column -> why the client's value was not kept (out of range, not a number)
        self.invalid: dict[str, str] = {}

    def conversation_key(self, header_value: str | None) -> str:
        """Binds reasoning to a conversation: the client's id, else its root (system + first user turn)."""
        if header_value:
            return "h:" + header_value
        if self.conversation_id:
            return "c:" + self.conversation_id
        first = next((t["text"] for t in self.turns if t["role"] == "user"), "")
        return "r:" + hashlib.sha256(((self.system_prompt or "") + "\x1f" + first).encode()).hexdigest()[:32]


_INT32_MAX = 2**31 - 1
_FLOAT32_MAX = 3.4e38


def _num(v, typ):
    """A client's number as its column holds it (int32 count, finite float32), else None.

    Clients send anything (1e300, a 30-digit string, a list); an unbounded value would reach the recorder and
    the store, where it fits no column. ``_invalid_numbers`` says why a value was left out.
    """
    if isinstance(v, bool) or not isinstance(v, int | float | str) or (isinstance(v, str) and len(v) > 40):
        return None
    try:
        if typ is float:
            x = float(v)
            return x if math.isfinite(x) and abs(x) <= _FLOAT32_MAX else None
        x = v if isinstance(v, int) else int(float(v))  # float(): "1e3" and 12.0 are counts too
    except (ValueError, OverflowError):
        return None
    return x if -_INT32_MAX <= x <= _INT32_MAX else None


def _shown(v) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:
        return f"an integer of {v.bit_length()} bits"
    return repr(v)[:40] if isinstance(v, int | float | str) else type(v).__name__


def _numeric(v) -> bool:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        return False
    try:
        return isinstance(v, int) or not math.isnan(float(v))
    except (ValueError, OverflowError):
        return False


def _invalid_numbers(api: str, body: dict, r: RequestInfo) -> dict[str, str]:
    """column -> why the client's value for it was not kept (it was sent, but ``_num`` refused it)."""
    if api == CHAT:
        raw = {"max_tokens": body.get("max_completion_tokens", body.get("max_tokens")), "n": body.get("n")}
    elif api == RESPONSES:
        raw = {"max_tokens": body.get("max_output_tokens")}
    else:
        th = body.get("thinking")
        raw = {"max_tokens": body.get("max_tokens"), "thinking_budget": th.get("budget_tokens") if isinstance(
            th, dict) and th.get("type") in ("enabled", "adaptive") else None}
    raw["temperature"], raw["top_p"] = body.get("temperature"), body.get("top_p")
    out = {}
    for column, v in raw.items():
        if v is not None and getattr(r, column) is None:
            out[column] = f"{column}: {'out of range' if _numeric(v) else 'not a number'}: {_shown(v)}"
    return out


def parse_request(api: str, body: dict) -> RequestInfo:
    r = RequestInfo(api)
    r.model = body.get("model") if isinstance(body.get("model"), str) else None
    r.stream = body.get("stream") is True
    r.temperature = _num(body.get("temperature"), float)
    r.top_p = _num(body.get("top_p"), float)
    tools = body.get("tools") if isinstance(body.get("tools"), list) else []
    if api == CHAT:
        r.max_tokens = _num(body.get("max_completion_tokens", body.get("max_tokens")), int)
        r.n = _num(body.get("n"), int)
        r.reasoning_effort = body.get("reasoning_effort") if isinstance(body.get("reasoning_effort"), str) else None
        r.reasoning_requested = r.reasoning_effort is not None
        r.include_usage = bool((body.get("stream_options") or {}).get("include_usage")) if isinstance(
            body.get("stream_options"), dict) else False
        r.tools_offered = [t.get("function", {}).get("name", "") for t in tools if isinstance(t, dict)]
        sys_parts = []
        for m in body.get("messages") or []:
            if not isinstance(m, dict):
                continue
            role = m.get("role") or "user"
            text, img = _text(m.get("content"))
            r.has_images = r.has_images or img
            if role in ("system", "developer"):
                sys_parts.append(text)
                continue
            r.turns.append({"role": role, "text": text})
            if role == "assistant":
                for key in ("reasoning_content", "reasoning"):
                    if isinstance(m.get(key), str) and m[key]:
                        r.carried.append((m, key, "reasoning_signature"))
                        break
        r.system_prompt = "\n".join(sys_parts) or None
    elif api == RESPONSES:
        r.max_tokens = _num(body.get("max_output_tokens"), int)
        reasoning = body.get("reasoning")
        if isinstance(reasoning, dict):
            r.reasoning_requested = True
            r.reasoning_effort = reasoning.get("effort") if isinstance(reasoning.get("effort"), str) else None
        r.tools_offered = [t.get("name") or t.get("type", "") for t in tools if isinstance(t, dict)]
        r.system_prompt = body.get("instructions") if isinstance(body.get("instructions"), str) else None
        conv = body.get("conversation")
        r.conversation_id = conv if isinstance(conv, str) else (conv or {}).get("id") if isinstance(conv, dict) else None
        inp = body.get("input")
        if isinstance(inp, str):
            r.turns.append({"role": "user", "text": inp})
        elif isinstance(inp, list):
            for it in inp:
                if not isinstance(it, dict):
                    continue
                t = it.get("type")
                if t == "reasoning":
                    r.carried.append((it, "content", "encrypted_content"))
                elif t == "function_call_output":
                    out = it.get("output")
                    r.turns.append({"role": "tool", "text": out if isinstance(out, str) else orjson.dumps(out).decode()})
                elif t == "function_call":
                    r.turns.append({"role": "assistant", "text": f"[tool call {it.get('name')}]"})
                elif "role" in it:
                    text, img = _text(it.get("content"))
                    r.has_images = r.has_images or img
                    if it["role"] in ("system", "developer"):
                        r.system_prompt = ((r.system_prompt or "") + "\n" + text).strip()
                    else:
                        r.turns.append({"role": it["role"], "text": text})
    else:
        r.max_tokens = _num(body.get("max_tokens"), int)
        th = body.get("thinking")
        if isinstance(th, dict) and th.get("type") in ("enabled", "adaptive"):
            r.reasoning_requested = True
            r.thinking_budget = _num(th.get("budget_tokens"), int)
        r.tools_offered = [t.get("name", "") for t in tools if isinstance(t, dict)]
        s, _ = _text(body.get("system"))
        r.system_prompt = s or None
        for m in body.get("messages") or []:
            if not isinstance(m, dict):
                continue
            text, img = _text(m.get("content"))
            r.has_images = r.has_images or img
            r.turns.append({"role": m.get("role") or "user", "text": text})
            if m.get("role") == "assistant" and isinstance(m.get("content"), list):
                for b in m["content"]:
                    if isinstance(b, dict) and b.get("type") == "thinking":
                        r.carried.append((b, "thinking", "signature"))
    r.invalid = _invalid_numbers(api, body, r)
    users = [t["text"] for t in r.turns if t["role"] == "user"]
    r.prompt = users[-1] if users else None
    return r


def carried_text(container: dict, text_key: str) -> str:
    v = container.get(text_key)
    if isinstance(v, str):
        return v
    if isinstance(v, list):  # responses reasoning item content parts
        return "".join(p.get("text", "") for p in v if isinstance(p, dict))
    return ""


# ---------------------------------------------------------------------------- replies
class ReplyInfo:
    """Response facts for the exchange record."""

    __slots__ = ("text", "reasoning", "tool_calls", "stop_reason", "input_tokens", "output_tokens",
                 "reasoning_tokens", "response_id", "model")

    def __init__(self):
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: list[str] = []
        self.stop_reason = self.input_tokens = self.output_tokens = self.reasoning_tokens = None
        self.response_id = self.model = None

    @property
    def answer(self) -> str:
        return "".join(self.text)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)


def reply_from_body(api: str, obj: dict) -> ReplyInfo:
    ri = ReplyInfo()
    if not isinstance(obj, dict):
        return ri
    ri.response_id = obj.get("id")
    ri.model = obj.get("model")
    usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}
    if api == CHAT:
        choices = obj.get("choices") or []
        if choices and isinstance(choices[0], dict):
            c = choices[0]
            msg = c.get("message") or {}
            if isinstance(msg.get("content"), str):
                ri.text.append(msg["content"])
            for key in ("reasoning_content", "reasoning"):
                if isinstance(msg.get(key), str):
                    ri.reasoning.append(msg[key])
                    break
            ri.tool_calls = [(tc.get("function") or {}).get("name", "") for tc in msg.get("tool_calls") or []
                             if isinstance(tc, dict)]
            ri.stop_reason = c.get("finish_reason")
        ri.input_tokens = usage.get("prompt_tokens")
        ri.output_tokens = usage.get("completion_tokens")
        ri.reasoning_tokens = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    elif api == RESPONSES:
        for it in obj.get("output") or []:
            if not isinstance(it, dict):
                continue
            t = it.get("type")
            if t == "reasoning":
                ri.reasoning.append(carried_text(it, "content") or
                                    "".join(s.get("text", "") for s in it.get("summary") or [] if isinstance(s, dict)))
            elif t == "message":
                ri.text.append("".join(p.get("text", "") for p in it.get("content") or []
                                       if isinstance(p, dict) and p.get("type") == "output_text"))
            elif t == "function_call":
                ri.tool_calls.append(it.get("name", ""))
        ri.stop_reason = obj.get("status")
        ri.input_tokens = usage.get("input_tokens")
        ri.output_tokens = usage.get("output_tokens")
        ri.reasoning_tokens = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    else:
        for b in obj.get("content") or []:
            if not isinstance(b, dict):
                continue
            t = b.get("type")
            if t == "text":
                ri.text.append(b.get("text", ""))
            elif t == "thinking":
                ri.reasoning.append(b.get("thinking", ""))
            elif t == "tool_use":
                ri.tool_calls.append(b.get("name", ""))
        ri.stop_reason = obj.get("stop_reason")
        ri.input_tokens = usage.get("input_tokens")
        ri.output_tokens = usage.get("output_tokens")
    return ri


def parse_event(raw: bytes) -> tuple[bytes | None, bytes | None]:
    """(event name or None, data bytes or None) of one SSE event; multi-line data joins with newlines per the spec."""
    name = None
    data = None
    for line in raw.split(b"\n"):
        if line.startswith(b"data:"):
            d = line[5:].lstrip(b" ")
            data = d if data is None else data + b"\n" + d
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    return name, data


class StreamFold:
    """Folds a reply's SSE events into a ReplyInfo as they pass (one orjson parse per event)."""

    def __init__(self, api: str):
        self.api = api
        self.info = ReplyInfo()
        self.done = False
        self.tool_names: dict[int, str] = {}

    def feed(self, obj: dict) -> None:
        ri = self.info
        if self.api == CHAT:
            ch = obj.get("choices")
            if ch:
                c = ch[0]
                d = c.get("delta")
                if d:
                    v = d.get("content")
                    if v:
                        ri.text.append(v)
                    else:
                        v = d.get("reasoning_content") or d.get("reasoning")
                        if v:
                            ri.reasoning.append(v)
                    tcs = d.get("tool_calls")
                    if tcs:
                        for tc in tcs:
                            name = (tc.get("function") or {}).get("name")
                            if name:
                                self.tool_names[tc.get("index", 0)] = name
                if c.get("finish_reason"):
                    ri.stop_reason = c["finish_reason"]
            if ri.response_id is None:
                ri.response_id = obj.get("id")
                ri.model = obj.get("model")
            u = obj.get("usage")
            if u:
                ri.input_tokens = u.get("prompt_tokens")
                ri.output_tokens = u.get("completion_tokens")
                ri.reasoning_tokens = (u.get("completion_tokens_details") or {}).get("reasoning_tokens")
        elif self.api == RESPONSES:
            t = obj.get("type")
            if t == "response.output_text.delta":
                ri.text.append(obj.get("delta", ""))
            elif t in ("response.reasoning_text.delta", "response.reasoning_summary_text.delta"):
                ri.reasoning.append(obj.get("delta", ""))
            elif t == "response.output_item.done":
                it = obj.get("item") or {}
                if it.get("type") == "function_call":
                    ri.tool_calls.append(it.get("name", ""))
            elif t in ("response.completed", "response.incomplete", "response.failed", "response.created"):
                resp = obj.get("response") or {}
                ri.response_id = resp.get("id")
                ri.model = resp.get("model")
                ri.stop_reason = resp.get("status")
                u = resp.get("usage") or {}
                if u:
                    ri.input_tokens = u.get("input_tokens")
                    ri.output_tokens = u.get("output_tokens")
                    ri.reasoning_tokens = (u.get("output_tokens_details") or {}).get("reasoning_tokens")
        else:
            t = obj.get("type")
            if t == "content_block_delta":
                d = obj.get("delta") or {}
                dt = d.get("type")
                if dt == "text_delta":
                    ri.text.append(d.get("text", ""))
                elif dt == "thinking_delta":
                    ri.reasoning.append(d.get("thinking", ""))
            elif t == "content_block_start":
                b = obj.get("content_block") or {}
                if b.get("type") == "tool_use":
                    ri.tool_calls.append(b.get("name", ""))
            elif t == "message_start":
                m = obj.get("message") or {}
                ri.response_id, ri.model = m.get("id"), m.get("model")
                ri.input_tokens = (m.get("usage") or {}).get("input_tokens")
            elif t == "message_delta":
                ri.stop_reason = (obj.get("delta") or {}).get("stop_reason")
                ri.output_tokens = (obj.get("usage") or {}).get("output_tokens")

    def finish(self) -> ReplyInfo:
        if self.tool_names:
            self.info.tool_calls = [self.tool_names[k] for k in sorted(self.tool_names)]
        return self.info
