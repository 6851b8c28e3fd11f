"""OpenTelemetry GenAI spans, as OTLP JSON (one ExportTraceServiceRequest per line, or one document).

Spans follow the GenAI semantic conventions: ``gen_ai.operation.name``, ``gen_ai.provider.name``
(``gen_ai.system`` in older versions), ``gen_ai.request.*``, ``gen_ai.response.*``,
``gen_ai.usage.*`` and, when content capture is on, ``gen_ai.input.messages`` /
``gen_ai.output.messages`` / ``gen_ai.system_instructions`` (JSON text or structured values).
One OTLP line holds many spans: each inference span becomes an exchange, spans of other kinds
(HTTP, database, agent or tool wrappers) are skipped, and an inference span that cannot be
mapped is quarantined on its own so its neighbours in the same line are kept.
"""

from __future__ import annotations

from typing import Any

import orjson

from distillguard.errors import RecordError
from distillguard.ingest.common import (
    IMAGE_MARKER,
    as_dict,
    as_list,
    dumps_extra,
    first,
    jtext,
    tool_call_text,
)
from distillguard.ingest.registry import RecordContext, register_reader

#: Operations that are one model call (an exchange). Agent and tool spans wrap these and would double count.
INFERENCE_OPS = frozenset({"chat", "text_completion", "generate_content", "responses"})
_SKIP_OPS = frozenset({"embeddings", "execute_tool", "invoke_agent", "create_agent", "invoke_workflow"})
_ENDPOINT_BY_PROVIDER = {"anthropic": "messages", "aws.bedrock": "other", "gcp.gemini": "other",
                         "gcp.vertex_ai": "other"}
_ACCOUNT_ATTRS = ("user.id", "enduser.id", "gen_ai.user.id", "enduser.pseudo.id", "user.name")


def any_value(v: Any) -> Any:
    """Decode an OTLP JSON AnyValue ({"stringValue": ...}, {"intValue": "12"}, arrays, kvlists)."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return None
    if "doubleValue" in v:
        return v["doubleValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "arrayValue" in v:
        return [any_value(x) for x in as_list(as_dict(v["arrayValue"]).get("values"))]
    if "kvlistValue" in v:
        return attrs(as_dict(v["kvlistValue"]).get("values"))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def attrs(kvs: Any) -> dict:
    out = {}
    for kv in as_list(kvs):
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = any_value(kv.get("value"))
    return out


def _structured(v: Any) -> Any:
    """Message attributes are JSON text when the exporter cannot send structures."""
    if isinstance(v, str):
        try:
            return orjson.loads(v)
        except orjson.JSONDecodeError:
            return [{"role": "user", "parts": [{"type": "text", "content": v}]}]
    return v


def _parts_text(parts: Any) -> tuple[str, bool, list[str], list[str]]:
    """(text, has_image, tool_call names, reasoning texts) of a message's parts."""
    texts, calls, reasoning, image = [], [], [], False
    for p in as_list(parts):
        if isinstance(p, str):
            texts.append(p)
            continue
        if not isinstance(p, dict):
            continue
        t = p.get("type")
        if t == "text":
            texts.append(jtext(p.get("content"), 1 << 20))
        elif t == "tool_call":
            calls.append(str(p.get("name")))
            texts.append(tool_call_text(p.get("name"), p.get("arguments")))
        elif t == "tool_call_response":
            texts.append(jtext(p.get("response"), 1 << 20))
        elif t == "reasoning":
            reasoning.append(jtext(p.get("content"), 1 << 20))
        elif t in ("blob", "uri", "file"):
            if p.get("modality") == "image" or str(p.get("mime_type", "")).startswith("image/"):
                image = True
                texts.append(IMAGE_MARKER)
            else:
                texts.append(f"[{p.get('modality') or t}]")
    return "\n".join(x for x in texts if x), image, calls, reasoning


