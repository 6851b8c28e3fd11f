"""Arrow schemas for exchanges and accounts.

Every field is something a model provider (or a gateway in front of one) actually has in its
logs. Fields that some providers lack are nullable so a reader can leave them empty rather
than invent values. The schema version is written into every Parquet file so a store written
by an older distillguard can be read (new nullable columns appear as nulls) or refused clearly.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1"

#: Endpoints an exchange can arrive on. ``completions`` covers the legacy text API.
ENDPOINTS = ("chat.completions", "responses", "messages", "batch", "completions", "other")

#: Sign-up pathways providers offer; abused pathways get stricter verification.
SIGNUP_PATHWAYS = ("standard", "education", "research", "startup", "reseller", "enterprise", "free_trial", "other")

TURN_TYPE = pa.struct([pa.field("role", pa.string()), pa.field("text", pa.string())])

_TS = pa.timestamp("ms", tz="UTC")


def _f(name: str, typ: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, typ, nullable=nullable, metadata={"doc": doc})


EXCHANGE_FIELDS: list[pa.Field] = [
    # identity and routing
    _f("exchange_id", pa.string(), "Provider request id, or a stable hash of the source record when absent.", False),
    _f("ts", _TS, "When the request arrived (UTC, millisecond precision).", False),
    _f("account_id", pa.string(), "The billing/user account the API key belongs to.", False),
    _f("org_id", pa.string(), "Organisation or workspace owning the account."),
    _f("api_key_id", pa.string(), "Identifier (never the secret) of the API key used."),
    _f("model", pa.string(), "Model requested (as routed, e.g. 'gpt-x-2026-02')."),
    _f("endpoint", pa.string(), "One of ENDPOINTS: chat.completions, responses, messages, batch, completions, other."),
    _f("conversation_id", pa.string(), "Conversation/thread/session id when the API or client provides one."),
    _f("batch_id", pa.string(), "Batch job id when the exchange came through a batch API."),
    # client
    _f("client_ip", pa.string(), "Client IP address as seen by the edge (v4 or v6, text)."),
    _f("client_asn", pa.int64(), "Autonomous system number of client_ip, when the edge enriches it."),
    _f("user_agent", pa.string(), "HTTP User-Agent header."),
    _f("sdk_name", pa.string(), "Client SDK name (from X-Stainless-Lang/-Package or the user agent)."),
    _f("sdk_version", pa.string(), "Client SDK version."),
    _f("tls_ja4", pa.string(), "JA4 TLS client fingerprint, when the edge computes it."),
    _f("header_order_fp", pa.string(), "Hash of the order of request header names (client fingerprint)."),
    # request
    _f("system_prompt", pa.string(), "System / developer instructions as text."),
    _f("turns", pa.list_(TURN_TYPE), "User/assistant/tool turns in order, as text (images replaced by a marker)."),
    _f("prompt", pa.string(), "Text of the last user turn: the part most detectors score."),
    _f("n_turns", pa.int32(), "Number of turns in the request (user + assistant + tool)."),
    _f("tools_offered", pa.list_(pa.string()), "Names of tools/functions offered to the model."),
    _f("has_images", pa.bool_(), "Whether any input turn carried an image."),
    _f("max_tokens", pa.int32(), "Requested output token cap (max_tokens / max_completion_tokens / max_output_tokens)."),
    _f("temperature", pa.float32(), "Sampling temperature requested."),
    _f("top_p", pa.float32(), "Nucleus sampling parameter requested."),
    _f("n", pa.int32(), "Number of choices requested."),
    _f("stream", pa.bool_(), "Whether the response was streamed."),
    _f("reasoning_requested", pa.bool_(), "Whether the request asked for reasoning/thinking."),
    _f("reasoning_effort", pa.string(), "Requested reasoning effort (minimal/low/medium/high) where the API has one."),
    _f("thinking_budget", pa.int32(), "Requested thinking token budget (Anthropic extended thinking)."),
    # response
    _f("response_text", pa.string(), "Visible answer text (first choice)."),
    _f("response_chars", pa.int32(), "Length of the visible answer in characters (kept even when text is not)."),
    _f("reasoning_text", pa.string(), "Reasoning/thinking text returned to the client, if any."),
    _f("reasoning_chars", pa.int32(), "Length of the reasoning in characters, also when it was hidden or redacted."),
    _f("reasoning_redacted", pa.bool_(), "Whether reasoning was withheld/redacted/summarised before reaching the client."),
    _f("tool_calls", pa.list_(pa.string()), "Names of tools the model called in its response."),
    _f("stop_reason", pa.string(), "Why generation stopped (stop, length, tool_calls, end_turn, ...)."),
    _f("input_tokens", pa.int32(), "Prompt tokens billed."),
    _f("output_tokens", pa.int32(), "Completion tokens billed (including reasoning where the API counts it so)."),
    _f("reasoning_tokens", pa.int32(), "Reasoning tokens, where the API reports them separately."),
    _f("http_status", pa.int32(), "HTTP status returned to the client."),
    _f("latency_ms", pa.int32(), "Time from request to last byte, milliseconds."),
    # enforcement (written by the gateway; empty for logs from elsewhere)
    _f("action", pa.string(), "What the gateway did with the request: allow, protect (reasoning), throttle (served under the policy's lowered limits), verify, block (refused by the policy), rate_limited (refused: over a limit), if any."),
    _f("action_reasons", pa.list_(pa.string()), "Why the gateway took that action."),
    # provenance
    _f("source_format", pa.string(), "Reader that produced the record (native, openai, anthropic, litellm, otel, gateway)."),
    _f("extra", pa.string(), "JSON object of source fields with no column of their own."),
]

EXCHANGE_SCHEMA = pa.schema(EXCHANGE_FIELDS, metadata={"distillguard.schema": "exchanges", "distillguard.version": SCHEMA_VERSION})

ACCOUNT_FIELDS: list[pa.Field] = [
    _f("account_id", pa.string(), "Account identifier (matches exchanges.account_id).", False),
    _f("org_id", pa.string(), "Organisation the account belongs to."),
    _f("created_at", _TS, "When the account was created (UTC)."),
    _f("email_domain", pa.string(), "Domain part of the sign-up e-mail, lower-cased."),
    _f("email_local", pa.string(), "Local part of the sign-up e-mail (naming-pattern evidence); may be hashed or null."),
    _f("signup_country", pa.string(), "ISO 3166-1 alpha-2 country of sign-up (IP geolocation or billing)."),
    _f("signup_ip", pa.string(), "IP address the account was created from."),
    _f("signup_pathway", pa.string(), "One of SIGNUP_PATHWAYS: standard, education, research, startup, reseller, ..."),
    _f("verification_level", pa.int32(), "0 = e-mail only, 1 = phone, 2 = payment card, 3 = identity/KYC verified."),
    _f("payment_fingerprint", pa.string(), "Keyed hash of the payment instrument (card/bank), never the number."),
    _f("tier", pa.string(), "Usage tier or plan name."),
    _f("rpm_limit", pa.int32(), "Requests-per-minute limit the provider applies to the account."),
    _f("rpd_limit", pa.int32(), "Requests-per-day limit the provider applies to the account."),
    _f("status", pa.string(), "active, suspended or banned."),
    _f("status_changed_at", _TS, "When status last changed (e.g. the ban time)."),
]

ACCOUNT_SCHEMA = pa.schema(ACCOUNT_FIELDS, metadata={"distillguard.schema": "accounts", "distillguard.version": SCHEMA_VERSION})

#: Columns that must be present and non-null for a record to be accepted.
EXCHANGE_REQUIRED = tuple(f.name for f in EXCHANGE_FIELDS if not f.nullable)
ACCOUNT_REQUIRED = tuple(f.name for f in ACCOUNT_FIELDS if not f.nullable)


def field_docs(schema: pa.Schema) -> list[tuple[str, str, str]]:
    """(name, arrow type, doc) per field: the source of the schema reference in docs/."""
    return [(f.name, str(f.type), (f.metadata or {}).get(b"doc", b"").decode()) for f in schema]
