"""Harvesting sub-clusters: a quiet pool that is a minority of a popular tool's community.

The store: 40 users of a popular tool (its system prompt, also used by 60 users outside the community) and,
inside their community, a quiet pool of 8 accounts that share only public content with them plus a *different*
hidden tie each — three on one proxy /24, two on a reused card, three in a sign-up burst. No evidence group
reaches half the community's core, and none reaches half the pool either; what the pool has is its members'
own harvesting shape (long single-turn answers) and a hidden tie for each of them.
"""

import numpy as np
import pyarrow as pa
import pytest

from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from distillguard.scoring.subclusters import harvest_subclusters
from distillguard.scoring.suspicion import account_suspicion
from tests.scoring.test_member_ties import _con

POOL = [f"pool{i}" for i in range(8)]
USERS = [f"user{i}" for i in range(40)]
OUTSIDE = [f"out{i}" for i in range(60)]


def _rows(pool_hidden: bool = True) -> list[tuple[str, str, str, float]]:
    rows = [(a, "system_prompt", "sp-popular-tool", 0.3) for a in POOL + USERS + OUTSIDE]
    rows += [(a, "ip24", f"203.0.{i}", 0.5) for i, a in enumerate(USERS)]  # each user on a home /24 of its own
    if pool_hidden:
        rows += [(a, "ip24", "198.51.7", 0.5) for a in POOL[:3]]
        rows += [(a, "payment", "card-reused", 1.5) for a in POOL[3:5]]
        rows += [(a, "creation_burst", "free_trial|9", 0.9) for a in POOL[5:]]
    else:  # the same eight heavy users, tied only by what strangers share: a free-mail naming shape and the
        # tool's client, which the 60 users outside the community have too
        rows += [(a, "email_pattern", "first.last@gmail.com", 0.2) for a in POOL + OUTSIDE]
        rows += [(a, "user_agent", "tool/2.1", 0.1) for a in POOL + OUTSIDE]
    return rows


def _features(pool_shape: float) -> pa.Table:
    ids = POOL + USERS + OUTSIDE
    shape = {a: pool_shape for a in POOL} | {a: 0.0 for a in USERS + OUTSIDE}
    susp = {a: 0.65 for a in POOL} | {a: 0.3 for a in USERS + OUTSIDE}
    return pa.table({"account_id": ids, "suspicion": [susp[a] for a in ids], "c_harvest_shape": [shape[a] for a in ids],
                     "n_exchanges": [200.0] * len(ids), "org_id": [None] * len(ids), "verification_level": [0] * len(ids)})


def _risk(rows, feats, cfg=None, parent: bool = False) -> dict[str, float]:
    cfg = cfg or ScoringConfig()
    con = _con(rows)
    community = {a: 0 for a in POOL + USERS}
    best = {}
    _, out = score_clusters(con, feats, community, [], cfg)
    tables = [out]
    sub = harvest_subclusters(community, feats, cfg)
    if sub:
        tables.append(score_clusters(con, feats, sub, [], cfg, id_prefix="clh", harvest=True,
                                     parent=community if parent else None)[1])
    for t in tables:
        for a, r in zip(t["account_id"].to_pylist(), t["risk"].to_pylist(), strict=True):
            best[a] = max(best.get(a, 0.0), r)
    return best


def test_the_community_alone_does_not_flag_the_pool():
    feats = _features(0.8)
    _, out = score_clusters(_con(_rows()), feats, {a: 0 for a in POOL + USERS}, [], ScoringConfig())
    risk = dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))
    assert max(risk[a] for a in POOL) < 0.5


def test_a_quiet_pool_with_harvesting_shape_and_hidden_ties_is_flagged():
    risk = _risk(_rows(), _features(0.8))
    assert min(risk[a] for a in POOL) >= 0.5, {a: round(risk[a], 3) for a in POOL}
    assert max(risk[a] for a in USERS) < 0.5


def test_heavy_users_sharing_only_what_strangers_share_are_not_a_sub_cluster_campaign():
    # same shape, but tied by an e-mail naming shape and a client string: never hidden infrastructure
    risk = _risk(_rows(pool_hidden=False), _features(0.8))
    assert max(risk[a] for a in POOL) < 0.5


def test_without_harvesting_shape_there_is_no_sub_cluster():
    feats = _features(0.0)
    assert harvest_subclusters({a: 0 for a in POOL + USERS}, feats, ScoringConfig()) == {}
    risk = _risk(_rows(), feats)
    assert max(risk[a] for a in POOL) < 0.5


def test_sub_clusters_follow_the_store_quantile_and_can_be_turned_off():
    feats = _features(0.8)
    community = {a: 0 for a in POOL + USERS}
    assert set(harvest_subclusters(community, feats, ScoringConfig())) == set(POOL)
    assert harvest_subclusters(community, feats, ScoringConfig(harvest_quantile=1.0)) == {}
    # fewer than harvest_min_accounts such members in one cluster: no sub-cluster
    assert harvest_subclusters(community, feats, ScoringConfig(harvest_min_accounts=9)) == {}


@pytest.mark.parametrize("single_turn,expect_high", [(1.0, True), (0.1, False)])
def test_harvest_shape_needs_long_answers_and_single_turns(single_turn, expect_high):
    n = 40
    t = pa.table({"account_id": [f"a{i}" for i in range(n)], "n_exchanges": [100.0] * n,
                  "mean_max_tokens": [500.0] * (n - 1) + [8000.0], "single_turn_share": [0.5] * (n - 1) + [single_turn]})
    hs = account_suspicion(t)["c_harvest_shape"].to_numpy()
    assert bool(hs[-1] > 0.8) is expect_high
    assert np.all(hs[:-1] == 0)  # at or below the store's median output length: no harvesting shape


def test_a_tie_the_whole_community_holds_is_not_the_sub_clusters_own():
    """A course lab in a store of a thousand other accounts: every student shares the campus NAT and the sign-up
    burst (rare in the store); its busiest eight are the store's top decile on harvest shape. Their hidden ties are
    the community's, so they are no sub-cluster campaign (``harvest_parent_chance``); judged against the store
    alone, the same ties carried them. A quiet pool whose ties are its own keeps its flags."""
    store = [f"far{i}" for i in range(1000)]
    ids = POOL + USERS + store
    feats = pa.table({"account_id": ids, "suspicion": [0.65 if a in POOL else 0.3 for a in ids],
                      "c_harvest_shape": [0.8 if a in POOL else 0.0 for a in ids], "n_exchanges": [200.0] * len(ids),
                      "org_id": [None] * len(ids), "verification_level": [0] * len(ids)})
    base = [(a, "system_prompt", "sp-popular-tool", 0.3) for a in ids]
    lab = base + [(a, "ip24", "10.20.30", 0.5) for a in POOL + USERS] + \
        [(a, "creation_burst", "education|3", 0.9) for a in POOL + USERS]
    assert min(_risk(lab, feats, ScoringConfig(harvest_parent_chance=False), parent=True)[a] for a in POOL) >= 0.5
    on = ScoringConfig(harvest_parent_chance=True)
    assert max(_risk(lab, feats, on, parent=True)[a] for a in POOL) < 0.5
    pool = base + [(a, "ip24", f"203.0.{i}", 0.5) for i, a in enumerate(USERS)] + \
        [(a, "ip24", "198.51.7", 0.5) for a in POOL[:3]] + [(a, "payment", "card-reused", 1.5) for a in POOL[3:5]] + \
        [(a, "creation_burst", "free_trial|9", 0.9) for a in POOL[5:]]
    assert min(_risk(pool, feats, on, parent=True)[a] for a in POOL) >= 0.5
