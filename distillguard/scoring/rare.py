"""Evidence shares from the entities that are rare in the store at hand (issue 11, small providers).

A cluster's share of an evidence group is the share of its core observed sharing an entity of that group with
another party of the cluster, minus each member's chance of doing so with a random group of the cluster's size
drawn from the rest of the store (``score_clusters``). Observation and chance are per member and group, over
*all* the member's entities of the group. In a small store without account facts nearly every account holds one
entity almost everybody holds — the default system prompt of the store's one big app, the store's commonest SDK
string — so every member's chance in that group is close to 1, and a campaign's five accounts sharing ten
private system prompts that nobody else in the store sends look exactly like five strangers sharing the popular
one: share ≈ 0. An entity held by most of the store neither proves nor disproves anything about a group.

With ``scoring.rare_entity_chance`` set, the group shares read each member's sharing of the entities whose *own*
chance of being shared by a random group of the cluster's size is at most that level — "rare" judged against
this store's population and this cluster's size, not an absolute count — and the chance of those entities only.
A member holding only common entities of a group then contributes neither an observation nor an expectation to
that group (no evidence either way). Member ties, distinctive ties and the rest of the scorer are unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from distillguard.graph.edges import KIND_GROUP
from distillguard.scan.base import exact_sum

if TYPE_CHECKING:
    from distillguard.scan.config import ScoringConfig

#: Groups that can carry a harvesting sub-cluster alone: hidden infrastructure and shared timing.
HIDDEN_GROUPS = ("network", "payment", "creation", "timing", "intel")


def background_rate(n_all: int, outside: str = "mi.df - ins.m") -> str:
    """SQL (aliases of ``score_clusters``' group query): an entity's holders outside the cluster (``outside``, its
    background) as a share of the store's accounts outside it — each other member's chance of holding it by chance."""
    return f"greatest({outside}, 0) / greatest({n_all} - ksz.k, 1)"


def _per_entity(n_all: int, outside: str = "mi.df - ins.m") -> str:
    """SQL for one entity's own chance of being shared with a random group of the cluster's size."""
    return f"1 - exp(-(ksz.k - 1) * {background_rate(n_all, outside)})"


def held_sql(coincidental: str, min_holders: int) -> str:
    """SQL: the entity is shared evidence inside the cluster (enough of its parties hold it: ``min_holders`` for a
    coincidence group's entity not corroborated by a pair tied in two groups, else two)."""
    return (f"ins.np >= CASE WHEN g.grp IN ({coincidental}) AND corr.a IS NULL "
            f"THEN least({min_holders}, ksz.k) ELSE 2 END")


def rarest_tie_sql(groups: tuple[str, ...], coincidental: str, min_holders: int, n_all: int) -> tuple[str, str, str]:
    """A CTE, a join and a SELECT expression (``chance_t``) for ``score_clusters``' group query: each member's chance
    of a tie *at least as improbable as the rarest one it holds* in its cluster, in ``groups``
    (``scoring.harvest_rarest_tie_groups``) — the chance summed over its entities of the group whose own chance of
    being shared is at most that of the rarest entity it shares; a member sharing none keeps the chance over all its
    entities. Empty ``groups``: ``NULL AS chance_t``.

    Why: the group share sets the member's observed tie against its chance of sharing *any* entity of the group, and
    a stock SDK string that 76–97 of the store's accounts send makes that chance 0.6–0.9 for a member whose tie is a
    TLS fingerprint nobody outside its operation holds (dev3 quiet_hydra-703: the client group of its harvesting
    sub-cluster read 0.34). What the member shows is its rarest tie; the commoner entities it also holds could only
    have given a commoner one. A member holding many rare-ish entities still has a high chance of sharing one of
    them (they all count), and one sharing only stock values is read as before."""
    if not groups:
        return "", "", "NULL AS chance_t"
    per_entity, held = _per_entity(n_all), held_sql(coincidental, min_holders)
    gl = ", ".join(f"'{g}'" for g in groups)
    cte = (f", pst AS (SELECT mi.cl, mi.a, g.grp, min({per_entity}) FILTER (WHERE {held}) AS pstar "
           f"FROM mi JOIN ins USING (cl, kind, entity) JOIN _kg g USING (kind) JOIN ksz USING (cl) "
           f"LEFT JOIN corr ON corr.a = mi.a AND corr.grp = g.grp WHERE g.grp IN ({gl}) GROUP BY 1, 2, 3)")
    join = "LEFT JOIN pst ON pst.cl = mi.cl AND pst.a = mi.a AND pst.grp = g.grp"
    lam = background_rate(n_all)
    expr = (f"CASE WHEN g.grp IN ({gl}) THEN coalesce(1 - exp(-(any_value(ksz.k) - 1) * "
            f"{exact_sum(lam, f'pst.pstar IS NULL OR {per_entity} <= pst.pstar')}), 0) END AS chance_t")
    return cte, join, expr


def rare_entity_sql(cut: float | None, coincidental: str, min_holders: int, n_all: int,
                    content_cut: float | None = None, content_share: float = 0.0, suffix: str = "r",
                    outside: str = "mi.df - ins.m") -> str:
    """Two SELECT expressions, ``obs_r`` and ``chance_r``, for the per (cluster, member, group) query of
    ``score_clusters`` (aliases there: ``mi`` member's entity, ``ins`` entity's holders in the cluster, ``g``
    group, ``ksz`` cluster size, ``corr`` corroborated pairs). ``cut`` None repeats ``obs`` and ``chance``;
    ``content_cut`` (used when ``cut`` is None) reads the content group alone from its rare entities, and of those
    only the ones at least ``content_share`` of the cluster's core holds (``ins.nc`` of ``ksz.kc``: one template set
    the group runs, not a scatter of tools each a few of its members use). ``suffix`` names the pair (``obs_<suffix>``, ...).
    ``outside``: the entity's background, its holders outside the cluster (``kit_coholders`` leaves out of a
    content entity's the operation's own accounts in other clusters)."""
    per_entity, held = _per_entity(n_all, outside), held_sql(coincidental, min_holders)
    rare = ("TRUE" if content_cut is None else f"(g.grp <> 'content' OR ({per_entity} <= {float(content_cut)} "
                                                f"AND coalesce(ins.nc, 0) >= {float(content_share)} * coalesce(ksz.kc, ksz.k)))") \
        if cut is None else f"{per_entity} <= {float(cut)}"
    return (f"max(CASE WHEN {held} AND {rare} THEN 1 ELSE 0 END) AS obs_{suffix}, "
            f"coalesce(1 - exp(-(any_value(ksz.k) - 1) * "
            f"{exact_sum(background_rate(n_all, outside), rare)}), 0) AS chance_{suffix}")


def kit_coholders(con: duckdb.DuckDBPyConnection, tail: set[str], min_entities: int) -> None:
    """``_kit_held`` (cl, kind, entity, kx): for each of a cluster's kit entities — content two or more of its members
    (``_mem``) send and nobody outside it sends but accounts of the store's harvest-shape ``tail`` — how many of its
    holders outside the cluster co-hold the kit: they send at least ``min_entities`` of its kit entities.

    Why: a content entity is the cluster's own when nobody outside it sends it (``rare_content_chance``), and an
    operation scattered over many clusters fails that by its own size: a residential-proxy relay's template sent
    by 51 accounts of one harvesting sub-cluster is sent by 9 more of the relay's accounts in other clusters (dev3
    standard-712), so the sub-cluster owned no content. Those nine are harvest-shaped and send the sub-cluster's
    other templates; a popular tool's template is also sent by its ordinary users (nine in ten of the store is not
    the tail), so it is no kit entity and its background is not touched. Chance model: a public template's holders
    are in the tail at the store's rate (1 − ``harvest_quantile``), so all of them being harvest-shaped is a
    template few send; and one harvest-shaped account sending one such template beside the cluster is a chance
    pair, while one sending ``min_entities`` of them is running the same kit."""
    kinds = ", ".join(f"'{k}'" for k, g in KIND_GROUP.items() if g == "content")
    con.register("_ktail", pa.table({"account_id": sorted(tail)}))
    try:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _kit_held AS
            WITH nt AS (SELECT i.kind, i.entity, count(*) AS nt FROM inc i JOIN _ktail USING (account_id)
                        WHERE i.kind IN ({kinds}) GROUP BY 1, 2),
            c0 AS (SELECT m.cl, i.kind, i.entity, any_value(i.df) AS df,
                          count(*) FILTER (WHERE t.account_id IS NULL) AS n_out_tail
                   FROM inc i JOIN _mem m USING (account_id) LEFT JOIN _ktail t ON t.account_id = i.account_id
                   WHERE i.kind IN ({kinds}) GROUP BY 1, 2, 3 HAVING count(*) >= 2),
            -- sent by nobody outside the cluster who is not in the tail
            cand AS (SELECT c0.cl, c0.kind, c0.entity FROM c0 JOIN nt USING (kind, entity)
                     WHERE c0.df - nt.nt - c0.n_out_tail = 0),
            h AS (SELECT c.cl, c.kind, c.entity, i.account_id AS y
                  FROM cand c JOIN inc i USING (kind, entity) JOIN _ktail t ON t.account_id = i.account_id
                  LEFT JOIN _mem m ON m.account_id = i.account_id
                  WHERE m.cl IS DISTINCT FROM c.cl),
            co AS (SELECT cl, y FROM h GROUP BY 1, 2 HAVING count(*) >= {int(min_entities)})
            SELECT h.cl, h.kind, h.entity, count(*) AS kx FROM h JOIN co USING (cl, y) GROUP BY 1, 2, 3""")
    finally:
        con.unregister("_ktail")


GROUP_NOUNS = {"network": "a network (/24 or ASN)", "payment": "a payment fingerprint",
               "creation": "a sign-up burst", "timing": "a synchronised schedule", "intel": "a partner indicator"}


def rare_hidden_groups(obs: dict[str, float], exp: dict[str, float], cfg: ScoringConfig) -> dict[str, float]:
    """Hidden-tie groups of a harvesting sub-cluster's core held by improbably many members (group -> p).

    The group shares ask that half the core share a tie beyond chance; a quiet pool reuses its few cards and
    sign-up bursts in a handful of its accounts, far from half, yet a handful where the store's chance predicts
    none is not chance. Judged as a count: P(X >= observed) for X ~ Poisson(summed per-member chance), times the
    number of hidden groups (``harvest_group_alpha``, ``harvest_group_min_members``)."""
    if cfg.harvest_group_alpha is None:
        return {}
    from scipy.stats import poisson

    out = {}
    for g in HIDDEN_GROUPS:
        o = int(round(obs.get(g, 0.0)))
        if o < cfg.harvest_group_min_members:
            continue
        p = min(1.0, float(poisson.sf(o - 1, max(exp.get(g, 0.0), 0.0))) * len(HIDDEN_GROUPS))
        if p <= cfg.harvest_group_alpha:
            out[g] = p
    return out


def burst_alone_dropped(con: duckdb.DuckDBPyConnection, distinct: dict[str, set[str]],
                        member_groups: dict[str, set[str]], cfg: ScoringConfig) -> dict[str, set[str]]:
    """``distinct`` without the sign-up burst of members for whom it is the only evidence group held in the cluster
    and every burst they hold takes in more than ``distinctive_chance`` of its holders from the pathway's
    background sign-ups (``graph.edges``' ``burst_members``).

    Why: a burst is whoever signed up on one pathway in its minutes. In a 93k-account store a hydra's bursts on
    the standard pathway hold about one ordinary sign-up in ten by chance, and 196 such users had their traffic
    read with the hydra's pool and were flagged (issue 11/13, scale 1.0). At demo scale the background share is
    under 1% and nothing changes. The cluster's own evidence (its coordination, its pool) is untouched: this is
    only about what the burst says of *one* member."""
    if not cfg.burst_background_check:
        return distinct
    alone = [a for a, gs in distinct.items() if "creation" in gs and not (member_groups.get(a, set()) - {"creation"})]
    if not alone:
        return distinct
    try:
        con.register("_balone", pa.table({"account_id": alone}))
        rows = con.execute("SELECT account_id, min(chance) FROM burst_members JOIN _balone USING (account_id) "
                           "GROUP BY 1").fetchall()
    except duckdb.CatalogException:  # no incidence built on this connection (scoring a table on its own)
        return distinct
    finally:
        con.unregister("_balone")
    background = {a for a, ch in rows if ch is not None and ch > cfg.distinctive_chance}
    out = {a: (gs - {"creation"} if a in background else gs) for a, gs in distinct.items()}
    return {a: gs for a, gs in out.items() if gs}


def burst_uncorroborated(con: duckdb.DuckDBPyConnection, accounts: list[str], cfg: ScoringConfig) -> set[str]:
    """Of ``accounts`` (members whose one distinctive tie is a sign-up burst), the odd ones out of their bursts: the
    burst-mates (the other holders of its bursts) share with each other more entities than chance gives them, and
    the member shares with them fewer than the mates' own rate predicts and no more than chance gives it.

    Why: a burst is whoever signed up on one pathway in its minutes, and a hydra signing up in bursts on the
    standard pathway captures the ordinary sign-ups of those minutes (dev standard-105: two agent-framework users,
    whose own traffic is as suspicious as the hydra's, flagged through bursts holding three to six of its
    accounts). The hydra's accounts of one burst there come through the same proxy ASNs and send the same
    templates; the chance sign-up shares with them only what anyone might. A quiet hydra whose accounts share
    nothing but the burst gives no such contrast, and its bursts stay its members' ties; nor does a hydra account
    holding so few entities that its mates' rate predicts about nothing for it.

    Counted per account y as O, its entities other than sign-up bursts one of its k burst-mates (the other mates,
    for a mate) holds too, against E = Σ over its entities of 1 − (1 − df/N)^k, what k accounts drawn from the
    store would share with it (df: the entity's holders, N: the store's accounts). Beyond chance: P(X ≥ O),
    X ~ Poisson(E), at most ``scoring.burst_corroboration_alpha`` (the mates' counts summed). Fewer than the mates'
    rate: the exact conditional test of two Poisson rates, P(X ≤ O) for X ~ Binomial(O + O_mates, E / (E +
    E_mates)), at most the same bound. None: off."""
    if cfg.burst_corroboration_alpha is None or not accounts:
        return set()
    from scipy.stats import binom, poisson

    try:
        con.register("_bcor", pa.table({"account_id": accounts}))
        rows = con.execute("""
            WITH n AS (SELECT count(DISTINCT account_id) AS n FROM inc),
            me AS (SELECT DISTINCT b.account_id, b.entity FROM burst_members b JOIN _bcor USING (account_id)),
            mates AS (SELECT DISTINCT me.account_id AS x, b.account_id AS mate FROM me JOIN burst_members b
                      ON b.entity = me.entity AND b.account_id <> me.account_id),
            k AS (SELECT x, count(*) AS k FROM mates GROUP BY 1),
            -- the member's own entities (role 0) and its mates' (role 1), sign-up bursts aside
            mine AS (SELECT i.account_id AS x, i.kind, i.entity, i.df FROM inc i JOIN k ON k.x = i.account_id
                     WHERE i.kind <> 'creation_burst'),
            theirs AS (SELECT m.x, m.mate, i.kind, i.entity, i.df FROM mates m JOIN inc i ON i.account_id = m.mate
                       WHERE i.kind <> 'creation_burst'),
            -- how many of the member's mates hold each entity: a mate's entity is shared with the other mates
            -- when at least two hold it, so the mates' summed count is the sum of those holder counts (one pass
            -- over the mates, not one per pair of mates)
            held AS (SELECT x, kind, entity, count(DISTINCT mate) AS c FROM theirs GROUP BY 1, 2, 3),
            o AS (SELECT m.x, 0 AS role, count(*) AS o FROM (SELECT DISTINCT x, kind, entity FROM mine) m
                  JOIN held h ON h.x = m.x AND h.kind = m.kind AND h.entity = m.entity GROUP BY 1
                  UNION ALL SELECT x, 1, sum(c) FROM held WHERE c >= 2 GROUP BY 1),
            e AS (SELECT m.x, 0 AS role, sum(1 - pow(greatest(1 - (m.df - 1) / greatest(n.n - 1, 1), 0), k.k)) AS e
                  FROM mine m JOIN k USING (x) CROSS JOIN n GROUP BY 1
                  UNION ALL SELECT t.x, 1, sum(1 - pow(greatest(1 - (t.df - 1) / greatest(n.n - 1, 1), 0), k.k - 1))
                  FROM theirs t JOIN k USING (x) CROSS JOIN n GROUP BY 1)
            SELECT k.x, k.k, r.role, coalesce(o.o, 0), coalesce(e.e, 0.0)
            FROM k CROSS JOIN (VALUES (0), (1)) r(role)
            LEFT JOIN o ON o.x = k.x AND o.role = r.role LEFT JOIN e ON e.x = k.x AND e.role = r.role
            """).fetchall()
    except duckdb.CatalogException:  # no incidence built on this connection (scoring a table on its own)
        return set()
    finally:
        con.unregister("_bcor")
    alpha = float(cfg.burst_corroboration_alpha)

    def beyond(o: int, e: float) -> bool:
        return o > 0 and float(poisson.sf(int(o) - 1, max(float(e), 1e-12))) <= alpha

    by: dict[str, dict[int, tuple[int, int, float]]] = {}
    for x, k, role, o, e in rows:
        by.setdefault(x, {})[int(role)] = (int(k), int(o), float(e))
    out = set()
    for x, r in by.items():
        (k, o, e), (_, om, em) = r.get(0, (0, 0, 0.0)), r.get(1, (0, 0, 0.0))
        if k < 2 or beyond(o, e) or not beyond(om, em) or e <= 0:
            continue
        if float(binom.cdf(o, o + om, e / (e + em))) <= alpha:
            out.add(x)
    return out
