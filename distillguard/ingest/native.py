"""The native format: one exchange (or one account) per JSON line, with schema column names.

This is what `distillguard export` writes and what the gateway spool holds, so it round-trips
exactly. Parquet files with schema columns are read by the ingest loop directly.
"""

from __future__ import annotations

from typing import Any

from distillguard.errors import RecordError
from distillguard.events.schema import ACCOUNT_SCHEMA, EXCHANGE_SCHEMA
from distillguard.ingest.registry import RecordContext, content_id, register_reader

_EXCHANGE_COLS = set(EXCHANGE_SCHEMA.names)
_ACCOUNT_COLS = set(ACCOUNT_SCHEMA.names)


@register_reader
class NativeReader:
    name = "native"
    description = "distillguard's own JSONL/Parquet: one exchange per line with schema column names"
    kind = "exchanges"
    sniff_priority = 90

    def sniff(self, obj: Any) -> bool:
        return isinstance(obj, dict) and {"ts", "account_id"} <= obj.keys()

    def to_exchanges(self, obj: Any, ctx: RecordContext) -> list[dict]:
        if not isinstance(obj, dict):
            raise RecordError(f"expected a JSON object, got {type(obj).__name__}")
        eid = obj.get("exchange_id")
        if eid is None or (isinstance(eid, str) and not eid.strip()):
            # Exactly-once needs an id: derive it from the content, so the same record always gets it.
            obj = {**obj, "exchange_id": content_id({k: v for k, v in obj.items() if k != "exchange_id"})}
        return [obj]


@register_reader
class AccountsReader:
    name = "accounts"
    description = "account records (JSONL/Parquet with account schema columns: created_at, signup_pathway, ...)"
    kind = "accounts"
    sniff_priority = 95

    def sniff(self, obj: Any) -> bool:
        return (isinstance(obj, dict) and "account_id" in obj and "ts" not in obj and "exchange_id" not in obj
                and len((obj.keys() & _ACCOUNT_COLS) - {"account_id", "org_id"}) >= 1)

    def to_exchanges(self, obj: Any, ctx: RecordContext) -> list[dict]:
        if not isinstance(obj, dict):
            raise RecordError(f"expected a JSON object, got {type(obj).__name__}")
        return [obj]
