"""Communities where the pair graph is: Leiden on the driver while it fits, connected components beyond.

Leiden (``distillguard.graph.communities``) needs the whole pair graph in one process: measured ~460 MiB of
driver RSS per million pairs, and Leiden's CPU grows faster than the pairs (bench/leiden_bench.py: 53 CPU-s a
resolution level at 1M, 875 at 10M), so ``engine.communities.driver_max_pairs`` (10M by default, 4.8 GB and ~15
CPU-min a level) is where the driver stops. On the Spark engine a bigger pair graph never leaves
the executors: communities become the connected components of the *strong* pairs (summed weight ≥
``strong_pair_weight``: a shared card, sign-up burst, private template or schedule, not one shared /24),
found by min-label propagation in plain Spark DataFrames. Components miss what Leiden adds inside a big
connected blob (splitting two operations joined by one strong pair, the finer resolution levels), so every
resolution level gets the same components and components above ``max_component_size`` are dropped;
docs/spark.md states the trade. DuckDB never switches: it is one process anyway.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa

from distillguard.engine.config import CommunitiesConfig
from distillguard.graph.communities import LeidenGraph, communities, community_levels, leiden_graph
from distillguard.graph.edges import pair_weights
from distillguard.scan.config import GraphConfig


@dataclass
class DistributedPairs:
    """Pair weights (src, dst, weight) left on the cluster: too many to collect to the driver."""
    df: object
    n_pairs: int


class _TooLarge(Exception):
    def __init__(self, df, n: int):
        super().__init__(f"{n} rows")
        self.df, self.n = df, n


@contextmanager
def _collect_at_most(con, limit: int):
    """While active, the Spark engine's ``to_arrow_table`` refuses results above ``limit`` rows."""
    old = getattr(con, "collect_limit", None)
    con.collect_limit = limit
    try:
        yield
    finally:
        con.collect_limit = old


def pair_graph(con, cfg: GraphConfig, ccfg: CommunitiesConfig) -> pa.Table | DistributedPairs:
    """The pair weights of ``graph.edges.pair_weights`` (its SQL, unchanged): collected while at most
    ``driver_max_pairs``; on an engine that can keep them distributed, a handle beyond that."""
    if not hasattr(con, "collect_limit"):
        return pair_weights(con, cfg)
    try:
        with _collect_at_most(con, ccfg.driver_max_pairs):
            return pair_weights(con, cfg)
    except _TooLarge as e:
        return DistributedPairs(e.df, e.n)


def community_input(pairs: pa.Table | DistributedPairs) -> LeidenGraph | DistributedPairs:
    """What ``find_communities`` runs on at every resolution level, built once: the igraph graph of a
    collected pair table (one build, not one per level); distributed pairs stay as they are."""
    return leiden_graph(pairs) if isinstance(pairs, pa.Table) and pairs.num_rows else pairs


def find_communities(pairs: pa.Table | LeidenGraph | DistributedPairs, cfg: GraphConfig, ccfg: CommunitiesConfig,
                     resolution: float = 1.0) -> dict[str, int]:
    """account_id → community index (communities of at least ``min_cluster_size``), by Leiden on the
    driver or, for a ``DistributedPairs``, by connected components over strong pairs on the cluster."""
    if isinstance(pairs, DistributedPairs):
        return strong_components(pairs.df, ccfg, cfg.min_cluster_size)
    return communities(pairs, cfg, resolution)


def find_community_levels(pairs: pa.Table | LeidenGraph | DistributedPairs, cfg: GraphConfig, ccfg: CommunitiesConfig,
                          resolutions, warm: dict | None = None) -> list[dict[str, int]]:
    """``find_communities`` at every resolution: Leiden's levels in ``ccfg.leiden_workers`` processes at once
    (``warm``: starting partitions, see ``graph.communities.community_levels``)."""
    if isinstance(pairs, LeidenGraph):
        return community_levels(pairs, cfg, resolutions, ccfg.leiden_workers, warm)
    return [find_communities(pairs, cfg, ccfg, r) for r in resolutions]


def strong_components(df, ccfg: CommunitiesConfig, min_size: int) -> dict[str, int]:
    """Connected components of the pairs with weight ≥ ``strong_pair_weight`` by min-label propagation:
    every account takes the smallest account id among itself and its neighbours until nothing changes
    (rounds ≤ the graph's diameter, bounded by ``max_iterations``). Numbered like Leiden's communities:
    largest first, ties by smallest member."""
    from pyspark.sql import functions as F

    strong = df.filter(F.col("weight") >= ccfg.strong_pair_weight).select("src", "dst")
    edges = strong.unionByName(strong.select(F.col("dst").alias("src"), F.col("src").alias("dst"))).persist()
    labels = edges.select(F.col("src").alias("node")).distinct().withColumn("label", F.col("node")).localCheckpoint()
    for _ in range(ccfg.max_iterations):
        best = (edges.join(labels.withColumnRenamed("node", "src"), "src")
                .groupBy(F.col("dst").alias("node")).agg(F.min("label").alias("nb")))
        new = (labels.join(best, "node", "left")
               .select("node", F.least("label", F.coalesce("nb", "label")).alias("label")).localCheckpoint())
        changed = new.join(labels.withColumnRenamed("label", "old"), "node").filter(F.col("label") != F.col("old"))
        done = changed.limit(1).count() == 0
        labels = new
        if done:
            break
    edges.unpersist()
    sizes = labels.groupBy("label").agg(F.count("*").alias("n"), F.min("node").alias("first"))
    keep = sizes.filter((F.col("n") >= min_size) & (F.col("n") <= ccfg.max_component_size))
    rows = labels.join(keep, "label").select("node", "label", "n", "first").toArrow().to_pylist()
    order = sorted({(-r["n"], r["first"], r["label"]) for r in rows})
    index = {lab: i for i, (_, _, lab) in enumerate(order)}
    return {r["node"]: index[r["label"]] for r in rows}
