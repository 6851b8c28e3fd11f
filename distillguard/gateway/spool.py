"""The recorder's spool format, and turning spool lines into stored exchanges one record at a time.

The recorder writes each exchange as a ``b`` (begin) line when the request is admitted and an ``e``
(end) line with the reply. Folding them back must survive anything a crash, a full disk or a hostile
client can leave behind, because the promise is that an accepted exchange is never lost:

* a begin without an end is an exchange cut by a crash: stored, flagged ``extra.interrupted``;
* an end without a begin (its begin was lost, e.g. by an older gateway) is stored as what it is, flagged
  ``extra.begin_missing``, when it carries the exchange's time and account (every end line does since the
  format gained them); an older end line without them is quarantined, since there is nothing to file it by;
* a torn or unparseable line, and a record the writer could not encode (``q`` lines), are quarantined;
* a value that does not fit its column (``max_tokens: 1e300``, text where a count belongs) is nulled and
  the reason kept in ``extra.invalid_fields``; only a record without a usable id, account or time is
  quarantined, and only that record.

Quarantine lines follow the ingest convention (``{path, line, reason, raw}`` in STORE/quarantine/), so
``distillguard ingest`` can re-read them once the cause is fixed. Their file name is derived from the
segment, so compacting a segment twice overwrites instead of duplicating.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.errors import RecordError
from distillguard.events.schema import EXCHANGE_REQUIRED, EXCHANGE_SCHEMA
from distillguard.ingest.normalize import _SCALAR_CONVERTERS, _STR_LIST_FIELDS, normalize_exchange

log = logging.getLogger("distillguard.gateway")

_RAW_CAP = 1_000_000  # as ingest's quarantine: raw text is kept up to 1 MB
_FLOAT_COLUMNS = [f.name for f in EXCHANGE_SCHEMA if pa.types.is_floating(f.type)]


@dataclass
class Problem:
    """One spool line (or folded record) that could not be stored, with why."""

    line: int
    reason: str
    raw: str


@dataclass
class Merged:
    """What a run of spool lines folds into."""

    #: exchange_id -> complete row (a repeated end line replaces the earlier one: retries never duplicate)
    done: dict[str, dict] = field(default_factory=dict)
    #: exchange_id -> begin still waiting for its end
    begins: dict[str, dict] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: exchange_id -> line number its record started on (for quarantine lines)
    line_of: dict[str, int] = field(default_factory=dict)


def _raw(line) -> str:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes | bytearray) else str(line)
    return text[:_RAW_CAP]


def merge_records(lines) -> Merged:
    """Fold b/e lines into exchanges; every line ends up in exactly one of done, begins or problems."""
    m = Merged()
    carried: set[str] = set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
        except (orjson.JSONDecodeError, ValueError) as e:
            m.problems.append(Problem(n, f"unreadable spool line: {e}", _raw(line)))  # torn by a crash
            continue
        kind = rec.pop("_k", "e")
        if kind == "carry":
            carried.update(x for x in rec.get("ids") or [] if isinstance(x, str))
            continue
        if kind == "q":
            m.problems.append(Problem(n, str(rec.get("reason") or "quarantined by the recorder"), _raw(rec.get("raw"))))
            continue
        xid = rec.get("exchange_id")
        if not isinstance(xid, str) or not xid:
            m.problems.append(Problem(n, "spool line without an exchange_id", _raw(line)))
            continue
        if kind == "b":
            m.begins[xid] = rec
            m.line_of[xid] = n
            continue
        begin = m.begins.pop(xid, None)
        if begin is None:
            prev = m.done.get(xid)
            if prev is not None and not _as_dict(prev.get("extra")).get("begin_missing"):
                begin = prev  # a repeated end (a retried write): same exchange, fold again
            else:
                m.line_of.setdefault(xid, n)
                if rec.get("ts") is None or not rec.get("account_id"):
                    m.problems.append(Problem(n, "end line without its begin line: no ts/account_id to store it by",
                                              _raw(line)))
                    continue
                rec["extra"] = {**_as_dict(rec.get("extra")), "begin_missing": True}
                m.done[xid] = rec
                continue
        row = dict(begin)
        row.update(rec)
        bad = _as_dict(begin.get("extra")).get("invalid_fields")
        if bad:  # what the writer nulled in the begin line survives the end line's extra
            ex = _as_dict(row.get("extra"))
            row["extra"] = {**ex, "invalid_fields": {**bad, **(ex.get("invalid_fields") or {})}}
        m.done[xid] = row
    for xid in carried:
        m.begins.pop(xid, None)  # continues in the next segment
    return m


def _as_dict(extra) -> dict:
    if isinstance(extra, dict):
        return extra
    if isinstance(extra, str) and extra:
        try:
            v = orjson.loads(extra)
        except orjson.JSONDecodeError:
            return {"extra_raw": extra}
        return v if isinstance(v, dict) else {"extra_raw": v}
    return {}


def interrupted(begin: dict) -> dict:
    row = dict(begin)
    row["extra"] = {**_as_dict(row.get("extra")), "interrupted": True}
    return row


def coerce_row(row: dict) -> dict:
    """The row in schema types: a value its column cannot hold is nulled, with the reason in extra.invalid_fields.

    Raises RecordError only for what a row cannot be stored without (exchange_id, account_id, ts).
    """
    fixed = dict(row)
    invalid: dict[str, str] = {}
    for name, v in row.items():
        conv = _SCALAR_CONVERTERS.get(name)
        if conv is None or v is None:
            continue
        try:
            conv(name, v)
        except RecordError as e:
            invalid[name] = str(e)
            fixed[name] = None
    for name in _STR_LIST_FIELDS:
        v = row.get(name)
        if v is not None and not isinstance(v, list):
            invalid[name] = f"{name}: expected a list, got {type(v).__name__}"
            fixed[name] = None
        elif v:
            fixed[name] = [x if isinstance(x, str) else orjson.dumps(x, default=str).decode() if isinstance(
                x, dict | list) else str(x) for x in v if x is not None]
    turns = row.get("turns")
    if turns is not None and (not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns)):
        invalid["turns"] = "turns: expected a list of {role, text}"
        fixed["turns"] = None
    extra = _as_dict(row.get("extra"))
    if invalid:
        extra["invalid_fields"] = {**extra.get("invalid_fields", {}), **invalid}
    fixed["extra"] = orjson.dumps(extra, default=str).decode() if extra else None
    return normalize_exchange(fixed)


def _prepare(rows: list[dict]) -> None:
    for r in rows:
        if isinstance(r.get("extra"), dict):
            r["extra"] = orjson.dumps(r["extra"], default=str).decode()
        if r.get("turns") is None:
            r["turns"] = []
        for k in _STR_LIST_FIELDS:
            if r.get(k) is None:
                r[k] = []


def _fits(table: pa.Table) -> bool:
    """What from_pylist lets through but the store's cast refuses or silently changes."""
    for name in EXCHANGE_REQUIRED:
        if table.column(name).null_count:
            return False
    for name in _FLOAT_COLUMNS:
        col = table.column(name)
        if col.null_count < len(col) and pc.any(pc.is_inf(col)).as_py():
            return False
    return True


