"""Anthropic Messages API logs and Message Batches files.

Envelope records hold a Messages request body (``system`` as text or blocks, ``messages`` with
content blocks, ``tools``, ``thinking``) and the Message the API returned (content blocks
``text``/``thinking``/``redacted_thinking``/``tool_use``, ``stop_reason``, ``usage``). Batch
request lines ``{custom_id, params}`` are remembered for the run; result lines
``{custom_id, result: {type, message | error}}`` join to them by ``custom_id``.
"""

from __future__ import annotations

from typing import Any

from distillguard.errors import RecordError
from distillguard.ingest.common import (
    IMAGE_MARKER,
    Envelope,
    as_dict,
    as_list,
    batch_id_from_path,
    batch_time,
    common_fields,
    dig,
    dumps_extra,
    finish_identity,
    first,
    is_envelope,
    jtext,
    remember_batch,
    tool_call_text,
)
from distillguard.ingest.registry import RecordContext, register_reader

_ANTHROPIC_BLOCKS = frozenset({"tool_use", "tool_result", "thinking", "redacted_thinking", "document",
                               "server_tool_use", "web_search_tool_result"})


def _blocks(content: Any) -> list:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, dict):
        return [content]
    return [b for b in as_list(content) if isinstance(b, dict)]


def _tool_result_text(block: dict) -> str:
    c = block.get("content")
    if isinstance(c, str):
        return c
    return "\n".join(str(b.get("text") or "") for b in as_list(c) if isinstance(b, dict) and b.get("type") == "text")


def request_fields(req: dict) -> dict:
    system = req.get("system")
    if isinstance(system, list):
        system = "\n\n".join(str(b.get("text") or "") for b in system if isinstance(b, dict) and b.get("text"))
    turns, images = [], False
    for m in as_list(req.get("messages")):
        if not isinstance(m, dict):
            raise RecordError("messages: each message must be an object with role and content")
        role = str(m.get("role") or "user")
        texts, results = [], []
        for b in _blocks(m.get("content")):
            t = b.get("type")
            if t == "text":
                texts.append(str(b.get("text") or ""))
            elif t == "image":
                images = True
                texts.append(IMAGE_MARKER)
            elif t == "document":
                texts.append("[document]")
            elif t in ("tool_use", "server_tool_use"):
                texts.append(tool_call_text(b.get("name"), b.get("input")))
            elif t == "tool_result":
                results.append(_tool_result_text(b))
        # Tool results travel in user messages; as turns they are tool output, not what the user typed.
        if results:
            turns.append({"role": "tool", "text": "\n".join(results)})
        if texts or not results:
            turns.append({"role": role, "text": "\n".join(x for x in texts if x)})
    thinking = as_dict(req.get("thinking"))
    ttype = thinking.get("type")
    return {
        "model": req.get("model"), "system_prompt": system or None, "turns": turns, "has_images": images,
        "tools_offered": [str(first(t.get("name"), t.get("type"))) for t in as_list(req.get("tools"))
                          if isinstance(t, dict) and first(t.get("name"), t.get("type"))],
        "max_tokens": req.get("max_tokens"), "temperature": req.get("temperature"), "top_p": req.get("top_p"),
        "stream": req.get("stream"),
        "reasoning_requested": (ttype != "disabled") if ttype else None,
        "thinking_budget": thinking.get("budget_tokens"),
        "reasoning_effort": first(dig(req, "output_config", "effort"), req.get("effort")),
        "_user": dig(req, "metadata", "user_id"),
    }


