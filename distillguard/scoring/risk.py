"""Cluster and account risk from coordination × content, with reasons an analyst can check.

cluster risk = coordination^a × suspicion^b (scoring.coordination_exponent 0.4, suspicion_exponent 0.6) (× a discount for declared groups)

*coordination* (0..1) grows with how many evidence groups (network, client, payment, e-mail,
creation, content, timing) most members share inside the cluster; a cluster that shares only
content (a popular tool's prompt) or only a network (a NAT) stays low. *suspicion* is the mean
of the members' own traffic suspicion. Both are needed: a coordinated but benign group (an
enterprise's own accounts) and a suspicious but lone account (a benchmark researcher) both stay
unflagged. An account inherits its cluster's risk in proportion to how much of its own
coordination weight points inside the cluster, so an account that merely touched the same
task items is not swept in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

from distillguard.graph.denseblock import Block
from distillguard.graph.edges import INFRA_GROUPS, KIND_GROUP, party_key
from distillguard.scan.base import exact_sum
from distillguard.scan.config import ScoringConfig
from distillguard.scoring.bystander import members_tied_received, own_tie
from distillguard.scoring.demand import (
    artefact_reason,
    artefact_verdict,
    collects_long_answers,
    harvest_beyond_store,
    store_values,
    unused_ceiling,
    workload_matrix,
)
from distillguard.scoring.demand import client_share as _client_share
from distillguard.scoring.demand import no_output_demand as _no_output_demand
from distillguard.scoring.demand import outside_values as _outside
from distillguard.scoring.demand import shorter_than_store as _shorter_than_store
from distillguard.scoring.parent import parent_chance, parent_fit
from distillguard.scoring.poolshare import (
    DISTINCTIVE_GROUPS,
    core_read,
    kit_collects,
    pool_kit_carriers,
    pool_share_suspicion,
    shares_with_pool,
)
from distillguard.scoring.rare import (
    GROUP_NOUNS,
    HIDDEN_GROUPS,
    background_rate,
    burst_alone_dropped,
    burst_uncorroborated,
    held_sql,
    kit_coholders,
    rare_entity_sql,
    rare_hidden_groups,
    rarest_tie_sql,
)
from distillguard.scoring.reasons import _num, account_reasons, cluster_reasons
from distillguard.scoring.subclusters import harvest_tail
from distillguard.scoring.suspicion import (
    StoreOutput,
    blend,
    member_suspicion,
    pooled_components,
    received_lift,
    unusual_own_bar,
    with_received,
)
from distillguard.scoring.suspicion import store_percentile as _suspicion_percentile


@dataclass
class ClusterScore:
    cluster_id: str
    members: list[str]
    risk: float
    coordination: float
    suspicion: float
    group_share: dict[str, float]
    kind_entities: dict[str, list[str]]  # kind -> shared entities (most-shared first)
    reasons: list[str] = field(default_factory=list)
    declared: bool = False
    dense_density: float = 0.0
    #: the account model on the pooled traffic of its distinctively tied core (0: not pooled)
    pooled_suspicion: float = 0.0
    #: evidence group -> (core members sharing it, their summed chance of sharing it at random): the counts the
    #: group shares and the significance rule (``harvest_group_alpha``) are read from
    group_counts: dict[str, tuple[int, float]] = field(default_factory=dict)
    #: the risk the cluster would have without the counted rare ties (and, with ``rare_content_members_only``, without
    #: its content read from rare entities), when only they made it strongly coordinated (members tied only through
    #: ``rare_ties_bystander_groups`` keep this level)
    unlifted_risk: float | None = None
    #: the hidden-tie groups counted beyond chance (``scoring.harvest_group_alpha``)
    rare_groups: tuple[str, ...] = ()
    #: the rare content reading (``scoring.rare_content_chance``) was needed too: members sending that content
    #: take the lifted level like the holders of a counted tie (``scoring.rare_content_members_only``)
    content_lift: bool = False
    #: only the rarest-tie reading (``scoring.harvest_rarest_tie_groups``) takes it to the flag threshold: its rows
    #: compete there (``scan.engine.rarest_tie_lift``)
    tie_lift: bool = False


def strong_member_ties(ties: set[str], parties: dict[str, int], content_core: int, core_size: int,
                       cfg: ScoringConfig) -> set[str]:
    """The member's ties that count towards halving its suspicion ratio (``min_member_groups``,
    ``tied_member_ratio_factor``): a pool's proxy carrying its owner's ordinary traffic holds the pool's cards,
    sign-up bursts and template set with many members. Templates only a handful of the core send do not count
    (``tied_member_content_share``): dev3 quiet_hydra-707's chat user (its most shared prompt: 6 of a 62-account
    core) and standard-713's agent-framework user (2 of 144, beside a two-account schedule) kept 0.7–0.86 of a
    campaign's risk through them. Pair evidence can be dropped too (``tied_member_min_holders``, off: a real
    schedule is often a pair's, and in a three-account cluster a pair is most of it). ``parties``: per group, the
    most parties of the cluster holding one of the member's entities; ``content_core``: the most core parties
    sending one of its templates or prompts."""
    out = set(ties)
    if cfg.tied_member_min_holders is not None:
        out = {g for g in out if parties.get(g, 0) >= cfg.tied_member_min_holders}
    if cfg.tied_member_content_share is not None and "content" in out \
            and content_core < cfg.tied_member_content_share * core_size:
        out.discard("content")
    return out


def cluster_risk(coordination: float, suspicion: float, cfg: ScoringConfig, discount: float = 1.0) -> float:
    """A cluster's risk from how coordinated it is and how suspicious its traffic is (module docstring); every
    route that makes a cluster (communities, sub-clusters, workload groups) scores it through this one formula."""
    return (coordination ** cfg.coordination_exponent) * (suspicion ** cfg.suspicion_exponent) * discount


def score_clusters(con: duckdb.DuckDBPyConnection, feats: pa.Table, membership: dict[str, int],
                   blocks: list[Block], cfg: ScoringConfig, id_prefix: str = "cl",
                   harvest: bool = False, parent: dict[str, int] | None = None,
                   member_ties: tuple[str, ...] | None = None,
                   tied: set[str] | None = None) -> tuple[list[ClusterScore], pa.Table]:
    """Returns cluster scores and the account_risk-shaped table (without first_flagged_at / campaign).
    ``harvest``: the clusters are harvesting sub-clusters (``harvest_subclusters``), strongly coordinated also
    when ``harvest_hidden_share`` of the core holds a tie of hidden infrastructure or timing beyond chance.
    ``parent``: the communities the clusters were cut from (account -> community); with
    ``scoring.harvest_parent_fit`` a member's fit (the share of its links pointing into its group) is measured
    against its parent community instead of the sub-cluster (see ``scoring.parent.parent_fit``).
    ``member_ties`` and ``tied``: an operation joined from several communities (graph/operations.py) is scored
    with the evidence groups it was joined on and the accounts holding one of the entities that joined it
    (``operations.joining_holders``). There a member counts as tied to the cluster by evidence of its own only
    when it is one of ``tied``, and then only through ``member_ties``; and its traffic is read on its own, not
    with the group's pooled traffic. It takes the operation's level through the operation's own cards, bursts
    or indicators, not because its community was joined: an ordinary user co-active with a proxy pool on a
    public template, or students sharing their own university's sign-up burst, are judged on their own traffic
    (the quadratic fall-off below the group's suspicion), as in their community."""
    con.register("_feat", feats)
    mem = pa.table({"account_id": list(membership), "cl": list(membership.values())})
    con.register("_mem", mem)
    kg = pa.table({"kind": list(KIND_GROUP), "grp": list(KIND_GROUP.values())})
    con.register("_kg", kg)
    # intra-cluster edges and each member's share of its weight that stays inside its cluster
    # Each endpoint's cluster is looked up on its own, then compared. Written as one three-way join, DuckDB
    # (no statistics on the registered Arrow table) joined _mem with itself on the cluster first: Σ size²
    # rows before any edge, 12 of 13 CPU-s at scale 0.1 and a 50 GB spill at 1.0 (bench/intra_join_bench.py).
    con.execute("""CREATE OR REPLACE TEMP TABLE _intra AS
        WITH s AS MATERIALIZED (SELECT e.src, e.dst, e.kind, e.entity, e.weight, m.cl
                                FROM edges e JOIN _mem m ON m.account_id = e.src),
             d AS MATERIALIZED (SELECT s.*, m.cl AS cl_dst FROM s JOIN _mem m ON m.account_id = s.dst)
        SELECT src, dst, kind, entity, weight, cl FROM d WHERE cl = cl_dst""")
    # strength: intra-cluster weight summed per evidence group, each group capped, so a heavy account
    # that touched thirty proxy /24s does not make a light account tied by payment, sign-up burst and
    # schedule look loosely attached (raw sums grow with volume, not with how many things are shared)
    fit_rows = con.execute(f"""
        WITH ends AS (SELECT src AS a, weight, kind FROM edges UNION ALL SELECT dst, weight, kind FROM edges),
        tot AS (SELECT a, {exact_sum('weight')} AS w FROM ends GROUP BY 1),
        ie AS (SELECT src AS a, weight, kind FROM _intra UNION ALL SELECT dst, weight, kind FROM _intra),
        ig AS (SELECT a, g.grp, {exact_sum('weight')} AS w FROM ie JOIN _kg g USING (kind) GROUP BY 1, 2),
        intra AS (SELECT a, {exact_sum('w')} AS w, list(grp) AS groups,
                         {exact_sum(f'least(w, {float(cfg.member_group_cap)})')} AS cw
                  FROM ig GROUP BY 1)
        SELECT m.account_id, coalesce(intra.w, 0) / nullif(tot.w, 0) AS fit, intra.groups, coalesce(intra.cw, 0) AS iw
        FROM _mem m LEFT JOIN tot ON tot.a = m.account_id LEFT JOIN intra ON intra.a = m.account_id""").fetchall()
    fit = {a: (_num(f), g or []) for a, f, g, _ in fit_rows}
    fit_parent: set[str] = set()   # members whose fit is measured against the community they were found in
    if parent is not None and cfg.harvest_parent_fit:
        for a, f in parent_fit(con, membership, parent).items():
            if f > fit.get(a, (0.0, []))[0]:
                fit[a] = (f, fit.get(a, (0.0, []))[1])
                fit_parent.add(a)
    intra_w = {a: _num(w) for a, _, _, w in fit_rows}
    # member m shares evidence group g inside its cluster when it holds an entity of that group that another
    # *party* in the cluster also holds (accounts of one organisation verified to the declared level count as
    # one party: a company's own accounts sharing its card or office NAT is not a tie, as in the edges).
    # Calibrated to the store, not to a weight constant: for each member and group, the chance that k-1
    # accounts drawn at random from the rest of the store would share one of its entities anyway, from each
    # entity's holders outside the cluster (df - m) among the N - k accounts outside it. A free-mail naming
    # pattern, a home ISP's /24 or a popular tool's system prompt is shared by chance in a group of 90; the
    # pool's own card or template (no holders outside) never is, in a 231-account store or a 30M one.
    # In the groups ordinary users share by coincidence (a home /24, an e-mail shape, a client), an entity
    # counts only when min_entity_holders parties of the cluster hold it: community detection finds the pairs
    # of ordinary users who happen to share a home /24 or a rare e-mail shape, and a chain of such pairwise
    # coincidences is not a group sharing something — unless the same two accounts also share something of
    # another group (a rare /24 *and* a rare TLS fingerprint: two coincidences at once are a 2-account
    # operation, not chance). Two strangers never share a card by coincidence.
    sizes: dict[int, list[str]] = {}
    for a, c in membership.items():
        sizes.setdefault(c, []).append(a)
    # members by name: ``membership``'s order can follow a SQL result's row order (entity_subclusters groups
    # accounts as the rows come), which a parallel query changes run to run, and the float sums below over a
    # cluster's members (pooled components, means) would follow it into the last bits of its suspicion and risk
    for ms in sizes.values():
        ms.sort()
    # the cluster's core: members tied to it at least min_member_strength × the weight of a well-tied
    # member (75th percentile). Ordinary users a community absorbs through one shared /24 or ASN are
    # not core, so they neither dilute what the core shares nor how suspicious it looks.
    ref_w: dict[int, float] = {c: float(np.quantile([intra_w.get(a, 0.0) for a in ms], cfg.core_reference_quantile))
                               for c, ms in sizes.items()}
    core: dict[int, set[str]] = {c: {a for a in ms if intra_w.get(a, 0.0) >= cfg.min_member_strength * ref_w[c]}
                                 for c, ms in sizes.items()}
    # the core's members, for the content reading that asks a share of the core to send one rare prompt
    con.register("_core", pa.table({"cl": [c for c, ms in core.items() for _ in ms],
                                    "account_id": [a for ms in core.values() for a in sorted(ms)]}))
    n_all = max(feats.num_rows, 2)
    # a harvesting sub-cluster's members are the store's harvest-shape tail already: its private content is read
    # from every rare entity another party of it sends (``rare_content_min_share_harvest``), not only one template
    # set most of its core sends — a quiet hydra's mixed kit is a scatter of private templates (dev3 703)
    content_share = cfg.rare_content_min_share_harvest \
        if harvest and cfg.rare_content_min_share_harvest is not None else cfg.rare_content_min_share
    coincidental = ", ".join(f"'{g}'" for g in cfg.coincidence_groups) or "NULL"
    # a harvesting sub-cluster's member is judged by its rarest tie in these groups: a stock SDK string does not
    # cancel a private TLS fingerprint (``harvest_rarest_tie_groups``, scoring/rare.py)
    tie_cte, tie_join, tie_expr = rarest_tie_sql(tuple(cfg.harvest_rarest_tie_groups) if harvest else (), coincidental,
                                                 int(cfg.min_entity_holders), n_all)
    # a harvesting sub-cluster's content background leaves out its kit's co-holders in other clusters (rare.kit_coholders)
    kit = harvest and cfg.kit_coholder_min_entities is not None and cfg.rare_content_chance is not None
    if kit:
        kit_coholders(con, harvest_tail(feats, cfg.harvest_quantile), int(cfg.kit_coholder_min_entities))
    outside = "mi.df - ins.m - CASE WHEN g.grp = 'content' THEN coalesce(kx.kx, 0) ELSE 0 END" if kit else "mi.df - ins.m"
    kit_join = "LEFT JOIN _kit_held kx ON kx.cl = mi.cl AND kx.kind = mi.kind AND kx.entity = mi.entity" if kit else ""
    grp_rows = con.execute(f"""
        WITH mi AS (SELECT m.cl, i.account_id AS a, i.kind, i.entity, i.df,
                           {party_key('acc', 'i.account_id', cfg.declared_org_verification)} AS party,
                           co.account_id IS NOT NULL AS in_core
                    FROM inc i JOIN _mem m USING (account_id) LEFT JOIN accounts acc USING (account_id)
                    LEFT JOIN _core co ON co.cl = m.cl AND co.account_id = i.account_id),
        ins AS (SELECT cl, kind, entity, count(DISTINCT party) AS np, count(DISTINCT a) AS m,
                       count(DISTINCT party) FILTER (WHERE in_core) AS nc FROM mi GROUP BY 1, 2, 3),
        ksz AS (SELECT m.cl, count(*) AS k, any_value(kc.kc) AS kc FROM _mem m
                LEFT JOIN (SELECT cl, count(*) AS kc FROM _core GROUP BY 1) kc USING (cl) GROUP BY 1),
        pg AS (SELECT src, dst, list(DISTINCT g.grp) AS grps FROM _intra JOIN _kg g USING (kind) GROUP BY 1, 2),
        corr AS (SELECT DISTINCT a, grp FROM (
                   SELECT src AS a, unnest(grps) AS grp FROM pg WHERE len(grps) >= 2
                   UNION ALL SELECT dst, unnest(grps) FROM pg WHERE len(grps) >= 2)){tie_cte}
        SELECT mi.cl, mi.a, g.grp,
               max(CASE WHEN {held_sql(coincidental, int(cfg.min_entity_holders))} THEN 1 ELSE 0 END) AS obs,
               1 - exp(-(any_value(ksz.k) - 1) * {exact_sum(background_rate(n_all))}) AS chance,
               {rare_entity_sql(cfg.rare_entity_chance, coincidental, int(cfg.min_entity_holders), n_all, cfg.rare_content_chance,
                                content_share, outside=outside)},
               {rare_entity_sql(cfg.rare_entity_chance, coincidental, int(cfg.min_entity_holders), n_all, cfg.rare_content_chance,
                                0.0, "d", outside=outside)},
               max(ins.np) AS np_max, max(ins.nc) AS nc_max, {tie_expr}
        FROM mi JOIN ins USING (cl, kind, entity) JOIN _kg g USING (kind) JOIN ksz USING (cl)
        LEFT JOIN corr ON corr.a = mi.a AND corr.grp = g.grp {tie_join} {kit_join}
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3""").fetchall()  # in order: the loop below adds their chances up, a float sum
    if kit:
        con.execute("DROP TABLE IF EXISTS _kit_held")
    # each card two or more parties of a cluster hold, with its holders there: a pooled group's combined draw on
    # per-account limits is read per payer (account_model.pool_limit_pressure)
    payers_of: dict[int, list[list[str]]] = {}
    if cfg.pool_min_coordination is not None and cfg.account_model.pool_limit_pressure:
        for c, hs in con.execute(f"""
                WITH h AS (SELECT m.cl, i.entity, i.account_id,
                                  {party_key('acc', 'i.account_id', cfg.declared_org_verification)} AS party
                           FROM inc i JOIN _mem m USING (account_id) LEFT JOIN accounts acc USING (account_id)
                           WHERE i.kind = 'payment')
                SELECT cl, list(DISTINCT account_id ORDER BY account_id) FROM h GROUP BY cl, entity
                HAVING count(DISTINCT party) >= 2 ORDER BY 1, 2""").fetchall():
            payers_of.setdefault(c, []).append(list(hs))
    # a harvesting sub-cluster's hidden tie must be its own, not its parent community's (scoring.harvest_parent_chance)
    in_parent = parent_chance(con, parent, membership) \
        if harvest and parent is not None and cfg.harvest_parent_chance else None
    # what each cluster's accounts share, counted as every page and report counts it (campaigns/describe.py)
    from distillguard.campaigns.describe import SCAN_EDGES, shared

    shared_by = shared(con, {}, SCAN_EDGES, members_sql="SELECT cl AS grp, account_id FROM _mem")
    feat_rows = {r["account_id"]: r for r in con.sql(
        "SELECT f.* FROM _feat f JOIN _mem USING (account_id)").to_arrow_table().to_pylist()}
    for t in ("_feat", "_mem", "_kg", "_core"):
        con.unregister(t)

    # group share = how far the core's observed sharing exceeds what chance gives a group of this size:
    # observed - expected share of the core's members (a tie everyone in a group of this size would have
    # anyway adds nothing; a private card held by every member adds 1)
    obs_n: dict[int, dict[str, float]] = {}
    exp_n: dict[int, dict[str, float]] = {}
    member_groups: dict[str, set[str]] = {}
    distinct: dict[str, set[str]] = {}
    priv_n: dict[int, tuple[int, float]] = {}   # cluster -> (core members sharing content, their summed chance)
    sends_shared: set[str] = set()   # members sending content another party of their cluster sends
    rare_holders: set[str] = set()   # members sending rare content another party of their cluster sends
    content_all: dict[int, tuple[float, float, int, float]] = {}   # cluster -> content obs, chance, n, chance (all entities)
    # the most parties of its cluster holding one of a member's entities, per group: a tie only two parties hold (a
    # two-account schedule, one other user's client build) is pair evidence (``tied_member_min_holders``)
    # (of content, also the most *core* parties sending one of its entities: the cluster's template set is sent by a
    # share of the core, ``tied_member_content_share``)
    tie_parties: dict[tuple[str, str], int] = {}
    tie_core: dict[tuple[str, str], int] = {}
    for c, a, g, obs, chance, obs_r, chance_r, obs_d, chance_d, np_max, nc_max, chance_t in grp_rows:
        if chance_t is not None:   # the group share reads its rarest tie (``harvest_rarest_tie_groups``)
            chance_r = chance_t
        tie_parties[(a, g)] = int(np_max or 0)
        tie_core[(a, g)] = int(nc_max or 0)
        if in_parent is not None:
            # a harvesting sub-cluster shares beyond chance only what its parent community does not explain
            chance = max(chance, in_parent.get((a, g), 0.0))
            chance_r = max(chance_r, in_parent.get((a, g), 0.0))
            chance_d = max(chance_d, in_parent.get((a, g), 0.0))
        if obs and g == "content":
            sends_shared.add(a)
        if obs and chance <= cfg.max_chance_tie:
            member_groups.setdefault(a, set()).add(g)
        # a distinctive tie: evidence a bystander on the pool's proxy range does not have — the pool's card,
        # sign-up burst, busy windows, a partner indicator, or its *private* templates or client fingerprint
        # (nobody outside the cluster holds them). Works the same on a store without account facts.
        if obs and (g in DISTINCTIVE_GROUPS or (g in ("content", "client") and chance <= cfg.distinctive_chance)):
            distinct.setdefault(a, set()).add(g)
        # ... read from its rare content alone (``rare_content_distinctive``): a proxy account sends the pool's private
        # system prompts beside its owner's ordinary ones, and those alone made its chance of sharing ≈ 1
        # (``rare_content_distinctive_set``: only the rare content held by ``rare_content_min_share`` of the core — the
        # pool's template set — not any rare prompt one other member happens to send)
        obs_x, chance_x = (obs_r, chance_r) if cfg.rare_content_distinctive_set else (obs_d, chance_d)
        if g == "content" and obs_x and cfg.rare_content_distinctive and chance_x <= cfg.distinctive_chance:
            distinct.setdefault(a, set()).add(g)
        # the group shares read each member's sharing of the entities rare in this store (scoring.rare_entity_chance;
        # all of them when it is off: obs_r, chance_r = obs, chance)
        if a in core[c] and g == "content" and obs_r:
            n0, ch0 = priv_n.get(c, (0, 0.0))
            priv_n[c] = (n0 + 1, ch0 + chance_r)
        if g == "content" and obs_r:
            rare_holders.add(a)
        if a in core[c] and g == "content":   # the content share and privacy as read from every entity
            o0, e0, n0, ch0 = content_all.get(c, (0.0, 0.0, 0, 0.0))
            content_all[c] = (o0 + obs, e0 + chance, n0 + (1 if obs else 0), ch0 + (chance if obs else 0.0))
        if a in core[c]:
            obs_n.setdefault(c, {})[g] = obs_n.setdefault(c, {}).get(g, 0.0) + obs_r
            exp_n.setdefault(c, {})[g] = exp_n.setdefault(c, {}).get(g, 0.0) + chance_r
    gshare: dict[int, dict[str, float]] = {}
    for c, gs in obs_n.items():
        k = max(len(core[c]), 1)
        for g, o in gs.items():
            e = exp_n[c][g] / k
            x = max(0.0, o / k - e)
            if x > 0:
                gshare.setdefault(c, {})[g] = x
    block_of: dict[str, Block] = {a: b for b in blocks for a in b.accounts}

    org_size: dict = {}
    if "org_id" in feats.column_names:
        for o in feats["org_id"].to_pylist():
            if o is not None:
                org_size[o] = org_size.get(o, 0) + 1
    client_share = _client_share(con, core, cfg.software_client_versions) if cfg.software_output_alpha is not None else {}
    store_mt = store_values(feats, "mean_max_tokens")
    store_out = store_values(feats, "mean_output_tokens")
    # what a pooled group's requested length is ranked against (suspicion.pooled_components)
    store_out_rank = StoreOutput.of(feats, float(cfg.account_model.rank_prior_exchanges)) \
        if cfg.pool_min_coordination is not None else None
    feats_s = dict(zip(feats["account_id"].to_pylist(), feats["suspicion"].to_numpy(zero_copy_only=False).tolist(),
                       strict=True))
    store_s = np.sort(np.array(list(feats_s.values()), dtype=float))
    # the columns the public-artefact rule compares a core with the rest of the store on (NaN: not recorded)
    store_cols = {col: np.asarray(feats[col].to_numpy(zero_copy_only=False), dtype=float)
                  for col in {*cfg.artefact_harvest_columns, *(cfg.percentile_gate_subcluster_columns or []),
                              *(["mean_output_tokens"] if cfg.percentile_gate_received_alpha is not None else [])}
                  if col in feats.column_names}
    peer_data = (workload_matrix(feats), np.asarray(feats["mean_output_tokens"].to_numpy(zero_copy_only=False), dtype=float)) \
        if cfg.artefact_peer_min_accounts is not None and "mean_output_tokens" in feats.column_names else None
    at = {a: i for i, a in enumerate(feats["account_id"].to_pylist())}
    # each member's suspicion read on its exchanges carrying its cluster's private system prompts (poolshare.py)
    share_read = pool_share_suspicion(con, membership, core, feat_rows, store_out_rank, n_all, cfg,
                                      StoreOutput.received(feats, float(cfg.account_model.rank_prior_exchanges))
                                      if cfg.pool_share_received else None) \
        if member_ties is None else {}
    share_of: dict[str, dict[str, tuple[float, int]]] = {}   # cluster id -> member -> its pool-share reading
    receive_bar: dict[str, float] = {}   # cluster id -> received output its rare-tie holders reach (lifted clusters)
    kit_yard: dict[str, float] = {}   # cluster id -> its suspicion before the kit's received output was read
    kit_base: dict[str, float] = {}   # ... and its risk at that suspicion (what a member sending none of its kit keeps)
    scores: list[ClusterScore] = []
    group_comps: dict[int, dict[str, float]] = {}   # cluster -> pooled components (pooled clusters only)
    pool_of: dict[int, set[str]] = {}   # cluster -> the accounts whose traffic was pooled
    lifted_by: dict[str, float] = {}   # cluster id -> the received-output weight its suspicion reads (collecting)
    members_read: dict[str, float] = {}   # cluster id -> its suspicion read member by member, under its pooled one
    for c, members in sorted(sizes.items()):
        cid = f"{id_prefix}-{c:04d}"
        gs = gshare.get(c, {})
        rare_hidden = rare_hidden_groups(obs_n.get(c, {}), exp_n.get(c, {}), cfg) \
            if harvest or cfg.rare_ties_all_clusters else {}
        # would the cluster be strongly coordinated without the counted rare ties? (``rare_ties_member_groups``)
        gs0 = gs
        if rare_hidden:
            gs = {**gs, **{g: max(gs.get(g, 0.0), cfg.harvest_group_share) for g in rare_hidden}}
        # strongly coordinated: at least min_evidence_groups independent kinds of evidence, each shared beyond
        # chance by half the core (group shares are already net of chance, so a popular tool's prompt, a
        # free-mail naming shape or a home ISP does not count however many members hold it)
        # A workload nobody outside the cluster sends (its holders' mean chance of sharing it at random ≤
        # distinctive_chance), sent by at least half the core, counts as two: a popular tool's prompts are
        # shared by chance in a group this size, an operation's own templates are not.
        private = gs.get("content", 0) >= cfg.evidence_share and c in priv_n and priv_n[c][1] / max(priv_n[c][0], 1) <= cfg.distinctive_chance
        # a harvesting sub-cluster (members well above the store on their own traffic) needs less: half its
        # core holding a tie of hidden infrastructure or timing that chance does not explain, of any one kind
        # (a quiet pool's accounts reuse a card here, share a proxy /24 or a sign-up burst there)
        hidden = sum(1 for a in core[c] if member_groups.get(a, set()) & set(HIDDEN_GROUPS)) / max(len(core[c]), 1)
        carried = harvest and hidden >= cfg.harvest_hidden_share

        # evidence groups held with and without the counted rare ties (hidden groups: ``private`` is the same)
        held, held0 = (sum(1 for v in sh.values() if v >= cfg.evidence_share) + private >= cfg.min_evidence_groups
                       for sh in (gs, gs0))
        strong = held or carried
        # would it be strong without the counted rare ties and with its content read from every entity (before
        # ``rare_content_chance``)? If not, only the members holding what lifted it take the lifted level
        content_lift = False
        if strong and not carried and cfg.rare_content_members_only and cfg.rare_content_chance is not None \
                and cfg.rare_entity_chance is None:
            o, e, n_p, ch_p = content_all.get(c, (0.0, 0.0, 0, 0.0))
            k_c = max(len(core[c]), 1)
            sh_all = max(0.0, o / k_c - e / k_c)
            gs_all = {g: v for g, v in gs0.items() if g != "content"} | ({"content": sh_all} if sh_all > 0 else {})
            priv_all = sh_all >= cfg.evidence_share and n_p > 0 and ch_p / n_p <= cfg.distinctive_chance
            base = sum(1 for v in gs_all.values() if v >= cfg.evidence_share) + priv_all >= cfg.min_evidence_groups
            content_lift = held0 and not base
            held0 = held0 and base
        lifted = (bool(rare_hidden) or content_lift) and strong and not (held0 or carried)
        total = math.fsum(cfg.group_weights[g] * s for g, s in gs.items())
        dens = [block_of[a].density for a in members if a in block_of]
        dense = float(np.median(dens)) if len(dens) >= 0.5 * len(members) else 0.0
        total += min(dense, cfg.density_cap) * cfg.density_weight
        coord = 1 - math.exp(-total)
        rows = [feat_rows[a] for a in members if a in feat_rows and a in core[c]]
        no_output = strong and (_no_output_demand(rows, cfg) or _shorter_than_store(rows, store_mt, cfg))
        # one tool's users: most of the core on one client, no hidden tie, and no long answers collected — it
        # neither asks for nor receives clearly longer answers than the store (an agent loop asks a generous
        # ceiling and gets short steps). A harvesting sub-cluster is exempt: its members are there on their own
        # traffic's harvest shape.
        software = (strong and not no_output and not harvest and cfg.software_output_alpha is not None
                    and client_share.get(c, 0.0) >= cfg.software_client_share
                    and hidden < cfg.software_hidden_share
                    and not collects_long_answers(rows, store_mt, store_out, cfg))
        # tied only by public artefacts (a framework's client and system prompt, one NAT): a campaign only if its
        # core collects long single-turn answers beyond the store's norm (scoring.artefact_harvest_*) and, with
        # scoring.artefact_peer_min_accounts, receives more than the accounts doing the same work
        artefact = None
        inside_idx = [at[a] for a in members if a in at]   # the cluster's rows in the feature table
        if strong and not no_output and not software and not carried and cfg.artefact_harvest_alpha is not None:
            artefact = artefact_verdict(gs, [member_groups.get(a, set()) for a in core[c]], shared_by.get(str(c)),
                                        rows, inside_idx,
                                        [at[a] for a in core[c] if a in at], store_cols, peer_data, harvest, cfg)
        if not strong or no_output or software or artefact:
            coord = min(coord, cfg.weak_coordination_cap)
        # a campaign's accounts plus a few ordinary users caught on the same proxy range: the upper
        # part of the members' suspicion describes the group, the mean would be diluted
        susp = float(np.quantile([_num(r["suspicion"]) for r in rows], cfg.cluster_suspicion_quantile)) if rows else 0.0
        # a strongly coordinated group tied by distinctive evidence (its own card, sign-up burst, schedule,
        # private templates) is one body of traffic: judged at the group's volume, not shrunk account by account
        pool_rows = [r for r in rows if distinct.get(r["account_id"])]
        pooled = 0.0
        # ... and so is a group strong through content it owns (``pool_private_content``) below that coordination:
        # half its core sends prompts nobody outside it sends, which is acting as one body of traffic whatever the
        # weight of the other entities it shares (dev2 standard-300's coding hydra, coordination 0.573)
        owns = cfg.pool_private_content and private and not artefact
        susp_own = susp   # the cohort test below reads a cluster pooled only by ``owns`` on its members' own traffic
        m_read = susp     # the members read one by one (no pooled reading): the yardstick of ``pool_member_yardstick``
        if (cfg.pool_min_coordination is not None and strong and not no_output and not software
                and (coord >= cfg.pool_min_coordination or owns) and len(pool_rows) >= cfg.pool_min_accounts):
            group_comps[c] = pooled_components(pool_rows, cfg.account_model, store_out_rank, payers_of.get(c))
            pool_of[c] = {r["account_id"] for r in pool_rows}
            pooled = blend(group_comps[c], cfg.account_model)
            susp = max(susp, pooled)
            susp_own = susp if coord >= cfg.pool_min_coordination else susp_own
        # a cohort (a course lab, a framework's users) can be coordinated as tightly as an operation — one sign-up
        # burst, one NAT, the same busy windows, private homework templates — and yet its traffic is what much of
        # the store sends: judged against the accounts outside it, not against an absolute level
        # A harvesting sub-cluster is judged too (``percentile_gate_subcluster_columns``), on what it receives only:
        # its members were picked for their harvest shape, so that cannot also show that they collect
        sub_cols = cfg.percentile_gate_subcluster_columns if harvest else None
        # (``percentile_gate_subcluster_any``: at every percentile — a cohort can be the top of a store)
        gated = strong and not no_output and not software and (not harvest or bool(sub_cols))
        # (a developers' community owns its coding-agent prompts: pooled, its heaviest members' traffic must not be
        # what lifts it over the cohort test — dev small_provider-115, a developers' community 0.14 -> 0.37)
        below = gated and _suspicion_percentile(susp_own, members, feats_s, store_s) < _num(cfg.min_suspicion_percentile)
        # (``percentile_gate_ceiling_any``: above the percentile too, a core asking long answers it does not receive)
        short = unused_ceiling(rows, _outside(store_cols, inside_idx), cfg) if gated and not harvest and (
            below or cfg.percentile_gate_ceiling_any) else None
        ordinary = gated and (below or bool(harvest and cfg.percentile_gate_subcluster_any) or short is not None)
        # ... unless its core collects the teacher's answers beyond the store's norm (``percentile_gate_collects``):
        # a quiet pool mixes ordinary prompts in, so its prompts read like the store's, but what it receives does not
        collecting = None
        if ordinary and (cfg.percentile_gate_collects or harvest):
            collecting = harvest_beyond_store(rows, _outside(store_cols, inside_idx), cfg, sub_cols)
            # ... asking long answers and receiving fewer than the rest of the store is a ceiling, not a harvest
            collecting = (False, collecting[1]) if short is not None else collecting
            # a sub-cluster whose core records none of its columns is not judged (exempt, as before)
            ordinary = collecting[0] is False if harvest else collecting[0] is not True
            collecting = collecting[1] if not ordinary and collecting[0] else None
        # ... and, spared for what it collects, judged on it (``collecting_received_weight``): its suspicion and its
        # members' read the received-output component the account model leaves out by default
        # (not a harvesting sub-cluster: its members are already the store's harvest-shape tail)
        lift = received_lift(cfg) if collecting is not None and not harvest else 0.0
        # ... and so is a community strong through content it owns (sent by nobody outside it) whose core receives
        # clearly longer answers than the store (``private_content_collects``): a residential-proxy pool's accounts
        # carry their owners' ordinary traffic beside the pool's private prompts, diluting their own suspicion
        if (lift == 0 and private and strong and not harvest and not no_output and not software and not artefact
                and not ordinary and cfg.private_content_collects and cfg.percentile_gate_subcluster_columns):
            got = harvest_beyond_store(rows, _outside(store_cols, inside_idx), cfg, cfg.percentile_gate_subcluster_columns)
            if got[0]:
                collecting, lift = got[1], received_lift(cfg)
        if lifted and cfg.rare_ties_received_quantile is not None:
            # what the members holding the counted rare ties receive: a member receiving as much takes their level
            got = [_num(feat_rows[a].get("c_received_output"), 0.0) for a in members if a in feat_rows and
                   (member_groups.get(a, set()) & set(rare_hidden) or ((content_lift or private) and a in rare_holders))]
            if len(got) >= cfg.harvest_group_min_members:
                receive_bar[cid] = float(np.quantile(got, cfg.rare_ties_received_quantile))
        susp0 = susp
        if lift > 0:
            susp = float(np.quantile([with_received(_num(r["suspicion"]), r.get("c_received_output"), lift)
                                      for r in rows], cfg.cluster_suspicion_quantile))
            m_read = susp
            if c in group_comps:
                susp = max(susp, with_received(pooled, group_comps[c].get("received_output"), lift))
            lifted_by[cid] = lift
        # ... and a community strong through content it owns reads each core member on its share of exchanges
        # carrying those prompts when that is more suspicious than its whole traffic (``pool_share_reading``: a
        # proxy's owner's ordinary traffic dilutes what it relays)
        susp_all = susp
        if (c in share_read and private and strong and not no_output and not software and not artefact
                and not ordinary):
            got = {a: (v, n) for a, (v, n, *_) in share_read[c].items()}
            read = core_read(rows, {a: v for a, (v, _) in got.items()}, cfg.cluster_suspicion_quantile)
            share_of[cid] = got
            susp = max(susp, read)
            m_read = max(m_read, read)
            # ... and read with what those exchanges received (``pool_share_received``): a reading of the kit, so it
            # raises the cluster's level, not the yardstick its members' own traffic is compared with below
            kit_lift = received_lift(cfg) if cfg.pool_share_received and kit_collects(
                share_read[c], rows, cfg.pool_share_received_alpha) else 0.0
            if kit_lift > 0:
                kit = {a: with_received(v, x, kit_lift) for a, (v, _, x, *_) in share_read[c].items()}
                lifted_read = core_read(rows, kit, cfg.cluster_suspicion_quantile)
                if lifted_read > susp:
                    kit_yard[cid] = susp
                    susp = lifted_read
        if ordinary:
            coord = min(coord, cfg.weak_coordination_cap)
        held_by = None
        if lifted and rare_hidden and not (content_lift or private) and cfg.rare_ties_holders_suspicion and rows:
            # lifted only by its counted hidden ties (card, sign-up burst, schedule): the coordination is the
            # holders', so is the suspicion it is judged with — a benign cohort's sign-up burst must not borrow the
            # suspicion of the tool users its community also holds (``rare_ties_holders_suspicion``). A lift through
            # content the cluster owns is not read so: its holders are whoever sends that content
            got = share_of.get(cid, {})
            hs = [max(with_received(_num(r["suspicion"]), r.get("c_received_output"), lift), got.get(r["account_id"], (0.0, 0))[0])
                  for r in rows if member_groups.get(r["account_id"], set()) & set(rare_hidden)]
            if hs:
                held_by = max(float(np.quantile(hs, cfg.cluster_suspicion_quantile)),
                              pooled if c in group_comps else 0.0)
                held_by = (susp, held_by) if held_by < susp else None
                susp = held_by[1] if held_by else susp
        orgs = {r.get("org_id") for r in rows}
        declared = len(orgs) == 1 and None not in orgs and \
            min(_num(r.get("verification_level"), 0) for r in rows) >= cfg.declared_org_verification
        # accounts of organisations verified to the declared level identify themselves: their coordination is
        # not *hidden*. The discount grows with the core's verified share (one verified organisation: the full
        # declared_discount; four verified eval teams sharing a hosted runner and schedule: most of it)
        # (an organisation *declares* a group only when it holds several accounts: a one-account org is no more
        # than an account, whatever its verification)
        verified = sum(1 for r in rows if org_size.get(r.get("org_id"), 0) >= 2
                       and _num(r.get("verification_level"), 0) >= cfg.declared_org_verification) / max(len(rows), 1)
        discount = 1.0 - (1.0 - cfg.declared_discount) * (1.0 if declared else verified)
        risk = cluster_risk(coord, susp, cfg, discount)
        if cid in kit_yard:
            kit_base[cid] = float(cluster_risk(coord, kit_yard[cid], cfg, discount))
        if cfg.pool_member_yardstick and c in group_comps and not held_by and m_read < susp:
            members_read[cid] = m_read
        cs = ClusterScore(cid, sorted(members), float(risk), float(coord), susp,
                          {g: round(s, 3) for g, s in gs.items()},
                          {k: [e for e, _ in v] for k, v in shared_by[str(c)].top.items()} if str(c) in shared_by
                          else {}, declared=declared, dense_density=dense, pooled_suspicion=pooled,
                          group_counts={g: (int(o), round(exp_n[c][g], 3)) for g, o in obs_n.get(c, {}).items()},
                          unlifted_risk=(float(cluster_risk(min(coord, cfg.weak_coordination_cap),
                                                            held_by[0] if held_by else susp, cfg, discount))
                                         if lifted else None),
                          rare_groups=tuple(sorted(rare_hidden)), content_lift=content_lift or (lifted and private))
        cs.reasons = cluster_reasons(cs, rows, shared_by.get(str(c)))
        if no_output:
            cs.reasons.append("weakly coordinated: its accounts ask for no longer answers than the store's typical "
                              "account (no teacher output being collected)")
        if software:
            cs.reasons.append(f"weakly coordinated: {client_share.get(c, 0.0):.0%} of its core run one client and "
                              "share no hidden infrastructure, payment or schedule, and do not collect longer answers "
                              "than the store's accounts (one tool's users, not a harvest)")
        if artefact:
            cs.reasons.append(artefact_reason(*artefact))
        for g, p in rare_hidden.items():
            if gs0.get(g, 0.0) >= cfg.harvest_group_share:
                continue  # shared by enough of the core anyway: the count added nothing
            o, e = cs.group_counts.get(g, (0, 0.0))
            cs.reasons.append(f"{o} of its {len(core[c])} core accounts share {GROUP_NOUNS.get(g, g)} where the "
                              f"store's own chance of sharing gives {e:.1f} (p = {p:.1g}): rare in each account, "
                              "improbable in the group")
        if susp > susp_all:
            n_sp = sum(n for _, n, *_ in share_read[c].values())
            cs.reasons.append(f"its suspicion reads its members' {n_sp} exchanges carrying the system prompts or templates "
                              f"only it sends{', with the answers they received,' if cs.cluster_id in kit_yard else ''} "
                              f"({susp_all:.2f} → {susp:.2f}): what its accounts relay beside their own traffic")
        if held_by:
            cs.reasons.append(f"only its counted rare ties coordinate it, so it is judged on their holders' suspicion "
                              f"({held_by[0]:.2f} → {held_by[1]:.2f})")
        if collecting is not None:
            cs.reasons.append("its accounts' prompts read like much of the store's, but its core receives clearly longer "
                              f"answers than the store's accounts (effect {collecting:.2f}): a harvest mixing ordinary "
                              "traffic in, not a cohort"
                              + (f"; its suspicion reads what it receives ({susp0:.2f} → {susp:.2f})" if lift > 0 else ""))
        if ordinary and short is not None:
            cs.reasons.append("its core asks long single-turn answers but receives clearly fewer output tokens "
                              f"than the accounts outside it (effect {short:.2f}): a generous ceiling, not a harvest")
        if ordinary:
            cs.reasons.append("weakly coordinated: its core receives what the store's accounts receive (a cohort's "
                              "busiest members, not a harvest)" if not below else
                              f"weakly coordinated: its accounts' traffic is no more suspicious than the "
                              f"{cfg.min_suspicion_percentile:.0%} of the store's other accounts (a cohort, not a "
                              "harvest)")
        scores.append(cs)

    # account risk
    by_acc = {a: cs for cs in scores for a in cs.members}
    median_w = {f"{id_prefix}-{c:04d}": w for c, w in ref_w.items()}
    core_n = {f"{id_prefix}-{c:04d}": len(ms) for c, ms in core.items()}
    pooled_of = {f"{id_prefix}-{c:04d}": g for c, g in group_comps.items()}
    member_distinct = burst_alone_dropped(con, distinct, member_groups, cfg)
    # the odd one out of its sign-up bursts (its mates share much among themselves, it only what chance gives) is a
    # chance sign-up in the hydra's minutes (``burst_corroboration_alpha``): the burst is not its distinctive tie. Not in a harvesting sub-cluster, whose members are there
    # for their own traffic
    chance_burst = set() if harvest else burst_uncorroborated(
        con, [a for a, gs in member_distinct.items() if gs == {"creation"}], cfg)
    member_distinct = {a: gs for a, gs in member_distinct.items() if a not in chance_burst}
    with_pool = shares_with_pool(con, membership, pool_of, member_distinct, cfg)
    # the members of a pooled body: read with the pool and sending the kit its anchors send (``pool_kit_carriers``)
    body_of = pool_kit_carriers(con, membership, pool_of, core,
                                {a for a, gs in member_distinct.items() if gs & set(DISTINCTIVE_GROUPS)},
                                with_pool & rare_holders, n_all, cfg) \
        if member_ties is None and (cfg.pool_member_yardstick or cfg.pool_member_takes_lift) else set()
    ids = feats["account_id"].to_pylist()
    suspicion = feats["suspicion"].to_numpy(zero_copy_only=False)
    own_bar = None if cfg.own_traffic_quantile is None else unusual_own_bar(
        suspicion, ids, {a for cs in scores if cs.risk >= cfg.flag_threshold for a in cs.members},
        cfg.own_traffic_quantile, cfg.own_traffic_spread, cfg.own_traffic_min_accounts)
    risk, cl_ids, reasons = [], [], []
    frow = {r["account_id"]: r for r in feats.select(
        [c for c in feats.column_names if c.startswith("c_") or c in ("account_id", "suspicion", "rpd_util", "mean_rpd_util", "n_exchanges")]
    ).to_pylist()}
    tied_received = {} if member_ties is not None or harvest else members_tied_received(
        scores, frow, member_distinct, tie_parties, cfg)
    for a, s in zip(ids, suspicion, strict=True):
        cs = by_acc.get(a)
        if cs is None:
            risk.append(float(min(cfg.single_account_cap, cfg.single_account_cap * s)))
            cl_ids.append(None)
            reasons.append(account_reasons(frow[a], None))
            continue
        f, _ = fit.get(a, (0.0, []))
        groups = member_groups.get(a, set())
        member = min(1.0, f / max(cfg.min_member_fit, 1e-9))
        # how strongly tied compared with the cluster's typical member: an ordinary user who shares one
        # proxy /24 with a hydra pool is in its community but far weaker tied than the pool's accounts
        member *= min(1.0, intra_w.get(a, 0.0) / max(cfg.min_member_strength * median_w[cs.cluster_id], 1e-9))
        own_distinct = member_distinct.get(a, set())
        # part of the pooled body: read with the pool (``poolshare.shares_with_pool``) and sending the template set its core
        # owns that its anchors send (``pool_kit_carriers``) — not a bystander sharing public artefacts, ASNs or clients
        body = a in body_of
        yard_used = False
        if member_ties is not None:
            own_distinct = own_distinct & set(member_ties) if tied is None or a in tied else set()
        if own_distinct and cs.cluster_id in pooled_of and member_ties is None and a in with_pool:
            # its traffic is read with its group's: thin own evidence shrinks towards the group, not to nothing
            s = max(float(s), member_suspicion(frow[a], pooled_of[cs.cluster_id], cfg.account_model))
        share = share_of.get(cs.cluster_id, {}).get(a)
        s_all = float(s)
        if share is not None and share[0] > s:
            # its exchanges carrying the cluster's private system prompts read more suspicious than all its traffic
            # (``pool_share_reading``): judged on them, as the cluster's suspicion is
            s = share[0]
        if cs.cluster_id in lifted_by:
            # the cluster's suspicion reads what its accounts receive: so does each member's, compared with it below
            s = with_received(float(s), frow[a].get("c_received_output"), lifted_by[cs.cluster_id])
        # a harvesting sub-cluster's member is there *because* its own traffic is in the store's top
        # harvest_quantile on harvest shape: the bystander rules below (tied only by public content, or only by
        # what ordinary users share with a pool) ask for evidence in the account's own traffic, which its
        # membership already is (scoring.harvest_own_evidence)
        own_shape = harvest and cfg.harvest_own_evidence
        # in a cluster lifted by counted rare ties, collecting answers as long as the ties' holders do is evidence in
        # the account's own traffic too (``rare_ties_received_quantile``): it takes the lifted level, and is not
        # judged as tied by public content alone (its own suspicion still decides the fall-off below)
        received = _num(frow[a].get("c_received_output"), 0.0)
        receives_like = cs.cluster_id in receive_bar and received > 0 and received >= receive_bar[cs.cluster_id]
        if not own_shape and not receives_like and not any(g in groups for g in (*INFRA_GROUPS, "timing")) and "content" not in own_distinct:
            member *= cfg.public_content_member_factor  # tied only by public content: the benchmark-researcher case (not an operation's own templates)
        # what the member's own traffic is compared with: the cluster's suspicion, without what its kit received
        # (``pool_share_received``: the member's own reading does not read that either)
        c_susp = kit_yard.get(cs.cluster_id, cs.suspicion)
        if c_susp > 0 and not own_distinct and not own_shape and not (own_bar is not None and s > own_bar):
            # tied only by what ordinary users share with a proxy pool (a residential /24, a stock SDK, a
            # free-mail domain): the flag must rest on the account's own traffic, so below the cluster's
            # suspicion the inherited risk falls off quadratically -- unless that traffic is unusual for the
            # store itself (``unusual_own_bar``)
            member *= min(1.0, float(s) / c_susp) ** 2
        # an account whose own traffic looks ordinary inherits the cluster's risk only when it is tied to
        # the cluster through several independent kinds of evidence (a pool account carrying mixed traffic);
        # then half the ratio suffices
        if c_susp > 0:
            # (sending the cluster's templates counts here even when a group this big would share them by chance:
            # the rule only relaxes the suspicion ratio for an account that also has a distinctive tie)
            # (in an operation only its own kinds count: thousands of proxy accounts replaying ordinary traffic
            # send the public templates every ordinary user sends)
            strong_ties = strong_member_ties(
                own_distinct | ({"content"} if a in sends_shared and member_ties is None else set()),
                {g: tie_parties.get((a, g), 0) for g in (*own_distinct, "content")},
                tie_core.get((a, "content"), 0), core_n.get(cs.cluster_id, 0), cfg)
            ratio = cfg.member_suspicion_ratio * (cfg.tied_member_ratio_factor if len(strong_ties) >= cfg.min_member_groups
                                                  else 1.0)
            # a member of the pooled body (``pool_member_yardstick``) is compared with the members read as it is
            yard = min(members_read.get(cs.cluster_id, c_susp), c_susp) if body else c_susp
            member *= min(1.0, float(s) / (ratio * yard))
            yard_used = yard < c_susp and float(s) < ratio * c_susp
        r = cs.risk * member
        if cs.cluster_id in kit_base and a not in share_of.get(cs.cluster_id, {}):
            # what the kit received is evidence about the accounts sending it: a member sending none of the kit (an
            # ordinary user on the pool's ISPs and schedule) keeps the level the cluster has without it
            r = min(r, kit_base[cs.cluster_id] * member)
        # ... and in a community lifted by counted rare ties it is part of the body those ties hold
        # (``pool_member_takes_lift``)
        body_lift = body and cfg.pool_member_takes_lift and cs.unlifted_risk is not None
        holds_own_lift = bool(groups & set(cs.rare_groups)) or (cs.content_lift and a in rare_holders) or receives_like
        holds_lift = holds_own_lift or body_lift
        if cs.unlifted_risk is not None and not own_shape and not holds_lift:
            # a community lifted by its counted rare ties lifts the members holding them; the rest of it (a
            # step-by-step tool's users who happen to share its ISPs and templates) keeps the capped level
            r = min(r, cs.unlifted_risk * member)
        if cs.unlifted_risk is not None and groups and groups <= set(cfg.rare_ties_bystander_groups) \
                and not (cs.content_lift and a in rare_holders) and not receives_like and not body_lift:
            # strong only through the counted rare ties: an account tied only by what a residential proxy's
            # co-tenants share with the pool (its /24s and ASNs) is no part of it; it keeps the capped level
            r = min(r, cs.unlifted_risk * member)
        # tied by nothing of its own and collecting far shorter answers than the members that are: a bystander whose
        # own prompts read suspicious (an agent framework's planner prompts), not part of the harvest
        # (``untied_member_received_share``)
        short_of = tied_received.get(cs.cluster_id)
        collects_less = short_of is not None and not own_shape and not receives_like and not body \
            and not own_tie(own_distinct, a, tie_parties, cfg) and frow[a].get("c_received_output") is not None \
            and received < cfg.untied_member_received_share * short_of
        if collects_less:
            r = min(r, cfg.single_account_cap * float(s))
        alone = a in chance_burst and not own_shape and not (groups - {"creation"})
        if alone:
            # tied to the cluster by nothing but sign-up bursts it is the odd one out of: scored as an account in
            # no cluster is, on its own traffic
            r = min(r, cfg.single_account_cap * float(s))
        risk.append(float(r))
        cl_ids.append(cs.cluster_id)
        ties = [g for g in ("payment", "network", "client", "email", "creation", "timing", "content", "intel") if g in groups]
        into = f"the community {cs.cluster_id} was found in" if a in fit_parent else cs.cluster_id
        own = [f"this account: {f:.0%} of its links point into {into}"
               + (f" (tied to {cs.cluster_id} through {', '.join(ties)})" if ties and a in fit_parent
                  else f" (through {', '.join(ties)})" if ties else "")]
        if collects_less:
            own.append(f"this account: no distinctive tie of its own, and it receives far shorter answers than the members "
                       f"holding {cs.cluster_id}'s (received-output rank {received:.2f} against their median "
                       f"{short_of:.2f}): scored on its own traffic")
        if alone:
            own.append(f"this account: shares with the accounts created in its sign-up bursts no more than chance gives, "
                       f"while they share much among themselves (a chance sign-up in {cs.cluster_id}'s minutes): "
                       "scored on its own traffic")
        if yard_used:
            own.append(f"this account: sends {cs.cluster_id}'s own template set and is read with its pool: its suspicion "
                       f"{float(s):.2f} is compared with the members' read one by one ({members_read[cs.cluster_id]:.2f}), "
                       f"not with the pooled reading ({cs.suspicion:.2f})")
        if body_lift and not holds_own_lift:
            own.append(f"this account: sends {cs.cluster_id}'s own template set and is read with its pool: it takes the "
                       "level its counted rare ties lift it to")
        if receives_like and cs.unlifted_risk is not None:
            own.append(f"this account: receives answers as long as the members holding {cs.cluster_id}'s rare ties "
                       f"(received-output rank {received:.2f} ≥ {receive_bar[cs.cluster_id]:.2f})")
        if share is not None and share[0] > s_all:
            own.append(f"this account: its {share[1]} exchanges carrying {cs.cluster_id}'s own system prompts or templates read at "
                       f"suspicion {share[0]:.2f} (all its traffic: {s_all:.2f})")
        reasons.append(cs.reasons[:3] + own + account_reasons(frow[a], cs))
    out = pa.table({"account_id": ids, "risk": pa.array(risk, pa.float64()),
                    "cluster_id": pa.array(cl_ids, pa.string()), "reasons": pa.array(reasons, pa.list_(pa.string()))})
    return scores, out
