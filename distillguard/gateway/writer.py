"""The store writer for production recording: Redis stream of gateway records -> Parquet exchanges.

Several gateway replicas XADD begin/end lines to one stream; one writer (a consumer group, so a
second writer can take over) folds them into exchanges and writes a Parquet part per batch.
Entries are acknowledged only after the part is written, so a writer crash re-delivers them;
parts are keyed by the first and last stream id, so a re-delivered batch replaces its part
instead of duplicating. A begin whose end never arrives (the gateway died mid-request) is written
as interrupted after ``orphan_seconds``.

Nothing one entry holds can stop the writer: folding and typing are per record (spool.py), so a
line that is torn, lacks its begin or carries values no column holds is stored with the bad value
nulled or quarantined on its own, and acknowledged. A lost Redis connection is retried (the entries
not yet acknowledged are read again), and a store write that fails (disk full) is retried without
acknowledging anything.
"""

from __future__ import annotations

import logging
import threading
import time

import orjson
import redis

from distillguard.gateway.spool import interrupted, merge_records, store_merged

log = logging.getLogger("distillguard.gateway")


def _ensure_group(r, stream: str, group: str) -> None:
    try:
        r.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


def run_writer(store, redis_url: str, stream: str, group: str, consumer: str, batch_seconds: float = 5.0,
               once: bool = False, orphan_seconds: float = 900.0, max_batch: int = 50_000,
               stop: threading.Event | None = None, retry_seconds: float = 1.0, max_retries: int | None = None) -> int:
    """Consume until ``stop`` is set (or, with ``once``, until the stream is drained); returns exchanges written.

    ``max_retries`` consecutive failures (Redis unreachable, store unwritable) end the run with the last
    error; by default only ``once`` runs give up (after 5), a service keeps retrying.
    """
    if max_retries is None and once:
        max_retries = 5
    r = redis.Redis.from_url(redis_url, socket_timeout=10)
    total = 0
    #: exchange_id -> (first seen, stream id, line) of begins still waiting for their end (not acked)
    held: dict[str, tuple[float, bytes, bytes]] = {}
    batch: list[tuple[bytes, bytes]] = []
    started = time.monotonic()
    cursor = "0"  # first our own unacknowledged entries (after a crash), then new ones
    failures = 0
    need_group = True
    try:
        while stop is None or not stop.is_set():
            try:
                if need_group:
                    _ensure_group(r, stream, group)
                    need_group = False
                reading_new = cursor == ">"
                resp = r.xreadgroup(group, consumer, {stream: cursor}, count=5000, block=500 if reading_new else None)
                entries = resp[0][1] if resp else []
                if not reading_new and not entries:
                    cursor = ">"
                for sid, fields in entries:
                    batch.append((sid, fields.get(b"d") or b"{}"))
                now = time.monotonic()
                drained = once and reading_new and not entries
                if batch and (len(batch) >= max_batch or now - started >= batch_seconds or drained):
                    n, held = _write_batch(r, store, stream, group, batch, held, now, once, orphan_seconds)
                    total += n
                    batch, started = [], now
                failures = 0
                if drained and not batch:
                    break
            except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
                failures += 1
                if max_retries is not None and failures > max_retries:
                    raise
                log.warning("writer: Redis or store unavailable; retrying", extra={
                    "error": f"{type(e).__name__}: {e}"[:300], "attempt": failures})
                if isinstance(e, redis.RedisError):
                    # entries read but not acknowledged are delivered again from the pending list
                    batch, held, cursor, need_group = [], {}, "0", True
                time.sleep(min(retry_seconds * failures, 10 * retry_seconds))
            except redis.ResponseError as e:
                if "NOGROUP" not in str(e):  # the stream vanished (Redis restarted empty): recreate the group
                    raise
                batch, held, cursor, need_group = [], {}, "0", True
    finally:
        r.close()
    return total


def _write_batch(r, store, stream, group, batch, held, now, once, orphan_seconds):
    lines = [h[2] for h in held.values()] + [ln for _, ln in batch]
    sid_of = {xid: h[1] for xid, h in held.items()}
    for sid, ln in batch:
        try:
            rec = orjson.loads(ln)
        except orjson.JSONDecodeError:
            continue
        if isinstance(rec, dict) and rec.get("_k") == "b" and isinstance(rec.get("exchange_id"), str):
            sid_of[rec["exchange_id"]] = sid
    m = merge_records(lines)
    rows, keep = list(m.done.values()), {}
    for xid, b in m.begins.items():
        first = held[xid][0] if xid in held else now
        if once or now - first >= orphan_seconds:
            rows.append(interrupted(b))
        else:
            keep[xid] = (first, sid_of.get(xid, b""), orjson.dumps({**b, "_k": "b"}, default=str))
    key = f"redis-{batch[0][0].decode()}-{batch[-1][0].decode()}".replace(":", "_")
    n, _q = store_merged(store, m, rows, key, f"redis://{stream}")
    kept_sids = {h[1] for h in keep.values()}
    ack = [sid for sid, _ in batch if sid not in kept_sids] + \
          [h[1] for xid, h in held.items() if xid not in keep and h[1]]
    if ack:
        r.xack(stream, group, *ack)
    return n, keep
