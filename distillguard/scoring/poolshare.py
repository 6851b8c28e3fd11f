"""Pool-share reading: a pool member's suspicion read on the exchanges that carry its pool's private system prompts
(and, ``scoring.pool_share_templates``, its private templates); which members a pool's reading may reach.

A residential proxy relays an operation's requests beside its owner's ordinary traffic. Read over all its
exchanges, its suspicion is a blend of the two — the owner's chat dilutes the relay's one-turn, long-answer,
harvest-intent share — so a pool of such proxies, however tightly it shares the operation's private system
prompts, sits at an ordinary level (dev standard-117: 23 proxies sharing 14 system prompts nobody outside their
community sends, coordination 0.61, suspicion 0.36, risk 0.447 < 0.5; docs/benchmarks.md, branch ``fam20``).

What the pool relays is visible to the provider: the exchanges carrying the system prompts the community owns.
``scoring.pool_share_reading`` reads each member on those exchanges alone — the account model's share
components (intent, capability, task items, reasoning, one-turn, the requested length ranked among the store's
accounts, the harvest shape) on that subset, shrunk by the subset's own count as any account's are; the
account-level components (limit use, volume, age, verification, pivot, template reuse, received output) stay the
account's own. The larger of the two readings counts (``score_clusters``). A member who never sends the pool's
prompts (an ordinary user on the same ISPs) is read as before; an account's whole traffic on those prompts reads
the same either way. The prompts are the ones the content share already calls the community's own template set:
nobody outside it sends them (``rare_content_chance``) and at least ``rare_content_min_share`` of its core does.

Needs the ``beh_as`` partial (``behavior.system_prompt_partials``): per account × system prompt × hour, the counts
the share components are made of. ``window_view`` exposes the detection's window of it as ``beh_as_w``.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa

from distillguard.graph.edges import KIND_GROUP
from distillguard.scan.base import CAPABILITY_PREFIX, has_view
from distillguard.scoring.reasons import _num
from distillguard.scoring.suspicion import COMPONENTS, StoreOutput, blend
from distillguard.store.sqltext import sql_string

#: The view of ``beh_as`` a detection step reads (its window's rows; hit columns renamed by role).
VIEW = "beh_as_w"
#: ... and of ``beh_at`` when it carries the same counts (``behavior.template_partials``): the exchanges by template.
TEMPLATE_VIEW = "beh_at_w"
#: content kind in ``inc`` → (the window view of its partial, the column naming the entity there)
KIT_VIEWS = {"system_prompt": (VIEW, "entity"), "template": (TEMPLATE_VIEW, "template_key")}

#: Components read on the pool's share of a member's exchanges; the rest stay the account's own.
SHARE_COMPONENTS = ("intent", "capability", "task_items", "reasoning", "single_turn", "long_output", "harvest_shape")

#: Evidence a residential proxy's ordinary co-tenants do not share with its accounts: the same card,
#: the same sign-up burst, the same schedule on the same template, a partner's indicator.
DISTINCTIVE_GROUPS = ("payment", "creation", "timing", "intel")


def window_view(con, sigs: list[str], non_intent: tuple[str, ...], until: datetime | None,
                since: datetime | None) -> bool:
    """Create view ``beh_as_w``: the rows of ``beh_as`` in the detection's window (account × system prompt × hour), each
    signal's hit count named ``hiti_<signal>`` when it counts as intent (the account model's rule: not a capability
    signal, not one of ``non_intent``) and ``hitc_<signal>`` when it is a capability signal; and ``beh_at_w``, the
    same of ``beh_at`` (account × template × hour) when it carries those counts (``behavior.template_partials``).
    False (and no view) when the store's partials have no ``beh_as`` (``behavior.system_prompt_partials`` off, or
    built before it)."""
    made = False
    for view, table, key in ((VIEW, "beh_as", "entity"), (TEMPLATE_VIEW, "beh_at", "template_key")):
        if not has_view(con, table):
            continue
        have = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
        if "n_single" not in have:   # beh_at without the share counts
            continue
        _share_view(con, view, table, key, have, sigs, non_intent, until, since)
        made = made or view == VIEW
    return made


def _share_view(con, view: str, table: str, key: str, have: set[str], sigs: list[str], non_intent: tuple[str, ...],
                until: datetime | None, since: datetime | None) -> None:
    from distillguard.behavior.features import _until

    hits = []
    for s in sigs:
        if f"hit_{s}" not in have:
            continue
        if s.startswith(CAPABILITY_PREFIX):
            hits.append(f", hit_{s} AS hitc_{s}")
        elif s not in non_intent:
            hits.append(f", hit_{s} AS hiti_{s}")
    # the hourly rows, not their sums: the reading joins them with a few clusters' private prompts first and sums
    # what is left (a view summed per account and prompt would sum the whole window at every read)
    con.execute(f"""CREATE OR REPLACE VIEW {view} AS
        SELECT account_id, {key} AS entity, n, n_single, n_reason, n_maxtok, sum_maxtok, sum_out, n_out, n_task
               {''.join(hits)}
        FROM {table} WHERE {_until(until, since=since)}""")


def pool_share_suspicion(con, membership: dict[str, int], core: dict[int, set[str]], feat_rows: dict[str, dict],
                         store_out: StoreOutput | None, n_all: int, cfg, store_recv: StoreOutput | None = None
                         ) -> dict[int, dict[str, tuple[float, int, float, float, float]]]:
    """cluster -> member -> (its suspicion read on its exchanges carrying the cluster's private system prompts,
    how many such exchanges), for the members that sent any; clusters without such prompts are absent. With
    ``pool_share_templates``, a member is also read on its exchanges carrying the cluster's private templates, and
    the larger of the two readings is kept. Needs the ``inc`` table (incidence: who holds which system prompt or
    template, and how many accounts in the store do) and the ``beh_as_w`` (``beh_at_w``) view (``window_view``)."""
    if not cfg.pool_share_reading or not membership:
        return {}
    kinds = {"system_prompt": cfg.rare_content_min_share}
    if cfg.pool_share_templates:
        kinds["template"] = cfg.rare_content_min_share if cfg.pool_share_template_min_share is None \
            else cfg.pool_share_template_min_share
    kinds = {k: v for k, v in kinds.items() if has_view(con, KIT_VIEWS[k][0])}
    if not kinds:
        return {}
    cut = cfg.rare_content_chance if cfg.rare_content_chance is not None else cfg.distinctive_chance
    model = cfg.account_model
    k = float(model.prior_exchanges)
    out: dict[int, dict[str, tuple[float, int, float, float, float]]] = {}
    con.register("_psm", pa.table({"account_id": list(membership), "cl": list(membership.values()),
                                   "in_core": [a in core.get(c, ()) for a, c in membership.items()]}))
    try:
        for kind, min_share in kinds.items():
            view = KIT_VIEWS[kind][0]
            cols = [r[0] for r in con.execute(f"DESCRIBE {view}").fetchall()]
            hit_cols = [c for c in cols if c.startswith(("hiti_", "hitc_"))]
            rows = con.execute(f"""
                WITH h AS (SELECT m.cl, i.entity, count(DISTINCT i.account_id) AS m,
                                  count(DISTINCT i.account_id) FILTER (WHERE m.in_core) AS nc, any_value(i.df) AS df
                           FROM inc i JOIN _psm m USING (account_id) WHERE i.kind = {sql_string(kind)} GROUP BY 1, 2),
                k AS (SELECT cl, count(*) AS k, count(*) FILTER (WHERE in_core) AS kc FROM _psm GROUP BY 1),
                pe AS (SELECT h.cl, h.entity FROM h JOIN k USING (cl)
                       WHERE 1 - exp(-(k.k - 1) * greatest(h.df - h.m, 0) / greatest({int(n_all)} - k.k, 1)) <= {float(cut)}
                         AND h.nc >= greatest(2, {float(min_share)} * k.kc))
                SELECT m.cl, b.account_id, sum(b.n), sum(b.n_single), sum(b.n_reason), sum(b.n_maxtok), sum(b.sum_maxtok),
                       sum(b.sum_out), sum(b.n_out), sum(b.n_task) {''.join(f', sum(b.{c})' for c in hit_cols)}
                FROM {view} b JOIN _psm m USING (account_id) JOIN pe ON pe.cl = m.cl AND pe.entity = b.entity
                GROUP BY 1, 2 ORDER BY 1, 2""").fetchall()
            for c, a, n, n_single, n_reason, n_mt, sum_mt, sum_out, n_out, n_task, *hits in rows:
                own = feat_rows.get(a)
                n = float(n or 0)
                if own is None or n <= 0:
                    continue
                comps = share_components(own, n, float(n_single or 0), float(n_reason or 0), float(n_task or 0),
                                         float(n_mt or 0), float(sum_mt or 0),
                                         [float(h or 0) for h, col in zip(hits, hit_cols, strict=True) if col.startswith("hiti_")],
                                         [float(h or 0) for h, col in zip(hits, hit_cols, strict=True) if col.startswith("hitc_")],
                                         store_out, k, float(model.rank_prior_exchanges))
                if store_recv is not None and n_out:
                    # what those exchanges received, ranked among the store's accounts as ``received_output`` is
                    comps["received_output"] = store_recv.rank(float(sum_out or 0) / float(n_out), float(n_out),
                                                               float(model.rank_prior_exchanges)) * n / (n + k)
                got = (blend(comps, model), int(n), comps["received_output"], float(sum_out or 0), float(n_out or 0))
                # the larger reading of the two kinds of kit (system prompts, templates)
                if got[0] > out.setdefault(c, {}).get(a, (-1.0,))[0]:
                    out[c][a] = got
    finally:
        con.unregister("_psm")
    return out


def kit_collects(got: dict[str, tuple], core_rows: list[dict], alpha: float | None) -> bool:
    """Do the core's kit exchanges receive longer answers than the same accounts' other traffic? A one-sided sign
    test over the core members that sent both (the kit's mean output tokens against the rest of the account's):
    p at most ``alpha`` (None: no test, always true).

    Why: what a harvest's kit collects is what separates it, but a developers' community's private coding-agent
    templates draw the same answers as the rest of its members' coding work (dev2 standard-312: 15 of 30 core
    members' kit exchanges receive more than their other traffic, a coin flip), and a tool's users send all their
    traffic on the tool's prompt (nothing to compare); a quiet hydra's templates draw ~1,300 tokens where its
    owners' mixed-in chat draws ~600 (dev3 quiet_hydra-706: 21 of 22)."""
    if alpha is None:
        return True
    above = n = 0
    for r in core_rows:
        g = got.get(r["account_id"])
        own_mean, own_n = r.get("mean_output_tokens"), r.get("n_output_tokens")
        if g is None or not g[4] or own_mean is None or own_n is None or own_mean != own_mean or own_n != own_n:
            continue
        rest_n = float(own_n) - g[4]
        if rest_n <= 0:
            continue
        rest = (float(own_mean) * float(own_n) - g[3]) / rest_n
        kit = g[3] / g[4]
        if kit == rest:
            continue
        n += 1
        above += kit > rest
    if n == 0:
        return False
    from scipy.stats import binomtest

    return float(binomtest(above, n, 0.5, alternative="greater").pvalue) <= alpha


