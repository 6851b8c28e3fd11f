"""Recording every exchange without ever making a request wait for a disk or a network.

The request path only appends a dict to an in-memory queue. A writer thread turns the queue
into JSON lines and, per batch, writes and fsyncs them (group commit, every ``flush_interval_ms``):
once fsynced an exchange is *accepted* and survives a crash of the gateway process. Each exchange
is written twice: a ``b`` (begin) line when the request is admitted and an ``e`` (end) line with the
reply, so a stream cut by a crash is still recorded, as interrupted. Segments rotate by size and
age; a closed segment is compacted into the store's Parquet exchanges under a key derived from
its name, so compacting the same segment twice (after a crash between write and delete) replaces
instead of duplicating. A segment being written is held under an exclusive flock, which the kernel
releases when its writer dies, so "unlocked" means "safe to compact".

Production mode sends the same lines to a Redis stream consumed by `distillguard gateway-writer`;
if Redis is unreachable, batches fall back to the local spool instead of being dropped.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import threading
import time
import uuid
from pathlib import Path

import orjson
import pyarrow as pa

from distillguard.errors import RecordError
from distillguard.events.schema import EXCHANGE_SCHEMA
from distillguard.ingest.normalize import normalize_exchange

log = logging.getLogger("distillguard.gateway")


def merge_records(lines) -> tuple[list[dict], dict[str, dict], int]:
    """Fold b/e lines into exchanges: (complete rows, begins still without an end, unparseable lines)."""
    begins: dict[str, dict] = {}
    done: list[dict] = []
    carried: set[str] = set()
    bad = 0
    for line in lines:
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1  # a torn last line of a batch that was never acknowledged
            continue
        kind = rec.pop("_k", "e")
        if kind == "carry":
            carried.update(rec.get("ids") or [])
            continue
        xid = rec.get("exchange_id")
        if not xid:
            bad += 1
            continue
        if kind == "b":
            begins[xid] = rec
        else:
            row = begins.pop(xid, {})
            row.update(rec)
            done.append(row)
    for xid in carried:
        begins.pop(xid, None)  # continues in the next segment
    return done, begins, bad


def rows_to_table(rows: list[dict], quarantine: Path | None = None, source: str = "") -> pa.Table:
    """Rows the gateway wrote (already typed) straight to Arrow; per-row checking only if that fails."""
    for r in rows:
        if isinstance(r.get("extra"), dict):
            r["extra"] = orjson.dumps(r["extra"], default=str).decode()
        if r.get("turns") is None:
            r["turns"] = []
        for k in ("tools_offered", "tool_calls", "action_reasons"):
            if r.get(k) is None:
                r[k] = []
    try:
        return pa.Table.from_pylist(rows, schema=EXCHANGE_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass  # some row is off (e.g. a hand-edited spool): check each one and quarantine the bad
    good = []
    rejected = []
    for r in rows:
        try:
            good.append(normalize_exchange(r))
        except RecordError as e:
            rejected.append({"reason": str(e), "record": r})
    if rejected and quarantine is not None:
        quarantine.mkdir(parents=True, exist_ok=True)
        with open(quarantine / f"gateway-{Path(source).stem or 'spool'}.jsonl", "ab") as f:
            for r in rejected:
                f.write(orjson.dumps(r, default=str) + b"\n")
    return pa.Table.from_pylist(good, schema=EXCHANGE_SCHEMA)


def interrupted(begin: dict) -> dict:
    row = dict(begin)
    extra = orjson.loads(row["extra"]) if isinstance(row.get("extra"), str) else (row.get("extra") or {})
    extra["interrupted"] = True
    row["extra"] = orjson.dumps(extra).decode()
    return row


def compact_segment(path: Path, store) -> int:
    """Write one closed segment into the store and delete it; returns exchanges written."""
    with open(path, "rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # its writer is alive
        done, begins, bad = merge_records(f.read().splitlines())
        rows = done + [interrupted(b) for b in begins.values()]
        if bad:
            log.warning("spool segment had unreadable lines", extra={"segment": path.name, "lines": bad})
        if rows:
            store.write_exchanges(rows_to_table(rows, store.quarantine_dir(), path.name), key=f"gw-{path.stem}")
        os.unlink(path)
    return len(rows)


def compact_spool(spool_dir: Path, store) -> int:
    """Compact every segment no live writer holds (run at start-up: recovers what a crash left)."""
    n = 0
    for p in sorted(Path(spool_dir).glob("seg-*.jsonl")):
        try:
            n += compact_segment(p, store)
        except FileNotFoundError:
            continue
    return n


class _Segment:
    def __init__(self, spool_dir: Path):
        name = f"seg-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:6]}.jsonl"
        self.path = spool_dir / name
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.opened = time.monotonic()
        self.size = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        os.fsync(self.fd)
        self.size += len(data)

    def close(self) -> None:
        os.close(self.fd)  # releases the flock


class Recorder:
    """Queue + writer thread; ``begin``/``end`` are safe to call from the event loop at any rate."""

    def __init__(self, cfg, spool_dir: Path | None, store=None, metrics=None):
        self.cfg = cfg
        self.spool_dir = Path(spool_dir) if spool_dir else None
        self.store = store
        self.metrics = metrics
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.submitted = 0  # only the event loop writes this ...
        self.accepted = 0  # ... and only the writer thread this, so no lock is needed
        self.dropped = 0
        self.written_batches = 0
        self._stop = threading.Event()
        self._seg: _Segment | None = None
        #: exchange_id -> begin line, for exchanges begun but not ended (carried over at rotation)
        self._open: dict[str, bytes] = {}
        self._redis = None
        if cfg.mode == "redis":
            import redis

            self._redis = redis.Redis.from_url(cfg.redis_url, socket_timeout=2, socket_connect_timeout=2)
        if self.spool_dir:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.thread = threading.Thread(target=self._run, name="distillguard-recorder", daemon=True)
        # Compaction (Parquet writing) runs on its own thread so the writer keeps fsyncing new batches
        # meanwhile: durability lag stays at the group-commit window while a segment is compacted.
        self._compact_q: queue.SimpleQueue = queue.SimpleQueue()
        self.compactor = threading.Thread(target=self._compact_loop, name="distillguard-compactor", daemon=True)

    # ------------------------------------------------------------------ request path
    def begin(self, rec: dict) -> None:
        self._put(b"b", rec)

    def end(self, rec: dict) -> None:
        self._put(b"e", rec)

    def _put(self, kind: bytes, rec: dict) -> None:
        if self.submitted - self.accepted >= self.cfg.queue_max:
            self.dropped += 1
            if self.metrics:
                self.metrics.recorder_dropped.inc()
            return
        self.submitted += 1
        self.q.put((kind, rec))

    # ------------------------------------------------------------------ writer thread
    def start(self) -> None:
        if self.spool_dir and self.store is not None and self.cfg.compact:
            n = compact_spool(self.spool_dir, self.store)
            if n:
                log.info("recovered spool into store", extra={"exchanges": n})
        self.thread.start()
        self.compactor.start()

    def _take_batch(self) -> list:
        batch = []
        try:
            batch.append(self.q.get(timeout=self.cfg.flush_interval_ms / 1000))
        except queue.Empty:
            return batch
        # Group commit: one sleep for the rest of the window, then take everything that came meanwhile.
        # (Waking per record instead would contend for the GIL with the event loop thousands of times
        # a second.)
        if not self._stop.is_set():
            time.sleep(self.cfg.flush_interval_ms / 1000)
        get = self.q.get_nowait
        try:
            while len(batch) < self.cfg.batch_max:
                batch.append(get())
        except queue.Empty:
            pass
        return batch

    def _lines(self, batch) -> bytes:
        out = []
        dumps = orjson.dumps
        track = self._redis is None
        open_ = self._open
        for kind, rec in batch:
            if kind == b"b":
                rec["_k"] = "b"
                line = dumps(rec, default=str)
                if track:
                    open_[rec["exchange_id"]] = line
                    if len(open_) > self.cfg.queue_max:  # a begin whose end never came: stop carrying it
                        del open_[next(iter(open_))]
            else:
                rec["_k"] = "e"
                line = dumps(rec, default=str)
                if track:
                    open_.pop(rec["exchange_id"], None)
            out.append(line)
        return b"\n".join(out) + b"\n"

    def _maybe_rotate(self) -> None:
        """Rotate before writing a batch when the segment is full or old.

        Exchanges still in flight are carried over: their begin lines are written to the new
        segment first, then the old one gets a trailer naming them, so each segment can be
        compacted on its own without recording a live exchange as interrupted. (A crash between
        the two writes can record such an exchange twice; never zero times.)
        """
        seg = self._seg
        if seg is None or (seg.size < self.cfg.segment_max_bytes and
                           time.monotonic() - seg.opened < self.cfg.segment_max_seconds):
            return
        new = _Segment(self.spool_dir)
        if self._open:
            new.write(b"\n".join(self._open.values()) + b"\n")
            seg.write(orjson.dumps({"_k": "carry", "ids": list(self._open)}) + b"\n")
        self._rotate()
        self._seg = new

    def _write_spool(self, data: bytes) -> None:
        if self.spool_dir is None:
            return
        if self._seg is None:
            self._seg = _Segment(self.spool_dir)
        self._seg.write(data)

    def _rotate(self) -> None:
        seg, self._seg = self._seg, None
        if seg is None:
            return
        seg.close()
        if self.store is not None and self.cfg.compact:
            self._compact_q.put(seg.path)

    def _compact_loop(self) -> None:
        while True:
            path = self._compact_q.get()
            if path is None:
                return
            try:
                compact_segment(path, self.store)
            except Exception:  # noqa: BLE001 - compaction retries at next start; the segment stays
                log.exception("spool compaction failed", extra={"segment": path.name})

    def _write_redis(self, batch, data: bytes) -> bool:
        try:
            pipe = self._redis.pipeline(transaction=False)
            for line in data.splitlines():
                pipe.xadd(self.cfg.redis_stream, {b"d": line}, maxlen=self.cfg.redis_maxlen, approximate=True)
            pipe.execute()
            return True
        except Exception as e:  # noqa: BLE001 - fall back to the local spool, never drop
            log.warning("recorder Redis unreachable; spooling locally", extra={"error": type(e).__name__})
            return False

    def _flush(self, batch) -> None:
        if not batch:
            return
        if self._redis is None and self.spool_dir is not None:
            self._maybe_rotate()  # before _lines: the carry-over is what was open before this batch
        data = self._lines(batch)
        if self._redis is None or not self._write_redis(batch, data):
            self._write_spool(data)
        self.accepted += len(batch)
        self.written_batches += 1
        if self.metrics:
            self.metrics.recorder_written.inc(len(batch))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._flush(self._take_batch())
                if self._seg is not None and time.monotonic() - self._seg.opened >= self.cfg.segment_max_seconds:
                    self._maybe_rotate()
            except Exception:  # noqa: BLE001 - the writer must outlive any one bad batch
                log.exception("recorder batch failed")
                time.sleep(0.1)
        # drain on shutdown
        while True:
            batch = []
            while len(batch) < self.cfg.batch_max:
                try:
                    batch.append(self.q.get_nowait())
                except queue.Empty:
                    break
            if not batch:
                break
            self._flush(batch)
        self._rotate()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout)
        self._compact_q.put(None)
        if self.compactor.is_alive():
            self.compactor.join(timeout)
        if self._redis is not None:
            self._redis.close()

    @property
    def pending(self) -> int:
        return self.submitted - self.accepted

    def flush_wait(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written (tests, graceful shutdown)."""
        end = time.monotonic() + timeout
        while self.pending > 0 and time.monotonic() < end:
            time.sleep(0.005)
        return self.pending == 0
