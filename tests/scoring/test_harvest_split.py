"""A community's harvesting sub-cluster cut into its operations (issue 11 item 4: one record per operation).

The store: 40 users of a popular tool (its system prompt) and, in their community, two harvesting operations of 6
accounts each that share the tool's prompt with the users but nothing with each other — operation A on its own
card and proxy /24 harvesting reasoning, operation B on another card and /24 harvesting agentic tool use. The
community is one; the harvesters among themselves are two groups, and their workloads differ.
"""

import pyarrow as pa

from distillguard.graph.communities import split_groups
from distillguard.scan.config import GraphConfig, ScoringConfig
from distillguard.scoring.subclusters import harvest_subclusters
from tests.scoring.test_member_ties import _con

A = [f"opa{i}" for i in range(6)]
B = [f"opb{i}" for i in range(6)]
USERS = [f"user{i}" for i in range(40)]


def _rows(b_card: str = "card-b", b_net: str = "198.51.9") -> list[tuple[str, str, str, float]]:
    rows = [(a, "system_prompt", "sp-popular-tool", 0.3) for a in A + B + USERS]
    rows += [(a, "ip24", f"203.0.{i}", 0.5) for i, a in enumerate(USERS)]
    rows += [(a, "payment", "card-a", 1.5) for a in A] + [(a, "ip24", "198.51.7", 0.5) for a in A]
    rows += [(a, "payment", b_card, 1.5) for a in B] + [(a, "ip24", b_net, 0.5) for a in B]
    return rows


def _features(b_workload: str) -> pa.Table:
    """Harvest shape high for both operations; A asks for reasoning, B for ``b_workload`` (agentic, or the
    same reasoning as A)."""
    ids = A + B + USERS
    reasoning = {"share_cot_elicitation": 0.8, "share_cap_agentic": 0.0, "reasoning_share": 0.9, "tools_share": 0.0}
    agentic = {"share_cot_elicitation": 0.05, "share_cap_agentic": 0.7, "reasoning_share": 0.1, "tools_share": 0.9}
    ordinary = {"share_cot_elicitation": 0.1, "share_cap_agentic": 0.1, "reasoning_share": 0.2, "tools_share": 0.1}
    work = {a: reasoning for a in A} | {a: (agentic if b_workload == "agentic" else reasoning) for a in B} \
        | {a: ordinary for a in USERS}
    cols = {"account_id": ids, "suspicion": [0.65 if a not in USERS else 0.3 for a in ids],
            "c_harvest_shape": [0.8 if a not in USERS else 0.0 for a in ids], "n_exchanges": [200.0] * len(ids)}
    for k in reasoning:
        cols[k] = [work[a][k] for a in ids]
    return pa.table(cols)


def _groups(sub: dict[str, int]) -> set[frozenset[str]]:
    out: dict[int, set[str]] = {}
    for a, c in sub.items():
        out.setdefault(c, set()).add(a)
    return {frozenset(m) for m in out.values()}


def test_split_groups_cuts_disjoint_operations_and_ignores_outside_edges():
    edges = [(a, b, 1.0) for i, a in enumerate(A) for b in A[i + 1:]] + [(a, b, 1.0) for i, a in enumerate(B) for b in B[i + 1:]]
    edges += [(a, u, 5.0) for a in A + B for u in USERS[:2]]  # ties through the community: not among the members
    groups = split_groups(A + B + ["lone"], edges)
    assert [set(g) for g in groups] == [set(A), set(B), {"lone"}]
    assert split_groups([], edges) == []


def test_two_operations_in_one_community_are_two_sub_clusters():
    community = {a: 0 for a in A + B + USERS}
    sub = harvest_subclusters(community, _features("agentic"), ScoringConfig(), _con(_rows()), GraphConfig())
    assert _groups(sub) == {frozenset(A), frozenset(B)}
    assert sub[A[0]] != sub[B[0]] and 0 in set(sub.values())  # the largest piece keeps the community's index