def share_components(own: dict, n: float, n_single: float, n_reason: float, n_task: float, n_mt: float,
                     sum_mt: float, intent_hits: list[float], cap_hits: list[float], store_out: StoreOutput | None,
                     prior: float, rank_prior: float) -> dict[str, float]:
    """The account model's components for ``n`` of an account's exchanges (the ``SHARE_COMPONENTS`` from their
    counts, shrunk by n / (n + prior) as ``suspicion.components`` shrinks an account's; the others the account's
    own ``c_<component>``). The requested length is ranked among the store's accounts (``store_out``); without it,
    the account's own ``long_output`` and ``harvest_shape`` stay."""
    sure = n / (n + prior) if prior > 0 else 1.0
    comps = {c: _own(own, c) for c in COMPONENTS}
    comps["intent"] = (max(intent_hits) / n if intent_hits else 0.0) * sure
    comps["capability"] = (max(cap_hits) / n if cap_hits else 0.0) * sure
    comps["task_items"] = min(1.0, n_task / n) * sure
    comps["reasoning"] = n_reason / n * sure
    comps["single_turn"] = n_single / n * sure
    if store_out is not None and n_mt > 0:
        rank = store_out.rank(sum_mt / n_mt, n_mt, rank_prior)
        comps["long_output"] = rank * sure
        comps["harvest_shape"] = rank * sure * comps["single_turn"]
    return comps


