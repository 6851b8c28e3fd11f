"""The same world scanned by DuckDB and by Spark local[1] / local[2]: per-stage wall and CPU, peak RSS.

    PYTHONPATH=$PWD python bench/spark_bench.py --store WORLD [--engines duckdb,spark:local[1],spark:local[2]]

Each engine runs in its own child process (``--one``), so peak RSS is that scan's own. CPU is user + system of
the child's whole process tree (the Spark JVM and its Python workers included), sampled with psutil at each
stage boundary; peak RSS is the tree's, sampled every 0.2 s. Signals are taken as given (``--signals never``:
the world carries its exchange_signals), so the rows compare the stages the engines share. One Markdown
table per engine for docs/benchmarks.md; the machine is shared, so read CPU more than wall (the 1-minute load
average is sampled every 5 s).

Also: whether the engines flag the same accounts and build the same campaigns (members and titles) and the
largest difference in account risk; ``--conf KEY=VALUE`` Spark settings; ``--combine A.json B.json ..`` the
comparison and table of runs made one engine at a time (e.g. in parallel, each in its own session);
``--fit SMALL.json LARGE.json`` fixed and per-million-exchange CPU per stage from two worlds.
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


def one(store: str, engine: str, conf: dict[str, str] | None = None) -> dict:
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
    loads: list[float] = []  # 1-minute load average every 5 s: the machine is shared

    def sample_load() -> None:
        while not stop.wait(5.0):
            loads.append(os.getloadavg()[0])

    threading.Thread(target=sample_load, daemon=True).start()
    samples: list[tuple[float, int]] = []  # (perf_counter, tree RSS) every 0.2 s: per-stage peaks
    orig_lap = run._Laps.lap

    def lap(self, name: str) -> None:  # the stage's peak RSS: the largest sample since the stage began
        t0 = self.t
        orig_lap(self, name)
        self.timings[f"{name}_rss"] = max([r for t, r in samples if t >= t0] + [_tree_rss(me)])
        # each stage as it ends, on stderr: a run stopped before the end still leaves its finished stages
        print(f"STAGE {name} wall {self.timings[name]:.2f} cpu {self.timings[name + '_cpu']:.2f} rss "
              f"{self.timings[name + '_rss'] / 2**20:.0f} MiB load {os.getloadavg()[0]:.1f}", file=sys.stderr,
              flush=True)

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
        cfg.engine.spark.conf.update(conf or {})
    st = Store(store)
    t0 = time.perf_counter()
    res = run.run_scan(st, cfg, signals="never", engine=name, master=master or None)
    wall = time.perf_counter() - t0
    flagged = sorted(a for a, f in zip(res.account_risk["account_id"].to_pylist(),
                                        res.account_risk["flagged"].to_pylist(), strict=True) if f)
    by_campaign: dict[str, list[str]] = {}
    for a, c in res.campaign_members.items():
        by_campaign.setdefault(c, []).append(a)
    titles = {c["campaign_id"]: c.get("title") for c in res.campaigns}
    campaigns = sorted([sorted(m), titles.get(c)] for c, m in by_campaign.items())
    risk = dict(zip(res.account_risk["account_id"].to_pylist(), res.account_risk["risk"].to_pylist(), strict=True))
    out = {"engine": engine, "wall": wall, "cpu": _tree_cpu(me), "peak_rss": peak[0], "timings": res.timings,
           "exchanges": res.n_exchanges, "accounts": res.account_risk.num_rows, "flagged": len(flagged),
           "campaigns": len(res.campaigns), "flagged_ids": flagged, "campaign_members": campaigns, "risk": risk,
           "load": [min(loads, default=0.0), sum(loads) / max(len(loads), 1), max(loads, default=0.0)]}
    run.close_scan(res, st)
    stop.set()
    return out


def compare(rows: list[dict]) -> None:
    """Do the engines flag the same accounts and build the same campaigns (members, titles); largest risk gap."""
    base = rows[0]
    for r in rows[1:]:
        fa, fb = set(base["flagged_ids"]), set(r["flagged_ids"])
        gap = max((abs(base["risk"][a] - r["risk"].get(a, float("nan"))) for a in base["risk"]), default=0.0)
        print(f"{base['engine']} vs {r['engine']}: same flagged accounts: {fa == fb} ({len(fa)} / {len(fb)}; only "
              f"{base['engine']}: {sorted(fa - fb)[:10]}, only {r['engine']}: {sorted(fb - fa)[:10]}); same "
              f"campaigns (members and titles): {base['campaign_members'] == r['campaign_members']} "
              f"({len(base['campaign_members'])} / {len(r['campaign_members'])}); same accounts scored: "
              f"{set(base['risk']) == set(r['risk'])}; largest risk difference {gap:.2e}")


def table(rows: list[dict]) -> None:
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
    print("| load min / mean / max | " + " | ".join("{:.1f} / {:.1f} / {:.1f} | | ".format(*r["load"]) for r in rows)
          + " |")


def fit(small: list[dict], large: list[dict]) -> None:
    """Per stage and engine, a line through two worlds' CPU-seconds: fixed cost (CPU-s at zero exchanges) and
    marginal cost (CPU-s per million exchanges)."""
    for b in large:
        a = next((r for r in small if r["engine"] == b["engine"] and r.get("conf", []) == b.get("conf", [])), None)
        if a is None:
            continue
        dm = (b["exchanges"] - a["exchanges"]) / 1e6
        print(f"\n{b['engine']}: {a['exchanges']:,} → {b['exchanges']:,} exchanges")
        print("| stage | CPU s small | CPU s large | per M exchanges | fixed (CPU s at 0) |")
        print("|---|---:|---:|---:|---:|")
        stages = [k for k, v in b["timings"].items() if isinstance(v, float) and not k.endswith(("_cpu", "_rss"))]
        for s in [*stages, "total"]:
            ca = a["cpu"] if s == "total" else a["timings"].get(s + "_cpu", float("nan"))
            cb = b["cpu"] if s == "total" else b["timings"].get(s + "_cpu", float("nan"))
            m = (cb - ca) / dm
            print(f"| {s} | {ca:.2f} | {cb:.2f} | {m:.1f} | {ca - m * a['exchanges'] / 1e6:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store")
    ap.add_argument("--engines", default="duckdb,spark:local[1],spark:local[2]")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                    help="a Spark setting for the Spark runs (engine.spark.conf), repeatable")
    ap.add_argument("--json", default=None, help="also write every engine's figures (per-stage) to this file")
    ap.add_argument("--combine", nargs="+", default=None,
                    help="print the comparison and the table of earlier --json files (runs made one engine at a time)")
    ap.add_argument("--fit", nargs=2, default=None, metavar=("SMALL_JSON", "LARGE_JSON"),
                    help="fixed and per-exchange CPU per stage from two worlds' --json files (same engines)")
    a = ap.parse_args()
    if a.fit:
        fit(json.load(open(a.fit[0])), json.load(open(a.fit[1])))
        return
    if a.combine:
        rows = [r for f in a.combine for r in json.load(open(f))]
        compare(rows)
        print()
        table(rows)
        return
    if not a.store:
        ap.error("--store is required")
    if a.one:
        print("RESULT " + json.dumps(one(a.store, a.one, dict(c.split("=", 1) for c in a.conf))))
        return
    rows = []
    for eng in a.engines.split(","):
        r = subprocess.run([sys.executable, __file__, "--store", a.store, "--one", eng,
                            *[f"--conf={c}" for c in a.conf]], stdout=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"{eng} failed")
        d = json.loads(line[7:])
        d["conf"] = a.conf
        rows.append(d)
        print(f"{eng}: {d['wall']:.1f}s wall, {d['cpu']:.1f} CPU-s, peak RSS {d['peak_rss'] / 2**20:.0f} MiB, "
              f"{d['flagged']} flagged, {d['campaigns']} campaigns, load {d['load'][0]:.1f}–{d['load'][2]:.1f}",
              flush=True)
        with open(a.json, "w") if a.json else open(os.devnull, "w") as fh:  # after each engine: partial runs count
            json.dump(rows, fh, indent=1, default=str)
    print()
    compare(rows)
    print()
    table(rows)


if __name__ == "__main__":
    main()
