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
