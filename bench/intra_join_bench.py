"""Why the intra-cluster edge join (`_intra` in distillguard/scoring/risk.py score_clusters) is super-linear.

    python bench/intra_join_bench.py [--accounts 20000] [--edges 200000]
    python bench/intra_join_bench.py --store WORLD_DIR     # the real edges and coarse communities of a store

The same edges (random pairs over N accounts) are split into fewer and larger clusters. The query as first written
(`edges ⋈ _mem ms ON src ⋈ _mem md ON dst AND md.cl = ms.cl`) lets DuckDB's planner join the membership table
with itself on the cluster id first (it has no statistics on a registered Arrow table), so its cost grows with
the sum over clusters of size² — 10,000-account communities make 10⁸ pairs before a single edge is read.
Looking up each endpoint's cluster separately and comparing afterwards costs one pass over the edges whatever
the cluster sizes. Prints CPU seconds per variant and cluster count (the quadratic variant is skipped once its
pair count passes --max-pairs).
"""

from __future__ import annotations

import argparse
import time

import duckdb
import numpy as np
import pyarrow as pa

AS_WRITTEN = """SELECT e.src, e.dst, e.kind, e.entity, e.weight, ms.cl FROM edges e
    JOIN _mem ms ON ms.account_id = e.src JOIN _mem md ON md.account_id = e.dst AND md.cl = ms.cl"""
LINEAR = """WITH s AS MATERIALIZED (SELECT e.src, e.dst, e.kind, e.entity, e.weight, m.cl
                                 FROM edges e JOIN _mem m ON m.account_id = e.src),
         d AS MATERIALIZED (SELECT s.*, m.cl AS cl_dst FROM s JOIN _mem m ON m.account_id = s.dst)
    SELECT src, dst, kind, entity, weight, cl FROM d WHERE cl = cl_dst"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=20000)
    ap.add_argument("--edges", type=int, default=200000)
    ap.add_argument("--max-pairs", type=float, default=3e7)
    ap.add_argument("--store", default=None, help="measure on this store's edges and level-0 communities instead")
    a = ap.parse_args()
    if a.store:
        on_store(a.store)
        return
    con = duckdb.connect()
    con.execute("SET threads=1")
    rng = np.random.default_rng(1)
    con.register("_e", pa.table({"src": rng.integers(0, a.accounts, a.edges).astype(str),
                                 "dst": rng.integers(0, a.accounts, a.edges).astype(str)}))
    con.execute("CREATE TEMP TABLE edges AS SELECT src, dst, 'ip24' AS kind, 'e' AS entity, 1.0 AS weight FROM _e")
    print(f"{a.accounts:,} accounts, {a.edges:,} edges; CPU seconds to build _intra")
    print("| clusters | accounts per cluster | as written | endpoint lookups |")
    print("|---:|---:|---:|---:|")
    for n_cl in (2000, 200, 20, 2):
        ids = [str(i) for i in range(a.accounts)]
        con.register("_mem", pa.table({"account_id": ids, "cl": [i % n_cl for i in range(a.accounts)]}))
        size = a.accounts // n_cl
        row = [f"{n_cl:,}", f"{size:,}"]
        for q in (AS_WRITTEN, LINEAR):
            if q is AS_WRITTEN and n_cl * size * size > a.max_pairs:
                row.append(f"skipped ({n_cl * size * size:.0e} member pairs)")
                continue
            t = time.process_time()
            con.execute("CREATE OR REPLACE TEMP TABLE _intra AS " + q)
            row.append(f"{time.process_time() - t:.2f}")
        print("| " + " | ".join(row) + " |")



def on_store(path: str) -> None:
    """Both forms on a store's own graph (after signals): same rows, same checksum, CPU seconds each."""
    from collections import Counter

    from distillguard.behavior import account_features
    from distillguard.graph import communities, coordination_edges, incidence
    from distillguard.graph.edges import pair_weights
    from distillguard.scan.config import ScanConfig
    from distillguard.scan.engine import prepare
    from distillguard.scoring import account_suspicion
    from distillguard.store import Store

    cfg = ScanConfig()
    con, sigs = prepare(Store(path), cfg)
    feats = account_suspicion(account_features(con, sigs, cfg.behavior, None), tuple(cfg.behavior.non_intent_signals))
    incidence(con, cfg.graph, feats, None)
    coordination_edges(con, cfg.graph, cfg.scoring.declared_org_verification)
    m = communities(pair_weights(con, cfg.graph), cfg.graph, cfg.graph.resolutions[0])
    sizes = sorted(Counter(m.values()).values(), reverse=True)
    n_edges = con.execute("SELECT count(*) FROM edges").fetchall()[0][0]
    print(f"{n_edges:,} edges; {len(sizes)} communities at resolution {cfg.graph.resolutions[0]}, largest "
          f"{sizes[:3]}, sum of size² {sum(x * x for x in sizes):,}")
    con.register("_mem", pa.table({"account_id": list(m), "cl": list(m.values())}))
    for name, q in (("as written", AS_WRITTEN), ("endpoint lookups", LINEAR)):
        t = time.process_time()
        con.execute("CREATE OR REPLACE TEMP TABLE _intra AS " + q)
        dt = time.process_time() - t
        n, h = con.execute("SELECT count(*), sum(hash(src, dst, kind, entity, cl)) FROM _intra").fetchall()[0]
        print(f"{name}: {dt:.2f} CPU s, {n:,} rows, checksum {h}")


if __name__ == "__main__":
    main()
