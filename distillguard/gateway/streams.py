"""Relaying SSE replies event-aligned, and rewriting them only where policy or binding needs it.

The upstream's bytes are cut at event boundaries (the last blank line of what has arrived) and
sent on at once. For unprotected chat-completions streams, the common and benchmarked case, the
segment is sent untouched and only read afterwards for the record; the one change is a final
chunk carrying the reasoning signature, inserted before ``[DONE]``. Every other case parses each
event, because the rewrite has to know what the event is.
"""

from __future__ import annotations

import orjson

from distillguard.gateway.extract import (
    CHAT,
    MESSAGES,
    RESPONSES,
    StreamFold,
    as_dict,
    as_list,
    as_str,
    parse_event,
)
from distillguard.gateway.reasoning import (
    WITHHELD_NOTICE,
    LeakGuard,
    ThinkFilter,
    _protect_reasoning_item,
    summarize,
)
from distillguard.policy.model import ReasoningPolicy

_DONE = b"data: [DONE]\n\n"
_loads = orjson.loads
_dumps = orjson.dumps


def sse(obj, name: bytes | None = None) -> bytes:
    head = b"event: " + name + b"\n" if name else b""
    return head + b"data: " + _dumps(obj) + b"\n\n"


def _index(v) -> int:
    """A content-block index from the upstream: an int, else 0 (an index must be usable as a key)."""
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _events(seg: bytes):
    """(raw event bytes incl. terminator, event name, parsed JSON or None, data bytes)."""
    for raw in seg.split(b"\n\n"):
        if not raw:
            continue
        if raw.startswith(b"data: "):  # the common single-line case, without splitting
            name, data = None, raw[6:]
        else:
            name, data = parse_event(raw)
        obj = None
        if data and data[:1] == b"{":
            try:
                obj = _loads(data)
            except orjson.JSONDecodeError:
                obj = None
        yield raw + b"\n\n", name, obj, data


class Relay:
    """Base: folds events for the record; subclasses decide what to send."""

    #: True when ``segment`` returns the input unchanged and folding can run after the send.
    passthrough = False
    #: Last Responses ``sequence_number`` seen (an error event the gateway adds continues the sequence).
    seq = 0

    def __init__(self, api: str, protect: bool, rp: ReasoningPolicy, sign):
        self.api = api
        self.fold = StreamFold(api)
        self.protect = protect
        self.rp = rp
        self.sign = sign
        self.hidden: list[str] = []
        self.reasoning_chars = 0
        self.redacted = False
        self.returned_reasoning: str | None = None
        self.guard = LeakGuard(rp.leak_check.ngram, rp.leak_check.min_matches) \
            if protect and rp.leak_check.enabled else None
        self._guard_ready = False
        self.client_gone = False

    @property
    def withheld(self) -> bool:
        return bool(self.guard and self.guard.withheld)

    @property
    def leak_matches(self) -> int:
        return self.guard.matches if self.guard else 0

    def _guarded(self, item: bytes, text: str) -> list[bytes]:
        if self.guard is None:
            return [item]
        if text and not self._guard_ready:
            self.guard.set_reasoning("".join(self.hidden))
            self._guard_ready = True
        out = self.guard.add(item, text)
        if self.guard.just_withheld:
            self.guard.just_withheld = False
            return [self.notice()] + out
        return out

    def _guard_finish(self) -> list[bytes]:
        if self.guard is None:
            return []
        was = self.guard.withheld
        out = self.guard.finish()
        if self.guard.withheld and not was:
            self.guard.just_withheld = False
            return [self.notice()] + out
        return out

    def notice(self) -> bytes:
        raise NotImplementedError

    def segment(self, seg: bytes) -> bytes:
        raise NotImplementedError

    def after(self, seg: bytes) -> None:
        """Fold a segment that was sent untouched (passthrough relays only)."""

    def finish(self, leftover: bytes) -> bytes:
        """End of stream: release whatever the leak guard still holds back (nothing when unguarded)."""
        return b"".join(self._guard_finish()) + leftover


class ChatPassthrough(Relay):
    """Unprotected chat stream: bytes go out as they came; the record and signature are built alongside."""

    passthrough = True

    def __init__(self, *a):
        super().__init__(*a)
        self.held = b""

    def segment(self, seg: bytes) -> bytes:
        if seg.endswith(_DONE):
            self.held = _DONE
            return seg[:-len(_DONE)]
        return seg

    def after(self, seg: bytes) -> None:
        feed = self.fold.feed
        for raw in seg.split(b"\n\n"):
            if raw[:7] == b"data: {":
                try:
                    feed(_loads(raw[6:]))
                except orjson.JSONDecodeError:
                    pass

    def finish(self, leftover: bytes) -> bytes:
        ri = self.fold.info
        out = b""
        if ri.reasoning:
            text = "".join(ri.reasoning)
            self.reasoning_chars = len(text)
            self.returned_reasoning = text
            out = sse({"id": ri.response_id, "object": "chat.completion.chunk", "model": ri.model, "created": 0,
                       "choices": [{"index": 0, "delta": {"reasoning_signature": self.sign(text, None, False)},
                                    "finish_reason": None}]})
        return out + self.held + leftover


