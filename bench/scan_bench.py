"""Throughput and peak memory of `distillguard scan` end to end on a store.

    python bench/scan_bench.py --store WORLD_DIR [--replay] [--signals auto|never]

Runs the scan as a child process (so peak RSS is the scan's own, read from getrusage of the
child) and prints one Markdown table row for docs/benchmarks.md: exchanges, seconds,
exchanges/s, peak RSS, stage timings, and the CPU time of the scan and its worker processes
(user + system) with the load average around the run: on a shared machine wall time says little
without them. "rest" is the wall time outside the four stages (start-up, writing the tables and
the report). "temp peak" is the largest size the scan's spill directory (STORE/tmp, or --temp-dir) reached,
sampled every half second. The per-stage table gives CPU-seconds per million exchanges for each stage and
for each part of detect (features, incidence, edges, pairs, dense blocks, communities and cluster scoring
per resolution), so runs at several scales show which parts grow faster than the traffic.
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
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distillguard.scan.resources import dir_size  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--replay", action="store_true")
    ap.add_argument("--signals", default="auto")
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--temp-dir", default=None, help="where the scan spills (default STORE/tmp; given, passed to the scan as its temp_directory)")
    ap.add_argument("--resume", action="store_true",
                    help="keep stage checkpoints (a rerun after a crash starts from the last finished stage)")
    a = ap.parse_args()
    out = a.out or tempfile.mkdtemp(prefix="scan-bench-")
    cmd = [sys.executable, "-m", "distillguard", "scan", "--store", a.store, "--out", out, "--json",
           "--signals", a.signals]
    if a.replay:
        cmd.append("--replay")
    if a.no_report:
        cmd.append("--no-report")
    if a.temp_dir:  # the scan spills there (its temp_directory), so the peak below is this run's own
        cfg_file = Path(tempfile.mkdtemp(prefix="scan-bench-cfg-")) / "scan.yaml"
        cfg_file.write_text(f"temp_directory: {json.dumps(str(Path(a.temp_dir).resolve()))}\n")
        cmd += ["--config", str(cfg_file)]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    peak = [0]
    series: list[tuple[float, int]] = []  # (Unix time, spill directory size): attributed to stages below
    stop = threading.Event()

    def watch(d: Path) -> None:
        while not stop.wait(0.5):
            n = dir_size(d)
            peak[0] = max(peak[0], n)
            series.append((time.time(), n))

    th = threading.Thread(target=watch, args=(Path(a.temp_dir or Path(a.store) / "tmp"),), daemon=True)
    th.start()
    r = subprocess.run(cmd + ["--resume" if a.resume else "--no-resume"], capture_output=True, text=True, env=env)
    stop.set()
    th.join()
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
    mex = s["exchanges"] / 1e6
    print(f"temp disk peak: {peak[0] / 2**20:,.0f} MiB · store size: {dir_size(Path(a.store)) / 2**20:,.0f} MiB")
    print("| stage | CPU s | CPU s per M exchanges | wall s | temp peak MiB |")
    print("|---|---:|---:|---:|---:|")
    for name, lo, hi in stage_windows(tm):
        k = name + "_cpu"
        tp = max((n for s_, n in series if lo <= s_ <= hi + 0.5), default=0)
        print(f"| {name} | {tm[k]:.1f} | {tm[k] / mex:.1f} | {tm[name]:.1f} | {tp / 2**20:,.0f} |")


def stage_windows(tm: dict) -> list[tuple[str, float, float]]:
    """(stage, start, end) as Unix times, from each stage's end (``<stage>_at``) and wall seconds."""
    return [(k[:-4], tm[k[:-4] + "_at"] - tm[k[:-4]], tm[k[:-4] + "_at"]) for k in tm
            if k.endswith("_cpu") and k[:-4] + "_at" in tm]


if __name__ == "__main__":
    main()
