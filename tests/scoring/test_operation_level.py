"""An operation the community detection cut into pieces is judged as one (distillguard/graph/operations.py).

A big hydra is a loose web: each sign-up burst is its own tight block, each reused card ties a few accounts of
two blocks, and every account sends the operation's templates. Community detection returns the blocks. Each
block, judged against the rest of the store, sees its templates held by the other blocks' hundreds of accounts
(shared by chance in a group its size) and its cards held mostly outside it: weakly coordinated, not flagged,
however big the operation — the bigger, the more pieces. Built here on the scoring stage's own inputs (the
incidence, edges and accounts tables of tests/scoring/test_member_ties.py), with the communities given.
"""

import pyarrow as pa
import pytest

from distillguard.graph.operations import operation_groups
from distillguard.scan import engine
from distillguard.scan.config import ScanConfig
from tests.scoring.test_member_ties import _con

PIECES, PER = 8, 20
OP = {f"op{p}-{j}": p for p in range(PIECES) for j in range(PER)}
# the rest of the store: ordinary users of a stock SDK and a public template, in communities of their own
# (a popular tool's users: one system prompt, one client string), and two of them created in the same minutes
USERS = {f"user{i}": PIECES + i // 25 for i in range(200)}


def _rows() -> list[tuple[str, str, str, float]]:
    rows = []
    for a, p in OP.items():
        j = int(a.split("-")[1])
        # card shared with the same-numbered account of the next (j < 10) or previous piece: each card ties
        # two pieces, no card is held inside one piece
        card = f"card-{p}-{j}" if j < PER // 2 else f"card-{(p - 1) % PIECES}-{j - PER // 2}"
        rows += [(a, "payment", card, 1.0), (a, "creation_burst", f"standard|{p}", 0.8),
                 (a, "template", "tpl-op", 0.3), (a, "user_agent", "OpenAI/Python 1.93.0", 0.1)]
    for a, c in USERS.items():
        rows += [(a, "user_agent", "OpenAI/Python 1.93.0", 0.1), (a, "template", "tpl-public", 0.1),
                 (a, "system_prompt", f"sp-tool{c % 2}", 0.2)]
    rows += [("user0", "creation_burst", "standard|x", 0.8), ("user30", "creation_burst", "standard|x", 0.8),
             ("user60", "creation_burst", "standard|x", 0.8)]
    return rows


def _feats() -> pa.Table:
    ids = list(OP) + list(USERS)
    return pa.table({"account_id": ids, "suspicion": [0.6 if a in OP else 0.1 for a in ids],
                     "n_exchanges": [100.0] * len(ids), "org_id": [None] * len(ids),
                     "verification_level": [0] * len(ids)})


def _risk(monkeypatch, cfg: ScanConfig) -> tuple[list, dict[str, float]]:
    monkeypatch.setattr(engine, "find_community_levels", lambda _p, _g, _c, res, _warm=None: [OP | USERS for _ in res])
    clusters, risk, _ = engine.score_levels(_con(_rows()), _feats(), None, [], cfg)
    return clusters, dict(zip(risk["account_id"].to_pylist(), risk["risk"].to_pylist(), strict=True))


def test_pieces_of_one_operation_are_joined_and_nothing_else():
    ops = operation_groups(_con(_rows()), OP | USERS, len(OP) + len(USERS), ScanConfig().graph)
    assert set(ops) == set(OP)              # every piece, and no ordinary community
    assert len(set(ops.values())) == 1


def test_an_operation_cut_into_pieces_is_flagged_as_one(monkeypatch):
    clusters, risk = _risk(monkeypatch, ScanConfig())
    assert min(risk[a] for a in OP) >= 0.5
    assert max(risk[a] for a in USERS) < 0.5
    ops = [c for c in clusters if c.cluster_id.startswith("clop")]
    assert len(ops) == 1 and set(ops[0].members) == set(OP)


def test_without_joining_each_piece_looks_like_chance(monkeypatch):
    cfg = ScanConfig()
    cfg.graph.join_alpha = 0
    _, risk = _risk(monkeypatch, cfg)
    assert max(risk[a] for a in OP) < 0.5


@pytest.mark.parametrize("kinds", [[], ["email_domain"]])
def test_joining_counts_only_the_configured_kinds(kinds):
    cfg = ScanConfig().graph
    cfg.join_kinds = kinds
    assert operation_groups(_con(_rows()), OP | USERS, len(OP) + len(USERS), cfg) == {}


# Two unrelated campaigns of 300 accounts each, each with its own cards (3 accounts a card) and sign-up bursts:
# five of A's cards were also used by one account of B. In a store of 5,000 accounts that is "beyond chance"
# (p ≈ 1e-6 one way, 2e-4 the other, against 1e-3 for the single pair), and the test's power only grows with the
# campaigns' sizes — but 15 of A's 300 accounts hold such a card, with a third of their co-holders in B: a tie
# share of 0.017 (graph.join_min_share 0.05), against about 0.3 between pieces of one operation.
CAMP = {f"{c}{i}": n for n, c in enumerate("AB") for i in range(300)}


def _two_campaigns() -> list[tuple[str, str, str, float]]:
    rows = []
    for a in CAMP:
        c, i = a[0], int(a[1:])
        rows += [(a, "payment", f"card-{c}-{i // 3}", 1.0), (a, "creation_burst", f"standard|{c}{i // 100}", 0.8)]
    rows += [(f"B{3 * j}", "payment", f"card-A-{j}", 1.0) for j in range(5)]   # B's stray uses of A's cards
    return rows


def test_two_campaigns_with_a_small_significant_overlap_are_not_joined():
    assert operation_groups(_con(_two_campaigns()), CAMP, 5_000, ScanConfig().graph) == {}


def test_without_the_effect_size_the_tail_test_alone_joins_them():
    # the failure the effect size exists for: the tail probability alone joins two campaigns
    cfg = ScanConfig().graph
    cfg.join_min_share = 0
    ops = operation_groups(_con(_two_campaigns()), CAMP, 5_000, cfg)
    assert set(ops) == set(CAMP) and len(set(ops.values())) == 1


def test_pieces_are_joined_beside_two_campaigns_that_are_not():
    rows = _rows() + _two_campaigns()
    mem = OP | USERS | {a: 100 + c for a, c in CAMP.items()}
    ops = operation_groups(_con(rows), mem, 5_000, ScanConfig().graph)
    assert set(ops) == set(OP) and len(set(ops.values())) == 1


def _with_bystander(monkeypatch, member_ties: bool) -> dict[str, float]:
    """The operation plus an ordinary user in its first piece: it shares a proxy /24 with ten of the pool's
    accounts and sends the operation's template in the same windows (the pool carries ordinary traffic too),
    but holds none of its cards or sign-up bursts; its own traffic is far less suspicious than the pool's."""
    rows = _rows() + [("byst", "ip24", "10.0.0", 0.3), ("byst", "sync", "sync-op", 0.6),
                      ("byst", "template", "tpl-op", 0.3), ("byst", "user_agent", "OpenAI/Python 1.93.0", 0.1)]
    rows += [(f"op{p}-{j}", "ip24", "10.0.0", 0.3) for p in range(2) for j in range(5)]
    rows += [(f"op{p}-{j}", "sync", "sync-op", 0.6) for p in range(PIECES) for j in range(PER)]
    ids = [*OP, *USERS, "byst"]
    feats = pa.table({"account_id": ids, "suspicion": [0.6 if a in OP else 0.25 if a == "byst" else 0.1 for a in ids],
                      "n_exchanges": [100.0] * len(ids), "org_id": [None] * len(ids),
                      "verification_level": [0] * len(ids)})
    monkeypatch.setattr(engine, "find_community_levels", lambda _p, _g, _c, res, _warm=None: [OP | USERS | {"byst": 0} for _ in res])
    if not member_ties:
        monkeypatch.setattr(engine, "score_operations", lambda con, f, ops, _m, blocks, cfg: engine.score_clusters(
            con, f, ops, blocks, cfg.scoring, id_prefix="clop"))
    clusters, risk, _ = engine.score_levels(_con(rows), feats, None, [], ScanConfig())
    assert any(c.cluster_id.startswith("clop") and "byst" in c.members for c in clusters)
    return dict(zip(risk["account_id"].to_pylist(), risk["risk"].to_pylist(), strict=True))


def test_a_bystander_in_a_joined_operation_is_judged_by_its_own_ties(monkeypatch):
    risk = _with_bystander(monkeypatch, member_ties=True)
    assert min(risk[a] for a in OP) >= 0.5
    assert risk["byst"] < 0.5


def test_pooled_membership_alone_would_carry_the_bystander(monkeypatch):
    # without member_ties its schedule counts as its own distinctive tie and the operation's pooled traffic
    # lifts it: the failure the rule exists for
    risk = _with_bystander(monkeypatch, member_ties=False)
    assert risk["byst"] >= 0.5


def test_a_record_mostly_inside_a_joined_operation_is_that_operation():
    # three of the operation's accounts whose risk peaked in a harvesting sub-cluster of one piece: their own
    # record of three shares nothing no test could tell from chance, but they are members of the operation
    from distillguard.campaigns.build import merge_clusters

    sub = ["x1", "x2", "x3"]   # members of the operation holding nothing the tests could count
    groups = {"clop-0000": sorted(OP), "cl1h-0001": sub, "cl0-0009": ["user1", "user2"]}
    cfg = ScanConfig().campaigns
    rep = merge_clusters(_con(_rows()), groups, cfg, joined={"clop-0000": set(OP) | set(sub)})
    assert rep["cl1h-0001"] == rep["clop-0000"] and rep["cl0-0009"] != rep["clop-0000"]
    rep = merge_clusters(_con(_rows()), groups, cfg)
    assert rep["cl1h-0001"] != rep["clop-0000"]
