"""How big a pair graph Leiden on the driver takes: CPU-seconds and peak RSS of ``graph.communities`` (the
exact call both engines make per resolution level) on synthetic pair graphs of N pairs.

    PYTHONPATH=$PWD python bench/leiden_bench.py --pairs 1000000,3000000,10000000 [--implementation igraph]

Graph: ~28 pairs per account (the scale-0.1 world's 256,403 pairs over 9,188 accounts), planted groups of 25
accounts whose internal pairs are heavy (weight 2–5) plus light random pairs (weight 0.2–1) across the whole
population, the shape a month's pair table has (campaigns in a sea of weak shared-infrastructure pairs). Each
size runs in its own process: peak RSS (ru_maxrss) is that size's own, Arrow table of the pairs included.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pairs_table(n_pairs: int, seed: int = 1):
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    n_acc = max(100, n_pairs // 28)
    group = 25
    n_groups = n_acc // group // 10  # a tenth of the accounts in planted groups
    within = n_groups * group * (group - 1) // 2
    gi = np.repeat(np.arange(n_groups), group * (group - 1) // 2)
    iu, ju = np.triu_indices(group, 1)
    src_g = gi * group + np.tile(iu, n_groups)
    dst_g = gi * group + np.tile(ju, n_groups)
    n_rand = max(0, n_pairs - within)
    a = rng.integers(0, n_acc, n_rand)
    b = rng.integers(0, n_acc, n_rand)
    keep = a != b
    src = np.concatenate([src_g, np.minimum(a, b)[keep]])
    dst = np.concatenate([dst_g, np.maximum(a, b)[keep]])
    w = np.concatenate([rng.uniform(2, 5, len(src_g)), rng.uniform(0.2, 1.0, int(keep.sum()))])
    ids = np.char.add("acct-", np.arange(n_acc).astype(str))
    return pa.table({"src": pa.array(ids[src]), "dst": pa.array(ids[dst]), "weight": pa.array(w)}), n_acc, n_groups


def one(n_pairs: int, implementation: str = "leidenalg") -> dict:
    from distillguard.graph.communities import communities
    from distillguard.scan.config import GraphConfig

    t, n_acc, n_groups = pairs_table(n_pairs)
    rss_table = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    c0, w0 = time.process_time(), time.perf_counter()
    out = communities(t, GraphConfig(leiden_implementation=implementation), resolution=1.0)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return {"pairs": t.num_rows, "accounts": n_acc, "planted_groups": n_groups, "clustered": len(out),
            "communities": len(set(out.values())), "leiden_cpu": cpu, "leiden_wall": wall,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "rss_after_table": rss_table,
            "load": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", default="1000000,3000000,10000000")
    ap.add_argument("--implementation", default="leidenalg", choices=["igraph", "leidenalg"],
                    help="graph.leiden_implementation (the scan's default: igraph)")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print("RESULT " + json.dumps(one(a.one, a.implementation)))
        return
    print("| pairs | accounts | Leiden CPU s | wall s | peak RSS MiB (of which pairs table + process) | load |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in (int(x) for x in a.pairs.split(",")):
        r = subprocess.run([sys.executable, __file__, "--one", str(n), "--implementation", a.implementation],
                           capture_output=True, text=True)
        line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(r.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"{n} pairs failed")
        d = json.loads(line[7:])
        print(f"| {d['pairs']:,} | {d['accounts']:,} | {d['leiden_cpu']:.1f} | {d['leiden_wall']:.1f} | "
              f"{d['peak_rss'] / 2**20:,.0f} ({d['rss_after_table'] / 2**20:,.0f}) | {d['load']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
