"""Campaign records from flagged clusters: who, how much, when, what for, on which models, from where."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.campaigns import describe
from distillguard.campaigns.attribution import cluster_holders, exclusive_links
from distillguard.campaigns.operations import operation_links
from distillguard.campaigns.owned import (
    OWN_TIE_KINDS,
    OWN_WORDS,
    OwnTie,
    one_workload_by_chance,
    overlapping_pairs,
    own_ties,
)
from distillguard.graph.communities import UnionFind
from distillguard.graph.edges import KIND_GROUP
from distillguard.scan.base import temp_strings
from distillguard.scan.config import CampaignConfig
from distillguard.scoring.reasons import cluster_reasons, signal_words
from distillguard.scoring.risk import ClusterScore

CAMPAIGN_SCHEMA = pa.schema([
    ("campaign_id", pa.string()), ("title", pa.string()), ("n_accounts", pa.int64()), ("n_exchanges", pa.int64()),
    ("first_seen", pa.timestamp("ms", tz="UTC")), ("last_seen", pa.timestamp("ms", tz="UTC")),
    ("capability_mix", pa.string()), ("models", pa.list_(pa.string())), ("pivot_model", pa.string()),
    ("pivot_delay_hours", pa.float64()), ("infrastructure", pa.string()), ("confidence", pa.float64()),
    ("recommended_action", pa.string()), ("status", pa.string()), ("evidence", pa.list_(pa.string())),
    ("org_key", pa.string()), ("cluster_ids", pa.list_(pa.string())), ("first_flagged_at", pa.timestamp("ms", tz="UTC")),
])

def _num(v) -> float:
    return 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def recommended_action(confidence: float, mix: dict[str, float], low_verif_share: float, cfg: CampaignConfig) -> str:
    """Block what we are sure of; otherwise pick the least disruptive action that stops the harvest."""
    if confidence >= cfg.block_confidence:
        return "block"
    if max((v for k, v in mix.items() if "cot" in k or "reason" in k or "extraction" in k), default=0) >= 0.3:
        return "protect_reasoning"
    if low_verif_share >= 0.5:
        return "require_verification"
    return "throttle"


#: Evidence that two flagged clusters are one operation. Infrastructure an operator reuses (IP /24, client
#: fingerprint, payment, e-mail naming, creation burst, sign-ups on one card), plus *private* content (templates and system prompts
#: nobody outside the two clusters sends) and real co-activity (a sync entity is a shared set of busy
#: buckets, not a template). Not ASNs or e-mail domains, which unrelated operators share. Each kind counts
#: as its evidence group (``KIND_GROUP``) and a merge needs two groups: private content is one of them.
MERGE_KINDS = ("ip24", "ja4", "header_fp", "payment", "creation_burst", "payment_burst", "email_pattern",
               "template", "system_prompt", "sync")
#: The kinds whose holders per flagged cluster the campaign stage reads (``attribution.cluster_holders``): the
#: merge's (its workloads are its template and system-prompt entities) and the own ties'.
HOLDER_KINDS = tuple(dict.fromkeys(MERGE_KINDS + OWN_TIE_KINDS))


def merge_clusters(con: duckdb.DuckDBPyConnection, groups: dict[str, list[str]], cfg: CampaignConfig,
                   operations: bool = False, why: dict[str, set[str]] | None = None,
                   joined: dict[str, set[str]] | None = None,
                   remainders: dict[str, str] | None = None, owned: list[OwnTie] | None = None,
                   holders: pa.Table | None = None, overlaps: list[tuple[str, str]] | None = None
                   ) -> dict[str, str]:
    """cluster_id → representative cluster_id: flagged clusters that are one operation split by the
    community detection (a campaign's own datacenter accounts and the residential proxy pool it drives;
    three pools of one operator, one per payment card) are merged when at least ``cfg.merge_min_cover`` of
    the accounts of each hold entities of two or more evidence groups that the other holds, counting only
    entities held mostly inside the two clusters (``cfg.merge_exclusive`` of their holders): what
    unrelated operators also send or use (a public attack template, a free-mail domain) does not merge.

    With ``operations`` clusters are also merged when the infrastructure they share is beyond chance for
    random groups of the store's other accounts (``campaigns/operations.py``): the
    pieces of a quiet pool own no entity together but share its bursts, cards and client strings far more
    than strangers do; and flagged clusters that send one workload (each at least ``merge_same_workload`` of
    the other's own private templates, ``_same_workload``) are merged, as pieces, whoever else sends them:
    an operation cut into many pieces owns no entity pairwise and, beside its big piece, the chance test has
    no power, while two operations sharing a kit each send templates the other never does. ``why`` (if given)
    collects, per cluster, the evidence groups of each such link ("workload" for the last).

    ``joined``: the flagged operation clusters the graph stage joined from several communities (``clop-…`` →
    its members, graph/operations.py). A flagged cluster at least ``merge_min_cover`` of whose flagged accounts
    are members of one of them is merged with it: the operation is one record, and the accounts of it whose
    risk peaked at another level (a harvesting sub-cluster of one of its pieces) are in it, not in a record of
    three accounts that no test has the power to link back.

    ``remainders``: community → the sub-cluster cut from it (``parent_remainders``) whose record the
    community's lone flagged account joins when no other rule placed it: it is one record with it.

    ``owned``: flagged clusters drawn from some of the same accounts whose smaller one holds the bigger one's own
    infrastructure (``owned.own_ties``): the smaller is a piece of the bigger's record, attached as the other pieces
    are (one record, of several linked, the one it shares the most evidence groups with). ``why`` collects
    "owned:<group>" for it.

    ``holders``: ``attribution.cluster_holders(con, groups, HOLDER_KINDS)`` when the caller has it already (the
    campaign stage reads it for the own ties too); else it is read here.

    ``overlaps``: flagged cluster pairs drawn from some of the same accounts (``owned.overlapping_pairs``). Such a
    pair sends one workload, as a piece, when the smaller one's misses of the bigger one's own private content
    are what a group of its size misses by chance (``owned.one_workload_by_chance``,
    ``workload_piece_alpha``)."""
    uf = UnionFind(groups)
    if len(groups) < 2:
        return dict(uf.parent)
    for op, ms in (joined or {}).items():
        if op not in groups:
            continue
        for c, accts in groups.items():
            if c != op and sum(1 for a in accts if a in ms) >= cfg.merge_min_cover * len(accts):
                uf.union(op, c)
    if holders is None:
        holders = cluster_holders(con, groups, HOLDER_KINDS)
    links = exclusive_links(con, holders, MERGE_KINDS, cfg.merge_exclusive)
    rates: dict[str, dict[str, float]] = {}
    core, sends = _workloads(con, holders, groups, cfg, rates)

    # per cluster pair and evidence group: how many accounts of each side hold an exclusive shared entity
    held: dict[tuple[str, str], dict[str, tuple[int, int]]] = {}
    for c1, c2, kind, n1, n2 in links:
        g = held.setdefault((c1, c2), {})
        o1, o2 = g.get(KIND_GROUP.get(kind, kind), (0, 0))
        g[KIND_GROUP.get(kind, kind)] = (max(o1, n1), max(o2, n2))
    mc = cfg.merge_min_cover
    # piece -> (strength, the bigger cluster) per link; strength = (independent evidence groups, 1 unless the link
    # is a share of private content and its schedule only, holders)
    cands: dict[str, list[tuple[tuple[int, int, int], str]]] = {}
    for (c1, c2), g in held.items():
        s1, s2 = len(groups[c1]), len(groups[c2])
        # a small piece (a pool the community detection cut off) joins a bigger cluster when most of the
        # piece holds the evidence and the bigger side holds it at least as often as the piece is large
        small, big = ((0, 1) if s1 <= s2 else (1, 0))
        sizes = (s1, s2)
        piece = {k for k, n in g.items() if n[small] >= mc * sizes[small] and n[big] >= min(mc * sizes[big], sizes[small])}
        # a schedule on the private templates both send is that content again, not a second group
        # (``schedule_is_content``): it still makes the piece a candidate, but ranked as what it is, one group
        indep = piece - {"timing"} if cfg.schedule_is_content and "content" in piece else piece
        # every group, private content included, needs a second, independent one: two operations that bought
        # the same attack kit (its agent system prompt and templates, which nobody else sends) each with its
        # own cards, bursts, networks and schedule are two records. Content alone merges only *one workload*:
        # each side sends (nearly) all of the other's own private content — an operation's own accounts and
        # the proxy pool relaying its requests, or two pieces of one pool — not a kit's common part beside
        # templates only one of them sends
        one = len(indep) >= 2 or ("content" in piece and _same_workload(c1, c2, core, sends, cfg.merge_same_workload))
        if len(piece) >= 2 or one:
            pair = (c1, c2)
            cands.setdefault(pair[small], []).append(
                ((len(indep), int(one), sum(g[k][0] + g[k][1] for k in piece)), pair[big]))
    workload: list[tuple[str, str]] = []
    if operations:
        for link in operation_links(con, groups, cfg):
            if uf.find(link.a) != uf.find(link.b) and why is not None:
                why.setdefault(link.a, set()).update(link.groups)
            uf.union(link.a, link.b)
        # one workload is one operation: flagged records each sending (nearly) all of the other's own private
        # templates, however many other flagged records send them too (a piece the community detection cut
        # off an operation split in many: no entity is the pair's own, and beside a big record the chance
        # test has no power, a random group holding as many templates holds most of them)
        # (as pieces: one linked to clusters of different records joins one of them, so a mixed piece sending
        # two operations' workloads does not chain them)
        for a, b in itertools.combinations(sorted(groups), 2):
            if uf.find(a) != uf.find(b) and _same_workload(a, b, core, sends, cfg.merge_same_workload):
                small, big = (a, b) if len(groups[a]) <= len(groups[b]) else (b, a)
                cands.setdefault(small, []).append(((1, 1, 0), big))
                workload.append((a, b))
        # two views of the same accounts sending one workload but for what a piece of the smaller one's size
        # misses by chance (a 5-account piece of a hydra and the community holding its other 17)
        if cfg.workload_piece_alpha > 0:
            for a, b in overlaps or ():
                if a in groups and b in groups and uf.find(a) != uf.find(b) and \
                        not _same_workload(a, b, core, sends, cfg.merge_same_workload) and \
                        one_workload_by_chance(a, b, core, sends, rates, groups, cfg.merge_same_workload,
                                               cfg.workload_piece_alpha):
                    small, big = (a, b) if (len(groups[a]), a) <= (len(groups[b]), b) else (b, a)
                    cands.setdefault(small, []).append(((1, 1, 0), big))
                    workload.append((a, b))
    for t in owned or ():
        cands.setdefault(t.piece, []).append(((t.strength[0], 1, t.strength[1]), t.record))
    for parent, sub in (remainders or {}).items():
        # a remainder whose own evidence already placed it (an operation link, a joined operation, a piece
        # of another record) keeps that place: the community it was left in is no evidence about it, and
        # joining both chained two operations into one record through one account (a coding proxy left in the
        # agentic trio's community, operation-linked to the coding hydra: docs/benchmarks.md, branch ig19)
        if parent in cands or any(uf.find(c) == uf.find(parent) for c in groups if c != parent):
            continue
        uf.union(parent, sub)
    _attach_pieces(uf, cands)
    for a, b in workload:
        if why is not None and uf.find(a) == uf.find(b):
            why.setdefault(a, set()).add("workload")
    for t in owned or ():
        if why is not None and uf.find(t.piece) == uf.find(t.record):
            why.setdefault(t.piece, set()).update(f"owned:{g}" for g in t.groups)
    return {c: uf.find(c) for c in groups}


_LEVEL = re.compile(r"^cl(\d+)-")
_SUB = re.compile(r"^cl(\d+)[he]-")


def parent_remainders(by_id: dict[str, ClusterScore], chosen: dict[str, list[str]], where: dict[str, str],
                      remnant_share: float = 0.0) -> dict[str, str]:
    """Flagged communities whose only flagged account is what is left of them once a flagged sub-cluster
    (harvesting or shared-entity, ``scan.engine.score_level``) was cut out: community → that sub-cluster.

    Every account keeps the row of the cluster where its risk peaks (``keep_highest``), so a community's
    harvesters move to their sub-cluster, and a member flagged *with* them — the community's score, its
    coordination and fit, counted them — is left as the community's one flagged account: no record of two,
    so its flag was dropped as a lone one ("no other account of its cluster was flagged") although the
    other accounts of its cluster were flagged, one level down. It joins the record of the sub-cluster it
    was flagged with (of several cut from it: the one with the most flagged accounts, then the riskiest).
    A remainder of two or more flagged accounts is a record of its own and is left to the merge rules, unless
    it is at most ``remnant_share`` of its community's flagged accounts that sit in other clusters: then it
    joins the cluster that holds most of them. A hydra's community whose members' risk peaked in the operation
    it was joined into keeps, flagged at its level, the two or three ordinary users it also held (tied through
    the hydra's crowded sign-up bursts and ISPs): they were flagged with the hydra, on a score that counted it,
    and as a record of their own they read as a campaign of their own (four such records at scale 1.0,
    docs/benchmarks.md, branch ``ig19``). The account flags are the same either way; only the records change.
    ``by_id``: every cluster by id; ``where``: flagged account → the cluster of ``chosen`` holding it."""
    out: dict[str, str] = {}
    for p, accts in chosen.items():
        if len(accts) < 2 and (sub := _cut_from(p, chosen, by_id)):
            out[p] = sub
    for p, accts in (chosen.items() if remnant_share > 0 else ()):
        if len(accts) < 2 or p not in by_id or p.startswith("clop-"):
            continue
        moved = Counter(where[a] for a in by_id[p].members if where.get(a, p) != p)
        if moved and len(accts) <= remnant_share * sum(moved.values()):
            out[p] = max(moved, key=lambda c: (moved[c], c))
    return out


def subcluster_parents(by_id: dict[str, ClusterScore], chosen: dict[str, list[str]],
                       taken: dict[str, str]) -> dict[str, str]:
    """Flagged communities keeping two or more flagged accounts once a flagged sub-cluster was cut from them
    (and not placed by ``parent_remainders``): community → that sub-cluster (the one with the most flagged
    accounts, then the riskiest). Candidates only: ``tied_remainders`` keeps those whose every account is linked
    to the sub-cluster's. A harvesting sub-cluster and the members its community flags beside it are one
    operation when those members are tied to the harvesters; as two records they read as two campaigns (dev
    small_provider-116 after ``rare_content_distinctive_set``: 4 + 2 accounts of one 8-account operation,
    docs/benchmarks.md, branch ``rem20``)."""
    out: dict[str, str] = {}
    for p, accts in chosen.items():
        if len(accts) >= 2 and p not in taken and (sub := _cut_from(p, chosen, by_id)):
            out[p] = sub
    return out


def _cut_from(p: str, chosen: dict[str, list[str]], by_id: dict[str, ClusterScore]) -> str | None:
    """The flagged sub-cluster cut from community ``p`` (of several: the one with the most flagged accounts, then
    the riskiest); None when ``p`` is no community or none was cut from it."""
    m = _LEVEL.match(p)
    if m is None or p not in by_id:
        return None
    members = set(by_id[p].members)
    subs = [c for c in chosen if c in by_id and (sm := _SUB.match(c)) and sm.group(1) == m.group(1)
            and set(by_id[c].members) <= members]
    return max(subs, key=lambda c: (len(chosen[c]), by_id[c].risk, c)) if subs else None


def tied_remainders(con: duckdb.DuckDBPyConnection, src: describe.Edges, remainders: dict[str, str],
                    chosen: dict[str, list[str]]) -> dict[str, str]:
    """The remainders (community → sub-cluster) every flagged account of which shares a coordination edge with
    a flagged account of the sub-cluster it would join; the rest are not joined (a lone one then has no record,
    so no flag).

    "Flagged with them" holds for a member whose community's score counted the harvesters it is tied to. A
    member flagged on its own traffic, tied to a 2,000-account community by a free-mail domain alone, is not:
    at scale 1.0 a coding proxy left in the community the reasoning campaign's sub-cluster was cut from joined
    the reasoning record with no edge to any of its 60 accounts (docs/benchmarks.md, branch ``rem20``)."""
    if not remainders:
        return remainders
    tied = _tied_accounts(con, src, [(p, a) for p in remainders for a in chosen[p]],
                          [(p, b) for p, sub in remainders.items() for b in chosen[sub]])
    return {p: sub for p, sub in remainders.items() if all((p, a) in tied for a in chosen[p])}


def _tied_accounts(con: duckdb.DuckDBPyConnection, src: describe.Edges, left: list[tuple[str, str]],
                   right: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """(group, account) of ``left`` sharing a coordination edge (either direction) with an account ``right`` has
    in the same group. Two tables joined through the edges, not every pair: a remnant of a few hundred beside a
    pool of thousands would be millions of pairs."""
    if not left or not right:
        return set()
    temp_strings(con, "_rem_l", {"g": [g for g, _ in left], "a": [a for _, a in left]})
    temp_strings(con, "_rem_r", {"g": [g for g, _ in right], "b": [b for _, b in right]})
    tied = set(con.execute(f"""
        SELECT DISTINCT l.g, l.a FROM _rem_l l JOIN {src.table} e ON e.{src.src} = l.a
          JOIN _rem_r r ON r.g = l.g AND r.b = e.{src.dst}
        UNION
        SELECT DISTINCT l.g, l.a FROM _rem_l l JOIN {src.table} e ON e.{src.dst} = l.a
          JOIN _rem_r r ON r.g = l.g AND r.b = e.{src.src}""").fetchall())
    con.execute("DROP TABLE IF EXISTS _rem_l")
    con.execute("DROP TABLE IF EXISTS _rem_r")
    return tied


def tied_remnants(con: duckdb.DuckDBPyConnection, src: describe.Edges, by_id: dict[str, ClusterScore],
                  chosen: dict[str, list[str]], where: dict[str, str], taken: dict[str, str]) -> dict[str, str]:
    """Flagged clusters (any level but an operation's) most of whose flagged members took another cluster's row
    and whose own flagged accounts are each linked to one of those: cluster → the cluster holding most of them.

    They were flagged with those accounts, on a score that counted them; what is left is the two or three
    whose risk happened to peak here. At scale 1.0 a harvesting sub-cluster of 17 coding proxies had 14 of its
    members' rows in the coding operation and 2 left — a record of two beside the operation's
    (docs/benchmarks.md, branch ``rem20``). ``remnant_max_share`` covers a hydra's community keeping a few
    ordinary users, without the link test, but only communities and at a share far below a majority."""
    cand: dict[str, tuple[str, list[str]]] = {}
    for p, accts in chosen.items():
        if len(accts) < 2 or p in taken or p not in by_id or p.startswith("clop-"):
            continue
        moved: dict[str, list[str]] = {}
        for a in by_id[p].members:
            if where.get(a, p) != p:
                moved.setdefault(where[a], []).append(a)
        if sum(len(v) for v in moved.values()) > len(accts):
            x = max(moved, key=lambda c: (len(moved[c]), c))
            cand[p] = (x, moved[x])
    tied = _tied_accounts(con, src, [(p, a) for p in cand for a in chosen[p]],
                          [(p, b) for p, (_, bs) in cand.items() for b in bs])
    return {p: x for p, (x, _) in cand.items() if all((p, a) in tied for a in chosen[p])}


def _attach_pieces(uf: UnionFind, cands: dict[str, list[tuple[tuple[int, int, int], str]]]) -> None:
    """A piece belongs to one operation. A piece linked to bigger clusters that are one record already (or to
    one only) joins it; a piece linked to clusters of *different* records joins the one it shares the most
    evidence groups with (then the most holders), and does not chain them into one record: a single account
    of one campaign that also sits on a /24 and a schedule of another campaign's proxy pool would otherwise
    make the two campaigns one record. Pieces with one choice are attached first, so a record grows before
    a piece with several is judged."""
    multi = []
    for piece, lst in cands.items():
        if len({uf.find(b) for _, b in lst}) == 1:
            for _, b in lst:
                uf.union(piece, b)
        else:
            multi.append((max(lst)[0], piece, lst))
    for _, piece, lst in sorted(multi, reverse=True):
        best = max(lst)[1]
        uf.union(piece, best)
        for _, b in lst:
            if uf.find(b) == uf.find(best):
                uf.union(piece, b)


def _workloads(con: duckdb.DuckDBPyConnection, holders: pa.Table, groups: dict[str, list[str]],
               cfg: CampaignConfig, rates: dict[str, dict[str, float]] | None = None
               ) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per flagged cluster: its own private workload (templates and system prompts at least
    ``merge_min_cover`` of its accounts send and at least ``merge_exclusive`` of whose store holders are flagged
    accounts: an attack kit's content, not a public template) and every private content entity at least
    ``merge_send_min_share`` of its accounts send. ``holders``: ``attribution.cluster_holders`` of ``groups``
    (with the template and system-prompt kinds).

    Not "any of its accounts": a cluster of 18,000 proxy accounts holds a few hundred relaying another
    operation's kit, and one account of that operation flagged in an agentic trio's community made the
    community "send" the hydra's workload, so the two campaigns were one workload both ways (scale 1.0,
    docs/benchmarks.md, branch ``ig19``). Pieces of one operation send its workload from most of their
    accounts. ``rates`` (if given) collects, per cluster and own entity, the share of its accounts sending it."""
    con.register("_wl_h", holders)
    con.register("_wl_n", pa.table({"cl": pa.array(list(groups), pa.string()),
                                    "n": pa.array([len(set(ms)) for ms in groups.values()], pa.int64())}))
    try:
        rows = con.execute(f"""
            WITH ch AS (SELECT cl, kind || ':' || entity AS e, df, h, holders FROM _wl_h
                        WHERE kind IN ('template', 'system_prompt')),
            fl AS (SELECT e, len(list_distinct(flatten(list(holders)))) AS f, any_value(df) AS df FROM ch GROUP BY 1)
            SELECT ch.cl, ch.e, ch.h >= {float(cfg.merge_min_cover)} * sz.n, ch.h / sz.n
            FROM ch JOIN fl USING (e) JOIN _wl_n sz USING (cl)
            WHERE fl.f >= {float(cfg.merge_exclusive)} * fl.df
              AND ch.h >= {float(cfg.merge_send_min_share)} * sz.n""").fetchall()
    finally:
        con.unregister("_wl_h")
        con.unregister("_wl_n")
    core: dict[str, set[str]] = {c: set() for c in groups}
    sends: dict[str, set[str]] = {c: set() for c in groups}
    for c, e, is_core, rate in rows:
        sends[c].add(e)
        if is_core:
            core[c].add(e)
            if rates is not None:
                rates.setdefault(c, {})[e] = float(rate)
    return core, sends


def _same_workload(c1: str, c2: str, core: dict[str, set[str]], sends: dict[str, set[str]], share: float) -> bool:
    """Each cluster sends at least ``share`` of the other's own private workload (``_workloads``)."""
    def covered(a: str, b: str) -> bool:
        return bool(core[a]) and len(core[a] & sends[b]) >= share * len(core[a])
    return covered(c1, c2) and covered(c2, c1)


def build_campaigns(con: duckdb.DuckDBPyConnection, clusters: list[ClusterScore], account_risk: pa.Table,
                    features: pa.Table, org_keys: dict[str, str], released: list[tuple], cfg: CampaignConfig,
                    flag_threshold: float, edges: pa.Table | None = None) -> tuple[list[dict], dict[str, str]]:
    """Campaign records (one per cluster with flagged accounts) and account → campaign_id.

    ``edges``: the scan's coordination edges (the rows it writes to ``coordination_edges``): every count in a
    title and an evidence line is taken from them by ``describe``, as the console and the report count."""
    src = _edges_source(con, edges)
    flagged = {r["account_id"]: r for r in account_risk.to_pylist() if r["flagged"]}
    # rows only for the flagged accounts a campaign can hold (every row of the window's accounts as Python
    # dicts was most of this step's own CPU on the replay's ticks)
    feat = {r["account_id"]: r for r in features.filter(
        pc.is_in(features["account_id"], value_set=pa.array(list(flagged), features.schema.field("account_id").type))).to_pylist()}
    campaigns, member_of = [], {}
    chosen: dict[str, list[str]] = {}
    for cs in clusters:
        accts = [a for a in cs.members if a in flagged and flagged[a]["cluster_id"] == cs.cluster_id]
        if accts and cs.risk >= flag_threshold:
            chosen[cs.cluster_id] = accts
    why: dict[str, set[str]] = {}
    by_id = {cs.cluster_id: cs for cs in clusters}
    where = {a: c for c, accts in chosen.items() for a in accts}   # flagged account → its cluster's row
    joined = {cs.cluster_id: set(cs.members) for cs in clusters if cs.cluster_id.startswith("clop-")}
    remainders = (parent_remainders(by_id, chosen, where, cfg.remnant_max_share) if cfg.join_parent_remainder
                  else None)
    if remainders is not None and cfg.remainder_needs_tie:
        # the lone remainders and (``join_tied_parent``) the bigger ones must be linked to the sub-cluster they
        # join; the remnants ``remnant_max_share`` places are not (they join where their community's flagged
        # accounts went, which counted them)
        lone = {p: sub for p, sub in remainders.items() if len(chosen[p]) == 1}
        bigger = subcluster_parents(by_id, chosen, remainders) if cfg.join_tied_parent else {}
        ok = tied_remainders(con, src, lone | bigger, chosen)
        remainders = {p: sub for p, sub in remainders.items() if p not in lone or p in ok} | \
            {p: sub for p, sub in bigger.items() if p in ok}
    if remainders is not None and cfg.remnant_tied_majority:
        remainders |= tied_remnants(con, src, by_id, chosen, where, remainders)
    # the flagged clusters' holders of each entity, read once for the own ties and the merge's tests
    holders = cluster_holders(con, chosen, HOLDER_KINDS) if len(chosen) >= 2 else None
    overlaps = (overlapping_pairs(clusters, chosen, where)
                if (cfg.join_own_ties or cfg.workload_piece_alpha > 0) and holders is not None else [])
    owned = own_ties(con, holders, chosen, overlaps, cfg) if cfg.join_own_ties and holders is not None else None
    rep = merge_clusters(con, chosen, cfg, operations=True, why=why, joined=joined, remainders=remainders,
                         owned=owned, holders=holders, overlaps=overlaps)
    merged: dict[str, list[str]] = {}
    for c in chosen:
        merged.setdefault(rep[c], []).append(c)
    base_mix = _store_mix(features)
    facts: list[describe.TitleFacts] = []
    order = sorted(merged.items(), key=lambda kv: -max(by_id[c].risk for c in kv[1]))
    accts_of = {h: sorted(a for c in parts for a in chosen[c]) for h, parts in order}
    # evidence is about the campaign's own accounts (not the whole community it was cut from), so the
    # counts in the title and in every evidence line are of the same accounts; counted for every campaign in
    # one statement (one pass over the edges, not one per campaign)
    shared_of = describe.shared(con, {h: a for h, a in accts_of.items() if len(a) >= 2}, src)
    for _head, parts in order:
        parts = sorted(parts, key=lambda c: -len(chosen[c]))
        head = by_id[parts[0]]
        accts = accts_of[_head]
        if len(accts) < 2:
            continue
        cid = "camp-" + head.cluster_id[2:]
        rows = [feat[a] for a in accts if a in feat]
        n_ex = int(sum(_num(r["n_exchanges"]) for r in rows))
        mix = {}
        for key in (rows[0].keys() if rows else []):
            if key.startswith("share_"):
                mix[key[6:]] = round(sum(_num(r[key]) * _num(r["n_exchanges"]) for r in rows) / max(n_ex, 1), 4)
        sh = shared_of[_head]
        cs = _campaign_score(head, parts, accts, by_id, sh)
        tags = {g for c in parts for g in why.get(c, ())}
        ops = sorted(g for g in tags - {"workload"} if not g.startswith("owned:"))
        one = "workload" in tags
        own = sorted(OWN_WORDS.get(g[6:], g[6:]) for g in tags if g.startswith("owned:"))
        links = ([f"sharing {', '.join(ops)} far beyond chance for groups of their size"] if ops else []) + \
            (["sending one workload of private templates"] if one else []) + \
            ([f"drawn from the same accounts and holding one operator's own {', '.join(own)}"] if own else [])
        cs.reasons = ([f"{len(parts)} clusters of {len(accts)} accounts in total, linked to each other"
                       + (f" ({'; '.join(links)})" if links else "")]
                      if len(parts) > 1 else []) + cluster_reasons(cs, rows, sh, base_mix, cfg.title_capability_lift,
                                                                 "the campaign's", cfg.evidence_min_cover,
                                                                 cfg.evidence_max_kinds)
        temp_strings(con, "_ca", {"account_id": accts})
        models = [m for m, _ in con.execute(
            "SELECT model, sum(n) FROM beh_am JOIN _ca USING (account_id) GROUP BY 1 ORDER BY 2 DESC").fetchall()]
        first, last = con.execute(
            "SELECT min(hour), max(hour) + INTERVAL 1 HOUR FROM beh_ah JOIN _ca USING (account_id)").fetchall()[0]
        pivot_model, pivot_delay = None, None
        for model, rel in released:
            # a pivot is measured on accounts that were already working before the release: an account that
            # only started afterwards did not move to the new model, it began there
            before = [r for r in rows if r.get("first_ts") is not None and r["first_ts"] < rel]
            delays = sorted(_num(r["pivot_delay_hours"]) for r in before if r.get("pivot_delay_hours") is not None
                            and _num(r.get("new_model_share")) >= 0.2)
            if model in models and before and len(delays) >= 0.5 * len(before):
                pivot_model, pivot_delay = model, float(delays[len(delays) // 2])
                break
        infra = infrastructure(sh, cs, rows)
        low_ver = sum(1 for r in rows if _num(r.get("verification_level")) <= 0) / max(len(rows), 1)
        conf = round(float(sum(flagged[a]["risk"] for a in accts) / len(accts)), 4)
        facts.append(describe.TitleFacts(describe.title_core(mix, base_mix, cfg.title_min_share,
                                                                            cfg.title_intent_lift, cfg.title_capability_lift), len(accts), n_ex, models, first,
                                         sh.kinds[0] if sh.kinds else None))
        evidence = list(cs.reasons)
        if pivot_model:
            evidence.append(f"pivoted to {pivot_model} a median {pivot_delay:.0f} h after its release "
                            f"({len(delays)} of the {len(before)} accounts active before it)")
        campaigns.append(dict(
            campaign_id=cid, title=None, n_accounts=len(accts), n_exchanges=n_ex,
            first_seen=first, last_seen=last, capability_mix=orjson.dumps(mix).decode(), models=models,
            pivot_model=pivot_model, pivot_delay_hours=pivot_delay, infrastructure=orjson.dumps(infra).decode(),
            confidence=conf, recommended_action=recommended_action(conf, mix, low_ver, cfg), status="detected",
            evidence=evidence, org_key=org_keys.get(parts[0]), cluster_ids=parts, first_flagged_at=None))
        for a in accts:
            member_of[a] = cid
    # titles are chosen together: records after the same capability are told apart by what differs between them
    for c, t in zip(campaigns, describe.titles(facts), strict=True):
        c["title"] = t
    if src.table == "_campaign_edges":
        con.unregister("_campaign_edges")
    return campaigns, member_of


def _edges_source(con: duckdb.DuckDBPyConnection, edges: pa.Table | None) -> describe.Edges:
    """The scan's edges when given, else the detect step's temp table, else the store's table."""
    if edges is not None:
        con.register("_campaign_edges", edges)
        return describe.Edges("_campaign_edges", "src_account", "dst_account")
    if describe._has(con, describe.SCAN_EDGES.table):
        return describe.SCAN_EDGES
    return describe.STORE_EDGES


def _store_mix(features: pa.Table) -> dict[str, float]:
    """Exchange-weighted share of each signal over every account in the store: what a campaign's mix is
    compared with (coding is 60% of a coding campaign and maybe 20% of everyone's traffic). Column by column,
    each share's products added in row order as the row-by-row loop added them (the same sums)."""
    names = features.column_names
    n = [_num(v) for v in features["n_exchanges"].to_pylist()] if "n_exchanges" in names \
        else [0.0] * features.num_rows
    tot = 0.0
    for x in n:
        tot += x
    acc: dict[str, float] = {}
    for k in [c for c in names if c.startswith("share_")] + ["task_item_share"]:
        vals = features[k].to_pylist() if k in names else [None] * features.num_rows
        s = 0.0
        for v, x in zip(vals, n, strict=True):
            s += _num(v) * x
        if features.num_rows:
            acc["_task_items" if k == "task_item_share" else k[6:]] = s
    return {k: v / max(tot, 1.0) for k, v in acc.items()}


def _campaign_score(head: ClusterScore, parts: list[str], accts: list[str], by_id: dict[str, ClusterScore],
                    sh: describe.Shared) -> ClusterScore:
    """A ClusterScore describing exactly the campaign's accounts: shared entities and evidence-group shares
    among them (``sh``, from ``describe.shared``), not among the community they came from."""
    gshare = {g: round(n / len(accts), 3) for g, n in sh.groups.items()}
    return ClusterScore(head.cluster_id, accts, max(by_id[c].risk for c in parts), head.coordination,
                        head.suspicion, gshare, {k: [e for e, _ in v] for k, v in sh.top.items()},
                        declared=head.declared, dense_density=head.dense_density)


def infrastructure(sh: describe.Shared, cs: ClusterScore, rows: list[dict]) -> dict:
    """What the campaign's accounts share, by kind (rarest first): how many entities, how many of the campaign's
    accounts hold one, and the most-shared values (``describe.shared``, as the console's evidence board counts)."""
    out: dict = {"shared": {}}
    for kc in sh.kinds:
        out["shared"][kc.kind] = {"n": kc.n_entities, "n_accounts": kc.n_accounts,
                                  "top": [e for e, _ in sh.top.get(kc.kind, [])]}
    out["signup_pathways"] = dict(Counter(r.get("signup_pathway") or "unknown" for r in rows).most_common())
    out["verification_levels"] = dict(Counter(str(r.get("verification_level")) for r in rows).most_common())
    created = [r["created_at"] for r in rows if r.get("created_at") is not None]
    if created:
        out["created"] = {"first": min(created).isoformat(), "last": max(created).isoformat()}
    out["group_share"] = cs.group_share
    return out


def campaign_summary_words(c: dict) -> str:
    mix = orjson.loads(c["capability_mix"])
    top = sorted(((v, k) for k, v in mix.items()), reverse=True)[:2]
    return "; ".join(f"{v:.0%} {signal_words(k)}" for v, k in top if v > 0)
