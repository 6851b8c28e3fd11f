"""The pair graph does not depend on the order rows arrive in: a parallel aggregation hands them over in a
different order on every run, and a float sum's last digits (on which Leiden and ``keep_highest`` break ties)
follow that order (docs/benchmarks.md "Reproducible scans")."""

import duckdb
import numpy as np
import pyarrow as pa

from distillguard.graph.communities import communities, leiden_graph
from distillguard.graph.edges import pair_weights
from distillguard.scan.base import exact_sum
from distillguard.scan.config import GraphConfig

KINDS = ["ip24", "ja4", "template", "sync", "payment"]


def _edges(seed: int = 1, n_acc: int = 300, n: int = 60_000) -> pa.Table:
    rng = np.random.default_rng(seed)
    # accounts in groups of ten, so Leiden has communities to find; many edges per pair, so each pair weight
    # is a sum of many terms whose last digits depend on the order they are added in
    a = rng.integers(0, n_acc, n)
    b = (a // 10) * 10 + rng.integers(0, 10, n)
    b = np.where(rng.random(n) < 0.1, rng.integers(0, n_acc, n), b)
    keep = a != b
    a, b = a[keep], b[keep]
    src = [f"acc-{min(x, y):04d}" for x, y in zip(a, b, strict=True)]
    dst = [f"acc-{max(x, y):04d}" for x, y in zip(a, b, strict=True)]
    return pa.table({"src": src, "dst": dst, "kind": [KINDS[i] for i in rng.integers(0, len(KINDS), len(src))],
                     "entity": [f"e{i}" for i in rng.integers(0, 50, len(src))],
                     "weight": rng.random(len(src)) * 0.37})


def _pairs(edges: pa.Table, order: np.ndarray, cfg: GraphConfig) -> pa.Table:
    con = duckdb.connect()
    con.execute("SET threads=4")
    con.register("_e", edges.take(pa.array(order)))
    con.execute("CREATE TABLE edges AS SELECT * FROM _e")
    return pair_weights(con, cfg)


def test_pair_weights_do_not_depend_on_row_order():
    cfg = GraphConfig()
    edges = _edges()
    rng = np.random.default_rng(5)
    a = _pairs(edges, np.arange(edges.num_rows), cfg)
    b = _pairs(edges, rng.permutation(edges.num_rows), cfg)
    key = [("src", "ascending"), ("dst", "ascending")]
    assert a.sort_by(key).equals(b.sort_by(key))  # bit for bit, not approximately
    # and the graph Leiden gets (edge order and weights) and its communities are the same for either row order
    ga, gb = leiden_graph(a), leiden_graph(b.take(pa.array(rng.permutation(b.num_rows))))
    assert ga.names == gb.names
    assert ga.graph.get_edgelist() == gb.graph.get_edgelist()
    assert ga.graph.es["weight"] == gb.graph.es["weight"]
    assert communities(ga, cfg) == communities(gb, cfg)


def test_exact_sum_is_the_same_in_any_order():
    rng = np.random.default_rng(3)
    x = rng.random(200_000) * 10 ** rng.uniform(-6, 3, 200_000)
    con = duckdb.connect()
    sums = set()
    for seed in range(3):
        con.register("_x", pa.table({"x": x[np.random.default_rng(seed).permutation(len(x))]}))
        sums.add(con.execute(f"SELECT {exact_sum('x')} FROM _x").fetchall()[0][0])
        con.unregister("_x")
    assert len(sums) == 1
    assert abs(sums.pop() - float(np.sum(x))) <= 1e-9 * len(x)
