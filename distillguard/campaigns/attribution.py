"""Attribution (clusters → the organisation behind them) and ban-evasion links.

Clusters that share what an operator reuses across its account pools — a payment instrument,
account-creation tooling (e-mail naming pattern + sign-up burst), client fingerprints, or a
private prompt template — are grouped under one ``org_key`` so enforcement can hit the
organisation instead of one pool at a time. A newly active account that inherits most of a
banned account's weighted entities (fingerprints, templates, payment, workload) is linked to it.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa
import xxhash

from distillguard.graph.communities import UnionFind
from distillguard.graph.edges import KIND_GROUP
from distillguard.scan.base import exact_sum, temp_strings

#: Kinds that tie pools of one operator together (not networks: proxy pools are rented by many).
ORG_KINDS = ("payment", "email_pattern", "creation_burst", "ja4", "header_fp", "template", "system_prompt")
#: Kinds a replacement account inherits from the account it replaces.
INHERIT_KINDS = ("ja4", "header_fp", "user_agent", "payment", "template", "system_prompt", "ip24", "task_item", "sync")


def cluster_holders(con: duckdb.DuckDBPyConnection, groups: dict[str, list[str]],
                    kinds: tuple[str, ...]) -> pa.Table:
    """Per cluster of ``groups``, entity kind and entity of ``kinds`` the cluster's accounts hold: ``holders`` (its
    accounts holding it, distinct), ``h`` (how many) and ``df`` (the entity's holders in the whole store).

    One join of the incidence table over the clusters' accounts, which every pairwise test of the campaign stage
    starts from: ``exclusive_links`` (per-kind holder counts of a pair's own entities), ``owned.own_ties`` (an
    entity's holders in the bigger cluster and the union of the smaller's holders across kinds) and
    ``build._workloads`` (each cluster's private content). They each joined the table again over the same
    flagged clusters' accounts."""
    temp_strings(con, "_ch_m", {"account_id": [a for ms in groups.values() for a in ms],
                                "cl": [c for c, ms in groups.items() for _ in ms]})
    kl = ", ".join(f"'{k}'" for k in kinds)
    try:
        return con.sql(f"""
            SELECT m.cl, i.kind, i.entity, any_value(i.df) AS df, count(DISTINCT i.account_id) AS h,
                   list(DISTINCT i.account_id) AS holders
            FROM inc i JOIN _ch_m m USING (account_id) WHERE i.kind IN ({kl}) GROUP BY 1, 2, 3""").to_arrow_table()
    finally:
        con.execute("DROP TABLE IF EXISTS _ch_m")


def exclusive_links(con: duckdb.DuckDBPyConnection, holders: pa.Table, kinds: tuple[str, ...],
                    exclusive: float) -> list[tuple[str, str, str, int, int]]:
    """(cluster1, cluster2, kind, n1, n2) for cluster pairs sharing entities of ``kind`` that are *theirs*: at
    least ``exclusive`` of the entity's holders in the store sit in the two clusters (a public attack template,
    a free-mail domain or a stock SDK fingerprint is not). n1 / n2 count the accounts of each side holding one.
    ``holders``: ``cluster_holders`` of the clusters, for at least these kinds."""
    kl = ", ".join(f"'{k}'" for k in kinds)
    con.register("_xl_h", holders)
    try:
        return [tuple(r) for r in con.execute(f"""
            WITH ch AS (SELECT * FROM _xl_h WHERE kind IN ({kl})),
            -- cluster pairs per entity from the holders per cluster and entity: never account × account within
            -- an entity (two 10,000-account pieces of one operation sharing its template are 10⁸ pairs)
            ex AS (SELECT a.cl AS c1, b.cl AS c2, a.kind, a.holders AS hs1, b.holders AS hs2
                   FROM ch a JOIN ch b ON a.kind = b.kind AND a.entity = b.entity AND a.cl < b.cl
                   WHERE a.h + b.h >= {float(exclusive)} * a.df)
            SELECT c1, c2, kind, len(list_distinct(flatten(list(hs1)))), len(list_distinct(flatten(list(hs2))))
            FROM ex GROUP BY 1, 2, 3""").fetchall()]
    finally:
        con.unregister("_xl_h")


def attribute_orgs(con: duckdb.DuckDBPyConnection, cluster_members: dict[str, list[str]],
                   exclusive: float = 0.8) -> dict[str, str]:
    """cluster_id → org_key. Clusters sharing a payment instrument, or two kinds of account tooling
    (e-mail naming, creation burst, client fingerprint), or tooling plus private templates, are one
    organisation (union-find over cluster pairs). Only entities that are the clusters' own count
    (``exclusive`` of their holders inside the pair): unrelated operations that send the same public attack
    template through the same stock SDK are not one organisation."""
    if not cluster_members:
        return {}
    links = exclusive_links(con, cluster_holders(con, cluster_members, ORG_KINDS), ORG_KINDS, exclusive)
    kinds_of: dict[tuple[str, str], set[str]] = {}
    for a, b, k, _, _ in links:
        kinds_of.setdefault((a, b), set()).add(k)
    uf = UnionFind(cluster_members)
    for (a, b), ks in kinds_of.items():
        groups = {KIND_GROUP[k] for k in ks}
        tooling = groups & {"email", "creation", "client"}
        if "payment" in groups or len(tooling) >= 2 or (tooling and "content" in groups):
            uf.union(a, b)
    out = {}
    for members in uf.groups().values():
        accts = sorted(a for c in members for a in cluster_members[c])
        key = "org-" + xxhash.xxh64("\n".join(accts[:50]).encode()).hexdigest()[:10]
        for c in members:
            out[c] = key
    return out


def ban_evasion_links(con: duckdb.DuckDBPyConnection, min_overlap: float,
                      until: datetime | None = None) -> list[tuple[str, str, float]]:
    """(new_account, banned_account, weighted overlap) for accounts that took over a banned one's
    fingerprints, templates or workload after it was banned."""
    kinds = ", ".join(f"'{k}'" for k in INHERIT_KINDS)
    cut = f"AND b.status_changed_at < TIMESTAMPTZ '{until.isoformat()}'" if until is not None else ""
    return [tuple(r) for r in con.execute(f"""
        WITH banned AS (SELECT account_id, status_changed_at FROM accounts b
                        WHERE status = 'banned' AND status_changed_at IS NOT NULL {cut}),
        be AS (SELECT i.account_id, i.kind, i.entity, i.w, banned.status_changed_at FROM inc i
               JOIN banned USING (account_id) WHERE i.kind IN ({kinds})),
        btot AS (SELECT account_id, {exact_sum('w')} AS w FROM be GROUP BY 1),
        firsts AS (SELECT account_id, min(hour) AS first_hour FROM beh_ah GROUP BY 1),
        -- only accounts that could be a replacement (not banned, first active at most a day before some ban) are
        -- paired with the banned accounts' entities: a banned pool's template held by thousands of long-standing
        -- accounts is not thousands × pool rows
        ni AS (SELECT i.account_id, i.kind, i.entity, f.first_hour FROM inc i JOIN firsts f USING (account_id)
               LEFT JOIN accounts na USING (account_id)
               WHERE i.kind IN ({kinds}) AND coalesce(na.status, 'active') <> 'banned'
                 AND f.first_hour >= (SELECT min(status_changed_at) FROM banned) - INTERVAL 1 DAY),
        cand AS (SELECT i.account_id AS new_account, be.account_id AS banned, {exact_sum('be.w')} AS shared
                 FROM be JOIN ni i ON i.kind = be.kind AND i.entity = be.entity AND i.account_id <> be.account_id
                 WHERE i.first_hour >= be.status_changed_at - INTERVAL 1 DAY
                 GROUP BY 1, 2)
        SELECT c.new_account, c.banned, c.shared / btot.w AS overlap
        FROM cand c JOIN btot ON btot.account_id = c.banned JOIN banned bn ON bn.account_id = c.banned
        JOIN firsts f ON f.account_id = c.new_account
        LEFT JOIN accounts na ON na.account_id = c.new_account
        WHERE c.shared / btot.w >= {float(min_overlap)}
          AND f.first_hour >= bn.status_changed_at - INTERVAL 1 DAY
          AND coalesce(na.status, 'active') <> 'banned'
        ORDER BY overlap DESC""").fetchall()]
