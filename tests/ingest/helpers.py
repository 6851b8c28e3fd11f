"""Shared helpers for the reader tests (plain functions; the fixture lives in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import orjson

DATA = Path(__file__).parents[1] / "data"


def rows_by_id(store) -> dict[str, dict]:
    rel = store.exchanges()
    cols = rel.columns
    out = {}
    for r in rel.fetchall():
        d = dict(zip(cols, r, strict=True))
        d["extra"] = orjson.loads(d["extra"]) if d["extra"] else {}
        out[d["exchange_id"]] = d
    return out


def quarantine_of(result) -> list[dict]:
    out = []
    for f in result.files:
        if f.quarantine_file:
            out.extend(orjson.loads(line) for line in open(f.quarantine_file, "rb"))
    return out


def write_lines(path: Path, records: list) -> Path:
    with open(path, "wb") as fh:
        for r in records:
            fh.write((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n")
    return path


def sample(name: str) -> list[dict]:
    return [orjson.loads(line) for line in open(DATA / name, "rb") if line.strip()]
