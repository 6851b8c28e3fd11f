"""The store writer for production recording: Redis stream of gateway records -> Parquet exchanges.

Several gateway replicas XADD begin/end lines to one stream; one writer (a consumer group, so a
second writer can take over) folds them into exchanges and writes a Parquet part per batch.
Entries are acknowledged only after the part is written, so a writer crash re-delivers them;
parts are keyed by the first and last stream id, so a re-delivered batch replaces its part
instead of duplicating. A begin whose end never arrives (the gateway died mid-request) is written
as interrupted after ``orphan_seconds``.
"""

from __future__ import annotations

import logging
import time

import orjson
import redis

from distillguard.gateway.recorder import interrupted, merge_records, rows_to_table

log = logging.getLogger("distillguard.gateway")


def run_writer(store, redis_url: str, stream: str, group: str, consumer: str, batch_seconds: float = 5.0,
               once: bool = False, orphan_seconds: float = 900.0, max_batch: int = 50_000, stop=None) -> int:
    """Consume until drained (``once``) or until ``stop`` (a threading.Event) is set; what was read but not
    yet written stays unacknowledged, so the next start re-reads it."""
    r = redis.Redis.from_url(redis_url, socket_timeout=10)
    try:
        r.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise
    total = 0
    #: exchange_id -> (first seen, stream id, line) of begins still waiting for their end (not acked)
    held: dict[str, tuple[float, bytes, bytes]] = {}
    batch: list[tuple[bytes, bytes]] = []
    started = time.monotonic()
    cursor = "0"  # first our own unacknowledged entries (after a crash), then new ones
    while stop is None or not stop.is_set():
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
            lines = [h[2] for h in held.values()] + [ln for _, ln in batch]
            sid_of = {xid: h[1] for xid, h in held.items()}
            for sid, ln in batch:
                try:
                    rec = orjson.loads(ln)
                except orjson.JSONDecodeError:
                    continue
                if rec.get("_k") == "b" and rec.get("exchange_id"):
                    sid_of[rec["exchange_id"]] = sid
            done, begins, _bad = merge_records(lines)
            rows, keep = done, {}
            for xid, b in begins.items():
                first = held[xid][0] if xid in held else now
                if once or now - first >= orphan_seconds:
                    rows.append(interrupted(b))
                else:
                    keep[xid] = (first, sid_of.get(xid, b""), orjson.dumps({**b, "_k": "b"}))
            if rows:
                key = f"redis-{batch[0][0].decode()}-{batch[-1][0].decode()}".replace(":", "_")
                store.write_exchanges(rows_to_table(rows, store.quarantine_dir(), key), key=key)
                total += len(rows)
            kept_sids = {h[1] for h in keep.values()}
            ack = [sid for sid, _ in batch if sid not in kept_sids] + \
                  [h[1] for xid, h in held.items() if xid not in keep and h[1]]
            if ack:
                r.xack(stream, group, *ack)
            held, batch, started = keep, [], now
        if drained and not batch:
            break
    r.close()
    return total
