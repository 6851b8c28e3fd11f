"""Write exchanges back out as native JSONL: the format round-trips through ingest unchanged."""

from __future__ import annotations

from pathlib import Path

import orjson

from distillguard.store.store import Store


def _default(v):
    raise TypeError(f"cannot serialise {type(v).__name__}")


def export_native(store: Store, out: str | Path, where: str | None = None) -> int:
    n = 0
    with open(out, "wb") as fh:
        for batch in store.exchange_batches(where=where):
            for row in batch.to_pylist():
                ts = row["ts"]
                row["ts"] = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
                fh.write(orjson.dumps(row, default=_default) + b"\n")
                n += 1
    return n
