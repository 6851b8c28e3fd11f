"""Scaling of the exchange-id index (exactly-once ingest) to tens of millions of ids.

Usage:
    PYTHONPATH=$PWD python bench/dedup_bench.py --ids 30000000 --workdir /tmp/dg-dedup-bench

Feeds the index the way ingest does: batches of 50,000 ids, each checked with ``contains`` and
the new ones added (which may trigger merges). One id in ten is a repeat of an earlier id, so
lookups hit as well as miss. Prints, at each checkpoint, the ids per second over the last
interval (flat = linear total time), the number of runs, the index size on disk and the peak
RSS of this process. Memory-mapped index pages count towards RSS only while touched; they are
the page cache's, not the heap's.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

import numpy as np

from distillguard.store.ids import IdIndex, hash_ids

BATCH = 50_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=int, default=30_000_000)
    ap.add_argument("--workdir", default="/tmp/dg-dedup-bench")
    ap.add_argument("--every", type=int, default=2_500_000, help="checkpoint interval (ids)")
    args = ap.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    (work / "exchanges").mkdir(parents=True)
    rng = np.random.default_rng(7)
    fed = next_id = dups = 0
    t0 = t_last = time.perf_counter()
    cpu_last = time.process_time()
    last_fed = 0
    with IdIndex(work) as ix:
        while fed < args.ids:
            n = min(BATCH, args.ids - fed)
            fresh = np.arange(next_id, next_id + n, dtype=np.int64)
            if next_id:  # one in ten ids repeats an earlier one
                rep = rng.random(n) < 0.1
                fresh[rep] = rng.integers(0, next_id, int(rep.sum()))
            next_id += n
            ids = [f"req_{i:012d}" for i in fresh.tolist()]
            hi, lo = hash_ids(ids)
            new = ~ix.contains(hi, lo)
            ix.add(hi[new], lo[new])
            dups += int((~new).sum())
            fed += n
            if fed - last_fed >= args.every or fed >= args.ids:
                now, cpu = time.perf_counter(), time.process_time()
                disk = sum(p.stat().st_size for p in (work / "ids").glob("run-*"))
                print(json.dumps({"ids_fed": fed, "index_keys": len(ix), "duplicates_found": dups,
                                  "ids_per_s_interval": round((fed - last_fed) / (now - t_last)),
                                  "ids_per_cpu_s_interval": round((fed - last_fed) / max(cpu - cpu_last, 1e-9)),
                                  "elapsed_s": round(now - t0, 1), "runs": ix.runs,
                                  "index_mib": round(disk / 2**20), "peak_rss_mib":
                                  round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}), flush=True)
                t_last, last_fed, cpu_last = now, fed, cpu
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