def _own(row: dict, comp: str) -> float:
    v = row.get(f"c_{comp}")
    v = 0.0 if v is None else float(v)
    return 0.0 if np.isnan(v) else v


def pool_kit_carriers(con, membership: dict[str, int], pool_of: dict[int, set[str]], core: dict[int, set[str]],
                      anchors: set[str], candidates: set[str], n_all: int, cfg) -> set[str]:
    """Of ``candidates`` (members of pooled clusters), those carrying the pool's own kit: a content entity (system
    prompt, template, task item) that nobody outside the cluster sends (``rare_content_chance``), that at least
    ``rare_content_min_share`` of the cluster's core sends, and that at least ``pool_min_accounts`` — and
    ``pool_min_share`` — of the pool's anchors send besides the member itself. Anchors are the pooled accounts holding
    a tie of infrastructure or timing (``anchors``) when the pool has ``pool_min_accounts`` of them, else every pooled
    account (as ``shares_with_pool`` counts them). Needs the ``inc`` table.

    Why: such a member is part of the body of traffic the pooled reading judges (``scoring.pool_member_yardstick``,
    ``pool_member_takes_lift``). Reading a member "with the pool" alone is not that: a company account holding a stock
    SDK the pool's anchors also run and one rare prompt two pool accounts send is read with the pool, yet sends
    nothing the operation's anchors send as a body."""
    todo = {a: membership[a] for a in candidates if membership.get(a) in pool_of}
    if not todo:
        return set()
    kinds = [k for k, g in KIND_GROUP.items() if g == "content"]
    k_min, share = int(cfg.pool_min_accounts), float(cfg.pool_min_share)
    cut = cfg.rare_content_chance if cfg.rare_content_chance is not None else cfg.distinctive_chance
    cls = set(todo.values())
    by_cl: dict[int, list[str]] = {}
    for a, x in membership.items():
        if x in cls:
            by_cl.setdefault(x, []).append(a)
    ids, cl, in_core, anchor, cand = [], [], [], [], []
    for c in sorted(cls):
        n_anchor = sum(1 for a in pool_of[c] if a in anchors)
        for a in sorted(by_cl[c]):
            ids.append(a)
            cl.append(c)
            in_core.append(a in core.get(c, ()))
            anchor.append(a in pool_of[c] and (a in anchors or n_anchor < k_min))
            cand.append(a in todo)
    con.register("_kit", pa.table({"account_id": ids, "cl": cl, "in_core": in_core, "anchor": anchor, "cand": cand}))
    try:
        rows = con.execute(f"""
            WITH h AS (SELECT k.cl, k.account_id, k.in_core, k.anchor, k.cand, i.kind, i.entity, i.df
                       FROM inc i JOIN _kit k USING (account_id) WHERE i.kind IN ({", ".join(sql_string(x) for x in kinds)})),
            sz AS (SELECT cl, count(*) AS k, count(*) FILTER (WHERE in_core) AS kc,
                          count(*) FILTER (WHERE anchor) AS na FROM _kit GROUP BY 1),
            e AS (SELECT h.cl, h.kind, h.entity, count(DISTINCT h.account_id) AS m,
                         count(DISTINCT h.account_id) FILTER (WHERE h.in_core) AS nc, any_value(h.df) AS df,
                         count(DISTINCT h.account_id) FILTER (WHERE h.anchor) AS nh
                  FROM h GROUP BY 1, 2, 3),
            kit AS (SELECT e.* , sz.na FROM e JOIN sz USING (cl)
                    WHERE 1 - exp(-(sz.k - 1) * greatest(e.df - e.m, 0) / greatest({int(n_all)} - sz.k, 1)) <= {float(cut)}
                      AND e.nc >= {float(cfg.rare_content_min_share)} * sz.kc)
            SELECT DISTINCT h.account_id FROM h JOIN kit USING (cl, kind, entity)
            WHERE h.cand AND kit.nh - (CASE WHEN h.anchor THEN 1 ELSE 0 END) >= greatest({k_min}, {share} * kit.na)
            """).fetchall()
    finally:
        con.unregister("_kit")
    return {a for (a,) in rows}


