"""Recording every exchange the gateway accepts, without making a request wait for a disk or a network.

The request path only appends a dict to an in-memory queue. A writer thread turns the queue into JSON
lines and, per batch, writes and fsyncs them (group commit). Each exchange is written twice: a ``b``
(begin) line when the request is admitted and an ``e`` (end) line with the reply, so a stream cut by a
crash is still recorded, as interrupted. Segments rotate by size and age; a closed segment is compacted
into the store's Parquet exchanges (see spool.py for what compaction tolerates).

What "never drop an accepted exchange" takes, fault by fault:

* A record the encoder or the schema refuses costs only that record's bad value (nulled, reason kept),
  never its batch: every record is encoded on its own.
* A failed write (disk full, I/O error) keeps the batch in memory and retries it; the segment is cut back
  to its last whole batch so no torn line is left. Meanwhile readiness, metrics and logs say so.
* The queue is bounded, but the bound is admission, not loss: a new request waits (``full_wait_ms``) for
  room and is refused with 503 if none comes; the records of admitted requests are always queued.
* With ``mode: redis`` a Redis outage spills batches to the local spool; once Redis answers, the spooled
  segments are sent to the stream in order before new batches go there directly.
* Durability: with ``durability: batch`` a record is on disk one group-commit window after it is queued
  (``flush_interval_ms`` plus the fsync), so a SIGKILL loses at most the exchanges of that window. With
  ``durability: sync`` a reply's last bytes are held until its end record is fsynced (or acknowledged by
  Redis): a client never holds a complete reply the store will not have.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import queue
import threading
import time
import uuid
from pathlib import Path

import orjson

from distillguard.gateway.spool import Compacted, compact_segment, compact_spool, interrupted, merge_records

__all__ = ["Compacted", "Recorder", "compact_segment", "compact_spool", "drain_segment", "interrupted",
           "merge_records"]

log = logging.getLogger("distillguard.gateway")
_DRAIN_CHUNK = 1000
_FAIL_LOG_SECONDS = 30.0


class _Segment:
    def __init__(self, spool_dir: Path):
        spool_dir.mkdir(parents=True, exist_ok=True)
        name = f"seg-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:6]}.jsonl"
        self.path = spool_dir / name
        # Created under a name no compactor looks at, locked, then renamed: a compactor can never take a
        # segment between its creation and its lock.
        tmp = spool_dir / f".{name}.new"
        self.fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            os.rename(tmp, self.path)
        except OSError:
            os.close(self.fd)
            tmp.unlink(missing_ok=True)
            raise
        self.opened = time.monotonic()
        self.size = 0
        self.broken = False

    def write(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
            os.fsync(self.fd)
        except OSError:
            # Cut back to the last whole batch so the retry starts on a clean line (needs no free space).
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                self.broken = True  # rotate away from it; compaction quarantines its torn tail
            raise
        self.size += len(data)

    def close(self) -> None:
        os.close(self.fd)  # releases the flock


def drain_segment(path: Path, client, stream: str, maxlen: int) -> int | None:
    """Send a spooled segment's lines to the Redis stream in order, then delete it; None if a writer holds it.

    Progress is noted every 1,000 lines in ``<segment>.sent``, so a crash mid-drain re-sends at most that
    many lines (the stream writer folds a repeated line into the same exchange when both land in one batch).
    """
    mark = path.with_name(path.name + ".sent")
    with open(path, "rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        lines = [ln for ln in f.read().splitlines() if ln.strip() and not ln.startswith(b'{"_k":"carry"')]
        try:
            start = int(mark.read_text()) if mark.exists() else 0
        except ValueError:
            start = 0  # a mark torn by a crash: send the segment again (at-least-once)
        for i in range(start, len(lines), _DRAIN_CHUNK):
            pipe = client.pipeline(transaction=False)
            for ln in lines[i:i + _DRAIN_CHUNK]:
                pipe.xadd(stream, {b"d": ln}, maxlen=maxlen, approximate=True)
            pipe.execute()
            mark.write_text(str(min(i + _DRAIN_CHUNK, len(lines))))
        os.unlink(path)
    mark.unlink(missing_ok=True)
    return len(lines) - start


def _json_safe(rec: dict) -> dict:
    """The record with every value orjson refuses (an int beyond 64 bits, ...) nulled and the reason kept."""
    out, invalid = {}, {}
    for k, v in rec.items():
        try:
            orjson.dumps(v, default=str)
            out[k] = v
        except (TypeError, ValueError) as e:
            out[k] = None
            invalid[k] = (f"{k}: out of range: an integer of {v.bit_length()} bits" if isinstance(v, int)
                          else f"{k}: cannot be encoded: {e}")
    extra = out.get("extra")
    if isinstance(extra, str):
        try:
            extra = orjson.loads(extra)
        except orjson.JSONDecodeError:
            extra = {"extra_raw": extra}
    extra = dict(extra) if isinstance(extra, dict) else {}
    extra["invalid_fields"] = {**(extra.get("invalid_fields") or {}), **invalid}
    out["extra"] = extra
    return out


def _resolve(futs: list) -> None:
    for f in futs:
        if not f.done():
            f.set_result(None)


class Recorder:
    """Queue + writer thread; ``begin``/``end`` are safe to call from the event loop at any rate."""

    def __init__(self, cfg, spool_dir: Path | None, store=None, metrics=None):
        self.cfg = cfg
        self.spool_dir = Path(spool_dir) if spool_dir else None
        self.store = store
        self.metrics = metrics
        self.sync = cfg.durability == "sync"
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.submitted = 0  # only the event loop writes this ...
        self.accepted = 0  # ... and only the writer thread this, so no lock is needed
        self.dropped = 0  # records still unwritten when a shutdown gave up on a failing disk
        self.quarantined = 0
        self.spilled = 0
        self.written_batches = 0
        #: why the last write failed, while writes are failing (None: writing fine)
        self.error: str | None = None
        self._failing_since = 0.0
        self._fail_logged = 0.0
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._seg: _Segment | None = None
        #: exchange_id -> begin line, for exchanges begun but not ended (carried over at rotation)
        self._open: dict[str, bytes] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room_waiters: list[asyncio.Future] = []
        self._redis = None
        self._backlog = False  # redis mode: spooled lines not yet sent to the stream
        self._next_redis_try = 0.0
        if cfg.mode == "redis":
            import redis

            self._redis = redis.Redis.from_url(cfg.redis_url, socket_timeout=2, socket_connect_timeout=2)
        if self.spool_dir:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            self._backlog = self._redis is not None and any(self.spool_dir.glob("seg-*.jsonl"))
        self.thread = threading.Thread(target=self._run, name="distillguard-recorder", daemon=True)
        # Compaction (Parquet writing) runs on its own thread so the writer keeps fsyncing new batches
        # meanwhile: durability lag stays at the group-commit window while a segment is compacted.
        self._compact_q: queue.SimpleQueue = queue.SimpleQueue()
        self.compactor = threading.Thread(target=self._compact_loop, name="distillguard-compactor", daemon=True)

    # ------------------------------------------------------------------ request path
    def begin(self, rec: dict) -> None:
        self._put(b"b", rec, None)

    def end(self, rec: dict) -> asyncio.Future | None:
        """Queue the end record; with sync durability, a future the writer resolves once it is durable."""
        fut = None
        if self.sync:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                fut = loop.create_future()
        self._put(b"e", rec, fut)
        return fut

    def _put(self, kind: bytes, rec: dict, fut) -> None:
        self.submitted += 1
        self.q.put((kind, rec, fut))

    def has_room(self) -> bool:
        return self.submitted - self.accepted < self.cfg.queue_max

    async def wait_room(self) -> bool:
        """Wait up to ``full_wait_ms`` for the queue to have room for a new request (back-pressure)."""
        if self.has_room():
            return True
        loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.full_wait_ms / 1000
        while not self.has_room():
            left = deadline - loop.time()
            if left <= 0:
                return False
            fut = loop.create_future()
            self._room_waiters.append(fut)
            try:
                await asyncio.wait_for(fut, min(left, 0.05))
            except TimeoutError:
                pass
        return True

    def _wake_room(self) -> None:
        waiters, self._room_waiters = self._room_waiters, []
        _resolve(waiters)

    async def durable(self, futs: list) -> bool:
        """Wait until these end records are durable (sync mode), at most ``sync_timeout_ms``."""
        try:
            await asyncio.wait_for(asyncio.gather(*futs), self.cfg.sync_timeout_ms / 1000)
            return True
        except TimeoutError:
            if self.metrics:
                self.metrics.recorder_sync_timeouts.inc()
            log.warning("reply released before its record was durable (sync_timeout_ms)",
                        extra={"pending": self.pending, "recorder_error": self.error})
            return False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.thread.start()
        self.compactor.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout)
        if self.thread.is_alive():  # the disk is still failing: give up, counting what is lost
            self._abandon.set()
            self.thread.join(5)
        self._compact_q.put(None)
        if self.compactor.is_alive():
            self.compactor.join(timeout)
        if self._redis is not None:
            self._redis.close()

    @property
    def pending(self) -> int:
        return self.submitted - self.accepted

    @property
    def healthy(self) -> bool:
        return self.error is None

    @property
    def redis_ok(self) -> bool | None:
        return None if self._redis is None else not self._backlog

    def flush_wait(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written (tests, graceful shutdown)."""
        end = time.monotonic() + timeout
        while self.pending > 0 and time.monotonic() < end:
            time.sleep(0.005)
        return self.pending == 0

    def drained_wait(self, timeout: float = 5.0) -> bool:
        """Redis mode: wait until everything spooled during an outage has been sent to the stream."""
        end = time.monotonic() + timeout
        while (self._backlog or self.pending) and time.monotonic() < end:
            time.sleep(0.01)
        return not self._backlog

    # ------------------------------------------------------------------ writer thread
    def _take_batch(self) -> list:
        batch = []
        wait = self.cfg.flush_interval_ms / 1000
        try:
            batch.append(self.q.get(timeout=min(wait, 0.2)))
        except queue.Empty:
            return batch
        # Group commit: one sleep for the rest of the window, then take everything that came meanwhile.
        # (Waking per record instead would contend for the GIL with the event loop thousands of times
        # a second.) In sync mode requests wait on the write, so it starts at once: whatever queues up
        # during one fsync forms the next batch.
        if not self.sync and not self._stop.is_set():
            time.sleep(wait)
        get = self.q.get_nowait
        try:
            while len(batch) < self.cfg.batch_max:
                batch.append(get())
        except queue.Empty:
            pass
        return batch

    def _encode(self, kind: bytes, rec: dict) -> bytes:
        rec["_k"] = "b" if kind == b"b" else "e"
        try:
            return orjson.dumps(rec, default=str)
        except (TypeError, ValueError):
            pass
        try:
            return orjson.dumps(_json_safe(rec), default=str)
        except (TypeError, ValueError) as e:  # cannot happen with the values above; never lose the batch to it
            self.quarantined += 1
            if self.metrics:
                self.metrics.recorder_quarantined.inc()
            return orjson.dumps({"_k": "q", "exchange_id": str(rec.get("exchange_id")),
                                 "reason": f"recorder could not encode the record: {e}", "raw": repr(rec)[:1_000_000]})

    def _lines(self, items) -> bytes:
        out = []
        track = self._redis is None
        open_ = self._open
        for kind, rec, _ in items:
            line = self._encode(kind, rec)
            if track:
                xid = rec.get("exchange_id")
                if kind == b"b":
                    open_[xid] = line
                    if len(open_) > self.cfg.queue_max:  # a begin whose end never came: stop carrying it
                        del open_[next(iter(open_))]
                else:
                    open_.pop(xid, None)
            out.append(line)
        return b"\n".join(out) + b"\n"

    def _maybe_rotate(self) -> None:
        """Rotate before writing a batch when the segment is full, old or was left broken by a failed write.

        Exchanges still in flight are carried over: their begin lines are written to the new
        segment first, then the old one gets a trailer naming them, so each segment can be
        compacted on its own without recording a live exchange as interrupted. (A crash between
        the two writes can record such an exchange twice; never zero times.)
        """
        seg = self._seg
        if seg is None or (not seg.broken and seg.size < self.cfg.segment_max_bytes and
                           time.monotonic() - seg.opened < self.cfg.segment_max_seconds):
            return
        new = _Segment(self.spool_dir)
        try:
            if self._open:
                new.write(b"\n".join(self._open.values()) + b"\n")
                seg.write(orjson.dumps({"_k": "carry", "ids": list(self._open)}) + b"\n")
        except OSError:
            new.close()
            new.path.unlink(missing_ok=True)
            raise
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
        if self._redis is None and self.store is not None and self.cfg.compact:
            self._compact_q.put(seg.path)  # redis mode: spooled segments are drained to the stream instead

    def _compact_loop(self) -> None:
        """Compact rotated segments; sweep the spool at start (crash recovery) and after any failure."""
        if self._redis is not None or self.store is None or not self.cfg.compact or self.spool_dir is None:
            return
        retry = True  # the first sweep recovers what an earlier process left
        while True:
            if retry:
                c = compact_spool(self.spool_dir, self.store)
                if c.exchanges or c.quarantined:
                    log.info("recovered spool into store", extra={"exchanges": c.exchanges,
                                                                  "quarantined": c.quarantined})
                retry = bool(c.failed)
            try:
                path = self._compact_q.get(timeout=self.cfg.compact_retry_seconds)
            except queue.Empty:
                continue
            if path is None:
                return
            try:
                compact_segment(path, self.store)
            except FileNotFoundError:
                continue
            except Exception:  # noqa: BLE001 - the segment stays and is retried by the next sweep
                log.exception("spool compaction failed; will retry", extra={"segment": path.name})
                retry = True

    def _write_redis(self, data: bytes) -> bool:
        try:
            pipe = self._redis.pipeline(transaction=False)
            for line in data.splitlines():
                pipe.xadd(self.cfg.redis_stream, {b"d": line}, maxlen=self.cfg.redis_maxlen, approximate=True)
            pipe.execute()
            return True
        except Exception as e:  # noqa: BLE001 - fall back to the local spool, never drop
            log.warning("recorder Redis unreachable; spooling locally until it answers",
                        extra={"error": type(e).__name__})
            self._next_redis_try = time.monotonic() + self.cfg.redis_retry_seconds
            return False

    def _drain_to_redis(self) -> None:
        """Redis answers again: send what was spooled meanwhile, oldest first, then write to it directly."""
        self._next_redis_try = time.monotonic() + self.cfg.redis_retry_seconds
        try:
            self._redis.ping()
        except Exception:  # noqa: BLE001 - still down
            return
        self._rotate()
        sent = 0
        try:
            for p in sorted(self.spool_dir.glob("seg-*.jsonl")):
                try:
                    sent += drain_segment(p, self._redis, self.cfg.redis_stream, self.cfg.redis_maxlen) or 0
                except FileNotFoundError:
                    continue
        except Exception as e:  # noqa: BLE001 - Redis went away again (or the spool is unreadable): retry later
            log.warning("draining the spool to Redis failed; will retry", extra={"error": f"{type(e).__name__}: {e}"})
            return
        self._backlog = False
        log.info("recorder Redis reachable again; spooled records sent to the stream", extra={"lines": sent})

    def _flush(self, pending: list) -> None:
        """Write one batch durably or raise (the caller keeps the batch and retries)."""
        items = pending[0]
        if self._redis is None or self._backlog:
            if self.spool_dir is not None:
                self._maybe_rotate()  # before _lines: the carry-over is what was open before this batch
        if pending[1] is None:
            pending[1] = self._lines(items)
        data = pending[1]
        if self._redis is None:
            self._write_spool(data)
        elif self._backlog or not self._write_redis(data):
            if self.spool_dir is None:
                raise OSError(errno.EHOSTUNREACH, "Redis unreachable and no spool directory to fall back to")
            self._backlog = True
            self._write_spool(data)
            self.spilled += len(items)
            if self.metrics:
                self.metrics.recorder_spilled.inc(len(items))
        self.accepted += len(items)
        self.written_batches += 1
        if self.metrics:
            self.metrics.recorder_written.inc(len(items))
        futs = [f for _, _, f in items if f is not None]
        if futs:
            futs[0].get_loop().call_soon_threadsafe(_resolve, futs)
        if self._room_waiters and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake_room)

    def _flush_each(self, items: list) -> None:
        """A batch failed for a reason other than I/O: write record by record, quarantining the one that fails."""
        for item in items:
            try:
                self._flush([[item], None])
            except OSError:
                raise
            except Exception as e:  # noqa: BLE001
                kind, rec, fut = item
                log.exception("recorder quarantined a record", extra={"exchange_id": str(rec.get("exchange_id"))})
                q = {"_k": "q", "exchange_id": str(rec.get("exchange_id")), "reason": f"recorder failed: {e!r}"[:500],
                     "raw": repr(rec)[:1_000_000]}
                self.quarantined += 1
                if self.metrics:
                    self.metrics.recorder_quarantined.inc()
                self._flush([[(b"e", q, fut)], orjson.dumps(q) + b"\n"])

    def _failed(self, e: Exception) -> None:
        now = time.monotonic()
        kind = errno.errorcode.get(getattr(e, "errno", None) or 0, type(e).__name__)
        if self.error is None:
            self._failing_since = now
        self.error = f"{kind}: {e}"[:300]
        if self.metrics:
            self.metrics.recorder_write_errors.labels(kind).inc()
            self.metrics.recorder_healthy.set(0)
        if now - self._fail_logged >= _FAIL_LOG_SECONDS:
            self._fail_logged = now
            log.error("recorder cannot write; holding records in memory and retrying",
                      extra={"error": self.error, "pending": self.pending, "spool": str(self.spool_dir)})

    def _recovered(self) -> None:
        log.warning("recorder writing again; held records written",
                    extra={"outage_s": round(time.monotonic() - self._failing_since, 1), "pending": self.pending})
        self.error = None
        self._fail_logged = 0.0
        if self.metrics:
            self.metrics.recorder_healthy.set(1)

    def _housekeeping(self) -> None:
        seg = self._seg
        if seg is not None and time.monotonic() - seg.opened >= self.cfg.segment_max_seconds:
            self._maybe_rotate()
        if self._backlog and self._redis is not None and time.monotonic() >= self._next_redis_try:
            self._drain_to_redis()

    def _run(self) -> None:
        pending = None  # [items, encoded lines]: taken from the queue, not yet durable
        failures = 0
        while True:
            if pending is None:
                if self._stop.is_set() and self.q.empty():
                    break
                items = self._take_batch()
                pending = [items, None] if items else None
            if pending is not None:
                try:
                    self._flush(pending)
                    pending, failures = None, 0
                    if self.error is not None:
                        self._recovered()
                except OSError as e:
                    self._failed(e)
                    failures += 1
                    if self._abandon.is_set():
                        break
                    time.sleep(min(1.0, 0.02 * 2 ** min(failures, 6)))
                    continue
                except Exception:  # noqa: BLE001 - not I/O: isolate the record that causes it
                    log.exception("recorder batch failed; writing its records one by one")
                    try:
                        self._flush_each(pending[0])
                        pending = None
                    except OSError as e:
                        self._failed(e)
                        time.sleep(0.1)
                        continue
            try:
                self._housekeeping()
            except OSError as e:
                self._failed(e)
            except Exception:  # noqa: BLE001
                log.exception("recorder housekeeping failed")
        lost = self.pending
        if lost:
            self.dropped += lost
            if self.metrics:
                self.metrics.recorder_dropped.inc(lost)
            log.error("recorder stopped with records it could not write", extra={"lost": lost, "error": self.error})
        try:
            self._rotate()
        except OSError:
            log.exception("closing the last spool segment failed")
