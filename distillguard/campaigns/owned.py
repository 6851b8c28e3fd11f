"""Two flagged clusters drawn from the same accounts are one record when the smaller one holds the bigger one's own
infrastructure (issue 11, "campaign records that match operations").

A workload group (``clw-…``, scoring/workload.py) gathers accounts by what they ask, across communities; every
account keeps the row of the cluster where its risk peaks, so one operation ends up as its community's record *and*
the workload group's record (the group's accounts whose risk peaked there): dev standard-105's low-and-slow campaign
was a community record of 97 and a workload-group record of 12, with 73 of the group's 85 members in the first. The
same happens between a community and a sub-cluster of another level. But two operations can share a community (and
a workload: the same attack kit's system prompts and templates, sent by both), so drawing on the same accounts is
no evidence by itself, and neither is any coordination edge (an ASN, a free-mail domain) nor shared content
(standard-100: a quiet hydra and a low-and-slow campaign send one system prompt held by 63 accounts, 61 of them in
their two records).

What a provider has that tells them apart is infrastructure one operator owns: its cards and sign-ups on them, its
sign-up bursts, its e-mail naming, its client builds. An entity of those kinds is the bigger cluster's *own* when at
least ``own_tie_min_holders`` of its flagged accounts hold it and at least ``merge_exclusive`` of the entity's
holders in the store are in the two clusters (a stock SDK build or a common naming shape is held all over the
store and is nobody's own). The smaller cluster joins when at least ``own_tie_min_cover`` of its flagged accounts
(and ``own_tie_min_accounts`` of them, or all when fewer) hold one; a lone flagged account, entities of
``own_tie_lone_groups`` evidence groups. Pairs are only those that share accounts (a
member of one flagged in the other's row), so the test asks "are these two views of one operation", not "are any
two records alike" (``operations.py`` asks that, at a family-wise chance bar).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from distillguard.graph.edges import KIND_GROUP
from distillguard.scan.base import temp_strings
from distillguard.scan.config import CampaignConfig
from distillguard.scoring.risk import ClusterScore

#: Infrastructure one operator owns (payment, creation, e-mail naming, client builds). Not networks (proxy pools
#: are rented by many operations, and a residential /24 two accounts share is often chance), not ASNs or e-mail
#: domains, not content (two operations send one public kit) and not schedules (a schedule on a kit template).
OWN_TIE_KINDS = ("payment", "payment_burst", "creation_burst", "email_pattern", "ja4", "header_fp", "user_agent")
#: How a record's evidence line names each group of those kinds.
OWN_WORDS = {"payment": "cards", "creation": "sign-up bursts", "email": "e-mail naming", "client": "client builds"}


@dataclass
class OwnTie:
    piece: str                 # the smaller cluster (it joins)
    record: str                # the bigger cluster whose own entities it holds
    holders: int               # the piece's flagged accounts holding one
    groups: tuple[str, ...]    # evidence groups of those entities

    @property
    def strength(self) -> tuple[int, int]:
        return (len(self.groups), self.holders)


def overlapping_pairs(clusters: list[ClusterScore], chosen: dict[str, list[str]],
                      where: dict[str, str]) -> list[tuple[str, str]]:
    """Flagged cluster pairs (sorted) where a member of one is flagged in the other's row: two views of some of the
    same accounts (a workload group and the community it drew from; a community and another level's sub-cluster).
    Operations (``clop-…``) are left to ``merge_clusters``' ``joined`` rule. ``where``: flagged account → the
    cluster of ``chosen`` holding it."""
    out: set[tuple[str, str]] = set()
    for cs in clusters:
        if cs.cluster_id not in chosen or cs.cluster_id.startswith("clop-"):
            continue
        for a in cs.members:
            o = where.get(a)
            if o is not None and o != cs.cluster_id and not o.startswith("clop-"):
                out.add((min(o, cs.cluster_id), max(o, cs.cluster_id)))
    return sorted(out)


def own_ties(con: duckdb.DuckDBPyConnection, holders: pa.Table, chosen: dict[str, list[str]],
             pairs: list[tuple[str, str]], cfg: CampaignConfig) -> list[OwnTie]:
    """The pairs whose smaller cluster (by flagged accounts; then the id) holds the bigger one's own infrastructure
    (module docstring). ``holders``: ``attribution.cluster_holders`` of (at least) the pairs' clusters for (at
    least) ``OWN_TIE_KINDS``; one statement over it pairs each piece's entities with its record's."""
    if not pairs:
        return []
    sides = []
    for a, b in pairs:
        piece, rec = (a, b) if (len(chosen[a]), a) < (len(chosen[b]), b) else (b, a)
        sides.append((piece, rec))
    temp_strings(con, "_ot_p", {"piece": [p for p, _ in sides], "rec": [r for _, r in sides]})
    con.register("_ot_h", holders)
    kl = ", ".join(f"'{k}'" for k in OWN_TIE_KINDS)
    try:
        rows = con.execute(f"""
            SELECT p.piece, p.rec, x.kind, x.holders
            FROM _ot_p p JOIN _ot_h x ON x.cl = p.piece
              JOIN _ot_h r ON r.cl = p.rec AND r.kind = x.kind AND r.entity = x.entity
            WHERE x.kind IN ({kl}) AND r.h >= {int(cfg.own_tie_min_holders)}
              AND x.h + r.h >= {float(cfg.merge_exclusive)} * r.df""").fetchall()
    finally:
        con.unregister("_ot_h")
        con.execute("DROP TABLE IF EXISTS _ot_p")
    held: dict[tuple[str, str], set[str]] = {}
    groups: dict[tuple[str, str], set[str]] = {}
    for piece, rec, kind, accts in rows:
        held.setdefault((piece, rec), set()).update(accts)
        groups.setdefault((piece, rec), set()).add(KIND_GROUP.get(kind, kind))
    out = []
    for (piece, rec), accts in sorted(held.items()):
        n = len(chosen[piece])
        if n == 1 and len(groups[(piece, rec)]) < cfg.own_tie_lone_groups:
            continue
        if len(accts) >= cfg.own_tie_min_cover * n and len(accts) >= min(cfg.own_tie_min_accounts, n):
            out.append(OwnTie(piece, rec, len(accts), tuple(sorted(groups[(piece, rec)]))))
    return out


def one_workload_by_chance(c1: str, c2: str, core: dict[str, set[str]], sends: dict[str, set[str]],
                           rates: dict[str, dict[str, float]], groups: dict[str, list[str]], share: float,
                           alpha: float) -> bool:
    """Two views of the same accounts send one workload: each sends at least ``share`` of the other's own private
    content (``build._workloads``: ``core``, ``sends``; ``rates``: the share of a cluster's flagged accounts
    sending each of its own entities), where the entities one side never sends are left out of the count when a
    group of its size drawn from the other's accounts would miss them all by chance: the product over them of
    (1 − the other's sending share)^(this side's flagged accounts) is at least ``alpha``.

    Why: a 5-account piece of a hydra whose other 17 accounts are a community's record sent 7 of the 8 system
    prompts and templates the 17 send from half their accounts; the eighth, sent by 9 of the 17, a group of 5
    misses with chance 0.47^5 = 0.023 (dev standard-117, branch ``rec26``), and the strict test
    (``merge_same_workload`` of all of them) kept the hydra as two records. Private content is no evidence of
    one operation by itself (two operations send one public kit), and this keeps that: an operation sharing a kit
    sends templates of its own from most of its accounts (its core), which no group of the other's size misses by
    chance, so each side must still send nearly all the other's own content. Only the pairs that share accounts
    are asked (``overlapping_pairs``), as for the own ties."""
    def covered(a: str, b: str) -> bool:
        if not core[a]:
            return False
        missed = core[a] - sends[b]
        p = 1.0
        for e in missed:
            p *= (1.0 - rates.get(a, {}).get(e, 1.0)) ** len(groups[b])
        counted = core[a] - missed if p >= alpha else core[a]
        return bool(counted & sends[b]) and len(counted & sends[b]) >= share * len(counted)
    return covered(c1, c2) and covered(c2, c1)