def message_fields(msg: dict) -> dict:
    texts, thinking, calls, redacted = [], [], [], False
    for b in _blocks(msg.get("content")):
        t = b.get("type")
        if t == "text":
            texts.append(str(b.get("text") or ""))
        elif t == "thinking":
            thinking.append(str(b.get("thinking") or ""))
        elif t == "redacted_thinking":
            redacted = True
        elif t in ("tool_use", "server_tool_use"):
            calls.append(str(b.get("name")))
    usage = as_dict(msg.get("usage"))
    parts = [usage.get(k) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")]
    nums = [p for p in parts if isinstance(p, int) and not isinstance(p, bool)]
    return {
        "response_text": "".join(texts) if "content" in msg else None,
        "reasoning_text": "\n".join(thinking) if thinking else None,
        "reasoning_redacted": redacted or None, "tool_calls": calls, "stop_reason": msg.get("stop_reason"),
        # Billed prompt tokens include cache writes and reads, as OpenAI's prompt_tokens do.
        "input_tokens": sum(nums) if nums else usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"),
        "_model": msg.get("model"), "_id": msg.get("id"),
    }


def fold_events(events: list) -> dict:
    """Rebuild the Message from a logged stream of SSE events (message_start, content_block_*, message_delta)."""
    msg: dict = {}
    blocks: dict[int, dict] = {}
    partial_json: dict[int, list[str]] = {}
    for ev in events:
        if not isinstance(ev, dict):
            continue
        t = ev.get("type")
        if t == "message_start" and isinstance(ev.get("message"), dict):
            msg = dict(ev["message"])
            msg["usage"] = dict(as_dict(msg.get("usage")))
        elif t == "content_block_start" and isinstance(ev.get("content_block"), dict):
            blocks[ev.get("index", len(blocks))] = dict(ev["content_block"])
        elif t == "content_block_delta":
            i, d = ev.get("index", 0), as_dict(ev.get("delta"))
            b = blocks.setdefault(i, {"type": "text", "text": ""})
            if d.get("type") == "text_delta":
                b["text"] = str(b.get("text") or "") + str(d.get("text") or "")
            elif d.get("type") == "thinking_delta":
                b["thinking"] = str(b.get("thinking") or "") + str(d.get("thinking") or "")
            elif d.get("type") == "input_json_delta":
                partial_json.setdefault(i, []).append(str(d.get("partial_json") or ""))
        elif t == "message_delta":
            msg.update({k: v for k, v in as_dict(ev.get("delta")).items() if v is not None})
            msg.setdefault("usage", {}).update(as_dict(ev.get("usage")))  # cumulative counts
        elif t == "error":
            msg["error"] = ev.get("error")
    for i, parts in partial_json.items():
        blocks[i]["input"] = "".join(parts)
    if blocks or msg:
        msg["content"] = [blocks[i] for i in sorted(blocks, key=lambda k: k if isinstance(k, int) else 0)]
    return msg


def _error_of(body: Any) -> dict | None:
    err = dig(body, "error")
    if isinstance(err, dict):
        inner = err.get("error") if isinstance(err.get("error"), dict) else err
        return {"type": inner.get("type"), "message": jtext(inner.get("message"), 500)}
    return None


def _merge(row: dict, fields: dict) -> None:
    row.update({k: v for k, v in fields.items() if v is not None or k not in row})


def _finish(row: dict, ctx: RecordContext, ts: Any, user: Any, extra: dict) -> dict:
    row["exchange_id"] = first(row.pop("_request_id", None), row.pop("_id", None), ctx.stable_id())
    row.pop("_model", None)
    row.pop("_user", None)
    row.pop("_ts", None)
    if ts is None:
        raise RecordError("no timestamp: Messages responses carry none, so the log record must (timestamp/ts)")
    row["ts"] = ts
    finish_identity(row, user)
    row["source_format"] = "anthropic"
    row["extra"] = dumps_extra(extra)
    return row


def map_envelope(obj: dict, ctx: RecordContext) -> dict:
    env = Envelope(obj)
    if not env.request and env.response is None:
        raise RecordError("record has neither a request nor a response body")
    row = common_fields(env, "anthropic")
    req = request_fields(env.request)
    _merge(row, req)
    resp = env.response if isinstance(env.response, dict) else (
        fold_events(env.response) if isinstance(env.response, list) else {})
    err = _error_of(resp)
    if resp and not err:
        out = message_fields(resp)
        _merge(row, out)
        row["model"] = first(out["_model"], row.get("model"))
        if row.get("http_status") is None:
            row["http_status"] = 200
    row["endpoint"] = "messages"
    return _finish(row, ctx, row.get("_ts"), req["_user"], {"error": err})


# --- Message Batches ---------------------------------------------------------------------------------------

def _state(ctx: RecordContext) -> dict:
    return ctx.run_state.setdefault("anthropic_batch_requests", {})


def map_batch_request(obj: dict, ctx: RecordContext) -> list[dict]:
    from distillguard.ingest.openai import remember_batch_input

    params = obj.get("params")
    if not isinstance(params, dict) or obj.get("custom_id") is None:
        raise RecordError("batch request line needs custom_id and a params object")
    meta = {k: obj[k] for k in ("account_id", "org_id", "api_key_id", "timestamp") if k in obj}
    remember_batch_input(_state(ctx), obj["custom_id"], ctx.source,
                         {"row": request_fields(params), "meta": meta,
                          "batch_id": first(obj.get("batch_id"), batch_id_from_path(ctx.source))})
    return []


def map_batch_result(obj: dict, ctx: RecordContext) -> list[dict]:
    cid = obj.get("custom_id")
    result = obj.get("result")
    if cid is None or not isinstance(result, dict):
        raise RecordError("batch result line needs custom_id and a result object")
    joined = _state(ctx).get(str(cid))
    ambiguous = bool(joined and joined.get("ambiguous"))
    joined = None if ambiguous else joined
    row = dict(joined["row"]) if joined else {}
    meta = joined.get("meta", {}) if joined else {}
    rtype = result.get("type")
    msg = result.get("message")
    if rtype == "succeeded" and isinstance(msg, dict):
        out = message_fields(msg)
        _merge(row, out)
        row["model"] = first(out["_model"], row.get("model"))
    for k in ("account_id", "org_id", "api_key_id"):
        row[k] = first(obj.get(k), meta.get(k))
    row["endpoint"] = "batch"
    row["batch_id"] = first(obj.get("batch_id"), joined and joined.get("batch_id"), batch_id_from_path(ctx.source))
    row["_id"] = first(dig(msg, "id"), ctx.stable_id())
    extra = {"custom_id": cid, "result_type": rtype, "error": _error_of(result),
             "batch_join": "joined" if joined else ("ambiguous" if ambiguous else "input not in this run")}
    ts = first(obj.get("timestamp"), meta.get("timestamp"))
    if ts is None:  # results carry no time of their own
        ts = batch_time(ctx, row["batch_id"], extra)
    return [_finish(row, ctx, ts, first(row.get("_user"), obj.get("user_id")), extra)]


def anthropic_request_markers(req: dict) -> bool:
    """Request-body features only the Messages API has."""
    if not isinstance(req, dict):
        return False
    if "system" in req or isinstance(req.get("thinking"), dict) and "budget_tokens" in req["thinking"]:
        return True
    if any(isinstance(t, dict) and "input_schema" in t for t in as_list(req.get("tools"))):
        return True
    for m in as_list(req.get("messages"))[:20]:
        for b in as_list(dig(m, "content")):
            if isinstance(b, dict) and (b.get("type") in _ANTHROPIC_BLOCKS
                                        or b.get("type") == "image" and "source" in b):
                return True
    return False


def looks_anthropic(obj: dict) -> bool:
    env = Envelope(obj)
    u = str(env.url or "")
    if "/v1/messages" in u or u.rstrip("/").endswith("/messages"):
        return True
    resp = env.response
    if isinstance(resp, list):
        return any(isinstance(e, dict) and e.get("type") == "message_start" for e in resp[:3])
    if isinstance(resp, dict):
        if resp.get("type") == "message" or str(resp.get("id", "")).startswith("msg_"):
            return True
        if resp.get("type") == "error" and isinstance(resp.get("error"), dict):
            return True
        if "choices" in resp or "object" in resp:
            return False
    if any(k == "anthropic-version" for k, _ in env.req_headers):
        return True
    return anthropic_request_markers(env.request)


def is_batch_object(obj: Any) -> bool:
    """The MessageBatch object (id, created_at, ended_at, processing_status, request_counts)."""
    return isinstance(obj, dict) and obj.get("type") == "message_batch" and isinstance(obj.get("id"), str)


def is_batch_request(obj: Any) -> bool:
    return isinstance(obj, dict) and "custom_id" in obj and isinstance(obj.get("params"), dict)


def is_batch_result(obj: Any) -> bool:
    return isinstance(obj, dict) and "custom_id" in obj and isinstance(obj.get("result"), dict) \
        and "type" in obj["result"]


@register_reader
class AnthropicReader:
    name = "anthropic"
    description = "Anthropic Messages API request/response logs and Message Batches request/result files"
    kind = "exchanges"
    sniff_priority = 30

    def sniff(self, obj: Any) -> bool:
        if not isinstance(obj, dict):
            return False
        if is_batch_request(obj) or is_batch_result(obj) or is_batch_object(obj):
            return True
        return is_envelope(obj) and looks_anthropic(obj)

    def is_preamble(self, obj: Any) -> bool:
        return is_batch_request(obj) or is_batch_object(obj)

    def to_exchanges(self, obj: Any, ctx: RecordContext) -> list[dict]:
        if not isinstance(obj, dict):
            raise RecordError(f"expected a JSON object, got {type(obj).__name__}")
        if is_batch_object(obj):
            return remember_batch(ctx, obj["id"], obj.get("created_at"), obj.get("ended_at"))
        if is_batch_request(obj):
            return map_batch_request(obj, ctx)
        if is_batch_result(obj):
            return map_batch_result(obj, ctx)
        if not is_envelope(obj):
            raise RecordError("not an Anthropic log record: expected request/response bodies or a batch line")
        return [map_envelope(obj, ctx)]