def test_without_the_split_they_are_one_sub_cluster():
    community = {a: 0 for a in A + B + USERS}
    off = ScoringConfig(harvest_split_resolution=None)
    assert _groups(harvest_subclusters(community, _features("agentic"), off, _con(_rows()), GraphConfig())) \
        == {frozenset(A + B)}
    # and without the connection (the tests' scoring without a graph) nothing is cut
    assert _groups(harvest_subclusters(community, _features("agentic"), ScoringConfig())) == {frozenset(A + B)}


def test_one_operation_with_one_workload_is_one_sub_cluster():
    # one hydra on two cards and two proxy ranges: Leiden cuts its harvesters in two, the workload joins them
    community = {a: 0 for a in A + B + USERS}
    sub = harvest_subclusters(community, _features("reasoning"), ScoringConfig(), _con(_rows()), GraphConfig())
    assert _groups(sub) == {frozenset(A + B)}
    # with the join switched off (identical workloads only would still join: 1 is reachable) the pieces stay apart
    strict = ScoringConfig(harvest_same_workload=1.0)
    assert len(_groups(harvest_subclusters(community, _features("agentic"), strict, _con(_rows()), GraphConfig()))) == 2


def test_a_harvester_on_one_of_the_cards_stays_with_its_operation():
    # a seventh account of operation A on its card only, its shares unlike anyone's: the ties place it
    rows = _rows() + [("opa-stray", "payment", "card-a", 1.5), ("opa-stray", "system_prompt", "sp-popular-tool", 0.3)]
    feats = _features("agentic")
    stray = {"account_id": "opa-stray", "suspicion": 0.65, "c_harvest_shape": 0.8, "n_exchanges": 200.0,
             "share_cot_elicitation": 0.0, "share_cap_agentic": 0.0, "reasoning_share": 0.0, "tools_share": 0.0}
    feats = pa.concat_tables([feats, pa.Table.from_pylist([stray], schema=feats.schema)])
    community = {a: 0 for a in A + B + USERS + ["opa-stray"]}
    sub = harvest_subclusters(community, feats, ScoringConfig(), _con(rows), GraphConfig())
    assert _groups(sub) == {frozenset(A + ["opa-stray"]), frozenset(B)}


def test_a_cut_piece_is_judged_against_its_parent_community():
    # harvest_parent_chance reads a piece's parent from its members: the piece numbered after the last community
    # is judged as it would be with the community's own number
    from distillguard.scoring import score_clusters

    community = {a: 0 for a in A + B + USERS}
    cfg = ScoringConfig(harvest_parent_chance=True)
    # B's /24 is also half the community's (a campus NAT): rare in a store of 2,000 more accounts, common in the
    # parent — only a piece judged against its parent loses it
    rows = _rows() + [(u, "ip24", "198.51.9", 0.5) for u in USERS[:20]]
    feats = _features("agentic")
    more = [f"other{i}" for i in range(2000)]
    feats = pa.concat_tables([feats, pa.Table.from_pylist(
        [{"account_id": a, "suspicion": 0.1, "c_harvest_shape": 0.0, "n_exchanges": 10.0} for a in more],
        schema=feats.schema)])
    sub = harvest_subclusters(community, feats, cfg, _con(rows), GraphConfig())
    assert sub[B[0]] == 1  # the second piece: after community 0
    _, cut = score_clusters(_con(rows), feats, sub, [], cfg, harvest=True, parent=community)
    _, alone = score_clusters(_con(rows), feats, {a: 0 for a in B}, [], cfg, harvest=True, parent=community)
    risk = dict(zip(cut["account_id"].to_pylist(), cut["risk"].to_pylist(), strict=True))
    ref = dict(zip(alone["account_id"].to_pylist(), alone["risk"].to_pylist(), strict=True))
    assert [round(risk[a], 9) for a in B] == [round(ref[a], 9) for a in B]
    _, store_only = score_clusters(_con(rows), feats, {a: 0 for a in B}, [], ScoringConfig(), harvest=True,
                                   parent=community)
    store = dict(zip(store_only["account_id"].to_pylist(), store_only["risk"].to_pylist(), strict=True))
    assert max(ref[a] for a in B) < min(store[a] for a in B)  # the parent's chance mattered here
