"""OpenAI-style API logs: Chat Completions, Responses and legacy Completions bodies, and Batch API files.

A log record is an envelope (see ``common.Envelope``) around the request body the client sent
and the response body it got. Many providers speak this wire format (vLLM, DeepSeek,
OpenRouter, gateways), so the reader also takes their reasoning fields (``reasoning_content``,
``reasoning``, ``reasoning_details``). Batch files are read as the API documents them: input
lines ``{custom_id, method, url, body}`` are remembered for the run and joined to output lines
``{id, custom_id, response: {status_code, request_id, body}, error}`` by ``custom_id``.
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

_SYSTEM_ROLES = ("system", "developer")


# --- Chat Completions ------------------------------------------------------------------------------

def content_text(content: Any) -> tuple[str, bool]:
    """Text of a message's content (string or parts array) and whether it carried an image."""
    if content is None:
        return "", False
    if isinstance(content, str):
        return content, False
    if isinstance(content, dict):
        content = [content]
    texts, images = [], False
    for part in as_list(content):
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            continue
        t = part.get("type")
        if t in ("text", "input_text", "output_text"):
            texts.append(str(part.get("text") or ""))
        elif t in ("image_url", "input_image", "image"):
            images = True
            texts.append(IMAGE_MARKER)
        elif t == "refusal":
            texts.append(str(part.get("refusal") or ""))
        elif t in ("input_audio", "audio"):
            texts.append("[audio]")
        elif t in ("file", "input_file"):
            texts.append("[file]")
        elif "text" in part:
            texts.append(str(part.get("text") or ""))
    return "\n".join(x for x in texts if x), images


def chat_messages(messages: Any) -> dict:
    """system_prompt, turns and has_images from a Chat Completions ``messages`` array."""
    if isinstance(messages, str):
        return {"turns": [{"role": "user", "text": messages}], "has_images": False}
    if isinstance(messages, dict):
        messages = [messages]
    system, turns, images = [], [], False
    for m in as_list(messages):
        if not isinstance(m, dict):
            raise RecordError("messages: each message must be an object with a role")
        role = str(m.get("role") or "user")
        text, img = content_text(m.get("content"))
        images = images or img
        if role in _SYSTEM_ROLES:
            if text:
                system.append(text)
            continue
        if role == "function":
            role = "tool"
        calls = [tool_call_text(dig(tc, "function", "name") or dig(tc, "name"), dig(tc, "function", "arguments"))
                 for tc in as_list(m.get("tool_calls")) if isinstance(tc, dict)]
        if isinstance(m.get("function_call"), dict):
            calls.append(tool_call_text(m["function_call"].get("name"), m["function_call"].get("arguments")))
        turns.append({"role": role, "text": "\n".join(x for x in [text, *calls] if x)})
    return {"system_prompt": "\n\n".join(system) if system else None, "turns": turns, "has_images": images}


def tool_names(tools: Any) -> list[str]:
    """Names of offered tools: function tools by name, built-in tools by their type."""
    names = []
    for t in as_list(tools):
        if not isinstance(t, dict):
            continue
        name = first(dig(t, "function", "name"), t.get("name"), t.get("type"))
        if name is not None:
            names.append(str(name))
    return names


def chat_request(req: dict) -> dict:
    row = chat_messages(req.get("messages"))
    effort = first(req.get("reasoning_effort"), dig(req, "reasoning", "effort"))
    reasoning_obj = req.get("reasoning")
    thinking = first(req.get("thinking"), dig(req, "chat_template_kwargs", "enable_thinking"))
    requested = None
    if effort is not None:
        requested = str(effort).lower() != "none"
    elif isinstance(reasoning_obj, dict):  # OpenRouter: {"enabled"?, "max_tokens"?, "exclude"?}
        requested = reasoning_obj.get("enabled", True) is not False
    elif thinking is not None:
        requested = thinking is True or (isinstance(thinking, dict) and thinking.get("type") != "disabled")
    row.update(
        model=req.get("model"),
        tools_offered=tool_names(first(req.get("tools"), req.get("functions"))),
        max_tokens=first(req.get("max_completion_tokens"), req.get("max_tokens")),
        temperature=req.get("temperature"), top_p=req.get("top_p"), n=req.get("n"), stream=req.get("stream"),
        reasoning_requested=requested, reasoning_effort=effort,
        thinking_budget=first(dig(req, "reasoning", "max_tokens"), dig(req, "thinking", "budget_tokens")),
    )
    return row


