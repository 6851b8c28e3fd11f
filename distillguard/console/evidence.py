"""The console's and the report's views of shared evidence, counted by ``campaigns.describe``.

A campaign's title, its evidence lines, its graph and an account's partner list used to count the
same thing four ways (stored ``n_accounts``, the detector's sentences, edges touching one account,
a ring of account x entity lines) and disagreed. The definition now lives in one place,
``distillguard.campaigns.describe`` (an account holds an entity when it is an endpoint of one of the
entity's ``coordination_edges``; a group's count for an entity is how many of its accounts hold it),
which the scan also uses for titles, evidence sentences and cluster summaries. The campaign board,
the account page and report.html call these functions, so their numbers agree by construction.
"""

from __future__ import annotations

from collections import defaultdict

import duckdb

from distillguard.campaigns.describe import (
    KIND_ORDER,
    entity_holders,
    has_table,
    holdings,
    kind_line,
    kind_rank,
    kind_words,
    shared,
)

__all__ = ["KIND_ORDER", "account_partners", "campaign_evidence", "harvest", "kind_rank", "kind_words", "members",
           "signal_shares"]


def members(con: duckdb.DuckDBPyConnection, campaign_id: str) -> list[str]:
    """The campaign's accounts: ``campaign_members``, or ``account_risk.campaign_id`` in a store without it.

    The one membership list every count (header, board, members table, report) uses.
    """
    if has_table(con, "campaign_members"):
        sql = "SELECT DISTINCT account_id FROM campaign_members WHERE campaign_id = ? ORDER BY 1"
    elif has_table(con, "account_risk"):
        sql = "SELECT DISTINCT account_id FROM account_risk WHERE campaign_id = ? ORDER BY 1"
    else:
        return []
    return [r[0] for r in con.execute(sql, [campaign_id]).fetchall()]


def campaign_evidence(con: duckdb.DuckDBPyConnection, campaign_id: str, max_groups: int = 60,
                      max_entities: int = 24, per_kind: int = 3) -> dict:
    """The evidence board: counts per kind (rarest first), per entity, and accounts bundled by entity set.

    Accounts that share exactly the same set of entities become one group (one node in the graph),
    so 25 accounts on the same 24 /24s draw as one node with 24 edges, not 600.
    """
    ids = members(con, campaign_id)
    by_ent: dict[tuple[str, str], set[str]] = defaultdict(set)
    for k, e, a in holdings(con, ids):
        by_ent[(k, e)].add(a)
    sh = shared(con, {campaign_id: ids})[campaign_id]
    kinds = [{"kind": kc.kind, "words": kind_words(kc.kind, kc.n_entities), "n_entities": kc.n_entities,
              "n_accounts": kc.n_accounts, "top_entity": kc.top_entity, "top_accounts": kc.top_accounts,
              "line": kind_line(kc, sh.n_members)} for kc in sh.kinds]
    # The graph draws the few most widely shared entities of each kind (206 synchronised schedules would give
    # every account its own set and nothing to bundle); the table above counts all of them.
    ent_list = sorted(((ke, a) for ke, a in by_ent.items() if len(a) >= 2),
                      key=lambda kv: (kind_rank(kv[0][0]), -len(kv[1]), kv[0][1]))
    per: dict[str, int] = defaultdict(int)
    shown = []
    for ke, a in ent_list:
        if per[ke[0]] < per_kind and len(shown) < max_entities:
            per[ke[0]] += 1
            shown.append((ke, a))
    ent_idx = {ke: i for i, (ke, _) in enumerate(shown)}
    acc_ents: dict[str, set[int]] = defaultdict(set)
    for ke, accts in by_ent.items():
        for a in accts:
            acc_ents[a].add(ent_idx.get(ke, -1))
    # Bundle on the rare kinds (payment, TLS/header fingerprints, sign-up bursts): accounts with the same rare
    # entities are one node; its edges to commoner entities (schedules, templates, networks) are as wide as the
    # share of the group on each. Bundling on every entity would leave one account per node.
    present = sorted({k for (k, _), _ in shown}, key=kind_rank)
    key_kinds = {k for k in present if kind_rank(k) < kind_rank("sync")} or set(present[:1])
    key_idx = {i for i, ((k, _), _) in enumerate(shown) if k in key_kinds}
    groups_map: dict[frozenset, list[str]] = defaultdict(list)
    for a in ids:
        if acc_ents.get(a):
            groups_map[frozenset(acc_ents[a] & key_idx)].append(a)
    groups = []
    for key, accts in groups_map.items():
        cnt: dict[int, int] = defaultdict(int)
        for a in accts:
            for i in acc_ents[a]:
                if i >= 0:
                    cnt[i] += 1
        groups.append({"accounts": sorted(accts), "n": len(accts), "key": sorted(key),
                       "links": sorted([i, c] for i, c in cnt.items())})
    groups.sort(key=lambda g: (min(g["key"], default=len(shown)), -g["n"]))
    n_alone = len(ids) - len(acc_ents)
    return {
        "campaign_id": campaign_id, "n_members": len(ids), "n_linked": len(acc_ents), "n_alone": n_alone,
        "kinds": kinds,
        "entities": [{"i": i, "kind": k, "kind_words": kind_words(k), "entity": e, "n_accounts": len(a),
                      "rank": kind_rank(k)} for i, ((k, e), a) in enumerate(shown)],
        "n_entities": len(by_ent), "groups": groups[:max_groups], "n_groups": len(groups),
        "key_kinds": [kind_words(k, 2) for k in present if k in key_kinds],
    }


