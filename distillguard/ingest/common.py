"""Pieces every provider-log reader needs: envelopes, identity, client fingerprints, text of content parts.

Provider logs differ in their bodies (OpenAI, Anthropic) but the wrapper a gateway or log
pipeline puts around a request/response pair is much the same everywhere. Keeping the wrapper
logic here means each reader only maps its API's body, and every reader finds account identity,
client IP, SDK and headers the same way, which the cross-format tests rely on.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import xxhash

from distillguard.errors import RecordError
from distillguard.ingest.registry import RecordContext

#: Top-level keys an envelope may use for each part (first match wins).
REQUEST_KEYS = ("request", "request_body", "req")
RESPONSE_KEYS = ("response", "response_body", "resp")
META_KEYS = ("metadata", "meta")
TS_KEYS = ("timestamp", "ts", "time", "created_at", "start_time", "received_at", "@timestamp")

#: Where account identity comes from, most specific first. The API-key id is an account proxy
#: (providers bill per key owner); a body's end-user id is the weakest but better than nothing.
ACCOUNT_KEYS = ("account_id", "user_id", "account", "customer_id")
ORG_KEYS = ("org_id", "organization_id", "organization", "project_id", "workspace_id", "team_id")
API_KEY_KEYS = ("api_key_id", "key_id", "api_key_hash", "api_key_name")
IP_KEYS = ("client_ip", "ip", "remote_addr", "remote_ip", "client_address", "source_ip")
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"})

_BATCH_ID_RE = re.compile(r"((?:msgbatch|batch)_[A-Za-z0-9]+)")


def first(*values: Any) -> Any:
    """First value that is not None/empty text (0 and False count as values)."""
    for v in values:
        if v is None or (isinstance(v, str) and not v.strip()):
            continue
        return v
    return None


def dig(obj: Any, *path: str | int) -> Any:
    """Nested lookup that returns None instead of raising on a missing key or wrong type."""
    for p in path:
        if isinstance(p, int):
            if not isinstance(obj, list) or not -len(obj) <= p < len(obj):
                return None
        elif not isinstance(obj, dict):
            return None
        obj = obj[p] if isinstance(p, int) else obj.get(p)
    return obj


def as_dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def as_list(v: Any) -> list:
    return v if isinstance(v, list) else []


def pick(d: dict, keys: tuple[str, ...]) -> Any:
    """``first`` of ``d[k]`` for ``k`` in keys (hot: called for every metadata field of every record)."""
    if not isinstance(d, dict):
        return None
    for k in keys:
        v = d.get(k)
        if v is not None and not (isinstance(v, str) and not v.strip()):
            return v
    return None


def jtext(v: Any, limit: int = 4000) -> str:
    """Arguments/inputs as compact text (JSON for structures) so tool use is visible in turns."""
    if v is None:
        return ""
    s = v if isinstance(v, str) else orjson.dumps(v, default=str).decode()
    return s[:limit]


def dumps_extra(extra: dict) -> str | None:
    clean = {k: v for k, v in extra.items() if v is not None and v != [] and v != {}}
    return orjson.dumps(clean, default=str).decode() if clean else None


# --- headers and client fingerprints -------------------------------------------------------------

def header_items(h: Any) -> list[tuple[str, str]]:
    """Headers as (lower-case name, value) pairs in their logged order; dicts or [name, value] lists."""
    out: list[tuple[str, str]] = []
    if isinstance(h, dict):
        for k, v in h.items():
            out.append((str(k).lower(), v if isinstance(v, str) else jtext(v, 500)))
    elif isinstance(h, list):
        for item in h:
            if isinstance(item, list | tuple) and len(item) == 2:
                out.append((str(item[0]).lower(), str(item[1])))
            elif isinstance(item, dict) and "name" in item:
                out.append((str(item["name"]).lower(), str(item.get("value", ""))))
    return out


def header(items: list[tuple[str, str]], name: str) -> str | None:
    for k, v in items:
        if k == name:
            return v
    return None


def header_order_fp(items: list[tuple[str, str]]) -> str | None:
    """Hash of the header-name sequence: SDKs and scripts send headers in characteristic orders."""
    if len(items) < 2:
        return None
    return xxhash.xxh3_64_hexdigest("\n".join(k for k, _ in items).encode())


_UA_SDK = re.compile(r"^(OpenAI|Anthropic|AsyncOpenAI|AsyncAnthropic)/(\w+)\s+v?([\w.\-+]+)", re.I)


def sdk_from(items: list[tuple[str, str]], user_agent: str | None, vendor: str) -> tuple[str | None, str | None]:
    """(sdk_name, sdk_version) from Stainless headers or an SDK user agent such as 'OpenAI/Python 1.54.0'."""
    ua_vendor = None
    if isinstance(user_agent, str):
        m = _UA_SDK.match(user_agent)
        if m:
            ua_vendor = m.group(1).lower().removeprefix("async")
            if not header(items, "x-stainless-lang"):
                return f"{ua_vendor}-{m.group(2).lower()}", m.group(3)
    lang = header(items, "x-stainless-lang")
    if lang:
        pkg = header(items, "x-stainless-package-version")
        return f"{ua_vendor or vendor}-{lang.lower()}", pkg
    return None, None


# --- envelopes -------------------------------------------------------------------------------------

class Envelope:
    """A request/response pair with its metadata, whatever wrapper the log pipeline used.

    Accepted shapes: ``{"timestamp", "request", "response", "metadata"}`` (bodies directly, or
    HTTP-style ``{"method", "url", "headers", "body"}`` / ``{"status_code", "headers", "body"}``),
    the same with only a request or only a response, and ``request_body``/``response_body`` aliases.
    """

    __slots__ = ("obj", "request", "response", "meta", "req_headers", "resp_headers", "url", "http_status")

    def __init__(self, obj: dict):
        self.obj = obj
        req = pick(obj, REQUEST_KEYS)
        resp = pick(obj, RESPONSE_KEYS)
        self.meta = as_dict(pick(obj, META_KEYS))
        self.url = first(self.meta.get("endpoint"), self.meta.get("path"), self.meta.get("url"), obj.get("url"),
                         obj.get("endpoint"), obj.get("path"))
        self.req_headers = header_items(first(self.meta.get("headers"), self.meta.get("request_headers"),
                                              obj.get("headers"), obj.get("request_headers")))
        self.resp_headers = header_items(first(self.meta.get("response_headers"), obj.get("response_headers")))
        self.http_status = None
        if isinstance(req, dict) and isinstance(req.get("body"), dict | str) and (
                "headers" in req or "url" in req or "method" in req or "path" in req):
            self.req_headers = self.req_headers or header_items(req.get("headers"))
            self.url = self.url or first(req.get("url"), req.get("path"))
            req = req.get("body")
        if isinstance(resp, dict) and "body" in resp and (
                "status_code" in resp or "status" in resp or "headers" in resp):
            self.resp_headers = self.resp_headers or header_items(resp.get("headers"))
            self.http_status = first(resp.get("status_code"), resp.get("status"))
            resp = resp.get("body")
        if isinstance(req, str | bytes):
            req = _maybe_json(req)
        if isinstance(resp, str | bytes):
            resp = _maybe_json(resp)
        self.request = req if isinstance(req, dict) else {}
        self.response = resp if isinstance(resp, dict | list) else None

    def get(self, *keys: str) -> Any:
        """A metadata value: the metadata object first, then the envelope's top level."""
        v = pick(self.meta, keys)
        return v if v is not None else pick(self.obj, keys)