def _reasoning_of(msg: dict) -> tuple[str | None, bool]:
    """Reasoning text from the fields OpenAI-compatible servers use, and whether some was withheld."""
    text = first(msg.get("reasoning_content"), msg.get("reasoning") if isinstance(msg.get("reasoning"), str) else None)
    redacted = False
    details = as_list(msg.get("reasoning_details"))
    if details:
        parts = []
        for d in details:
            if not isinstance(d, dict):
                continue
            if d.get("type") == "reasoning.encrypted":
                redacted = True
            elif d.get("type") == "reasoning.summary":
                redacted = True
                parts.append(str(d.get("summary") or ""))
            elif d.get("text"):
                parts.append(str(d["text"]))
        if text is None and parts:
            text = "\n".join(parts)
    return text, redacted


def chat_response(resp: dict) -> dict:
    """Response fields from a chat.completion body (first choice), or a list of streamed chunks."""
    if isinstance(resp, list):
        resp = accumulate_chunks(resp)
    choice = as_dict(dig(resp, "choices", 0))
    msg = as_dict(first(choice.get("message"), choice.get("delta")))
    text, _ = content_text(msg.get("content"))
    if not text and msg.get("refusal"):
        text = str(msg["refusal"])
    reasoning, redacted = _reasoning_of(msg)
    usage = as_dict(resp.get("usage"))
    rtokens = first(dig(usage, "completion_tokens_details", "reasoning_tokens"), usage.get("reasoning_tokens"))
    if reasoning is None and isinstance(rtokens, int) and rtokens > 0:
        redacted = True  # the model reasoned but the client received none of it
    calls = [str(first(dig(tc, "function", "name"), dig(tc, "name"))) for tc in as_list(msg.get("tool_calls"))
             if isinstance(tc, dict)]
    if isinstance(msg.get("function_call"), dict):
        calls.append(str(msg["function_call"].get("name")))
    if not msg and isinstance(choice.get("text"), str):  # legacy completions
        text = choice["text"]
    return {
        "response_text": text if choice else None,
        "reasoning_text": reasoning, "reasoning_redacted": redacted or None, "tool_calls": calls,
        "stop_reason": choice.get("finish_reason"),
        "input_tokens": first(usage.get("prompt_tokens"), usage.get("input_tokens")),
        "output_tokens": first(usage.get("completion_tokens"), usage.get("output_tokens")),
        "reasoning_tokens": rtokens,
        "_model": resp.get("model"), "_id": resp.get("id"), "_created": resp.get("created"),
    }


def accumulate_chunks(chunks: list) -> dict:
    """Fold logged ``chat.completion.chunk`` objects back into one completion."""
    content, reasoning, calls, finish, usage, base = [], [], {}, None, None, {}
    for ch in chunks:
        if not isinstance(ch, dict):
            continue
        base = base or ch
        usage = ch.get("usage") or usage
        c = as_dict(dig(ch, "choices", 0))
        delta = as_dict(c.get("delta"))
        if isinstance(delta.get("content"), str):
            content.append(delta["content"])
        r = first(delta.get("reasoning_content"), delta.get("reasoning"))
        if isinstance(r, str):
            reasoning.append(r)
        for tc in as_list(delta.get("tool_calls")):
            if isinstance(tc, dict) and dig(tc, "function", "name"):
                calls[tc.get("index", len(calls))] = {"function": {"name": tc["function"]["name"]}}
        finish = c.get("finish_reason") or finish
    msg = {"content": "".join(content) if content else None,
           "reasoning_content": "".join(reasoning) if reasoning else None, "tool_calls": list(calls.values())}
    return {"id": base.get("id"), "model": base.get("model"), "created": base.get("created"), "usage": usage,
            "choices": [{"message": msg, "finish_reason": finish}]}


# --- Responses API -----------------------------------------------------------------------------------

def responses_request(req: dict) -> dict:
    system = [str(req["instructions"])] if isinstance(req.get("instructions"), str) and req["instructions"] else []
    turns, images = [], False
    items = req.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for it in as_list(items):
        if not isinstance(it, dict):
            continue
        t = it.get("type", "message")
        if t == "message" or "role" in it and t not in ("function_call", "function_call_output"):
            text, img = content_text(it.get("content"))
            images = images or img
            role = str(it.get("role") or "user")
            if role in _SYSTEM_ROLES:
                if text:
                    system.append(text)
            else:
                turns.append({"role": role, "text": text})
        elif t == "function_call":
            turns.append({"role": "assistant", "text": tool_call_text(it.get("name"), it.get("arguments"))})
        elif t in ("function_call_output", "custom_tool_call_output"):
            turns.append({"role": "tool", "text": jtext(it.get("output"))})
    effort = dig(req, "reasoning", "effort")
    conv = req.get("conversation")
    return {
        "model": req.get("model"), "system_prompt": "\n\n".join(system) if system else None, "turns": turns,
        "has_images": images, "tools_offered": tool_names(req.get("tools")),
        "max_tokens": req.get("max_output_tokens"), "temperature": req.get("temperature"),
        "top_p": req.get("top_p"), "stream": req.get("stream"),
        "reasoning_requested": (str(effort).lower() != "none") if effort is not None else
        (True if isinstance(req.get("reasoning"), dict) else None),
        "reasoning_effort": effort,
        "conversation_id": first(dig(conv, "id"), conv if isinstance(conv, str) else None),
        "_previous_response_id": req.get("previous_response_id"),
    }


