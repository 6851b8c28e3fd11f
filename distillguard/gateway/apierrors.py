"""Errors the gateway itself produces, in the calling API's own error format.

Clients (and the official SDKs) parse errors by API: OpenAI's ``{"error": {message, type, param,
code}}`` and Anthropic's ``{"type": "error", "error": {type, message}}``. Every gateway error also
carries a stable machine-readable ``code`` (in the body and in ``x-distillguard-error``), so a
client can act on e.g. ``verification_required`` whatever API it speaks.
"""

from __future__ import annotations

import orjson

# code -> (HTTP status, OpenAI error type, Anthropic error type)
CODES = {
    "invalid_api_key": (401, "invalid_request_error", "authentication_error"),
    "invalid_request": (400, "invalid_request_error", "invalid_request_error"),
    "invalid_json": (400, "invalid_request_error", "invalid_request_error"),
    "multiple_credentials": (400, "invalid_request_error", "invalid_request_error"),
    "request_timeout": (408, "invalid_request_error", "timeout_error"),
    "headers_too_large": (431, "invalid_request_error", "request_too_large"),
    "request_too_large": (413, "invalid_request_error", "request_too_large"),
    "rate_limit_exceeded": (429, "requests", "rate_limit_error"),
    "tokens_limit_exceeded": (429, "tokens", "rate_limit_error"),
    "verification_required": (403, "permission_error", "permission_error"),
    "account_blocked": (403, "permission_error", "permission_error"),
    "reasoning_signature_invalid": (400, "invalid_request_error", "invalid_request_error"),
    "not_found": (404, "invalid_request_error", "not_found_error"),
    "method_not_allowed": (405, "invalid_request_error", "invalid_request_error"),
    "upstream_unavailable": (502, "server_error", "api_error"),
    "upstream_timeout": (504, "server_error", "api_error"),
    "upstream_response_too_large": (502, "server_error", "api_error"),
    "upstream_bad_response": (502, "server_error", "api_error"),
    "overloaded": (503, "server_error", "overloaded_error"),
    "limiter_unavailable": (503, "server_error", "overloaded_error"),
    "shutting_down": (503, "server_error", "overloaded_error"),
    "recorder_unavailable": (503, "server_error", "overloaded_error"),
    "internal_error": (500, "server_error", "api_error"),
}


def error_response(api: str, code: str, message: str, status: int | None = None) -> tuple[int, bytes]:
    st, oai_type, ant_type = CODES.get(code, (status or 400, "invalid_request_error", "invalid_request_error"))
    if status is not None:
        st = status
    if api == "messages":
        body = {"type": "error", "error": {"type": ant_type, "message": message, "code": code}}
    else:
        body = {"error": {"message": message, "type": oai_type, "param": None, "code": code}}
    return st, orjson.dumps(body)


def stream_error(api: str, code: str, message: str, sequence_number: int = 0) -> bytes:
    """An error event for a stream that already answered 200, in the API's own stream format.

    Chat completions: a ``data: {"error": {...}}`` chunk (the OpenAI SDK raises ``APIError`` on it);
    Responses: ``event: error`` with the ``{"type": "error", code, message, param, sequence_number}``
    event; Messages: ``event: error`` with ``{"type": "error", "error": {type, message}}`` (the
    Anthropic SDK raises on it). The stream ends after it, without ``[DONE]``.
    """
    _, oai_type, ant_type = CODES.get(code, (502, "server_error", "api_error"))
    if api == "messages":
        obj = {"type": "error", "error": {"type": ant_type, "message": message, "code": code}}
        return b"event: error\ndata: " + orjson.dumps(obj) + b"\n\n"
    if api == "responses":
        obj = {"type": "error", "code": code, "message": message, "param": None, "sequence_number": sequence_number}
        return b"event: error\ndata: " + orjson.dumps(obj) + b"\n\n"
    obj = {"error": {"message": message, "type": oai_type, "param": None, "code": code}}
    return b"data: " + orjson.dumps(obj) + b"\n\n"