def _maybe_json(s: str | bytes) -> Any:
    try:
        return orjson.loads(s)
    except orjson.JSONDecodeError:
        return None


def is_envelope(obj: Any) -> bool:
    return isinstance(obj, dict) and (isinstance(pick(obj, REQUEST_KEYS), dict | str)
                                      or isinstance(pick(obj, RESPONSE_KEYS), dict | list))


def common_fields(env: Envelope, vendor: str) -> dict:
    """Columns that come from the envelope rather than the API body (identity, client, timing)."""
    items = env.req_headers
    ua = first(env.get("user_agent", "useragent", "http_user_agent"), header(items, "user-agent"))
    sdk_name, sdk_version = sdk_from(items, ua, vendor)
    xff = header(items, "x-forwarded-for")
    ip = first(env.get(*IP_KEYS), xff.split(",")[0].strip() if xff else None, header(items, "x-real-ip"))
    status = first(env.get("status_code", "http_status", "status"), env.http_status)
    if isinstance(status, str) and not status.strip().isdigit():
        status = None  # "success"/"error" words are not HTTP codes
    latency = env.get("latency_ms", "duration_ms", "elapsed_ms")
    if latency is None:
        secs = env.get("latency_s", "duration_s", "latency_seconds")
        if isinstance(secs, int | float) and not isinstance(secs, bool):
            latency = secs * 1000
    return {
        "account_id": env.get(*ACCOUNT_KEYS),
        "org_id": first(env.get(*ORG_KEYS), header(env.resp_headers, "openai-organization"),
                        header(env.resp_headers, "anthropic-organization-id"), header(items, "openai-organization")),
        "api_key_id": env.get(*API_KEY_KEYS),
        "client_ip": ip,
        "client_asn": env.get("client_asn", "asn"),
        "user_agent": ua,
        "sdk_name": first(env.get("sdk_name"), sdk_name),
        "sdk_version": first(env.get("sdk_version"), sdk_version),
        "tls_ja4": env.get("tls_ja4", "ja4"),
        "header_order_fp": first(env.get("header_order_fp"), header_order_fp(items)),
        "http_status": status,
        "latency_ms": latency,
        "conversation_id": env.get("conversation_id", "session_id", "thread_id"),
        "batch_id": env.get("batch_id"),
        "_request_id": first(env.get("request_id", "x_request_id"), header(env.resp_headers, "x-request-id"),
                             header(env.resp_headers, "request-id"), header(items, "x-request-id")),
        "_ts": env.get(*TS_KEYS),
    }


