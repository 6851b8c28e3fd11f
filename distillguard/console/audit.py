"""The audit log as a hash chain: every row commits to the one before it, so an edit or a deletion shows.

``audit_log`` stays a Parquet table (campaign status and the audit page query it with DuckDB), one
part per row named by its sequence number. Each row carries ``seq``, ``prev_hash`` and
``row_hash = SHA-256(prev_hash | canonical JSON of the row)``; the chain's head (last seq and hash)
lives in the console's SQLite file beside the store, and appends take that file's write lock, so
two console processes cannot fork the chain. ``verify`` walks the chain and names what is wrong:
a row whose content no longer matches its hash (rewritten), a gap in the sequence (deleted), a
head further than the last row (deleted at the end), rows outside the chain.

What it does not do: someone who can rewrite every part *and* the head consistently can forge a
new history; compare the head printed by ``distillguard console-verify-audit`` with a copy kept
elsewhere to catch that.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa

from distillguard.console.tables import AUDIT_SCHEMA
from distillguard.store import Store

GENESIS = "0" * 64
#: Audit actions that record access to the console rather than a decision about a subject.
SECURITY_EVENTS = ("login", "login_failed", "login_refused", "logout", "refused", "rebuild_aggregates")
DB_NAME = "console.sqlite"


def db_path(store: Store) -> Path:
    return store.path / DB_NAME


_PREPARED: set[str] = set()
_PREPARE_LOCK = threading.Lock()


def _prepare(con: sqlite3.Connection) -> None:
    """Switch the file to WAL and create the tables, once per file per process.

    Changing the journal mode takes an exclusive lock that SQLite does not wait for (the busy
    timeout does not cover it), so concurrent first connections could fail with "database is
    locked"; the mode persists in the file, so it is set only when the file is not in WAL yet, and
    a lost race is retried briefly.
    """
    delay = 0.01
    for attempt in range(60):
        try:
            if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL")
            con.execute("CREATE TABLE IF NOT EXISTS audit_head "
                        "(id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER, hash TEXT)")
            con.execute("""CREATE TABLE IF NOT EXISTS sessions (sid_hash TEXT PRIMARY KEY, user TEXT NOT NULL,
                           created REAL NOT NULL, last_seen REAL NOT NULL, revoked REAL, client TEXT)""")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == 59:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the console's SQLite file (sessions, audit head); autocommit, explicit transactions."""
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:  # keyed by inode too: a file removed and made again is prepared again
        key = f"{Path(path).resolve()}:{Path(path).stat().st_ino}"
    except OSError:
        key = ""
    if not key or key not in _PREPARED:
        with _PREPARE_LOCK:
            if not key or key not in _PREPARED:
                _prepare(con)
                if key:
                    _PREPARED.add(key)
    return con


def _ts(v: datetime) -> str:
    v = v if v.tzinfo else v.replace(tzinfo=UTC)
    return v.astimezone(UTC).isoformat(timespec="milliseconds")


def row_hash(prev: str, row: dict) -> str:
    """The hash that binds ``row`` (its audited fields) to the row before it."""
    body = [row["seq"], _ts(row["at"]), row["actor"], row["role"], row["action"], row["subject_type"],
            row["subject_id"], row["reason"], row["detail"]]
    return hashlib.sha256(prev.encode() + b"|" + orjson.dumps(body)).hexdigest()


def append(store: Store, at: datetime, actor: str, role: str, action: str, subject_type: str, subject_id: str,
           reason: str, detail: dict) -> dict:
    """Append one audit row to the chain; returns the row as written."""
    con = connect(db_path(store))
    try:
        con.execute("BEGIN IMMEDIATE")  # the chain's write lock, across threads and processes
        head = con.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)  # the column holds milliseconds
        row = {"at": at, "actor": actor, "role": role, "action": action, "subject_type": subject_type,
               "subject_id": subject_id, "reason": reason, "detail": orjson.dumps(detail, default=str).decode(),
               "seq": seq, "prev_hash": prev}
        row["row_hash"] = row_hash(prev, row)
        # Named by seq: if the commit below fails, the next append rewrites this part instead of adding one.
        store.append_table("audit_log", pa.Table.from_pylist([row], schema=AUDIT_SCHEMA), key=f"{seq:012d}")
        con.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                    "seq = excluded.seq, hash = excluded.hash", [seq, row["row_hash"]])
        con.execute("COMMIT")
        return row
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()


@dataclass
class AuditCheck:
    rows: int = 0
    chained: int = 0
    head_seq: int | None = None
    head_hash: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {**self.__dict__, "ok": self.ok}


def _load_rows(store: Store, cache: dict | None) -> list[dict]:
    """All audit rows, one Parquet part at a time; with ``cache``, parts whose name, size and mtime were seen
    before are not read again (the audit page checks the chain on every view)."""
    rows: list[dict] = []
    seen = set()
    for loc, rel, size, mtime_ns in store.file_infos("tables/audit_log/*.parquet"):
        k = (rel.rsplit("/", 1)[-1], mtime_ns, size)
        seen.add(k)
        if cache is not None and k in cache:
            rows.extend(cache[k])
            continue
        part = store.read_parquet(loc).to_pylist()
        if cache is not None:
            cache[k] = part
        rows.extend(part)
    if cache is not None:
        for k in set(cache) - seen:
            del cache[k]
    return rows


def verify(store: Store, cache: dict | None = None) -> AuditCheck:
    """Walk the chain; every problem found is one sentence in ``problems``.

    ``cache`` (a dict kept by the caller) skips re-reading unchanged parts; the full check without it is what
    ``console-verify-audit`` runs, since only it also catches a part rewritten with its old size and mtime."""
    out = AuditCheck()
    path = db_path(store)
    if path.exists():
        con = connect(path)
        try:
            head = con.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        finally:
            con.close()
        if head:
            out.head_seq, out.head_hash = head
    rows = _load_rows(store, cache)
    out.rows = len(rows)
    chained = sorted((r for r in rows if r.get("seq") is not None), key=lambda r: r["seq"])
    out.chained = len(chained)
    if len(chained) < len(rows):
        out.problems.append(f"{len(rows) - len(chained)} audit rows carry no chain fields (written outside the "
                            "console, or before the chain existed)")
    if chained and out.head_seq is None:
        out.problems.append("the chain head is missing from console.sqlite: cannot tell whether rows were deleted")
    prev, expect = GENESIS, 1
    for r in chained:
        if r["seq"] < expect:
            out.problems.append(f"audit row {r['seq']} appears more than once")
            continue
        if r["seq"] > expect:
            out.problems.append(f"audit rows {expect}–{r['seq'] - 1} are missing (deleted)")
            prev = r["prev_hash"] or prev  # carry on from this row to find further problems
        if r["prev_hash"] != prev:
            out.problems.append(f"audit row {r['seq']} does not follow the row before it (chain broken)")
        if row_hash(r["prev_hash"] or "", r) != r["row_hash"]:
            out.problems.append(f"audit row {r['seq']} was changed after it was written (hash mismatch)")
        prev, expect = r["row_hash"], r["seq"] + 1
    if out.head_seq is not None:
        last = chained[-1]["seq"] if chained else 0
        if out.head_seq > last:
            out.problems.append(f"audit rows {last + 1}–{out.head_seq} are missing at the end (deleted)")
        elif chained and (last != out.head_seq or prev != out.head_hash):
            out.problems.append("the last audit row does not match the recorded chain head")
    return out