def responses_response(resp: dict) -> dict:
    texts, reasoning, calls, redacted = [], [], [], False
    for it in as_list(resp.get("output")):
        if not isinstance(it, dict):
            continue
        t = it.get("type")
        if t == "message":
            text, _ = content_text(it.get("content"))
            if text:
                texts.append(text)
        elif t == "reasoning":
            for c in as_list(it.get("content")):
                if isinstance(c, dict) and c.get("text"):
                    reasoning.append(str(c["text"]))
            summary = [str(s.get("text")) for s in as_list(it.get("summary")) if isinstance(s, dict) and s.get("text")]
            if summary or it.get("encrypted_content"):
                redacted = True  # a summary or an encrypted blob is not the reasoning itself
            if not as_list(it.get("content")):
                reasoning.extend(summary)
        elif t in ("function_call", "custom_tool_call"):
            calls.append(str(it.get("name")))
        elif isinstance(t, str) and t.endswith("_call"):
            calls.append(t[: -len("_call")])
    usage = as_dict(resp.get("usage"))
    rtokens = dig(usage, "output_tokens_details", "reasoning_tokens")
    if not reasoning and isinstance(rtokens, int) and rtokens > 0:
        redacted = True
    status = resp.get("status")
    return {
        "response_text": "\n".join(texts) if texts else (None if not resp.get("output") else ""),
        "reasoning_text": "\n".join(reasoning) if reasoning else None,
        "reasoning_redacted": redacted or None, "tool_calls": calls,
        "stop_reason": first(dig(resp, "incomplete_details", "reason"), status),
        "input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens"),
        "reasoning_tokens": rtokens,
        "_model": resp.get("model"), "_id": resp.get("id"), "_created": resp.get("created_at"),
    }


def completions_request(req: dict) -> dict:
    prompt = req.get("prompt")
    if isinstance(prompt, list):
        prompt = "\n".join(str(p) for p in prompt)
    return {"model": req.get("model"), "turns": [{"role": "user", "text": jtext(prompt, 1 << 20)}] if prompt else [],
            "max_tokens": req.get("max_tokens"), "temperature": req.get("temperature"), "top_p": req.get("top_p"),
            "n": req.get("n"), "stream": req.get("stream")}


# --- endpoints and the body mapping ----------------------------------------------------------------------

def endpoint_of(url: Any, req: dict, resp: Any) -> str:
    u = str(url or "")
    if "/chat/completions" in u:
        return "chat.completions"
    if "/responses" in u:
        return "responses"
    if "/completions" in u:
        return "completions"
    obj = resp.get("object") if isinstance(resp, dict) else None
    if isinstance(resp, list) and any(str(dig(e, "type")).startswith("response.") for e in resp[:3]):
        return "responses"
    if isinstance(resp, list) or obj in ("chat.completion", "chat.completion.chunk"):
        return "chat.completions"
    if obj == "response" or "input" in req or "instructions" in req or (isinstance(resp, dict) and "output" in resp):
        return "responses"
    if obj == "text_completion" or ("prompt" in req and "messages" not in req):
        return "completions"
    return "chat.completions"


def map_bodies(req: dict, resp: Any, endpoint: str) -> dict:
    """Exchange columns from an OpenAI request body and response body (either may be empty)."""
    if endpoint == "responses":
        row = responses_request(req)
        if isinstance(resp, list):  # a logged event stream: the final event carries the whole response
            final = [e["response"] for e in resp if isinstance(e, dict) and isinstance(e.get("response"), dict)]
            resp = final[-1] if final else None
        ok = isinstance(resp, dict) and ("output" in resp or "usage" in resp)
        out = responses_response(resp) if ok else {}
    else:
        row = completions_request(req) if endpoint == "completions" else chat_request(req)
        ok = isinstance(resp, list) or (isinstance(resp, dict) and ("choices" in resp or "usage" in resp))
        out = chat_response(resp) if ok else {}
    err = dig(resp, "error") if isinstance(resp, dict) else None
    if isinstance(err, dict):
        row["_error"] = {"type": first(err.get("type"), err.get("code")), "message": jtext(err.get("message"), 500)}
    elif isinstance(err, str):
        row["_error"] = {"message": err[:500]}
    row.update({k: v for k, v in out.items() if v is not None or k not in row})
    row["endpoint"] = endpoint
    row["model"] = first(out.get("_model"), row.get("model"))
    return row