def finish_identity(row: dict, *fallbacks: Any) -> None:
    """Fill account_id from the API-key id or a body end-user id; no identity at all quarantines."""
    acct = first(row.get("account_id"), row.get("api_key_id"), *fallbacks)
    if acct is None:
        raise RecordError("no account identity: need metadata account_id/user_id, an api_key_id, "
                          "or an end-user id in the body (user / metadata.user_id)")
    if isinstance(acct, dict | list):
        raise RecordError("account identity is not a scalar value")
    row["account_id"] = acct


def batch_id_from_path(source: str) -> str | None:
    """Downloaded batch files are usually named after their batch ('batch_abc123_output.jsonl')."""
    m = _BATCH_ID_RE.search(os.path.basename(source))
    return m.group(1) if m else None


def remember_batch(ctx: RecordContext, batch_id: str, created_at: Any, ended_at: Any) -> list:
    """A batch object (from the batches API) says when its requests were submitted; result lines do not."""
    ctx.run_state.setdefault("batch_objects", {})[batch_id] = {"created_at": created_at, "ended_at": ended_at}
    return []


def batch_time(ctx: RecordContext, batch_id: Any, extra: dict) -> Any:
    """Time for a batch result that carries none: its batch's creation, else the file's time."""
    known = ctx.run_state.get("batch_objects", {}).get(batch_id) if batch_id else None
    if known and known.get("created_at") is not None:
        extra["ts_source"] = "batch_created_at"
        return known["created_at"]
    extra["ts_source"] = "file_mtime"
    return file_time(ctx)


def file_time(ctx: RecordContext) -> datetime:
    """When nothing in a record says when it happened: the file's modification time (an upper bound)."""
    try:
        return datetime.fromtimestamp(os.stat(ctx.source).st_mtime, tz=UTC)
    except OSError as e:
        raise RecordError("record has no timestamp and its file time is unavailable") from e


# --- content parts ---------------------------------------------------------------------------------

IMAGE_MARKER = "[image]"


def tool_call_text(name: Any, args: Any) -> str:
    return f"[tool_call {name}] {jtext(args)}".rstrip()
