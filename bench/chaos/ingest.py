"""Ingest under faults: what happens to records when files are damaged, growing, torn, re-encoded or the ingest is killed.

Usage:
    PYTHONPATH=$PWD python bench/chaos/ingest.py [--only NAME ...] [--workdir /tmp/dg-chaos-ingest]

Each scenario builds its input, runs `distillguard ingest` as a child process (as an operator
would: real exit codes, real kills) and reports:

* written      records the producer wrote (distinct exchange ids)
* readable     records that can be recovered from the bytes on disk (a truncated file holds fewer)
* stored       distinct exchange ids in the store afterwards
* rows         rows in the store (rows > stored means something was stored twice)
* quarantined  quarantine entries written
* exit         exit codes of the ingest runs

The target: stored == readable and rows == stored in every scenario.

``SCENARIOS = {name: fn}``; ``fn(workdir: Path) -> dict`` (the row above), for bench/chaos/run.py.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import orjson

_ROOT = Path(__file__).resolve().parents[2]


def _rec(i: int, pad: int = 200) -> dict:
    return {"exchange_id": f"ex-{i:08d}", "ts": f"2026-02-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
            "account_id": f"acct-{i % 997:04d}", "model": "gpt-x", "endpoint": "chat.completions",
            "prompt": f"question {i} " + "lorem ipsum " * (pad // 12), "response_text": "answer " * (pad // 7)}


def _lines(ids, pad: int = 200) -> bytes:
    return b"".join(orjson.dumps(_rec(i, pad)) + b"\n" for i in ids)


def _env() -> dict:
    # A PYTHONPATH given by the caller wins (to measure another checkout); else this repository.
    return {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH") or str(_ROOT)}


def _ingest_cmd(store: Path, *files: Path) -> list[str]:
    return [sys.executable, "-m", "distillguard", "ingest", *map(str, files), "--store", str(store), "--json"]


def _ingest(store: Path, *files: Path) -> int:
    return subprocess.run(_ingest_cmd(store, *files), env=_env(), capture_output=True, text=True).returncode


def _ingested(proc_stdout: str) -> int | None:
    try:
        return json.loads(proc_stdout)["ingested"]
    except (ValueError, KeyError):
        return None


def _store_counts(store: Path) -> dict:
    from distillguard.store import Store

    st = Store(store, create=True)
    rows, distinct = st.connect().sql("SELECT count(*), count(DISTINCT exchange_id) FROM exchanges").fetchall()[0]
    q = sum(1 for f in (store / "quarantine").glob("*.jsonl") for ln in open(f, "rb") if ln.strip())
    return {"stored": distinct, "rows": rows, "quarantined": q}


def _row(written: int, readable: int, store: Path, exits: list[int], **extra) -> dict:
    return {"written": written, "readable": readable, **_store_counts(store), "exit": exits, **extra}


# --- scenarios ---------------------------------------------------------------------------------

def truncated_gz(work: Path) -> dict:
    """A .gz cut at 97 % (an interrupted download), followed by another file on the command line."""
    n = 20_000
    comp = gzip.compress(_lines(range(n)))
    cut = comp[: int(len(comp) * 0.97)]
    gz = work / "cut.jsonl.gz"
    gz.write_bytes(cut)
    readable = zlib.decompressobj(31).decompress(cut).count(b"\n")
    later = work / "later.jsonl"
    later.write_bytes(_lines(range(n, n + 100)))
    exits = [_ingest(work / "store", gz, later)]
    return _row(n + 100, readable + 100, work / "store", exits)


def bad_line_big_file(work: Path) -> dict:
    """~49 MB of native JSONL with one bad line in its second 32 MB block."""
    n = 45_000
    log = work / "big.jsonl"
    bad_at = 35_000
    with open(log, "wb") as fh:
        for start in range(0, n, 5000):
            ids = range(start, min(n, start + 5000))
            chunk = _lines(ids, pad=470)
            if start <= bad_at < start + 5000:
                lines = chunk.splitlines(keepends=True)
                lines[bad_at - start] = b'{"exchange_id": "bad", "ts": "2026-02-01T00:00:00Z", "max_tokens": "lots"}\n'
                chunk = b"".join(lines)
            fh.write(chunk)
    exits = [_ingest(work / "store", log)]
    return _row(n, n - 1, work / "store", exits, file_mb=round(log.stat().st_size / 2**20, 1))


def append_during_run(work: Path) -> dict:
    """A writer appends (4 KiB writes, most ending mid-line) while ingest runs; then ingest again."""
    log = work / "live.jsonl"
    log.write_bytes(_lines(range(50_000)))
    total = 55_000
    data = _lines(range(50_000, total))
    size0 = log.stat().st_size

    first_done = threading.Event()

    def writer() -> None:  # slow while the first run reads, then the rest at once
        with open(log, "ab") as fh:
            for i in range(0, len(data), 4096):
                fh.write(data[i: i + 4096])
                fh.flush()
                if not first_done.is_set():
                    time.sleep(0.02)

    proc = subprocess.Popen(_ingest_cmd(work / "store", log), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    t = threading.Thread(target=writer)
    t.start()
    out, _ = proc.communicate()
    first_done.set()
    grown_during = log.stat().st_size - size0  # bytes the writer had written when the first run ended
    t.join()
    exits = [proc.returncode, _ingest(work / "store", log)]
    return _row(total, total, work / "store", exits, first_run_stored=_ingested(out),
                appended_mb=round(len(data) / 2**20, 1), appended_by_end_of_first_run_mb=round(grown_during / 2**20, 1))


def torn_last_line(work: Path) -> dict:
    """A run sees a half-written last line; the writer finishes it and writes more; a second run."""
    log = work / "torn.jsonl"
    tail = orjson.dumps(_rec(1000)) + b"\n"
    log.write_bytes(_lines(range(1000)) + tail[:57])
    exits = [_ingest(work / "store", log)]
    with open(log, "ab") as fh:
        fh.write(tail[57:] + _lines(range(1001, 1100)))
    exits.append(_ingest(work / "store", log))
    return _row(1100, 1100, work / "store", exits)


def reencoded_duplicates(work: Path) -> dict:
    """The same records again: gzip-compressed, shuffled and re-serialised with sorted keys."""
    n = 20_000
    first = work / "day.jsonl"
    first.write_bytes(_lines(range(n)))
    ids = list(range(n))
    random.Random(1).shuffle(ids)
    again = work / "day-copy.jsonl.gz"
    again.write_bytes(gzip.compress(b"".join(orjson.dumps(_rec(i), option=orjson.OPT_SORT_KEYS) + b"\n"
                                             for i in ids)))
    exits = [_ingest(work / "store", first), _ingest(work / "store", again)]
    return _row(n, n, work / "store", exits)


def kill_mid_ingest(work: Path) -> dict:
    """SIGKILL the ingest at several moments, then let one run finish."""
    n = 200_000
    log = work / "big.jsonl"
    log.write_bytes(_lines(range(n), pad=100))
    exits = []
    for delay in (1.5, 2.5, 3.5, 5.0):
        proc = subprocess.Popen(_ingest_cmd(work / "store", log), env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        exits.append(proc.wait())
    exits.append(_ingest(work / "store", log))
    return _row(n, n, work / "store", exits)


SCENARIOS: dict[str, Callable[[Path], dict]] = {
    "truncated_gz": truncated_gz,
    "bad_line_big_file": bad_line_big_file,
    "append_during_run": append_during_run,
    "torn_last_line": torn_last_line,
    "reencoded_duplicates": reencoded_duplicates,
    "kill_mid_ingest": kill_mid_ingest,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=sorted(SCENARIOS))
    ap.add_argument("--workdir", default="/tmp/dg-chaos-ingest")
    args = ap.parse_args()
    base = Path(args.workdir)
    print(f"{'scenario':<22} {'written':>8} {'readable':>8} {'stored':>8} {'rows':>8} {'quar.':>6}  exit   ok")
    for name in args.only or SCENARIOS:
        work = base / name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        t = time.perf_counter()
        r = SCENARIOS[name](work)
        ok = r["stored"] == r["readable"] and r["rows"] == r["stored"]
        print(f"{name:<22} {r['written']:>8,} {r['readable']:>8,} {r['stored']:>8,} {r['rows']:>8,} "
              f"{r['quarantined']:>6,}  {','.join(map(str, r['exit'])):<6} {'yes' if ok else 'NO'}"
              f"  ({time.perf_counter() - t:.0f}s)", flush=True)
        print(json.dumps({"scenario": name, **r}), file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
