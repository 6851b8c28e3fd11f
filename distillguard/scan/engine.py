"""The detection pipeline: base projection → behaviour → graph → scoring (→ campaigns in scan).

``prepare`` does the once-per-scan work (project exchanges, fold partials); ``detect_step``
does the per-time-step work (roll partials up to ``until``, build the graph, score). A full scan
is one step with ``until=None``; replay is many steps with growing ``until``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.behavior import account_features, build_partials
from distillguard.engine.communities import community_input, find_community_levels, pair_graph
from distillguard.graph import build_graph_partials, coordination_edges, dense_blocks, incidence
from distillguard.graph.denseblock import Block
from distillguard.graph.edges import KIND_GROUP
from distillguard.graph.operations import joining_holders, operation_groups
from distillguard.scan.base import build_base
from distillguard.scan.chunks import fold_slices, time_slices
from distillguard.scan.config import ScanConfig, ScoringConfig
from distillguard.scoring import account_suspicion, score_clusters
from distillguard.scoring.poolshare import window_view as pool_share_window
from distillguard.scoring.risk import ClusterScore
from distillguard.scoring.subclusters import entity_subclusters, harvest_subclusters
from distillguard.scoring.workload import score_workload_groups, workload_groups
from distillguard.store import Store


@dataclass
class StepResult:
    until: datetime | None
    features: pa.Table          # account_features + suspicion components
    edges: pa.Table             # coordination_edges
    clusters: list[ClusterScore]
    account_risk: pa.Table      # account_id, risk, cluster_id, reasons
    blocks: list[Block]
    membership: dict[str, int]


def open_connection(store: Store, cfg: ScanConfig) -> duckdb.DuckDBPyConnection:
    con = store.connect(threads=cfg.threads, memory_limit=cfg.memory_limit)  # spills where store.spill says
    if store.spill is None:  # called outside run_scan: still under the store, never DuckDB's ./.tmp
        (store.path / "tmp").mkdir(exist_ok=True)
        tmp = str(store.path / "tmp" / f"conn-{uuid.uuid4().hex[:12]}").replace("'", "''")
        con.execute(f"SET temp_directory='{tmp}'")
    con.execute("SET preserve_insertion_order=false")
    # The scan's tables in a compressed database: the partial tables are mostly repeated account, entity and
    # hour values, 8x smaller compressed (268 → 33 MiB at scale 0.01). Compression happens at CHECKPOINT
    # (prepare runs one per slice). Under run_scan (store.spill set) the database is a file in the run's spill
    # directory: its blocks live on disk once, compressed, and the buffer pool drops and re-reads them at will.
    # In memory (``:memory:``) every block the pool evicts past memory_limit is written to the spill files
    # instead, and at scale 1.0 the partials alone outgrow memory_limit, so operators spilled on top of them.
    where = _scan_database(store, cfg)
    con.execute(f"ATTACH {where} AS dg_scan" + (" (COMPRESS)" if where == "':memory:'" else ""))
    con.execute("USE dg_scan")
    store.register_views(con)
    return con


def _scan_database(store: Store, cfg: ScanConfig) -> str:
    """SQL literal of where the scan's tables live: a fresh file in the spill directory when the scan owns one
    and ``cfg.tables_on_disk``, else memory."""
    if store.spill is None or not cfg.tables_on_disk:
        return "':memory:'"
    root = store.spill[0]
    root.mkdir(parents=True, exist_ok=True)
    return "'" + str(root / f"dg_scan-{uuid.uuid4().hex[:12]}.duckdb").replace("'", "''") + "'"


def prepare(store: Store, cfg: ScanConfig, con: duckdb.DuckDBPyConnection | None = None,
            done: Callable[[int, int, int], None] | None = None) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """The partial tables, built one slice of days at a time (distillguard/scan/chunks.py: the per-exchange
    projection of a slice, not of the store, is what spills). ``done(rows done, total, rows of the slice now
    starting)`` before the first slice and after each one (the scan's progress bar)."""
    con = con or open_connection(store, cfg)

    # a distributed engine (Spark) partitions and spills by itself: one pass over every exchange there
    duck = isinstance(con, duckdb.DuckDBPyConnection)

    def build(where: str | None, into: Callable[[str], str]) -> tuple[list[str], list[str]]:
        # a slice's projection as a TEMP table (never compressed and written into the scan's database); its
        # partials straight into the tables of all slices (distillguard/scan/chunks.py), which fold the tables
        # named here
        sigs = build_base(con, store, where, temp=duck)
        made = build_partials(con, sigs, cfg.behavior, into) + build_graph_partials(con, cfg.graph, into)
        con.execute("DROP TABLE ex")  # everything after this works on partials only
        return sigs, made

    slices = time_slices(con, store.exchanges_sql(["ts"]), cfg.prepare_chunk_rows) if duck else []
    rows = [n for _, n in slices] or [0]
    total, k = sum(rows), [0]

    def step(_n: int) -> None:
        if duck:  # compress the rows this slice added (open_connection's database compresses at checkpoints)
            con.execute("CHECKPOINT")
        k[0] += 1
        if done:
            done(sum(rows[:k[0]]), total, rows[k[0]] if k[0] < len(rows) else 0)

    if done:
        done(0, total, rows[0])
    sigs = fold_slices(con, slices, build, step, checkpoint=(lambda: con.execute("CHECKPOINT")) if duck else None)
    return con, sigs


def detect_step(con: duckdb.DuckDBPyConnection, sigs: list[str], cfg: ScanConfig,
                until: datetime | None = None, mark: Callable[[str], None] | None = None,
                since: datetime | None = None, warm: dict | None = None) -> StepResult:
    """One evaluation of the graph and scores. ``mark(name)`` is called as each part finishes (the scan
    times the parts and moves its progress bar with it). ``since``: on the traffic of ``[since, until)`` only
    (a windowed replay step), accounts active in it. ``warm``: Leiden's starting partitions, kept across
    calls (`watch`; ``graph.communities.community_levels``)."""
    mark = mark or (lambda _name: None)
    feats = account_suspicion(account_features(con, sigs, cfg.behavior, until, since),
                              tuple(cfg.behavior.non_intent_signals), cfg.scoring.account_model)
    mark("features")
    incidence(con, cfg.graph, feats, until, since)
    if cfg.scoring.pool_share_reading:  # the window's account × system prompt sums (scoring/poolshare.py)
        pool_share_window(con, sigs, tuple(cfg.behavior.non_intent_signals), until, since)
    mark("incidence")
    edges = coordination_edges(con, cfg.graph, cfg.scoring.declared_org_verification)
    mark("edges")
    pairs = pair_graph(con, cfg.graph, cfg.engine.communities)  # Arrow; distributed on Spark beyond the limit
    mark("pairs")
    inc = con.sql("SELECT account_id, kind, entity, w FROM inc").to_arrow_table()
    blocks = dense_blocks(inc, cfg.graph.dense_blocks, cfg.graph.dense_epsilon, cfg.graph.min_cluster_size)
    mark("dense_blocks")
    clusters, risk, membership = score_levels(con, feats, pairs, blocks, cfg, mark, warm)
    flagged = pa.compute.greater_equal(risk["risk"], cfg.scoring.flag_threshold)
    risk = risk.append_column("flagged", flagged)
    return StepResult(until, feats, edges, clusters, risk, blocks, membership)


def score_levels(con: duckdb.DuckDBPyConnection, feats: pa.Table, pairs, blocks: list[Block], cfg: ScanConfig,
                 mark: Callable[[str], None] | None = None,
                 warm: dict | None = None) -> tuple[list[ClusterScore], pa.Table, dict[str, int]]:
    """Communities at every resolution level, each scored (with its harvesting sub-clusters); every account
    takes the level where its risk is highest. Returns the clusters, the account_risk-shaped table (without
    ``flagged``) and the first level's membership."""
    mark = mark or (lambda _name: None)
    clusters: list[ClusterScore] = []
    best: dict[str, dict] = {}
    membership: dict[str, int] = {}
    ceiling: dict[str, float] = {}   # clusters lifted only by counted rare ties compete at the flag threshold
    risk = None
    # one igraph graph for every level, the levels' Leiden runs side by side (``communities_0`` times them all)
    levels = find_community_levels(community_input(pairs), cfg.graph, cfg.engine.communities, cfg.graph.resolutions,
                                   warm)
    for level, m in enumerate(levels):
        mark(f"communities_{level}")
        cs, steps = score_level(con, feats, m, level, blocks, cfg, mark)
        clusters += cs
        risk = steps[0]
        ceiling.update({c.cluster_id: cfg.scoring.flag_threshold for c in cs if c.unlifted_risk is not None or c.tie_lift})
        keep_highest(best, steps, ceiling)
        if level == 0:
            membership = m
    # pieces of one operation the community detection cut apart, judged as one (graph/operations.py)
    ops = operation_groups(con, membership, feats.num_rows, cfg.graph)
    mark("operations")
    if ops:
        cs, risk_op = score_operations(con, feats, ops, membership, blocks, cfg)
        mark("score_operations")
        clusters += cs
        ceiling.update({c.cluster_id: cfg.scoring.flag_threshold for c in cs if c.unlifted_risk is not None})
        keep_highest(best, [risk_op], ceiling)
    # accounts of the harvest-shape tail running one workload, across communities (scoring/workload.py)
    if cfg.scoring.workload_groups.enabled:
        wg = workload_groups(feats, cfg.scoring.workload_groups)
        if wg:
            cs, risk_w = score_workload_groups(feats, wg, cfg.scoring)
            clusters += cs
            keep_highest(best, [risk_w], ceiling)
        mark("workload_groups")
    risk = pa.Table.from_pylist([best[a] for a in feats["account_id"].to_pylist()], schema=risk.schema)
    return clusters, risk, membership


def score_level(con: duckdb.DuckDBPyConnection, feats: pa.Table, m: dict[str, int], level: int, blocks: list[Block],
                cfg: ScanConfig, mark: Callable[[str], None] | None = None) -> tuple[list[ClusterScore], list[pa.Table]]:
    """One resolution level's communities scored, with the sub-clusters cut from them (harvesting and
    shared-entity sub-clusters, each judged against its parent community): the clusters, and one account_risk
    table per kind of cut. One function so a bench that replays the levels scores them as the scan does."""
    cs, risk = score_clusters(con, feats, m, blocks, cfg.scoring, id_prefix=f"cl{level}")
    if mark:
        mark(f"score_clusters_{level}")
    clusters, steps = list(cs), [risk]
    mh = harvest_subclusters(m, feats, cfg.scoring, con, cfg.graph)  # one operation per sub-cluster
    if mh:
        csh, riskh = score_clusters(con, feats, mh, blocks, cfg.scoring, id_prefix=f"cl{level}h", harvest=True,
                                    parent=m)
        if cfg.scoring.harvest_rarest_tie_groups:
            csh, riskh = rarest_tie_lift(con, feats, mh, blocks, cfg.scoring, level, m, csh, riskh)
        clusters += csh
        steps.append(riskh)
    me = entity_subclusters(con, m, cfg.scoring)
    if me:
        cse, riske = score_clusters(con, feats, me, blocks, cfg.scoring, id_prefix=f"cl{level}e", parent=m)
        clusters += cse
        steps.append(riske)
    return clusters, steps


def rarest_tie_lift(con: duckdb.DuckDBPyConnection, feats: pa.Table, mh: dict[str, int], blocks: list[Block],
                    cfg: ScoringConfig, level: int, parent: dict[str, int], csh: list[ClusterScore],
                    riskh: pa.Table) -> tuple[list[ClusterScore], pa.Table]:
    """The harvesting sub-clusters as scored with the rarest-tie reading (``scoring.harvest_rarest_tie_groups``,
    ``csh``/``riskh``) only where it decides whether the sub-cluster is flagged at all: the ones under the flag
    threshold without it take its reading and, lifted to the threshold, compete there (``tie_lift``, the engine's
    ``ceiling``); the rest keep the reading without it.

    Why: the reading is evidence that a sub-cluster's members share a fingerprint beyond chance, which is what
    decides whether a quiet hydra's sub-cluster is a campaign (dev3 quiet_hydra-703: 0.498 → 0.531). A sub-cluster
    already flagged without it gains a little coordination and with it the accounts of the workload group that
    flagged the same hydra (dev3 705, 708: one record split in two)."""
    base, risk0 = score_clusters(con, feats, mh, blocks, cfg.model_copy(update={"harvest_rarest_tie_groups": []}),
                                 id_prefix=f"cl{level}h", harvest=True, parent=parent)
    lifted = {b.cluster_id for b in base if b.risk < cfg.flag_threshold}
    out = []
    for c, b in zip(csh, base, strict=True):
        if c.cluster_id in lifted:
            c.tie_lift = c.risk >= cfg.flag_threshold
            out.append(c)
        else:
            out.append(b)
    take = pc.fill_null(pc.is_in(riskh["cluster_id"], value_set=pa.array(sorted(lifted), pa.string())), False)
    return out, pa.table({n: pc.if_else(take, riskh[n], risk0[n]) for n in risk0.column_names}, schema=risk0.schema)


def keep_highest(best: dict[str, dict], tables: list[pa.Table], ceiling: dict[str, float] | None = None) -> None:
    """Every account keeps the account_risk row of the cluster (at any level) where its risk is highest; the
    first seen wins a tie (the tables come in a fixed order). Comparing raw floats is safe only because the
    risks are the same to the last digit on every run: the sums they are built from do not depend on the order
    a parallel aggregation adds in (``scan.base.exact_sum``); a 1e-16 difference used to move accounts between
    levels and change campaign records run to run. ``ceiling`` (cluster id -> level): a row of such a cluster
    competes at no more than that level — a cluster strongly coordinated only through counted rare ties
    (``scoring.harvest_group_alpha``) is there to lift accounts nothing else flags, not to take an account another
    cluster already flags into its record (cohorts_mixed: the agentic campaign's accounts, flagged in their own
    card's sub-cluster, would join the coding hydra's record through the card they share with it)."""
    ceiling = ceiling or {}

    def key(r: dict) -> float:
        c = ceiling.get(r["cluster_id"])
        return r["risk"] if c is None else min(r["risk"], c)

    for r in (r for t in tables for r in t.to_pylist()):
        if r["account_id"] not in best or key(r) > key(best[r["account_id"]]):
            best[r["account_id"]] = r


def score_operations(con: duckdb.DuckDBPyConnection, feats: pa.Table, ops: dict[str, int], membership: dict[str, int],
                     blocks: list[Block], cfg: ScanConfig) -> tuple[list[ClusterScore], pa.Table]:
    """The operations (``graph.operations``) scored as one more cluster level (``clop-NNNN``). A member takes the
    operation's level through its own ties of the kinds the operation was joined on (``graph.join_kinds``) — it
    holds one of the cards, sign-up bursts or indicators that two of the operation's communities share — not
    through its community's membership nor the group's pooled traffic (``score_clusters``' ``member_ties``)."""
    # the kinds it was joined on, and its schedules (busy in the same windows on the same template) once a
    # member holds a joining entity
    ties = tuple(sorted({KIND_GROUP[k] for k in cfg.graph.join_kinds if k in KIND_GROUP} | {"timing"}))
    tied = joining_holders(con, ops, membership, cfg.graph)
    return score_clusters(con, feats, ops, blocks, cfg.scoring, id_prefix="clop", member_ties=ties, tied=tied)
