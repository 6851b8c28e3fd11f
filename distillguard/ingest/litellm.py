"""LiteLLM proxy logs: the ``StandardLoggingPayload`` object LiteLLM hands to every logging integration.

Field names follow LiteLLM's documented payload (id, call_type, startTime/endTime, model_group,
metadata.user_api_key_*, messages, response, model_parameters, prompt_tokens, ...). LiteLLM
translates every provider into the OpenAI shapes, so messages and responses are mapped with
the OpenAI reader's helpers; calls made through its Anthropic-native route are mapped with the
Anthropic helpers.
"""

from __future__ import annotations

from typing import Any

from distillguard.errors import RecordError
from distillguard.ingest import anthropic as anth
from distillguard.ingest import openai as oai
from distillguard.ingest.common import (
    as_dict,
    dumps_extra,
    finish_identity,
    first,
    header,
    header_items,
    header_order_fp,
    sdk_from,
)
from distillguard.ingest.registry import RecordContext, register_reader

_CALL_ENDPOINTS = {
    "completion": "chat.completions", "acompletion": "chat.completions",
    "text_completion": "completions", "atext_completion": "completions",
    "responses": "responses", "aresponses": "responses",
    "anthropic_messages": "messages", "aanthropic_messages": "messages",
}


def _num(v: Any) -> float | None:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def map_payload(obj: dict, ctx: RecordContext) -> dict:
    meta = as_dict(obj.get("metadata"))
    params = as_dict(obj.get("model_parameters"))
    call_type = str(obj.get("call_type") or "")
    endpoint = _CALL_ENDPOINTS.get(call_type, "other")
    messages = obj.get("messages")
    response = obj.get("response")
    if isinstance(response, str):  # failed calls and some integrations log the text only
        response = {"choices": [{"message": {"content": response}}]}
    # The request as the provider API would have seen it: messages plus the logged parameters.
    if endpoint == "messages":
        req = {**params, "messages": messages}
        row = anth.request_fields(req)
        if isinstance(response, dict) and response.get("type") == "message":
            out = anth.message_fields(response)
        else:
            out = oai.chat_response(response) if isinstance(response, dict) else {}
    elif endpoint == "responses":
        req = {**params, "input": messages}
        row = oai.responses_request(req)
        out = oai.responses_response(response) if isinstance(response, dict) and "output" in response else \
            (oai.chat_response(response) if isinstance(response, dict) else {})
    else:
        req = {**params, ("prompt" if endpoint == "completions" else "messages"): messages}
        row = oai.completions_request(req) if endpoint == "completions" else oai.chat_request(req)
        out = oai.chat_response(response) if isinstance(response, dict | list) else {}
    row.update({k: v for k, v in out.items() if v is not None or k not in row})

    hdrs = header_items(meta.get("requester_custom_headers"))
    ua = first(meta.get("user_agent"), header(hdrs, "user-agent"))
    sdk_name, sdk_version = sdk_from(hdrs, ua, "openai")
    start, end = _num(obj.get("startTime")), _num(obj.get("endTime"))
    err = as_dict(obj.get("error_information"))
    status = err.get("error_code") if obj.get("status") == "failure" else None
    if status is None and obj.get("status") == "success":
        status = 200
    row.update(
        exchange_id=first(obj.get("id"), ctx.stable_id()),
        ts=obj.get("startTime"),
        account_id=first(meta.get("user_api_key_user_id"), obj.get("end_user"), meta.get("user_api_key_end_user_id")),
        org_id=first(meta.get("user_api_key_org_id"), meta.get("user_api_key_team_id")),
        api_key_id=first(meta.get("user_api_key_hash"), meta.get("user_api_key_alias")),
        model=first(obj.get("model_group"), obj.get("model"), row.get("model")),
        endpoint=endpoint,
        client_ip=first(obj.get("requester_ip_address"), meta.get("requester_ip_address")),
        user_agent=ua, sdk_name=sdk_name, sdk_version=sdk_version, header_order_fp=header_order_fp(hdrs),
        stream=first(obj.get("stream"), row.get("stream")),
        input_tokens=first(obj.get("prompt_tokens"), row.get("input_tokens")),
        output_tokens=first(obj.get("completion_tokens"), row.get("output_tokens")),
        http_status=status if isinstance(status, int) or (isinstance(status, str) and status.isdigit()) else None,
        latency_ms=round((end - start) * 1000) if start is not None and end is not None and end >= start else None,
        conversation_id=first(obj.get("trace_id"), row.get("conversation_id")),
        source_format="litellm",
    )
    if obj.get("startTime") is None:
        raise RecordError("no timestamp: StandardLoggingPayload without startTime")
    for k in ("_model", "_id", "_created", "_previous_response_id", "_user"):
        row.pop(k, None)
    finish_identity(row, meta.get("user_api_key_team_id"))
    row["extra"] = dumps_extra({
        "call_type": call_type, "litellm_model": obj.get("model"), "api_base": obj.get("api_base"),
        "custom_llm_provider": obj.get("custom_llm_provider"), "response_cost": obj.get("response_cost"),
        "cache_hit": obj.get("cache_hit"), "status": obj.get("status"), "error_str": (obj.get("error_str") or "")[:500]
        or None, "error_class": err.get("error_class"), "request_tags": obj.get("request_tags"),
        "team_alias": meta.get("user_api_key_team_alias"), "completion_start_time": obj.get("completionStartTime"),
    })
    return row


@register_reader
class LiteLLMReader:
    name = "litellm"
    description = "LiteLLM proxy StandardLoggingPayload records (one logged call per line)"
    kind = "exchanges"
    sniff_priority = 20

    def sniff(self, obj: Any) -> bool:
        return isinstance(obj, dict) and "call_type" in obj and (
            "startTime" in obj or "model_parameters" in obj or "response_cost" in obj)

    def to_exchanges(self, obj: Any, ctx: RecordContext) -> list[dict]:
        if not isinstance(obj, dict):
            raise RecordError(f"expected a JSON object, got {type(obj).__name__}")
        if "call_type" not in obj:
            raise RecordError("not a LiteLLM StandardLoggingPayload: no call_type")
        return [map_payload(obj, ctx)]
