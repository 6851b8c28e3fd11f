"""Simulator speed: generate a world and report exchanges/s (wall and per CPU-second), memory and disk.

    PYTHONPATH=. python bench/sim_bench.py --config default --scale 0.1 --responses lengths

Prints one JSON object; docs/benchmarks.md records the runs. The machine is shared, so the load
average at start and end is part of the record, and CPU-seconds are the steadier number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="default")
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--responses", choices=["text", "lengths"], default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="Write the world here and keep it.")
    a = ap.parse_args()

    from distillguard.sim.config import load_world
    from distillguard.sim.run import simulate

    spec, base = load_world(a.config)
    if a.responses:
        spec = spec.model_copy(update={"responses": a.responses})
    tmp = None
    out = a.keep
    if out is None:
        tmp = tempfile.mkdtemp(prefix="simbench-")
        out = Path(tmp) / "world"
    load0 = os.getloadavg()
    r0s, r0c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    summary = simulate(spec, base, out, scale=a.scale, seed=a.seed, workers=a.workers)
    wall = time.perf_counter() - t0
    r1s, r1c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1s.ru_utime + r1s.ru_stime - r0s.ru_utime - r0s.ru_stime
           + r1c.ru_utime + r1c.ru_stime - r0c.ru_utime - r0c.ru_stime)
    disk = int(subprocess.run(["du", "-sb", str(out)], capture_output=True, text=True).stdout.split()[0])
    n = summary["exchanges"]
    res = {
        "config": a.config, "scale": a.scale, "responses": spec.responses, "workers": summary["workers"],
        "exchanges": n, "accounts": summary["accounts"], "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
        "exchanges_per_s_wall": round(n / wall), "exchanges_per_cpu_s": round(n / cpu) if cpu else None,
        "peak_rss_mb_parent": round(r1s.ru_maxrss / 1024), "peak_rss_mb_worker": round(r1c.ru_maxrss / 1024),
        "disk_mb": round(disk / 2**20, 1), "bytes_per_exchange_on_disk": round(disk / n) if n else None,
        "load_avg_start": [round(x, 1) for x in load0], "load_avg_end": [round(x, 1) for x in os.getloadavg()],
        "cpus": os.cpu_count(), "cpu_model": _cpu_model(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(res, indent=2))
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
