"""Publishing `watch`'s decisions: one versioned enforcement snapshot in Redis that every gateway replica polls.

Kept apart from the loop (watch.py) because the gateway side reads the same keys: the snapshot and its version move
together in one transaction, so a replica never applies a version whose snapshot it cannot read.
"""

from __future__ import annotations

import hashlib
import time

import orjson

DEFAULT_PREFIX = "distillguard:enforcement"


def snapshot_blob(store) -> bytes:
    """The enforcement and cluster rows the gateway applies, as one JSON document."""
    out = {}
    for name in ("enforcement", "account_clusters"):
        out[name] = store.read_table(name).to_pylist() if store.has_table(name) else []
    return orjson.dumps(out, default=str)


def publish(store, url: str, prefix: str = DEFAULT_PREFIX, last_hash: str | None = None) -> tuple[int | None, str]:
    """A new snapshot version in Redis when the decisions changed (gateways poll ``<prefix>:version``)."""
    import redis

    blob = snapshot_blob(store)
    h = hashlib.sha256(blob).hexdigest()
    if h == last_hash:
        return None, h
    r = redis.Redis.from_url(url, socket_timeout=5)
    try:
        version = int(r.incr(f"{prefix}:seq"))
        pipe = r.pipeline(transaction=True)  # snapshot and version move together
        pipe.set(f"{prefix}:snapshot", orjson.dumps({"version": version, "published_at": time.time(),
                                                      "data": orjson.Fragment(blob)}))
        pipe.set(f"{prefix}:version", version)
        pipe.execute()
        r.publish(f"{prefix}:updates", version)
    finally:
        r.close()
    return version, h


def read_published(url: str, prefix: str = DEFAULT_PREFIX) -> dict | None:
    """The newest published snapshot (for the gateway and for tests)."""
    import redis

    r = redis.Redis.from_url(url, socket_timeout=2)
    try:
        raw = r.get(f"{prefix}:snapshot")
    finally:
        r.close()
    return orjson.loads(raw) if raw else None
