"""Coerce a reader's row into the exchange schema, or say exactly why it cannot be.

Readers hand over loosely typed dicts (numbers as strings, timestamps as epoch seconds or ISO
text). Coercing here, row by row, means one bad value quarantines one record and never fails a
whole Arrow batch of its neighbours.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import orjson

from distillguard.errors import RecordError
from distillguard.events.schema import ENDPOINTS, EXCHANGE_SCHEMA

_INT_FIELDS = {f.name for f in EXCHANGE_SCHEMA if str(f.type) in ("int32", "int64")}
_FLOAT_FIELDS = {f.name for f in EXCHANGE_SCHEMA if str(f.type) in ("float", "double")}
_BOOL_FIELDS = {f.name for f in EXCHANGE_SCHEMA if str(f.type) == "bool"}
_STR_FIELDS = {f.name for f in EXCHANGE_SCHEMA if str(f.type) == "string"}
_STR_LIST_FIELDS = ("tools_offered", "tool_calls", "action_reasons")
_COLUMNS = set(EXCHANGE_SCHEMA.names)
_INT32_MAX = 2**31 - 1
_FLOAT32_MAX = 3.4e38


def parse_ts(value) -> datetime:
    """Accept ISO-8601 text, epoch seconds/milliseconds/microseconds/nanoseconds, or a datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool) or value is None:
        raise RecordError(f"timestamp missing or not a time: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise RecordError(f"timestamp out of range: {value!r}")
        v = float(value)
        # Pick the unit by magnitude: seconds until year 5138, then ms, us, ns.
        for div in (1, 1e3, 1e6, 1e9):
            if v / div < 1e11:
                try:
                    return datetime.fromtimestamp(v / div, tz=UTC)
                except (OverflowError, OSError, ValueError) as e:
                    raise RecordError(f"timestamp out of range: {value!r}") from e
        raise RecordError(f"timestamp out of range: {value!r}")
    if isinstance(value, str):
        s = value.strip()
        if s.replace(".", "", 1).isdigit():
            return parse_ts(float(s))
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(s)
        except ValueError as e:
            raise RecordError(f"unparseable timestamp {value!r}") from e
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    raise RecordError(f"timestamp of unexpected type {type(value).__name__}")


def _to_int(name: str, v):
    if v is None:
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise RecordError(f"{name}: not a finite number: {v!r}")
        v = int(v)
    elif isinstance(v, str):
        try:
            v = int(float(v))
        except ValueError as e:
            raise RecordError(f"{name}: not an integer: {v[:40]!r}") from e
    elif not isinstance(v, int):
        raise RecordError(f"{name}: not an integer: {type(v).__name__}")
    if name == "client_asn":
        if not 0 <= v < 2**63:
            raise RecordError(f"{name}: out of range: {v}")
    elif not -_INT32_MAX <= v <= _INT32_MAX:
        raise RecordError(f"{name}: out of range: {v}")
    return v


def _to_float(name: str, v):
    if v is None:
        return None
    if isinstance(v, bool):
        raise RecordError(f"{name}: boolean where a number belongs")
    try:
        f = float(v)
    except (TypeError, ValueError) as e:
        raise RecordError(f"{name}: not a number: {str(v)[:40]!r}") from e
    if not math.isfinite(f):
        raise RecordError(f"{name}: not a finite number")
    if abs(f) > _FLOAT32_MAX:  # the columns are float32: larger values would silently become inf
        raise RecordError(f"{name}: out of range: {f!r}")
    return f


def _to_bool(name: str, v):
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("true", "false", "1", "0", "yes", "no"):
        return v.lower() in ("true", "1", "yes")
    raise RecordError(f"{name}: not a boolean: {str(v)[:40]!r}")


def _to_str(name: str, v):
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, int | float | bool):
        return str(v)
    if isinstance(v, dict | list):
        return orjson.dumps(v).decode()
    raise RecordError(f"{name}: not text: {type(v).__name__}")


_SCALAR_CONVERTERS = {
    **{n: _to_str for n in _STR_FIELDS - {"exchange_id", "account_id", "extra"}},
    **{n: _to_int for n in _INT_FIELDS},
    **{n: _to_float for n in _FLOAT_FIELDS},
    **{n: _to_bool for n in _BOOL_FIELDS},
}
_SCALAR_NULLS = dict.fromkeys(_SCALAR_CONVERTERS)


def normalize_exchange(row: dict) -> dict:
    """Return a row with exactly the schema's columns and types; raise RecordError otherwise."""
    extra = {k: v for k, v in row.items() if k not in _COLUMNS}
    out: dict = {}
    for name in ("exchange_id", "account_id"):
        v = row.get(name)
        if v is None or (isinstance(v, str) and not v.strip()):
            raise RecordError(f"missing required field {name!r}")
        out[name] = _to_str(name, v)
    out["ts"] = parse_ts(row.get("ts"))
    # Only the fields a row has need converting; the rest are null (one pass, not one per type).
    out.update(_SCALAR_NULLS)
    for name, v in row.items():
        conv = _SCALAR_CONVERTERS.get(name)
        if conv is not None and v is not None:
            out[name] = conv(name, v)
    for name in _STR_LIST_FIELDS:
        v = row.get(name)
        if v is None:
            out[name] = []
        elif isinstance(v, list):
            out[name] = [_to_str(name, x) for x in v if x is not None]
        else:
            raise RecordError(f"{name}: expected a list")
    turns = row.get("turns") or []
    if not isinstance(turns, list):
        raise RecordError("turns: expected a list of {role, text}")
    norm_turns = []
    for t in turns:
        if not isinstance(t, dict):
            raise RecordError("turns: each turn must be an object with role and text")
        norm_turns.append({"role": _to_str("turns.role", t.get("role")) or "user",
                           "text": _to_str("turns.text", t.get("text")) or ""})
    out["turns"] = norm_turns
    if out["endpoint"] is not None and out["endpoint"] not in ENDPOINTS:
        extra.setdefault("endpoint_raw", out["endpoint"])
        out["endpoint"] = "other"
    # Derived conveniences every reader would otherwise repeat.
    if out["prompt"] is None:
        users = [t["text"] for t in norm_turns if t["role"] == "user"]
        out["prompt"] = users[-1] if users else None
    if out["n_turns"] is None and norm_turns:
        out["n_turns"] = len(norm_turns)
    if out["response_chars"] is None and out["response_text"] is not None:
        out["response_chars"] = len(out["response_text"])
    if out["reasoning_chars"] is None and out["reasoning_text"] is not None:
        out["reasoning_chars"] = len(out["reasoning_text"])
    prior_extra = row.get("extra")
    if prior_extra is not None and not isinstance(prior_extra, str):
        extra["extra"] = prior_extra
        prior_extra = None
    if extra:
        try:
            merged = orjson.loads(prior_extra) if prior_extra else {}
        except orjson.JSONDecodeError:
            merged = {"extra_raw": prior_extra}
        if not isinstance(merged, dict):
            merged = {"extra_raw": merged}
        merged.update(extra)
        out["extra"] = orjson.dumps(merged, default=str).decode()
    else:
        out["extra"] = prior_extra
    return out