def _finish(row: dict, ctx: RecordContext, ts_fallbacks: tuple, user_fallbacks: tuple, source: str) -> dict:
    """Pull the private helper keys into real columns and extra, and check identity and time."""
    extra = {"error": row.pop("_error", None), "previous_response_id": row.pop("_previous_response_id", None)}
    extra.update(row.pop("_extra", {}) or {})
    row["exchange_id"] = first(row.pop("_request_id", None), row.pop("_id", None), ctx.stable_id())
    row["ts"] = first(row.pop("_ts", None), *ts_fallbacks)
    if row["ts"] is None:
        raise RecordError("no timestamp: need an envelope timestamp or a response 'created'/'created_at'")
    for k in ("_model", "_created"):
        row.pop(k, None)
    finish_identity(row, *user_fallbacks)
    row["source_format"] = source
    row["extra"] = dumps_extra(extra)
    return row


def end_user(req: dict) -> Any:
    return first(req.get("user"), req.get("safety_identifier"), dig(req, "metadata", "user_id"))


def map_envelope(obj: dict, ctx: RecordContext) -> dict:
    env = Envelope(obj)
    if not env.request and env.response is None:
        raise RecordError("record has neither a request nor a response body")
    endpoint = endpoint_of(env.url, env.request, env.response)
    row = common_fields(env, "openai")
    body = map_bodies(env.request, env.response, endpoint)
    created = body.get("_created")
    row.update({k: v for k, v in body.items() if v is not None or k not in row})
    if row.get("http_status") is None and body.get("_error") is None and isinstance(env.response, dict | list):
        row["http_status"] = 200 if env.response else None
    return _finish(row, ctx, (created,), (end_user(env.request),), "openai")


# --- Batch API ---------------------------------------------------------------------------------------------

def _batch_state(ctx: RecordContext) -> dict:
    return ctx.run_state.setdefault("openai_batch_inputs", {})


def remember_batch_input(state: dict, custom_id: Any, source: str, value: dict) -> None:
    """Keep what an input line says for its output line; a custom_id seen in two files is ambiguous."""
    key = str(custom_id)
    prev = state.get(key)
    if prev is not None and prev["source"] != source:
        state[key] = {"source": source, "ambiguous": True}
    else:
        state[key] = {"source": source, **value}


def map_batch_input(obj: dict, ctx: RecordContext) -> list[dict]:
    body = obj.get("body")
    if not isinstance(body, dict):
        raise RecordError("batch input line: 'body' must be the request object")
    if obj.get("custom_id") is None:
        raise RecordError("batch input line without custom_id")
    endpoint = endpoint_of(obj.get("url"), body, None)
    row = map_bodies(body, None, endpoint)
    row.pop("_error", None)
    meta = {k: obj[k] for k in ("account_id", "org_id", "api_key_id", "batch_id", "timestamp") if k in obj}
    remember_batch_input(_batch_state(ctx), obj["custom_id"], ctx.source,
                         {"row": row, "url": obj.get("url"), "user": end_user(body), "meta": meta,
                          "batch_id": first(obj.get("batch_id"), batch_id_from_path(ctx.source))})
    return []  # a request alone is not an exchange; its output line will carry it


