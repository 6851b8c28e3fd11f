"""Time `distillguard bench --family K` and print its summary: wall, CPU of the child tree, peak RSS.

    PYTHONPATH=$PWD .venv/bin/python bench/family_bench.py --k 20 --out /tmp/fam [--no-replay] [--family mixed]

The family bench itself samples, simulates, scans (`distillguard scan`, default settings) and scores each world;
this wrapper only measures it, so the figure in docs/benchmarks.md is what a user's run costs.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--family", default="mixed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-replay", action="store_true")
    a = ap.parse_args()
    cmd = [sys.executable, "-m", "distillguard", "bench", "--family", str(a.k), "--family-name", a.family,
           "--seed", str(a.seed), "--out", str(a.out), "--json"] + (["--no-replay"] if a.no_replay else [])
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"bench failed (exit {p.returncode}): {p.stderr[-2000:]}")
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    s = json.loads(p.stdout)["summary"]
    print(json.dumps({"k": a.k, "family": a.family, "replay": not a.no_replay, "wall_seconds": round(wall, 1),
                      "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 1), "peak_rss_mib": round(ru.ru_maxrss / 1024),
                      "summary": s}, indent=2, default=str))


if __name__ == "__main__":
    main()
