"""Typed Python views of one exchange and one account.

Readers and the gateway build records one at a time; the typed view catches a misspelt field
at the point it is made instead of as a silent null column later. Bulk stages never use these:
they work on Arrow batches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime

import pyarrow as pa

from distillguard.events.schema import ACCOUNT_SCHEMA, EXCHANGE_SCHEMA


@dataclass(slots=True)
class Turn:
    role: str
    text: str


@dataclass(slots=True)
class Exchange:
    exchange_id: str
    ts: datetime
    account_id: str
    org_id: str | None = None
    api_key_id: str | None = None
    model: str | None = None
    endpoint: str | None = None
    conversation_id: str | None = None
    batch_id: str | None = None
    client_ip: str | None = None
    client_asn: int | None = None
    user_agent: str | None = None
    sdk_name: str | None = None
    sdk_version: str | None = None
    tls_ja4: str | None = None
    header_order_fp: str | None = None
    system_prompt: str | None = None
    turns: list[Turn] = field(default_factory=list)
    prompt: str | None = None
    n_turns: int | None = None
    tools_offered: list[str] = field(default_factory=list)
    has_images: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stream: bool | None = None
    reasoning_requested: bool | None = None
    reasoning_effort: str | None = None
    thinking_budget: int | None = None
    response_text: str | None = None
    response_chars: int | None = None
    reasoning_text: str | None = None
    reasoning_chars: int | None = None
    reasoning_redacted: bool | None = None
    tool_calls: list[str] = field(default_factory=list)
    stop_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    http_status: int | None = None
    latency_ms: int | None = None
    action: str | None = None
    action_reasons: list[str] = field(default_factory=list)
    source_format: str | None = None
    extra: str | None = None

    def to_row(self) -> dict:
        """A dict with exactly the schema's columns, ready for ``pa.Table.from_pylist``."""
        row = asdict(self)
        return row

    @classmethod
    def from_row(cls, row: dict) -> Exchange:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in row.items() if k in names}
        kw["turns"] = [t if isinstance(t, Turn) else Turn(**t) for t in (kw.get("turns") or [])]
        for k in ("tools_offered", "tool_calls", "action_reasons"):
            kw[k] = list(kw.get(k) or [])
        return cls(**kw)


@dataclass(slots=True)
class Account:
    account_id: str
    org_id: str | None = None
    created_at: datetime | None = None
    email_domain: str | None = None
    email_local: str | None = None
    signup_country: str | None = None
    signup_ip: str | None = None
    signup_pathway: str | None = None
    verification_level: int | None = None
    payment_fingerprint: str | None = None
    tier: str | None = None
    rpm_limit: int | None = None
    rpd_limit: int | None = None
    status: str | None = None
    status_changed_at: datetime | None = None

    def to_row(self) -> dict:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict) -> Account:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


def exchanges_to_table(records: list[Exchange]) -> pa.Table:
    return pa.Table.from_pylist([r.to_row() for r in records], schema=EXCHANGE_SCHEMA)


def accounts_to_table(records: list[Account]) -> pa.Table:
    return pa.Table.from_pylist([r.to_row() for r in records], schema=ACCOUNT_SCHEMA)
