"""The same world scanned by DuckDB and by Spark local[1] / local[2]: per-stage wall and CPU, peak RSS.

    PYTHONPATH=$PWD python bench/spark_bench.py --store WORLD [--engines duckdb,spark:local[1],spark:local[2]]

Each engine runs in its own child process (``--one``), so peak RSS is that scan's own. CPU is user + system of
the child's whole process tree (the Spark JVM and its Python workers included), sampled with psutil at each
stage boundary; peak RSS is the tree's, sampled every 0.2 s. Signals are taken as given (``--signals never``:
the world carries its exchange_signals), so the rows compare the stages the engines share. One Markdown
table per engine for docs/benchmarks.md; the machine is shared, so read CPU more than wall.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _tree_cpu(p: psutil.Process) -> float:
    tot = 0.0
    for q in [p, *p.children(recursive=True)]:
        try:
            c = q.cpu_times()
            tot += c.user + c.system
        except psutil.Error:
            pass
    return tot


def _tree_rss(p: psutil.Process) -> int:
    tot = 0
    for q in [p, *p.children(recursive=True)]:
        try:
            tot += q.memory_info().rss
        except psutil.Error:
            pass
    return tot


def one(store: str, engine: str) -> dict:
    import distillguard.scan.run as run
    from distillguard.scan.config import ScanConfig
    from distillguard.store import Store

    me = psutil.Process()
    run._cpu_seconds = lambda: _tree_cpu(me)  # stage CPU of the whole tree: the JVM does Spark's work
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            peak[0] = max(peak[0], _tree_rss(me))

    threading.Thread(target=sample, daemon=True).start()
    samples: list[tuple[float, int]] = []  # (perf_counter, tree RSS) every 0.2 s: per-stage peaks
    orig_lap = run._Laps.lap

    def lap(self, name: str) -> None:  # the stage's peak RSS: the largest sample since the stage began
        t0 = self.t
        orig_lap(self, name)
        self.timings[f"{name}_rss"] = max([r for t, r in samples if t >= t0] + [_tree_rss(me)])

    run._Laps.lap = lap

    def sample_stage() -> None:
        while not stop.wait(0.2):
            samples.append((time.perf_counter(), _tree_rss(me)))

    threading.Thread(target=sample_stage, daemon=True).start()
    name, _, master = engine.partition(":")
    cfg = ScanConfig()
    if name == "spark":
        cores = master.removeprefix("local[").removesuffix("]")
        cfg.engine.spark.shuffle_partitions = 2 * (int(cores) if cores.isdigit() else 2)
    st = Store(store)
    t0 = time.perf_counter()
    res = run.run_scan(st, cfg, signals="never", engine=name, master=master or None)
    wall = time.perf_counter() - t0
    flagged = sorted(a for a, f in zip(res.account_risk["account_id"].to_pylist(),
                                        res.account_risk["flagged"].to_pylist(), strict=True) if f)
    out = {"engine": engine, "wall": wall, "cpu": _tree_cpu(me), "peak_rss": peak[0], "timings": res.timings,
           "exchanges": res.n_exchanges, "accounts": res.account_risk.num_rows, "flagged": len(flagged),
           "campaigns": len(res.campaigns), "flagged_ids": flagged}
    run.close_scan(res, st)
    stop.set()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--engines", default="duckdb,spark:local[1],spark:local[2]")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="also write every engine's figures (per-stage) to this file")
    a = ap.parse_args()
    if a.one:
        print("RESULT " + json.dumps(one(a.store, a.one)))
        return
    rows = []
    for eng in a.engines.split(","):
        load0 = os.getloadavg()[0]
        r = subprocess.run([sys.executable, __file__, "--store", a.store, "--one", eng], capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(r.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{eng} failed")
        d = json.loads(line[7:])
        d["load"] = (load0, os.getloadavg()[0])
        rows.append(d)
        print(f"{eng}: {d['wall']:.1f}s wall, {d['cpu']:.1f} CPU-s, peak RSS {d['peak_rss'] / 2**20:.0f} MiB, "
              f"{d['flagged']} flagged, {d['campaigns']} campaigns, load {d['load'][0]:.1f}→{d['load'][1]:.1f}",
              flush=True)
        print("ENGINE " + json.dumps({k: v for k, v in d.items() if k != "flagged_ids"}, default=str), flush=True)
    ids = {tuple(r["flagged_ids"]) for r in rows}
    print(f"\nsame flagged accounts on every engine: {len(ids) == 1}\n")
    stages = [k for k, v in rows[0]["timings"].items() if isinstance(v, float) and not k.endswith(("_cpu", "_rss"))]
    print("| stage | " + " | ".join(f"{r['engine']} wall s | CPU s | RSS MiB" for r in rows) + " |")
    print("|---|" + "---:|---:|---:|" * len(rows))
    for s in stages:
        cells = []
        for r in rows:
            t = r["timings"]
            cells.append(f"{t.get(s, float('nan')):.2f} | {t.get(s + '_cpu', float('nan')):.2f} | "
                         f"{t.get(s + '_rss', 0) / 2**20:.0f}")
        print(f"| {s} | " + " | ".join(cells) + " |")
    print("| total | " + " | ".join(f"{r['wall']:.1f} | {r['cpu']:.1f} | {r['peak_rss'] / 2**20:.0f}" for r in rows)
          + " |")
    print("| load (start→end) | " + " | ".join(f"{r['load'][0]:.1f}→{r['load'][1]:.1f} | | " for r in rows) + " |")
    with open(a.json, "w") if a.json else open(os.devnull, "w") as fh:
        json.dump(rows, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