class ChatProtect(Relay):
    """Protected chat stream: reasoning deltas and <think> spans removed, answer checked for leaks."""

    def __init__(self, *a):
        super().__init__(*a)
        self.think = ThinkFilter()
        self.summary_sent = False

    def _chunk(self, delta: dict, finish=None) -> bytes:
        ri = self.fold.info
        return sse({"id": ri.response_id, "object": "chat.completion.chunk", "model": ri.model, "created": 0,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    def notice(self) -> bytes:
        return self._chunk({"content": WITHHELD_NOTICE})

    def _summary(self) -> list[bytes]:
        if self.summary_sent or not self.hidden or self.rp.mode != "summary":
            return []
        self.summary_sent = True
        text = summarize("".join(self.hidden), self.rp.summary_chars)
        self.returned_reasoning = text
        return [self._chunk({"reasoning_content": text})]

    def segment(self, seg: bytes) -> bytes:
        out: list[bytes] = []
        for raw, _name, obj, data in _events(seg):
            if obj is None:
                if data == b"[DONE]":
                    out += self._guard_finish() + self._summary()
                    if self.returned_reasoning:
                        out.append(self._chunk({"reasoning_signature": self.sign(self.returned_reasoning, None, True)}))
                out.append(raw)
                continue
            self.fold.feed(obj)
            choices = as_list(obj.get("choices"))
            delta = choices[0].get("delta") if choices and isinstance(choices[0], dict) else None
            if not isinstance(delta, dict):
                out += self._guarded(raw, "")
                continue
            changed = False
            for key in ("reasoning_content", "reasoning"):
                r = delta.pop(key, None)
                if r and isinstance(r, str):
                    self.hidden.append(r)
                    self.reasoning_chars += len(r)
                    self.redacted = changed = True
                elif r is not None:
                    changed = True
            text = delta.get("content")
            vis = ""
            if text and isinstance(text, str):
                vis, hid = self.think.feed(text)
                if hid:
                    self.hidden.append(hid)
                    self.reasoning_chars += len(hid)
                    self.redacted = True
                if vis != text:
                    changed = True
                    if vis:
                        delta["content"] = vis
                    else:
                        del delta["content"]
            finish = choices[0].get("finish_reason")
            if finish or vis or delta.get("tool_calls"):
                out += self._summary()
            if changed and not delta and not finish and not obj.get("usage"):
                continue  # nothing left in this event
            ev = sse(obj) if changed else raw
            if finish:
                out += self._guard_finish()
                if self.withheld:
                    choices[0]["finish_reason"] = "content_filter"
                    ev = sse(obj)
                out.append(ev)
            else:
                out += self._guarded(ev, vis)
        return b"".join(out)


class MessagesRelay(Relay):
    """Anthropic stream: thinking signatures rebound for everyone; thinking hidden for protected accounts."""

    def __init__(self, *a):
        super().__init__(*a)
        self.thinking: dict[int, list[str]] = {}
        self.text_index = 0

    def notice(self) -> bytes:
        return sse({"type": "content_block_delta", "index": self.text_index,
                    "delta": {"type": "text_delta", "text": WITHHELD_NOTICE}}, b"content_block_delta")

    def segment(self, seg: bytes) -> bytes:
        out: list[bytes] = []
        for raw, name, obj, _data in _events(seg):
            if obj is None:
                out.append(raw)
                continue
            self.fold.feed(obj)
            t = obj.get("type")
            if t == "content_block_start":
                b = as_dict(obj.get("content_block"))
                if b.get("type") == "thinking":
                    self.thinking[_index(obj.get("index"))] = []
                elif b.get("type") == "text":
                    self.text_index = _index(obj.get("index"))
            elif t == "content_block_delta":
                d = as_dict(obj.get("delta"))
                dt = d.get("type")
                idx = _index(obj.get("index"))
                if dt == "thinking_delta":
                    piece = as_str(d.get("thinking"))
                    self.thinking.setdefault(idx, []).append(piece)
                    self.reasoning_chars += len(piece)
                    if self.protect:
                        self.hidden.append(piece)
                        self.redacted = True
                        continue
                elif dt == "signature_delta":
                    text = "".join(self.thinking.get(idx, []))
                    if self.protect:
                        returned = summarize(text, self.rp.summary_chars) if self.rp.mode == "summary" else ""
                        if returned:
                            out.append(sse({"type": "content_block_delta", "index": idx,
                                            "delta": {"type": "thinking_delta", "thinking": returned}}, name))
                            self.returned_reasoning = returned
                        d["signature"] = self.sign(returned, d.get("signature"), True)
                    else:
                        d["signature"] = self.sign(text, d.get("signature"), False)
                        self.returned_reasoning = text
                    out.append(sse(obj, name))
                    continue
                elif dt == "text_delta" and self.guard is not None:
                    out += self._guarded(raw, as_str(d.get("text")))
                    continue
            elif t == "message_delta" and self.guard is not None:
                out += self._guard_finish()
                if self.withheld:
                    if not isinstance(obj.get("delta"), dict):
                        obj["delta"] = {}
                    obj["delta"]["stop_reason"] = "refusal"
                    out.append(sse(obj, name))
                    continue
            if self.guard is not None:
                out += self._guarded(raw, "")
            else:
                out.append(raw)
        return b"".join(out)


class ResponsesRelay(Relay):
    """Responses stream: reasoning items signed for everyone; reasoning events dropped when protected."""

    def __init__(self, *a):
        super().__init__(*a)
        self.text_loc = {"item_id": "", "output_index": 0, "content_index": 0}

    def notice(self) -> bytes:
        return sse({"type": "response.output_text.delta", "sequence_number": 0, **self.text_loc, "delta": WITHHELD_NOTICE},
                   b"response.output_text.delta")

    def _rewrite_output(self, items) -> None:
        for it in as_list(items):
            if not isinstance(it, dict):
                continue
            if it.get("type") == "reasoning":
                ret = _protect_reasoning_item(it, self.protect, self.rp, self.sign, None)
                if self.protect and ret:
                    self.redacted = True
                    self.returned_reasoning = it["summary"][0]["text"] if it.get("summary") else None
                elif not self.protect:
                    self.returned_reasoning = "".join(as_str(p.get("text")) for p in as_list(it.get("content"))
                                                      if isinstance(p, dict)) or None
            elif it.get("type") == "message" and self.withheld:
                for p in as_list(it.get("content")):
                    if isinstance(p, dict) and p.get("type") == "output_text":
                        p["text"] = WITHHELD_NOTICE

    def segment(self, seg: bytes) -> bytes:
        out: list[bytes] = []
        for raw, name, obj, _data in _events(seg):
            if obj is None:
                out.append(raw)
                continue
            self.fold.feed(obj)
            n = obj.get("sequence_number")
            if isinstance(n, int) and not isinstance(n, bool):
                self.seq = n
            t = as_str(obj.get("type"))
            if t.startswith("response.reasoning"):
                if t.endswith(".delta"):
                    self.hidden.append(as_str(obj.get("delta")))
                    self.reasoning_chars += len(self.hidden[-1])
                if self.protect:
                    self.redacted = True
                    continue
                out.append(raw)
                continue
            if t.startswith("response.content_part") and as_dict(obj.get("part")).get("type") == "reasoning_text":
                if self.protect:
                    continue
                out.append(raw)
                continue
            if t in ("response.output_item.added", "response.output_item.done"):
                it = as_dict(obj.get("item"))
                if it.get("type") == "reasoning" or (it.get("type") == "message" and self.withheld):
                    if t.endswith("done") and self.guard is not None and it.get("type") == "message":
                        out += self._guard_finish()
                    self._rewrite_output([it])
                    out.append(sse(obj, name))
                    continue
                if t.endswith("done") and it.get("type") == "message" and self.guard is not None:
                    out += self._guard_finish()
                    if self.withheld:
                        self._rewrite_output([it])
                        out.append(sse(obj, name))
                        continue
            elif t in ("response.created", "response.in_progress", "response.completed", "response.incomplete",
                       "response.failed"):
                out += self._guard_finish()
                self._rewrite_output(as_dict(obj.get("response")).get("output"))
                out.append(sse(obj, name))
                continue
            elif t == "response.output_text.delta" and self.guard is not None:
                self.text_loc = {k: obj.get(k) for k in ("item_id", "output_index", "content_index")}
                out += self._guarded(raw, as_str(obj.get("delta")))
                continue
            elif t in ("response.output_text.done", "response.content_part.done") and self.withheld:
                if "text" in obj:
                    obj["text"] = WITHHELD_NOTICE
                if isinstance(obj.get("part"), dict) and "text" in obj["part"]:
                    obj["part"]["text"] = WITHHELD_NOTICE
                raw = sse(obj, name)
            if self.guard is not None:
                out += self._guarded(raw, "")
            else:
                out.append(raw)
        return b"".join(out)



def make_relay(api: str, protect: bool, rp: ReasoningPolicy, sign) -> Relay:
    if api == CHAT:
        return (ChatProtect if protect else ChatPassthrough)(api, protect, rp, sign)
    if api == MESSAGES:
        return MessagesRelay(api, protect, rp, sign)
    if api == RESPONSES:
        return ResponsesRelay(api, protect, rp, sign)
    raise ValueError(api)
