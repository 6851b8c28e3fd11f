"""Coercion of account rows (the accounts table is small but comes from many export tools)."""

from __future__ import annotations

from distillguard.errors import RecordError
from distillguard.events.schema import ACCOUNT_SCHEMA
from distillguard.ingest.normalize import _to_int, _to_str, parse_ts

_TS_FIELDS = {"created_at", "status_changed_at"}
_INT_FIELDS = {"verification_level", "rpm_limit", "rpd_limit"}


def normalize_account(row: dict) -> dict:
    out = {}
    if not row.get("account_id"):
        raise RecordError("missing required field 'account_id'")
    for name in ACCOUNT_SCHEMA.names:
        v = row.get(name)
        if name in _TS_FIELDS:
            out[name] = parse_ts(v) if v not in (None, "") else None
        elif name in _INT_FIELDS:
            out[name] = _to_int(name, v)
        else:
            out[name] = _to_str(name, v)
    if out["email_domain"]:
        out["email_domain"] = out["email_domain"].lower()
    email = row.get("email")
    if isinstance(email, str) and "@" in email:
        local, _, domain = email.rpartition("@")
        out["email_domain"] = out["email_domain"] or domain.lower()
        out["email_local"] = out["email_local"] or local
    return out
