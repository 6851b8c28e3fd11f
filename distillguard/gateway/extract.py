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


class RequestShapeError(ValueError):
    """A field the gateway reads has the wrong JSON type; the message names it (``tools.0.function``).

    The gateway answers 400 with the message rather than guess: the upstream would refuse the
    request too, and a guessed reading would put the wrong facts in front of the policy.
    """


def _want(v, typ, path: str, what: str):
    """``v`` if it is None or of ``typ``; else the 400 naming ``path``."""
    if v is None or isinstance(v, typ):
        return v
    raise RequestShapeError(f"{path}: expected {what}, got {_kind(v)}")


def _kind(v) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(v), "null")


def as_str(v) -> str:
    """Text fields of upstream replies: a string, or "" for anything else (never raises)."""
    return v if isinstance(v, str) else ""


def as_dict(v) -> dict:
    return v if isinstance(v, dict) else {}


def as_list(v) -> list:
    return v if isinstance(v, list) else []


def _tool_names(tools, path: str, key: str | None) -> list[str]:
    """Names of offered tools: ``tools[i][key].name`` (chat) or ``tools[i].name``; shapes checked."""
    names = []
    for i, t in enumerate(_want(tools, list, path, "an array") or []):
        _want(t, dict, f"{path}.{i}", "an object")
        if t is None:
            continue
        holder = _want(t.get(key), dict, f"{path}.{i}.{key}", "an object") if key else t
        name = _want((holder or {}).get("name"), str, f"{path}.{i}{'.' + key if key else ''}.name", "a string")
        if name is None and not key:
            name = _want(t.get("type"), str, f"{path}.{i}.type", "a string")
        names.append(name or "")
    return names


def _messages(v, path: str) -> list[dict]:
    """The message list with each message an object and its role a string (or absent)."""
    out = []
    for i, m in enumerate(_want(v, list, path, "an array") or []):
        _want(m, dict, f"{path}.{i}", "an object")
        if m is None:
            continue
        _want(m.get("role"), str, f"{path}.{i}.role", "a string")
        c = m.get("content")
        if c is not None and not isinstance(c, (str, list)):
            raise RequestShapeError(f"{path}.{i}.content: expected a string or an array, got {_kind(c)}")
        out.append(m)
    return out


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
    """Request facts of a parsed JSON body; ``RequestShapeError`` when a field read has the wrong type."""
    r = RequestInfo(api)
    r.model = _want(body.get("model"), str, "model", "a string")
    r.stream = body.get("stream") is True
    r.temperature = _num(body.get("temperature"), float)
    r.top_p = _num(body.get("top_p"), float)
    tools = body.get("tools")
    if api == CHAT:
        r.max_tokens = _num(body.get("max_completion_tokens", body.get("max_tokens")), int)
        r.n = _num(body.get("n"), int)
        r.reasoning_effort = _want(body.get("reasoning_effort"), str, "reasoning_effort", "a string")
        r.reasoning_requested = r.reasoning_effort is not None
        so = _want(body.get("stream_options"), dict, "stream_options", "an object")
        r.include_usage = bool(so.get("include_usage")) if so else False
        r.tools_offered = _tool_names(tools, "tools", "function")
        sys_parts = []
        for m in _messages(body.get("messages"), "messages"):
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
        reasoning = _want(body.get("reasoning"), dict, "reasoning", "an object")
        if reasoning is not None:
            r.reasoning_requested = True
            r.reasoning_effort = _want(reasoning.get("effort"), str, "reasoning.effort", "a string")
        r.tools_offered = _tool_names(tools, "tools", None)
        r.system_prompt = _want(body.get("instructions"), str, "instructions", "a string")
        conv = body.get("conversation")
        if isinstance(conv, dict):
            conv = _want(conv.get("id"), str, "conversation.id", "a string")
        elif conv is not None and not isinstance(conv, str):
            raise RequestShapeError(f"conversation: expected a string or an object, got {_kind(conv)}")
        r.conversation_id = conv
        inp = body.get("input")
        if isinstance(inp, str):
            r.turns.append({"role": "user", "text": inp})
        elif inp is not None and not isinstance(inp, list):
            raise RequestShapeError(f"input: expected a string or an array, got {_kind(inp)}")
        elif isinstance(inp, list):
            for i, it in enumerate(inp):
                _want(it, dict, f"input.{i}", "an object")
                if it is None:
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
                    _want(it["role"], str, f"input.{i}.role", "a string")
                    text, img = _text(it.get("content"))
                    r.has_images = r.has_images or img
                    if it["role"] in ("system", "developer"):
                        r.system_prompt = ((r.system_prompt or "") + "\n" + text).strip()
                    else:
                        r.turns.append({"role": it["role"] or "user", "text": text})
    else:
        r.max_tokens = _num(body.get("max_tokens"), int)
        th = _want(body.get("thinking"), dict, "thinking", "an object")
        if th is not None and th.get("type") in ("enabled", "adaptive"):
            r.reasoning_requested = True
            r.thinking_budget = _num(th.get("budget_tokens"), int)
        r.tools_offered = _tool_names(tools, "tools", None)
        system = body.get("system")
        if system is not None and not isinstance(system, (str, list)):
            raise RequestShapeError(f"system: expected a string or an array, got {_kind(system)}")
        s, _ = _text(system)
        r.system_prompt = s or None
        for m in _messages(body.get("messages"), "messages"):
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
        return "".join(as_str(p.get("text")) for p in v if isinstance(p, dict))
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


