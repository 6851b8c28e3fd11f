"""A killed ingest neither loses nor double-counts: SIGKILL at the worst instants, then a normal re-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from distillguard.ingest import ingest_paths
from distillguard.store import Store

N = 3000

# Runs an ingest with small batches and SIGKILLs itself right after the k-th call of a chosen step.
_DRIVER = """
import os, signal, sys
import distillguard.ingest.run as run
from distillguard.ingest import ingest_paths
from distillguard.store import Store
from distillguard.store.ids import IdIndex

run.BATCH_ROWS, run.BLOCK_BYTES = 100, 8192
store_dir, point, k, *files = sys.argv[1:]
k = int(k)
target = {"part": (Store, "write_exchanges"), "index": (IdIndex, "add"), "mark": (IdIndex, "mark_parts")}[point]
orig = getattr(*target)
seen = {"n": 0}

def step(*a, **kw):
    out = orig(*a, **kw)
    seen["n"] += 1
    if seen["n"] == k:
        os.kill(os.getpid(), signal.SIGKILL)
    return out

setattr(*target, step)
ingest_paths(Store(store_dir, create=True), files)
"""


def _log(tmp_path: Path) -> Path:
    p = tmp_path / "log.jsonl"
    with open(p, "wb") as fh:
        for i in range(N):
            fh.write(orjson.dumps({"exchange_id": f"e{i:05d}", "ts": "2026-02-01T00:00:00Z", "account_id": f"a{i % 9}",
                                   "prompt": "p" * 40}) + b"\n")
    return p


def _env() -> dict:
    root = str(Path(__file__).parents[2])
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _check_exactly_once(store_dir: Path, log: Path) -> None:
    store = Store(store_dir, create=True)
    ingest_paths(store, [log])
    ids = [r[0] for r in store.exchanges(columns=["exchange_id"]).fetchall()]
    assert len(ids) == N, f"{len(ids)} stored, {len(set(ids))} distinct"
    assert len(set(ids)) == N
    assert ingest_paths(store, [log]).files[0].skipped == "already ingested"


@pytest.mark.parametrize("point,k", [("part", 1), ("part", 7), ("index", 4), ("mark", 12)])
def test_sigkill_between_commit_steps(tmp_path, point, k):
    log = _log(tmp_path)
    store_dir = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-c", _DRIVER, str(store_dir), point, str(k), str(log)],
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    stored = list((store_dir / "exchanges").glob("**/*.parquet"))
    assert stored  # the kill came after something was written
    _check_exactly_once(store_dir, log)


def test_sigkill_at_arbitrary_moments(tmp_path):
    log = _log(tmp_path)
    store_dir = tmp_path / "store"
    code = ("import sys, distillguard.ingest.run as run; run.BATCH_ROWS, run.BLOCK_BYTES = 50, 4096\n"
            "from distillguard.ingest import ingest_paths; from distillguard.store import Store\n"
            "ingest_paths(Store(sys.argv[1], create=True), [sys.argv[2]])")
    for delay in (0.3, 0.6, 0.9, 1.2, 1.6):
        proc = subprocess.Popen([sys.executable, "-c", code, str(store_dir), str(log)], env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    _check_exactly_once(store_dir, log)