def rows_to_table(rows: list[dict], line_of: dict[str, int] | None = None) -> tuple[pa.Table, list[Problem]]:
    """Rows the gateway wrote straight to Arrow; if anything is off, each row on its own (the bad nulled or refused)."""
    _prepare(rows)
    try:
        table = pa.Table.from_pylist(rows, schema=EXCHANGE_SCHEMA)
        if _fits(table):
            return table, []
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass  # some value is off: coerce row by row so it costs that row at most, never its neighbours
    good, problems = [], []
    line_of = line_of or {}
    for r in rows:
        try:
            good.append(coerce_row(r))
        except RecordError as e:
            xid = r.get("exchange_id")
            problems.append(Problem(line_of.get(xid, 0) if isinstance(xid, str) else 0, str(e),
                                    _raw(orjson.dumps(r, default=str))))
    return pa.Table.from_pylist(good, schema=EXCHANGE_SCHEMA), problems


def write_quarantine(store, name: str, source: str, problems: list[Problem]) -> Path | None:
    """STORE/quarantine/<name>.jsonl in ingest's format; rewritten whole, so a retry never duplicates."""
    path = store.quarantine_dir() / f"{name}.jsonl"
    if not problems:
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        for p in problems:
            f.write(orjson.dumps({"path": source, "line": p.line, "reason": p.reason, "raw": p.raw}) + b"\n")
    os.replace(tmp, path)
    return path


def store_merged(store, m: Merged, rows: list[dict], key: str, source: str) -> tuple[int, int]:
    """Write folded rows under ``key`` and their problems to quarantine; (stored, quarantined)."""
    table, bad = rows_to_table(rows, m.line_of)
    problems = m.problems + bad
    if problems:
        # the quarantine first: if the process dies between the two, a retry rewrites both
        write_quarantine(store, key, source, problems)
        log.warning("spool records quarantined", extra={"source": source, "records": len(problems),
                                                        "first_reason": problems[0].reason[:200]})
    else:
        write_quarantine(store, key, source, [])
    if table.num_rows:
        store.write_exchanges(table, key=key)
    return table.num_rows, len(problems)


@dataclass
class Compacted:
    exchanges: int = 0
    quarantined: int = 0
    segments: int = 0
    #: segments that could not be compacted now (left in place and retried; e.g. the store's disk is full)
    failed: list[str] = field(default_factory=list)


def compact_segment(path: Path, store) -> Compacted:
    """Write one closed segment into the store and delete it (a segment its writer still holds is left alone)."""
    out = Compacted()
    with open(path, "rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return out  # its writer is alive
        m = merge_records(f.read().splitlines())
        rows = list(m.done.values()) + [interrupted(b) for b in m.begins.values()]
        out.exchanges, out.quarantined = store_merged(store, m, rows, f"gw-{path.stem}", str(path))
        out.segments = 1
        os.unlink(path)
    return out


def compact_spool(spool_dir: Path, store) -> Compacted:
    """Compact every segment no live writer holds (recovers what a crash left); one bad segment stops none."""
    total = Compacted()
    for p in sorted(Path(spool_dir).glob("seg-*.jsonl")):
        try:
            c = compact_segment(p, store)
        except FileNotFoundError:
            continue  # another compactor took it
        except Exception as e:  # noqa: BLE001 - leave it for the next try; never stop start-up over it
            log.error("spool segment not compacted; left in place for the next try",
                      extra={"segment": p.name, "error": f"{type(e).__name__}: {e}"[:300]})
            total.failed.append(p.name)
            continue
        total.exchanges += c.exchanges
        total.quarantined += c.quarantined
        total.segments += c.segments
    return total
