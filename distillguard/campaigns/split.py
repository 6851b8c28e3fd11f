"""A flagged cluster whose flagged accounts are two operations that share nothing private is split before records are
made (issue 11, "campaign records that match operations").

Every record starts from a flagged cluster's flagged accounts, taken whole, and the merge rules (``build.merge_clusters``)
only ever join such units. A cluster can hold two operations: a workload group (``clw-…``) gathers accounts by *what
they ask*, across communities, so two operations after one capability land in one group (dev standard-117: a reasoning
pool's 13 accounts and two standby accounts of a ban rotation, whose two active accounts are a record of their own); a
community gathers accounts by edges that include ASNs and e-mail domains. The record then holds both.

What a provider has that says two groups of accounts are one operation is what the merge rules read: infrastructure
and content private to flagged accounts — a card, a sign-up burst, an e-mail naming pattern, a client build, an IP /24,
a template or system prompt, busy windows on one. So: link two flagged accounts of the cluster when they hold one
entity of those kinds (``build.HOLDER_KINDS``) at least ``merge_exclusive`` of whose holders in the store are flagged
accounts (a stock SDK build, a free-mail naming shape or a public template is held all over the store and links
nobody), and take the connected parts. The cluster is split only when its flagged accounts fall *entirely* into two or
more parts of at least ``split_min_accounts`` accounts each: each part is tied within by private entities and no
private entity crosses between them. Then nothing private says they are one operation; what made them one cluster is
what every operation shares (a capability, ASNs). Conservative on purpose:

* two operations that share an attack kit (its system prompts and templates, which nobody else sends) are one part, and
  stay one record: the kit is private to flagged accounts and crosses (dev standard-113, 118);
* an account tied to no other flagged account of its cluster leaves the cluster whole: it is as much of one part as of
  another, and alone it would be a record of one (a dropped flag). A small provider's workload group whose accounts
  hold nothing private is not split (dev small_provider-109, dev2 311, 319).

The parts then go through every merge rule like any flagged cluster (``build.merge_clusters``): a part that is a piece
of another record's operation joins it (117's two standby accounts join their rotation's record by one workload), and
one operation the split cut in two would be joined again by any private tie — but by construction there is none.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from distillguard.graph.communities import UnionFind

#: How a part's cluster id is made from its cluster's: ``clw-0000`` → ``clw-0000.1`` (the largest part keeps the id).
PART_SEP = "."


def part_of(cluster_id: str) -> str:
    """The cluster a part was split from (the id itself for an unsplit cluster)."""
    return cluster_id.split(PART_SEP, 1)[0]


def disjoint_parts(con: duckdb.DuckDBPyConnection, holders: pa.Table, chosen: dict[str, list[str]],
                   min_accounts: int, exclusive: float) -> dict[str, list[list[str]]]:
    """Flagged cluster → its parts (largest first; ≥ 2 of them, every flagged account in one of at least
    ``min_accounts``), for the clusters whose flagged accounts split into groups no private entity crosses (module
    docstring). ``holders``: ``attribution.cluster_holders`` of ``chosen`` (with ``build.HOLDER_KINDS``); an entity is
    private when at least ``exclusive`` of its store holders are flagged accounts of ``chosen``."""
    if min_accounts <= 0:
        return {}
    big = [c for c, accts in chosen.items() if len(accts) >= 2 * min_accounts and not c.startswith("clop-")]
    if not big:
        return {}
    con.register("_sp_h", holders)
    try:
        rows = con.execute(f"""
            WITH fl AS (SELECT kind, entity, len(list_distinct(flatten(list(holders)))) AS f, any_value(df) AS df
                        FROM _sp_h GROUP BY 1, 2)
            SELECT h.cl, h.holders FROM _sp_h h JOIN fl USING (kind, entity)
            WHERE h.h >= 2 AND fl.f >= {float(exclusive)} * fl.df AND list_contains($1, h.cl)""",
                           [big]).fetchall()
    finally:
        con.unregister("_sp_h")
    ufs = {c: UnionFind(chosen[c]) for c in big}
    for c, hs in rows:
        uf = ufs[c]
        for a in hs[1:]:
            uf.union(hs[0], a)
    out: dict[str, list[list[str]]] = {}
    for c in big:
        parts = [sorted(ms) for ms in ufs[c].groups().values()]
        if len(parts) >= 2 and all(len(p) >= min_accounts for p in parts):
            out[c] = sorted(parts, key=lambda p: (-len(p), p[0]))
    return out


def split_chosen(chosen: dict[str, list[str]], parts: dict[str, list[list[str]]]) -> dict[str, list[str]]:
    """``chosen`` with each split cluster replaced by its parts: the largest keeps the cluster's id, the others are
    ``<id>.1``, ``<id>.2``, … (in the order ``disjoint_parts`` gives, so the same on every run)."""
    out: dict[str, list[str]] = {}
    for c, accts in chosen.items():
        if c not in parts:
            out[c] = accts
            continue
        keep = set(parts[c][0])
        out[c] = [a for a in accts if a in keep]
        for i, p in enumerate(parts[c][1:], 1):
            out[f"{c}{PART_SEP}{i}"] = list(p)
    return out
