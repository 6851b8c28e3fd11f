"""Write exchanges back out as native JSONL: the format round-trips through ingest unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import orjson

from distillguard.errors import DistillguardError
from distillguard.store.store import Store


def _default(v):
    raise TypeError(f"cannot serialise {type(v).__name__}")


def export_native(store: Store, out: str | Path, where: str | None = None) -> int:
    """Write to a temporary file renamed into place at the end, so a failed export never leaves a partial or
    empty file where a script expects a complete one; a bad ``where`` is reported before anything is written."""
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    n = 0
    try:
        batches = store.exchange_batches(where=where)
        with open(tmp, "wb") as fh:
            for batch in batches:
                for row in batch.to_pylist():
                    ts = row["ts"]
                    row["ts"] = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
                    fh.write(orjson.dumps(row, default=_default) + b"\n")
                    n += 1
        os.replace(tmp, out)
    except duckdb.Error as e:
        raise DistillguardError(f"--where {where!r} is not a valid filter over exchange columns: "
                                f"{str(e).splitlines()[0]}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return n