def account_partners(con: duckdb.DuckDBPyConnection, account_id: str, campaign_ids: list[str] | None = None,
                     limit: int = 200) -> list[dict]:
    """Each entity this account shares, with how many accounts share it in all and inside its campaigns.

    Counted as ``campaign_evidence`` counts (``describe``: the accounts on edges of the entity), so an account
    page's "24 other accounts of its campaign" on a /24 is the campaign board's 25 on the same /24 less itself.
    """
    inc = entity_holders(con, account_id)
    camp: set[str] = set()
    for cid in campaign_ids or []:
        camp |= set(members(con, cid))
    by_ent: dict[tuple[str, str], set[str]] = defaultdict(set)
    for k, e, a in inc:
        by_ent[(k, e)].add(a)
    rows = []
    for (k, e), accts in by_ent.items():
        if account_id not in accts:
            continue
        others = sorted(accts - {account_id})
        rows.append({"kind": k, "kind_words": kind_words(k), "entity": e, "n_accounts": len(accts),
                     "n_partners": len(others), "n_in_campaign": len(accts & camp) if camp else None,
                     "accounts": others[:8], "rank": kind_rank(k)})
    rows.sort(key=lambda r: (r["rank"], -r["n_accounts"], r["entity"]))
    return rows[:limit]


#: A request "carries" a signal when its detector score reaches this (the same cut the console aggregates use).
SIGNAL_CUT = 0.5


def signal_shares(con: duckdb.DuckDBPyConnection, accounts: list[str], prefer_console: bool = True) -> list[dict]:
    """Share of the accounts' requests carrying each signal, biggest first (multi-label: shares need not sum to 1).

    Reads the console's per-account aggregate when it exists, else ``exchange_signals`` itself (the report,
    written right after a scan, passes ``prefer_console=False``: the aggregate may predate the scan).
    """
    if not accounts:
        return []
    if prefer_console and has_table(con, "console_account_signals"):
        rows = con.execute("""SELECT detector, sum(n_high), sum(n) FROM console_account_signals
                              WHERE account_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1""", [accounts]).fetchall()
    elif has_table(con, "exchange_signals"):
        cols = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'exchange_signals'").fetchall() if r[0].startswith("sig_")]
        if not cols:
            return []
        sel = ", ".join(f"count_if(\"{c}\" >= {SIGNAL_CUT}), count(\"{c}\")" for c in cols)
        r = con.execute(f"SELECT {sel} FROM exchange_signals WHERE account_id IN (SELECT unnest(?::VARCHAR[]))",
                        [accounts]).fetchall()[0]
        rows = [(c[4:], r[2 * i], r[2 * i + 1]) for i, c in enumerate(cols)]
    else:
        return []
    out = [{"detector": d, "share": (h or 0) / n, "n_high": int(h or 0), "n": int(n)} for d, h, n in rows if n]
    return sorted(out, key=lambda r: (-r["share"], r["detector"]))


def harvest(con: duckdb.DuckDBPyConnection, accounts: list[str], campaign_id: str | None = None,
            prefer_console: bool = True) -> dict:
    """Hourly exchanges of the accounts, the first flag and the first enforcement, for the cumulative chart.

    First flag: the earliest ``account_risk.first_flagged_at`` of a member (set by a replay scan, which
    replays time and records when each account crossed the threshold). A full scan decides at once and
    leaves it empty; then there is no honest earlier moment and the chart shows none.
    Enforcement: the earliest non-``allow`` ``enforcement.created_at`` on a member account, one of their
    clusters, or naming the campaign — when the decision was recorded, which the gateway applies at once.
    """
    out: dict = {"hourly": [], "first_flag": None, "enforced": None, "enforced_action": None}
    if not accounts:
        return out
    if prefer_console and has_table(con, "console_account_hourly"):
        out["hourly"] = con.execute("""SELECT hour, sum(n) FROM console_account_hourly
                                       WHERE account_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1 ORDER BY 1""",
                                    [accounts]).fetchall()
    elif has_table(con, "exchanges"):
        out["hourly"] = con.execute("""SELECT date_trunc('hour', ts) AS hour, count(*) FROM exchanges
                                       WHERE account_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1 ORDER BY 1""",
                                    [accounts]).fetchall()
    if has_table(con, "account_risk"):
        out["first_flag"] = con.execute("""SELECT min(first_flagged_at) FROM account_risk
                                           WHERE account_id IN (SELECT unnest(?::VARCHAR[]))""",
                                        [accounts]).fetchall()[0][0]
    if has_table(con, "enforcement"):
        clusters: list[str] = []
        if has_table(con, "cluster_members"):
            clusters = [r[0] for r in con.execute("SELECT DISTINCT cluster_id FROM cluster_members WHERE account_id "
                                                  "IN (SELECT unnest(?::VARCHAR[]))", [accounts]).fetchall()]
        r = con.execute("""SELECT created_at, action FROM enforcement WHERE action <> 'allow' AND (
                             (subject_type = 'account' AND subject_id IN (SELECT unnest(?::VARCHAR[])))
                             OR (subject_type = 'cluster' AND subject_id IN (SELECT unnest(?::VARCHAR[])))
                             OR campaign_id = ?)
                           ORDER BY created_at LIMIT 1""", [accounts, clusters, campaign_id]).fetchall()
        if r:
            out["enforced"], out["enforced_action"] = r[0]
    return out
