"""Communities of the coordination graph (Leiden on the summed pair weights)."""

from __future__ import annotations

import multiprocessing
import random
from dataclasses import dataclass

import igraph as ig
import leidenalg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.scan.config import GraphConfig


@dataclass
class LeidenGraph:
    """The pair graph as igraph holds it, built once and shared by every resolution level (each level used to
    rebuild the same graph from the pair table: ~1 CPU-s per million pairs a level)."""
    names: list[str]
    graph: ig.Graph


def leiden_graph(pairs: pa.Table) -> LeidenGraph:
    """Vertices are the accounts in sorted order (Leiden's result depends on the vertex order, so it is the
    order ``np.unique`` gave before: UTF-8 byte order is code point order), edge weights rounded to 6 decimals.
    The account ids are numbered by Arrow's sort and ``index_in``, not a Python-object sort of every endpoint."""
    src = pairs["src"].combine_chunks().cast(pa.string())
    dst = pairs["dst"].combine_chunks().cast(pa.string())
    both = pa.concat_arrays([src, dst])
    names = pc.unique(both)
    names = names.take(pc.sort_indices(names))
    idx = pc.index_in(both, value_set=names).to_numpy(zero_copy_only=False)
    n = len(src)
    # edges in (src, dst) vertex order, not the pair table's row order: a parallel aggregation hands its rows
    # over in a different order on every run, and Leiden's moves (and its float sums over a vertex's edges)
    # follow the edge order, so the same pairs gave different communities run to run
    order = np.lexsort((idx[n:], idx[:n]))
    edges = np.stack([idx[:n][order], idx[n:][order]], axis=1)
    g = ig.Graph(n=len(names), edges=edges.tolist(), directed=False)
    # Rounded: a pair weight is a float sum whose last digits depend on the order it was added in (Spark
    # adds in another order than DuckDB, and in another with 2 cores than with 1). Leiden breaks exact ties
    # between moves by those digits, so noise of 1e-10 moved hundreds of accounts between communities
    # (docs/benchmarks.md "Spark engine on a realistic world"); at 6 decimals both engines give it one graph.
    weights = np.round(pairs["weight"].to_numpy().astype(float)[order], 6)
    g.es["weight"] = weights.tolist()
    return LeidenGraph(names.to_pylist(), g)


def communities(pairs: pa.Table | LeidenGraph, cfg: GraphConfig, resolution: float = 1.0) -> dict[str, int]:
    """account_id → community index, for communities of at least min_cluster_size accounts. ``pairs``: the
    pair table, or its ``leiden_graph`` when several resolutions run on one graph.

    Leiden rather than Louvain because it guarantees connected communities: a cluster we
    report must be one connected group of accounts, not two unrelated ones glued by modularity.
    """
    if isinstance(pairs, pa.Table):
        if pairs.num_rows == 0:
            return {}
        pairs = leiden_graph(pairs)
    if pairs.graph.ecount() == 0:
        return {}
    membership = _leiden_membership(pairs.graph, cfg.seed, resolution, None, cfg.leiden_implementation,
                                    cfg.leiden_iterations)
    return _numbered(pairs.names, membership, cfg.min_cluster_size)


def _leiden_membership(g: ig.Graph, seed: int, resolution: float, initial: list[int] | None = None,
                       implementation: str = "leidenalg", iterations: int = 2) -> list[int]:
    """Leiden's partition of ``g`` (edge attribute ``weight``) at ``resolution``, ``iterations`` passes (igraph: a
    negative number runs until a pass no longer improves it), seeded.

    ``igraph``: igraph's own C Leiden on the modularity objective, the same quality function as leidenalg's
    ``RBConfigurationVertexPartition`` (sum over communities of internal weight minus resolution × expected
    weight under the configuration model). Measured ~10× less CPU on the same graph with modularity as high or
    higher (docs/benchmarks.md "Issue 13: igraph's Leiden"): at scale 1.0 leidenalg's level 0 alone was ~124
    CPU-s on one core while the other waited. The default since its other partitions showed two record rules
    that chained operations through one stray account (branch ``ig19``). Its random draws come from a
    ``random.Random(seed)`` installed as igraph's generator for the call only, so the partition is a fixed
    function of (graph, seed) and the global ``random`` stream is untouched. ``leidenalg``: leidenalg's
    partition, as scans used before."""
    if implementation == "leidenalg":
        part = leidenalg.find_partition(g, leidenalg.RBConfigurationVertexPartition, weights="weight",
                                        resolution_parameter=resolution, seed=seed, n_iterations=2,
                                        initial_membership=initial)
        return list(part.membership)
    ig.set_random_number_generator(random.Random(seed))
    try:
        part = g.community_leiden(objective_function="modularity", weights="weight", resolution=resolution,
                                  n_iterations=iterations, initial_membership=initial)
    finally:
        ig.set_random_number_generator(random)
    return list(part.membership)


def _initial(names: list[str], prev: dict[str, int] | None) -> list[int] | None:
    """Leiden's starting partition from an earlier one (account -> community): accounts it held keep their
    community, the others start alone."""
    if not prev:
        return None
    nxt = max(prev.values()) + 1
    out = []
    for a in names:
        c = prev.get(a)
        if c is None:
            c, nxt = nxt, nxt + 1
        out.append(c)
    return out