def shares_with_pool(con, membership: dict[str, int], pool_of: dict[int, set[str]],
                     distinct: dict[str, set[str]], cfg) -> set[str]:
    """The members of pooled clusters whose traffic may be read with the pool's (``score_clusters``): those
    holding a distinctive tie of infrastructure or timing (``DISTINCTIVE_GROUPS``), and those whose only
    distinctive ties are private content or client fingerprints when they hold one entity of that kind that at
    least ``pool_min_accounts`` of the pooled accounts (itself not counted) hold too, and at least
    ``pool_min_share`` of them: an operation's kit is held by a good part of its pool, while a stock SDK build a
    few ordinary users happen to share with three of a 56-account pool's accounts is "private" only because the
    community absorbed all its holders (dev standard-100: two chat users with 1 and 16 requests read as the pool).

    Why: "private" content is judged by whether anyone outside the cluster holds it, and early in a window a
    coding template three accounts have sent is held by nobody outside the community those three were put in
    *because* they share it. A one-request company account that sent the same public-looking coding template
    as one hydra account and a student was read as the hydra's pooled traffic and flagged (issue 14, loop
    replay seed 3, 08:00). An operation's own templates are sent by many of its pooled accounts."""
    out = {a for a, gs in distinct.items() if gs & set(DISTINCTIVE_GROUPS)}
    need = {a: c for a, c in membership.items() if c in pool_of and a in distinct and a not in out}
    if not need:
        return out
    kinds = [k for k, g in KIND_GROUP.items() if g in ("content", "client")]
    pooled = [(a, c) for c, ms in pool_of.items() for a in ms]
    # ``pool_anchored``: only the pool's anchors count as holders — its accounts holding a tie of infrastructure or
    # timing (``DISTINCTIVE_GROUPS``) — when it has at least ``pool_min_accounts`` of them; otherwise every pooled
    # account counts, as before. The anchor flag rides on each incidence row: a list of a pool's anchors joined to
    # every row ran a scale-1.0 scan (20k-account pools) out of memory
    anchored = bool(cfg.pool_anchored)
    con.register("_need", pa.table({"account_id": list(need) + [a for a, _ in pooled],
                                    "cl": list(need.values()) + [c for _, c in pooled],
                                    "pool": [False] * len(need) + [True] * len(pooled),
                                    "anchor": [False] * len(need) + [anchored and a in out for a, _ in pooled]}))
    k_min, share = int(cfg.pool_min_accounts), float(cfg.pool_min_share)
    rows = con.execute(f"""
        WITH h AS (SELECT n.cl, n.account_id, n.pool, n.anchor, i.kind, i.entity FROM inc i JOIN _need n USING (account_id)
                   WHERE i.kind IN ({", ".join(repr(k) for k in kinds)})),
        p0 AS (SELECT cl, count(DISTINCT account_id) AS n, count(DISTINCT account_id) FILTER (WHERE anchor) AS na
               FROM _need WHERE pool GROUP BY 1),
        p AS (SELECT cl, na >= {k_min} AS by_anchor, CASE WHEN na >= {k_min} THEN na ELSE n END AS n FROM p0),
        e AS (SELECT h.cl, h.kind, h.entity, list(DISTINCT h.account_id) FILTER (
                  WHERE h.pool AND (NOT p.by_anchor OR h.anchor)) AS holders
              FROM h JOIN p USING (cl) GROUP BY 1, 2, 3)
        SELECT DISTINCT h.account_id FROM h JOIN e USING (cl, kind, entity) JOIN p USING (cl)
        WHERE NOT h.pool AND len(list_filter(coalesce(e.holders, []), lambda x: x <> h.account_id))
              >= greatest({k_min}, {share} * p.n)
        """).fetchall()
    con.unregister("_need")
    return out | {a for (a,) in rows if a in need}


def core_read(rows: list[dict], reading: dict[str, float], quantile: float) -> float:
    """A cluster's suspicion with each member read at the larger of its own suspicion and ``reading`` (its traffic
    on the cluster's kit; ``pool_share_reading``, ``pool_share_received``): the members' ``quantile``, as the
    cluster's own suspicion is taken."""
    return float(np.quantile([max(_num(r["suspicion"]), reading.get(r["account_id"], 0.0)) for r in rows],
                             quantile)) if rows else 0.0