def _legacy_messages(a: dict, prefix: str) -> list[dict]:
    """Older instrumentations flatten messages into gen_ai.prompt.0.role / gen_ai.prompt.0.content."""
    out = []
    i = 0
    while f"{prefix}.{i}.role" in a or f"{prefix}.{i}.content" in a:
        out.append({"role": a.get(f"{prefix}.{i}.role") or "assistant",
                    "parts": [{"type": "text", "content": a.get(f"{prefix}.{i}.content") or ""}],
                    "finish_reason": a.get(f"{prefix}.{i}.finish_reason")})
        i += 1
    return out


#: Span events that carry message content instead of the span's own attributes.
_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
_LEGACY_CONTENT_EVENTS = {"gen_ai.content.prompt": ("gen_ai.prompt", "gen_ai.input.messages"),
                          "gen_ai.content.completion": ("gen_ai.completion", "gen_ai.output.messages")}


def _merge_events(a: dict, events: Any) -> None:
    """Content recorded on the span's events fills the attributes the span itself lacks."""
    for ev in as_list(events):
        if not isinstance(ev, dict):
            continue
        name = ev.get("name")
        ev_attrs = attrs(ev.get("attributes"))
        if name == _DETAILS_EVENT:
            for k, v in ev_attrs.items():
                a.setdefault(k, v)
        elif name in _LEGACY_CONTENT_EVENTS:
            src, dest = _LEGACY_CONTENT_EVENTS[name]
            msgs = _structured(ev_attrs.get(src))
            if isinstance(msgs, list) and dest not in a:
                # Older events hold [{role, content}] rather than [{role, parts}].
                a[dest] = [{"role": m.get("role"), "parts": [{"type": "text", "content": m.get("content")}]}
                           if isinstance(m, dict) and "parts" not in m else m for m in msgs]


def is_inference(a: dict) -> bool:
    op = a.get("gen_ai.operation.name")
    if op is not None:
        return op in INFERENCE_OPS
    return any(k in a for k in ("gen_ai.request.model", "gen_ai.response.model", "gen_ai.usage.input_tokens",
                                "gen_ai.usage.prompt_tokens"))