def _numbered(names: list[str], membership: list[int], min_size: int) -> dict[str, int]:
    """account → community index: communities of at least ``min_size``, largest first, ties by smallest vertex;
    members in vertex order (as iterating Leiden's partition lists them)."""
    groups: dict[int, list[int]] = {}
    for v, c in enumerate(membership):
        groups.setdefault(c, []).append(v)
    out: dict[str, int] = {}
    k = 0
    for members in sorted((m for m in groups.values() if len(m) >= min_size), key=lambda m: (-len(m), m[0])):
        for v in members:
            out[names[v]] = k
        k += 1
    return out


def split_groups(members: list[str], edges: list[tuple[str, str, float]], resolution: float = 1.0,
                 seed: int = 42, implementation: str = "leidenalg") -> list[list[str]]:
    """``members`` cut into groups by Leiden on ``edges`` (src, dst, weight) among them alone; an edge with an
    endpoint outside ``members`` is ignored, a member without an edge is a group of its own. Groups largest
    first, ties by smallest member; members sorted within a group. Deterministic: vertices in sorted order and
    weights rounded to 6 decimals, as ``leiden_graph`` does.

    Why: community detection on the whole graph puts two operations in one community when both hang off the
    same popular tool's users or the same home ISP; the sub-graph of a community's harvesters alone has lost
    those shared neighbours, so what still connects them is what each operation shares within itself (its
    card, proxy range, schedule). Used to cut a community's harvesting sub-cluster (``scoring.risk``)."""
    names = sorted(set(members))
    if not names:
        return []
    index = {a: i for i, a in enumerate(names)}
    summed: dict[tuple[int, int], float] = {}
    for src, dst, w in edges:
        i, j = index.get(src), index.get(dst)
        if i is None or j is None or i == j:
            continue
        key = (i, j) if i < j else (j, i)
        summed[key] = summed.get(key, 0.0) + float(w)
    if not summed:
        return [[a] for a in names]
    keys = sorted(summed)
    g = ig.Graph(n=len(names), edges=keys, directed=False)
    g.es["weight"] = [round(summed[k], 6) for k in keys]
    groups: dict[int, list[int]] = {}
    for v, c in enumerate(_leiden_membership(g, seed, resolution, implementation=implementation)):
        groups.setdefault(c, []).append(v)
    return [[names[v] for v in vs] for vs in sorted(groups.values(), key=lambda vs: (-len(vs), vs[0]))]


# the graph, seed and starting partitions a forked worker inherits (never pickled)
_SHARED: tuple[ig.Graph, int, dict, GraphConfig] | None = None


def _leiden_in_worker(resolution: float) -> list[int]:
    g, seed, initial, cfg = _SHARED  # type: ignore[misc]
    return _leiden_membership(g, seed, resolution, initial.get(resolution), cfg.leiden_implementation,
                              cfg.leiden_iterations)


def community_levels(graph: LeidenGraph, cfg: GraphConfig, resolutions: list[float] | tuple[float, ...],
                     workers: int = 1, warm: dict | None = None) -> list[dict[str, int]]:
    """``communities`` at every resolution, the levels in up to ``workers`` forked processes at once. Leiden
    holds the GIL and is single-threaded, so on one process the levels run one after another on one core;
    forked workers inherit the graph without a copy and return only each vertex's community (the same
    seed, the same graph: the same partition as in-process). Serial where fork is unavailable.

    ``warm`` (resolution -> {account: community}, updated in place): each level starts from the partition
    an earlier call found at that resolution instead of every account alone. `watch` passes one per store:
    successive windows' graphs share most of their accounts and ties, so Leiden starts near its answer and
    converges in fewer moves (about half of its CPU on the scale-0.1 replay's window graph). The partition
    can differ from a cold start's (Leiden finds a local optimum, as good or better by its quality); a scan
    never passes it."""
    if graph.graph.ecount() == 0:
        return [{} for _ in resolutions]
    initial = {r: _initial(graph.names, (warm or {}).get(r)) for r in resolutions}
    n = min(int(workers), len(resolutions))
    if n <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        memberships = [_leiden_membership(graph.graph, cfg.seed, r, initial[r], cfg.leiden_implementation,
                                          cfg.leiden_iterations) for r in resolutions]
    else:
        global _SHARED
        _SHARED = (graph.graph, cfg.seed, initial, cfg)
        try:
            pool = multiprocessing.get_context("fork").Pool(n)
            try:
                memberships = pool.map(_leiden_in_worker, list(resolutions), chunksize=1)
            finally:
                pool.close()
                pool.join()  # reaped: the workers' CPU counts in the scan's (RUSAGE_CHILDREN)
        finally:
            _SHARED = None
    if warm is not None:
        for r, m in zip(resolutions, memberships, strict=True):
            warm[r] = dict(zip(graph.names, m, strict=True))
    return [_numbered(graph.names, m, cfg.min_cluster_size) for m in memberships]


class UnionFind:
    """Groups joined pair by pair, where the next join depends on the groups so far (a pair already in one
    group needs no costly test): the join rules for operations, organisations and campaign merges."""

    def __init__(self, items) -> None:
        self.parent = {x: x for x in items}

    def find(self, x):
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a, b) -> None:
        self.parent[self.find(a)] = self.find(b)

    def groups(self) -> dict:
        """root → members, in the items' order."""
        out: dict = {}
        for x in self.parent:
            out.setdefault(self.find(x), []).append(x)
        return out
