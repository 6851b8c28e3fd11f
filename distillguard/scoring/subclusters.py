"""Sub-clusters scored beside the communities they were cut from: harvesting sub-clusters (the members whose
own traffic is in the store's harvest-shape tail, cut into operations) and shared-entity sub-clusters.

A quiet pool mixed into a community of ordinary users is a minority of it, and what it shares never reaches half
the community; scored on its own, the pool's evidence is not diluted by the users it happens to sit beside. Split
out of ``risk.py`` (which scores every cluster, whatever made it) so each module reads as one stage.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from distillguard.graph.communities import UnionFind, split_groups
from distillguard.graph.edges import KIND_GROUP, pair_weights, party_key
from distillguard.scan.config import GraphConfig, ScoringConfig


def harvest_tail(feats: pa.Table, quantile: float) -> set[str]:
    """The accounts whose harvest shape is at or above the store's ``quantile`` (the harvesting sub-clusters'
    members are picked from them)."""
    if feats.num_rows == 0 or "c_harvest_shape" not in feats.column_names:
        return set()
    s = feats["c_harvest_shape"].to_numpy(zero_copy_only=False)
    cut = max(float(np.quantile(s, quantile)), 1e-9)
    return {a for a, v in zip(feats["account_id"].to_pylist(), s, strict=True) if v >= cut}


def harvest_subclusters(membership: dict[str, int], feats: pa.Table, cfg: ScoringConfig,
                        con: duckdb.DuckDBPyConnection | None = None, graph: GraphConfig | None = None) -> dict[str, int]:
    """Inside each cluster, the members whose harvesting shape (long single-turn answers, the account model's
    ``harvest_shape`` component) is at or above the store's ``harvest_quantile``,
    when at least ``harvest_min_accounts`` of them: a quiet pool mixed into a community of ordinary users is a
    minority of it, and what it shares never reaches half the community. Calibrated to the store: the same
    quantile on a 5k-request log and on a production store.

    With ``con`` (its ``edges`` table) and ``graph``, a community's harvesters are cut into operations
    (``_split_harvesters``, ``harvest_split_resolution``): two operations in one community are two sub-clusters,
    so two campaign records. The largest piece keeps the community's index (a sub-cluster carries its parent's
    id where nothing was cut); further pieces are numbered after the last community."""
    if cfg.harvest_quantile >= 1 or feats.num_rows == 0 or "c_harvest_shape" not in feats.column_names:
        return {}
    high = harvest_tail(feats, cfg.harvest_quantile)
    sub = {a: c for a, c in membership.items() if a in high}
    n: dict[int, int] = {}
    for c in sub.values():
        n[c] = n.get(c, 0) + 1
    sub = {a: c for a, c in sub.items() if n[c] >= cfg.harvest_min_accounts}
    if con is None or graph is None or cfg.harvest_split_resolution is None or not sub:
        return sub
    return _split_harvesters(con, sub, feats, cfg, graph, next_id=max(membership.values()) + 1)


def _split_harvesters(con: duckdb.DuckDBPyConnection, sub: dict[str, int], feats: pa.Table, cfg: ScoringConfig,
                      graph: GraphConfig, next_id: int) -> dict[str, int]:
    """Each community's harvesters cut by Leiden on the pair weights among them alone (``split_groups``),
    pieces of the same workload joined back (``harvest_same_workload``). The cut stands only when at least two
    pieces of ``harvest_min_accounts`` remain: otherwise the community keeps one sub-cluster as before, so a
    single operation whose members happen not to be tied pairwise (a pool joined by a sign-up burst seen only
    through the rest of the community) is not scattered. A harvester in a smaller piece (or tied to no other
    harvester) joins the piece it has the most pair weight to, else the one whose workload is nearest: it was
    a harvester of this community, and dropping it would lose a member the uncut sub-cluster flagged."""
    con.register("_hv", pa.table({"account_id": list(sub)}))
    try:
        pairs = pair_weights(con, graph, among="_hv")
    finally:
        con.unregister("_hv")
    by_comm: dict[int, list[str]] = {}
    for a, c in sub.items():
        by_comm.setdefault(c, []).append(a)
    edges_of: dict[int, list[tuple[str, str, float]]] = {}
    for src, dst, w in zip(pairs["src"].to_pylist(), pairs["dst"].to_pylist(), pairs["weight"].to_pylist(),
                           strict=True):
        if sub[src] == sub[dst]:
            edges_of.setdefault(sub[src], []).append((src, dst, float(w)))
    work = _workloads(feats, set(sub))
    out = dict(sub)
    for c in sorted(by_comm):
        pieces = split_groups(by_comm[c], edges_of.get(c, []), cfg.harvest_split_resolution, graph.seed,
                              graph.leiden_implementation)
        pieces = _same_workload(pieces, work, cfg.harvest_same_workload, cfg.harvest_min_accounts)
        big = [p for p in pieces if len(p) >= cfg.harvest_min_accounts]
        if len(big) < 2:
            continue
        tie: dict[tuple[str, int], float] = {}
        at = {a: i for i, p in enumerate(big) for a in p}
        for src, dst, w in edges_of.get(c, []):
            for a, b in ((src, dst), (dst, src)):
                if a not in at and b in at:
                    tie[(a, at[b])] = tie.get((a, at[b]), 0.0) + w
        for p in pieces:
            if len(p) >= cfg.harvest_min_accounts:
                continue
            for a in p:
                ws = [tie.get((a, i), 0.0) for i in range(len(big))]
                i = int(np.argmax(ws)) if max(ws) > 0 else \
                    int(np.argmax([_cosine(work[a], _mean(big_i, work)) for big_i in big]))
                big[i].append(a)
        for i, p in enumerate(big):
            k = c if i == 0 else next_id
            if i:
                next_id += 1
            out.update({a: k for a in p})
    return out


def _workloads(feats: pa.Table, accounts: set[str]) -> dict[str, np.ndarray]:
    """Each account's workload: what it asks the model for — every signal's hit share (``share_*``: reasoning
    elicitation, grading, agentic tool harvest, coding, ...) and its reasoning, tool and image shares."""
    cols = sorted(c for c in feats.column_names if c.startswith("share_"))
    cols += [c for c in ("reasoning_share", "tools_share", "images_share") if c in feats.column_names]
    ids = feats["account_id"].to_pylist()
    keep = [i for i, a in enumerate(ids) if a in accounts]
    t = feats.select(cols).take(pa.array(keep, pa.int64())) if cols else None
    mat = np.zeros((len(keep), len(cols)))
    for j, col in enumerate(cols):
        mat[:, j] = np.nan_to_num(np.asarray(t[col].to_numpy(zero_copy_only=False), dtype=float))
    return {ids[i]: mat[r] for r, i in enumerate(keep)}


def _mean(members: list[str], work: dict[str, np.ndarray]) -> np.ndarray:
    vs = [work[a] for a in members if a in work]
    return np.mean(vs, axis=0) if vs else np.zeros(0)


def _cosine(x: np.ndarray, y: np.ndarray) -> float:
    """Cosine similarity; two empty workloads (no signal fired for either) are the same, one empty one is not."""
    if x.size == 0 or y.size == 0:
        return 1.0 if x.size == y.size else 0.0
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0 or ny == 0:
        return 1.0 if nx == ny else 0.0
    return float(np.dot(x, y) / (nx * ny))


def _same_workload(pieces: list[list[str]], work: dict[str, np.ndarray], threshold: float,
                   min_size: int) -> list[list[str]]:
    """Pieces whose mean workloads have a cosine similarity of at least ``threshold`` joined (transitively),
    largest first; only pieces of at least ``min_size`` accounts (``harvest_min_accounts``: those that could be
    a sub-cluster) are compared — a lone harvester's or a pair's shares are too noisy to speak for an operation,
    and one similar to two operations would chain them; ``_split_harvesters`` places such members by their ties."""
    if len(pieces) < 2:
        return pieces
    means = [_mean(p, work) for p in pieces]
    uf = UnionFind(range(len(pieces)))
    for i in range(len(pieces)):
        for j in range(i + 1, len(pieces)):
            if min(len(pieces[i]), len(pieces[j])) >= min_size and _cosine(means[i], means[j]) >= threshold:
                uf.union(j, i)
    joined = [sorted(a for i in idx for a in pieces[i]) for idx in uf.groups().values()]
    return sorted(joined, key=lambda p: (-len(p), p[0]))


def entity_subclusters(con: duckdb.DuckDBPyConnection, membership: dict[str, int], cfg: ScoringConfig) -> dict[str, int]:
    """Inside each community, the holders of one entity of ``entity_core_kinds`` (a card) held by at least
    ``entity_core_min_parties`` of its parties, as a group of their own (needs table ``inc`` and ``accounts``).
    A hydra's accounts early in its life sit in communities of ordinary users they share a home /24 or a
    public template with; their card never reaches half of such a community, so the community stays weakly
    coordinated and its pooled traffic unread. An account holding several such entities joins the group of the
    one most parties hold (ties: the entity's name, so the cut is the same on every run). A group that is the
    whole community is left out (the community is scored already)."""
    kinds = [k for k in cfg.entity_core_kinds if k in KIND_GROUP]
    if not kinds or not membership:
        return {}
    con.register("_emem", pa.table({"account_id": list(membership), "cl": list(membership.values())}))
    kind_list = ", ".join(f"'{k}'" for k in kinds)
    rows = con.execute(f"""
        WITH h AS (SELECT m.cl, i.account_id, i.kind, i.entity,
                          {party_key('acc', 'i.account_id', cfg.declared_org_verification)} AS party
                   FROM inc i JOIN _emem m USING (account_id) LEFT JOIN accounts acc USING (account_id)
                   WHERE i.kind IN ({kind_list})),
        e AS (SELECT cl, kind, entity, count(DISTINCT party) AS np FROM h GROUP BY 1, 2, 3
              HAVING count(DISTINCT party) >= {int(cfg.entity_core_min_parties)}),
        pick AS (SELECT h.account_id, h.cl, e.kind, e.entity,
                        row_number() OVER (PARTITION BY h.account_id ORDER BY e.np DESC, e.kind, e.entity) AS rk
                 FROM h JOIN e USING (cl, kind, entity))
        SELECT account_id, cl, kind, entity FROM pick WHERE rk = 1""").fetchall()
    con.unregister("_emem")
    size: dict[int, int] = {}
    for c in membership.values():
        size[c] = size.get(c, 0) + 1
    groups: dict[tuple, list[str]] = {}
    for a, c, k, e in rows:
        groups.setdefault((c, k, e), []).append(a)
    out: dict[str, int] = {}
    for i, (key, accts) in enumerate(sorted(groups.items())):
        if len(accts) >= 2 and len(accts) < size[key[0]]:
            out.update({a: i for a in accts})
    return out
