"""Throughput and peak memory of `distillguard scan` end to end on a store.

    python bench/scan_bench.py --store WORLD_DIR [--replay] [--signals auto|never]

Runs the scan as a child process (so peak RSS is the scan's own, read from getrusage of the
child) and prints one Markdown table row for docs/benchmarks.md: exchanges, seconds,
exchanges/s, peak RSS, stage timings, and the CPU time of the scan and its worker processes
(user + system) with the load average around the run: on a shared machine wall time says little
without them. "rest" is the wall time outside the four stages (start-up, writing the tables and
the report).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--replay", action="store_true")
    ap.add_argument("--signals", default="auto")
    ap.add_argument("--no-report", action="store_true")
    a = ap.parse_args()
    out = a.out or tempfile.mkdtemp(prefix="scan-bench-")
    cmd = [sys.executable, "-m", "distillguard", "scan", "--store", a.store, "--out", out, "--json",
           "--signals", a.signals]
    if a.replay:
        cmd.append("--replay")
    if a.no_report:
        cmd.append("--no-report")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    load1 = os.getloadavg()[0]
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        sys.exit(r.returncode)
    s = json.loads(r.stdout)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss_mb = ru.ru_maxrss / 1024
    cpu = ru.ru_utime + ru.ru_stime
    tm = s["timings"]
    rest = wall - sum(tm[k] for k in ("signals", "prepare", "detect", "campaigns"))
    print(f"machine: {platform.machine()} {os.cpu_count()} cores · python {platform.python_version()} · "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"command: {' '.join(cmd[1:])}")
    print(f"load average (1 min) before {load0:.2f}, after {load1:.2f}")
    if "signals_cpu" in tm:
        print("CPU s per stage (process + workers): " + ", ".join(
            f"{k} {tm[k + '_cpu']:.1f}" for k in ("signals", "prepare", "detect", "campaigns")))
    print("| exchanges | accounts | mode | wall s | exchanges/s | CPU s | peak RSS MB | signals s | prepare s | detect s "
          "| campaigns s | rest s |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {s['exchanges']:,} | {s['accounts']:,} | {'replay' if a.replay else 'full'} | {wall:.1f} | "
          f"{s['exchanges'] / wall:,.0f} | {cpu:.0f} | {rss_mb:,.0f} | {tm['signals']:.1f} | {tm['prepare']:.1f} | "
          f"{tm['detect']:.1f} | {tm['campaigns']:.1f} | {rest:.1f} |")


if __name__ == "__main__":
    main()