def map_span(span: dict, a: dict, ctx: RecordContext) -> dict:
    inputs = _structured(a.get("gen_ai.input.messages")) or _legacy_messages(a, "gen_ai.prompt")
    outputs = _structured(a.get("gen_ai.output.messages")) or _legacy_messages(a, "gen_ai.completion")
    system = []
    sys_attr = _structured(a.get("gen_ai.system_instructions"))
    if sys_attr:
        system.append(_parts_text(sys_attr if isinstance(sys_attr, list) else [sys_attr])[0])
    turns, images = [], False
    for m in as_list(inputs):
        if not isinstance(m, dict):
            continue
        text, img, _, _ = _parts_text(m.get("parts"))
        images = images or img
        role = str(m.get("role") or "user")
        if role in ("system", "developer"):
            system.append(text)
        else:
            turns.append({"role": role, "text": text})
    out = as_dict(next((m for m in as_list(outputs) if isinstance(m, dict)), None))
    resp_text, _, calls, reasoning = _parts_text(out.get("parts")) if out else (None, False, [], [])
    if out:
        # Tool-call markers belong in turns; the answer text is what the model said.
        resp_text = _parts_text([p for p in as_list(out.get("parts"))
                                 if isinstance(p, dict) and p.get("type") == "text"])[0]
    finish = as_list(a.get("gen_ai.response.finish_reasons"))
    provider = first(a.get("gen_ai.provider.name"), a.get("gen_ai.system"))
    op = a.get("gen_ai.operation.name")
    endpoint = "completions" if op == "text_completion" else (
        "responses" if op == "responses" else _ENDPOINT_BY_PROVIDER.get(str(provider), "chat.completions")
        if op in (None, "chat") else "other")
    start, end = span.get("startTimeUnixNano"), span.get("endTimeUnixNano")
    try:
        latency = round((int(end) - int(start)) / 1e6) if start and end and int(end) >= int(start) else None
    except (TypeError, ValueError):
        latency = None
    if start in (None, "", 0, "0"):
        raise RecordError(f"span {span.get('spanId')}: no startTimeUnixNano")
    account = first(*(a.get(k) for k in _ACCOUNT_ATTRS))
    if account is None:
        raise RecordError(f"span {span.get('spanId')}: no account identity (user.id / enduser.id attribute)")
    status = as_dict(span.get("status"))
    input_tokens = first(a.get("gen_ai.usage.input_tokens"), a.get("gen_ai.usage.prompt_tokens"))
    return {
        "exchange_id": first(a.get("gen_ai.response.id"),
                             ctx.stable_id("otel", str(span.get("traceId")), str(span.get("spanId")))),
        "ts": int(start) if isinstance(start, str) and start.isdigit() else start,
        "account_id": account,
        "org_id": first(a.get("gen_ai.openai.request.organization"), a.get("organization.id")),
        "model": first(a.get("gen_ai.response.model"), a.get("gen_ai.request.model")),
        "endpoint": endpoint,
        "conversation_id": a.get("gen_ai.conversation.id"),
        "client_ip": first(a.get("client.address"), a.get("network.peer.address")),
        "user_agent": a.get("user_agent.original"),
        "system_prompt": "\n\n".join(s for s in system if s) or None,
        "turns": turns, "has_images": images,
        "tools_offered": [str(first(t.get("name"), t.get("type"))) for t in as_list(
            _structured(a.get("gen_ai.tool.definitions")) if isinstance(a.get("gen_ai.tool.definitions"), str)
            else a.get("gen_ai.tool.definitions")) if isinstance(t, dict) and first(t.get("name"), t.get("type"))],
        "max_tokens": a.get("gen_ai.request.max_tokens"), "temperature": a.get("gen_ai.request.temperature"),
        "top_p": a.get("gen_ai.request.top_p"), "n": a.get("gen_ai.request.choice.count"),
        "stream": a.get("gen_ai.request.stream"),
        "response_text": resp_text if out else None,
        "reasoning_text": "\n".join(reasoning) if reasoning else None,
        "tool_calls": calls,
        "stop_reason": first(finish[0] if finish else None, out.get("finish_reason") if out else None),
        "input_tokens": input_tokens,
        "output_tokens": first(a.get("gen_ai.usage.output_tokens"), a.get("gen_ai.usage.completion_tokens")),
        "reasoning_tokens": a.get("gen_ai.usage.reasoning_tokens"),
        "latency_ms": latency,
        "source_format": "otel",
        "extra": dumps_extra({"provider": provider, "operation": op, "trace_id": span.get("traceId"),
                              "span_id": span.get("spanId"), "span_name": span.get("name"),
                              "error_type": a.get("error.type"), "status_code": status.get("code"),
                              "status_message": status.get("message"), "service": a.get("_service")}),
    }


@register_reader
class OTelReader:
    name = "otel"
    description = "OpenTelemetry GenAI spans as OTLP JSON (resourceSpans → scopeSpans → spans)"
    kind = "exchanges"
    sniff_priority = 10

    def sniff(self, obj: Any) -> bool:
        return isinstance(obj, dict) and isinstance(obj.get("resourceSpans"), list)

    def to_exchanges(self, obj: Any, ctx: RecordContext) -> list[dict]:
        if not isinstance(obj, dict) or not isinstance(obj.get("resourceSpans"), list):
            raise RecordError("not OTLP JSON: expected an object with a resourceSpans array")
        rows, failures = [], []
        for rs in obj["resourceSpans"]:
            rs = as_dict(rs)
            res_attrs = attrs(as_dict(rs.get("resource")).get("attributes"))
            for ss in as_list(rs.get("scopeSpans")):
                for span in as_list(as_dict(ss).get("spans")):
                    if not isinstance(span, dict):
                        continue
                    a = {**res_attrs, **attrs(span.get("attributes"))}
                    _merge_events(a, span.get("events"))
                    a["_service"] = res_attrs.get("service.name")
                    if not is_inference(a):
                        continue
                    try:
                        rows.append(map_span(span, a, ctx))
                    except RecordError as e:
                        failures.append((e.message, rs.get("resource"), span))
        if failures and not rows and len(failures) == 1:
            raise RecordError(failures[0][0])
        for reason, resource, span in failures:
            # Quarantine the one span (with its resource attributes) and keep its neighbours.
            one = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]}
            ctx.reject(reason, orjson.dumps(one))
        return rows