def _count(v) -> int | None:
    """A token count from an upstream reply: a non-negative integer below 2**53, else None.

    Replies are the upstream's word, not ours: a count sent as a string, a float or an absurd
    number is left out of the record and of token-limit charging rather than trusted or crashed on.
    """
    if isinstance(v, bool):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, int) and 0 <= v < 1 << 53:
        return v
    return None


def _usage(ri: ReplyInfo, u, inp: str, out: str, details: str) -> None:
    u = as_dict(u)
    ri.input_tokens = _count(u.get(inp))
    ri.output_tokens = _count(u.get(out))
    ri.reasoning_tokens = _count(as_dict(u.get(details)).get("reasoning_tokens"))


def _id(v) -> str | None:
    return v if isinstance(v, str) else None


def reply_from_body(api: str, obj: dict) -> ReplyInfo:
    """Reply facts of a whole (non-streamed) reply; any JSON is accepted, wrongly typed fields are left out."""
    ri = ReplyInfo()
    if not isinstance(obj, dict):
        return ri
    ri.response_id = _id(obj.get("id"))
    ri.model = _id(obj.get("model"))
    if api == CHAT:
        choices = as_list(obj.get("choices"))
        if choices and isinstance(choices[0], dict):
            c = choices[0]
            msg = as_dict(c.get("message"))
            if isinstance(msg.get("content"), str):
                ri.text.append(msg["content"])
            for key in ("reasoning_content", "reasoning"):
                if isinstance(msg.get(key), str):
                    ri.reasoning.append(msg[key])
                    break
            ri.tool_calls = [as_str(as_dict(tc.get("function")).get("name")) for tc in as_list(msg.get("tool_calls"))
                             if isinstance(tc, dict)]
            ri.stop_reason = _id(c.get("finish_reason"))
        _usage(ri, obj.get("usage"), "prompt_tokens", "completion_tokens", "completion_tokens_details")
    elif api == RESPONSES:
        for it in as_list(obj.get("output")):
            if not isinstance(it, dict):
                continue
            t = it.get("type")
            if t == "reasoning":
                ri.reasoning.append(carried_text(it, "content") or
                                    "".join(as_str(s.get("text")) for s in as_list(it.get("summary")) if isinstance(s, dict)))
            elif t == "message":
                ri.text.append("".join(as_str(p.get("text")) for p in as_list(it.get("content"))
                                       if isinstance(p, dict) and p.get("type") == "output_text"))
            elif t == "function_call":
                ri.tool_calls.append(as_str(it.get("name")))
        ri.stop_reason = _id(obj.get("status"))
        _usage(ri, obj.get("usage"), "input_tokens", "output_tokens", "output_tokens_details")
    else:
        for b in as_list(obj.get("content")):
            if not isinstance(b, dict):
                continue
            t = b.get("type")
            if t == "text":
                ri.text.append(as_str(b.get("text")))
            elif t == "thinking":
                ri.reasoning.append(as_str(b.get("thinking")))
            elif t == "tool_use":
                ri.tool_calls.append(as_str(b.get("name")))
        ri.stop_reason = _id(obj.get("stop_reason"))
        _usage(ri, obj.get("usage"), "input_tokens", "output_tokens", "output_tokens_details")
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

    def feed(self, obj) -> None:
        """Fold one event; any JSON is accepted (wrongly typed fields are skipped, never raised on)."""
        if not isinstance(obj, dict):
            return
        ri = self.info
        if self.api == CHAT:
            ch = obj.get("choices")
            if ch and isinstance(ch, list) and isinstance(ch[0], dict):
                c = ch[0]
                d = c.get("delta")
                if d and isinstance(d, dict):
                    v = d.get("content")
                    if v and isinstance(v, str):
                        ri.text.append(v)
                    else:
                        v = d.get("reasoning_content") or d.get("reasoning")
                        if v and isinstance(v, str):
                            ri.reasoning.append(v)
                    tcs = d.get("tool_calls")
                    if tcs and isinstance(tcs, list):
                        for tc in tcs:
                            if not isinstance(tc, dict):
                                continue
                            name = as_dict(tc.get("function")).get("name")
                            idx = tc.get("index", 0)
                            if name and isinstance(name, str) and isinstance(idx, int) and not isinstance(idx, bool):
                                self.tool_names[idx] = name
                fr = c.get("finish_reason")
                if fr and isinstance(fr, str):
                    ri.stop_reason = fr
            if ri.response_id is None:
                ri.response_id = _id(obj.get("id"))
                ri.model = _id(obj.get("model"))
            u = obj.get("usage")
            if u:
                _usage(ri, u, "prompt_tokens", "completion_tokens", "completion_tokens_details")
        elif self.api == RESPONSES:
            t = obj.get("type")
            if t == "response.output_text.delta":
                ri.text.append(as_str(obj.get("delta")))
            elif t in ("response.reasoning_text.delta", "response.reasoning_summary_text.delta"):
                ri.reasoning.append(as_str(obj.get("delta")))
            elif t == "response.output_item.done":
                it = as_dict(obj.get("item"))
                if it.get("type") == "function_call":
                    ri.tool_calls.append(as_str(it.get("name")))
            elif t in ("response.completed", "response.incomplete", "response.failed", "response.created"):
                resp = as_dict(obj.get("response"))
                ri.response_id = _id(resp.get("id"))
                ri.model = _id(resp.get("model"))
                ri.stop_reason = _id(resp.get("status"))
                if resp.get("usage"):
                    _usage(ri, resp.get("usage"), "input_tokens", "output_tokens", "output_tokens_details")
        else:
            t = obj.get("type")
            if t == "content_block_delta":
                d = as_dict(obj.get("delta"))
                dt = d.get("type")
                if dt == "text_delta":
                    ri.text.append(as_str(d.get("text")))
                elif dt == "thinking_delta":
                    ri.reasoning.append(as_str(d.get("thinking")))
            elif t == "content_block_start":
                b = as_dict(obj.get("content_block"))
                if b.get("type") == "tool_use":
                    ri.tool_calls.append(as_str(b.get("name")))
            elif t == "message_start":
                m = as_dict(obj.get("message"))
                ri.response_id, ri.model = _id(m.get("id")), _id(m.get("model"))
                ri.input_tokens = _count(as_dict(m.get("usage")).get("input_tokens"))
            elif t == "message_delta":
                ri.stop_reason = _id(as_dict(obj.get("delta")).get("stop_reason"))
                ri.output_tokens = _count(as_dict(obj.get("usage")).get("output_tokens"))

    def finish(self) -> ReplyInfo:
        if self.tool_names:
            self.info.tool_calls = [self.tool_names[k] for k in sorted(self.tool_names)]
        return self.info