def map_batch_output(obj: dict, ctx: RecordContext) -> list[dict]:
    cid = obj.get("custom_id")
    if cid is None:
        raise RecordError("batch output line without custom_id")
    joined = _batch_state(ctx).get(str(cid))
    ambiguous = bool(joined and joined.get("ambiguous"))
    joined = None if ambiguous else joined
    resp = as_dict(obj.get("response"))
    body = resp.get("body") if isinstance(resp.get("body"), dict) else None
    url = joined.get("url") if joined else None
    req_row = dict(joined["row"]) if joined else {}
    endpoint = req_row.get("endpoint") or endpoint_of(url, {}, body)
    out = map_bodies({}, body, endpoint) if body is not None else {"endpoint": endpoint}
    row = {**req_row, **{k: v for k, v in out.items() if v is not None and v != [] and k != "endpoint"}}
    row["model"] = first(out.get("_model"), req_row.get("model"))
    meta = joined.get("meta", {}) if joined else {}
    for k in ("account_id", "org_id", "api_key_id"):
        row[k] = first(obj.get(k), meta.get(k))
    row["endpoint"] = "batch"
    row["batch_id"] = first(obj.get("batch_id"), joined and joined.get("batch_id"), batch_id_from_path(ctx.source))
    row["http_status"] = resp.get("status_code")
    err = obj.get("error")
    row["_request_id"] = first(resp.get("request_id"), obj.get("id"))
    row["_id"] = None
    row["_ts"] = first(obj.get("timestamp"), meta.get("timestamp"))
    row["_extra"] = {"batch_url": url, "custom_id": cid, "batch_line_id": obj.get("id"),
                     "batch_error": {"code": err.get("code"), "message": jtext(err.get("message"), 500)}
                     if isinstance(err, dict) else None,
                     "batch_join": "joined" if joined else ("ambiguous" if ambiguous else "input not in this run"),
                     "ts_source": None}
    ts_fallbacks: tuple = (out.get("_created"),)
    if row["_ts"] is None and out.get("_created") is None:
        ts_fallbacks = (batch_time(ctx, row["batch_id"], row["_extra"]),)
    return [_finish(row, ctx, ts_fallbacks, (joined.get("user") if joined else None, end_user(as_dict(body))),
                    "openai")]


def is_batch_input(obj: Any) -> bool:
    return isinstance(obj, dict) and "custom_id" in obj and isinstance(obj.get("body"), dict) and (
        "url" in obj or "method" in obj)


def is_batch_object(obj: Any) -> bool:
    """The Batch object the batches API returns (id, created_at, completed_at, input/output file ids)."""
    return isinstance(obj, dict) and obj.get("object") == "batch" and isinstance(obj.get("id"), str)


def is_batch_output(obj: Any) -> bool:
    return (isinstance(obj, dict) and "custom_id" in obj and ("response" in obj or "error" in obj)
            and "result" not in obj and not is_batch_input(obj))


def looks_openai(obj: dict) -> bool:
    """An envelope whose bodies are OpenAI-shaped (or that says it hit an OpenAI path)."""
    env = Envelope(obj)
    u = str(env.url or "")
    if "/messages" in u and "/chat/" not in u:
        return False
    if "/chat/completions" in u or "/responses" in u or "/completions" in u:
        return True
    resp, req = env.response, env.request
    if isinstance(resp, dict):
        if resp.get("object") in ("chat.completion", "response", "text_completion") or "choices" in resp:
            return True
        if resp.get("type") in ("message", "error"):
            return False
    if isinstance(resp, list):
        return any(isinstance(c, dict) and (c.get("object") == "chat.completion.chunk"
                                            or str(c.get("type", "")).startswith("response.")) for c in resp[:3])
    from distillguard.ingest.anthropic import anthropic_request_markers

    if anthropic_request_markers(req):
        return False
    return any(k in req for k in ("messages", "input", "prompt", "instructions"))


@register_reader
class OpenAIReader:
    name = "openai"
    description = ("OpenAI-style request/response logs (chat.completions, responses, completions; also "
                   "OpenAI-compatible servers) and Batch API input/output files")
    kind = "exchanges"
    sniff_priority = 40

    def sniff(self, obj: Any) -> bool:
        if not isinstance(obj, dict):
            return False
        if is_batch_input(obj) or is_batch_output(obj) or is_batch_object(obj):
            return True
        return is_envelope(obj) and looks_openai(obj)

    def is_preamble(self, obj: Any) -> bool:
        """Batch input files and batch objects are read first so that output files can join to them."""
        return is_batch_input(obj) or is_batch_object(obj)

    def to_exchanges(self, obj: Any, ctx: RecordContext) -> list[dict]:
        if not isinstance(obj, dict):
            raise RecordError(f"expected a JSON object, got {type(obj).__name__}")
        if is_batch_object(obj):
            return remember_batch(ctx, obj["id"], obj.get("created_at"),
                                  first(obj.get("completed_at"), obj.get("failed_at"), obj.get("expired_at"),
                                        obj.get("cancelled_at")))
        if is_batch_input(obj):
            return map_batch_input(obj, ctx)
        if is_batch_output(obj):
            return map_batch_output(obj, ctx)
        if not is_envelope(obj):
            raise RecordError("not an OpenAI log record: expected request/response bodies or a batch line")
        return [map_envelope(obj, ctx)]
