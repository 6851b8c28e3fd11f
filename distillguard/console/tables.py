"""Schemas of the tables the console appends to (docs/tables.md is the contract).

Every append uses the same explicit schema so the Parquet parts of one table always agree on
types: the gateway reads ``enforcement`` with ``union_by_name`` and a part whose timestamps came
out as strings would make the whole table unreadable.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("ms", tz="UTC")

ENFORCEMENT_SCHEMA = pa.schema([
    ("subject_type", pa.string()), ("subject_id", pa.string()), ("action", pa.string()),
    ("reason", pa.string()), ("source", pa.string()), ("created_at", TS), ("expires_at", TS),
    ("campaign_id", pa.string()), ("actor", pa.string()),
])

#: ``seq``, ``prev_hash`` and ``row_hash`` make the log a hash chain (console/audit.py).
AUDIT_SCHEMA = pa.schema([
    ("at", TS), ("actor", pa.string()), ("role", pa.string()), ("action", pa.string()),
    ("subject_type", pa.string()), ("subject_id", pa.string()), ("reason", pa.string()), ("detail", pa.string()),
    ("seq", pa.int64()), ("prev_hash", pa.string()), ("row_hash", pa.string()),
])

LABEL_SCHEMA = pa.schema([
    ("account_id", pa.string()), ("label", pa.string()), ("campaign_id", pa.string()), ("at", TS),
    ("actor", pa.string()), ("reason", pa.string()),
])

#: The console's own copy of every enforcement row it wrote (same schema as ``enforcement``).
MIRROR = "analyst_decisions"

#: Enforcement actions the gateway understands (docs/tables.md).
ENFORCEMENT_ACTIONS = ("allow", "throttle", "require_verification", "protect_reasoning", "block")
#: Subject types an enforcement row can name.
SUBJECT_TYPES = ("account", "cluster", "org", "ip24", "payment")


def enforcement_rows(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=ENFORCEMENT_SCHEMA)


def label_rows(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=LABEL_SCHEMA)
