"""Rare hidden ties counted in a harvesting sub-cluster (scoring.harvest_group_alpha; issue 11, quiet hydras).

The store: a quiet pool of 27 accounts inside a community of 40 users of a popular tool, among 200 accounts
outside it. The pool runs one private client (a tie that is one evidence group) and, rarely, hidden ties: three
accounts reuse one card, four were signed up in one burst. Neither reaches half the pool's core, so the group
shares leave the pool at one evidence group and its coordination capped; the *count* — three strangers on one
card, four in one burst, where the store's chance predicts none — is what the rule reads.
"""

import pyarrow as pa
import pytest

from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from distillguard.scoring.subclusters import harvest_subclusters
from tests.scoring.test_member_ties import _con

POOL = [f"pool{i:02d}" for i in range(27)]
USERS = [f"user{i}" for i in range(40)]
OUTSIDE = [f"out{i}" for i in range(200)]


def _rows(card: int = 3, burst: int = 4, outside_holders: int = 0) -> list[tuple[str, str, str, float]]:
    rows = [(a, "system_prompt", "sp-popular-tool", 0.3) for a in POOL + USERS + OUTSIDE]
    rows += [(a, "ip24", f"203.0.{i}", 0.5) for i, a in enumerate(USERS)]
    rows += [(a, "user_agent", "pool-client/1.0", 0.4) for a in POOL]
    rows += [(a, "payment", "card-reused", 1.5) for a in POOL[:card] + OUTSIDE[:outside_holders]]
    rows += [(a, "creation_burst", "free_trial|9", 0.9)
             for a in POOL[card:card + burst] + OUTSIDE[100:100 + outside_holders]]
    return rows


def _features() -> pa.Table:
    ids = POOL + USERS + OUTSIDE
    return pa.table({"account_id": ids, "suspicion": [0.6 if a in POOL else 0.3 for a in ids],
                     "c_harvest_shape": [0.8 if a in POOL else 0.0 for a in ids], "n_exchanges": [200.0] * len(ids),
                     "org_id": [None] * len(ids), "verification_level": [0] * len(ids)})


def _pool_cluster(rows, cfg: ScoringConfig):
    feats = _features()
    community = {a: 0 for a in POOL + USERS}
    sub = harvest_subclusters(community, feats, cfg)
    assert set(sub) == set(POOL)
    scores, out = score_clusters(_con(rows), feats, sub, [], cfg, id_prefix="clh", harvest=True, parent=community)
    risk = dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))
    return scores[0], risk


def test_a_few_accounts_on_one_card_and_one_burst_are_beyond_the_stores_chance():
    cs, risk = _pool_cluster(_rows(), ScoringConfig())
    assert cs.coordination > ScoringConfig().weak_coordination_cap
    assert cs.group_counts["payment"][0] == 3 and cs.group_counts["creation"][0] == 4
    assert any("store's own chance" in r for r in cs.reasons)
    assert min(risk[a] for a in POOL[:7]) >= 0.5, {a: round(risk[a], 3) for a in POOL[:7]}


def test_off_the_pool_stays_capped():
    cs, risk = _pool_cluster(_rows(), ScoringConfig(harvest_group_alpha=None))
    assert cs.coordination <= ScoringConfig().weak_coordination_cap + 1e-9
    assert max(risk.values()) < 0.5


def test_a_card_and_burst_the_store_shares_anyway_do_not_count():
    # the same card and burst held by 40 accounts outside the community each: a group of 27 drawn from this store
    # would hold them by chance, so three and four holders are no evidence
    cs, _ = _pool_cluster(_rows(outside_holders=40), ScoringConfig())
    assert cs.coordination <= ScoringConfig().weak_coordination_cap + 1e-9


def test_two_holders_are_not_enough():
    # two accounts on one card can be one household; below harvest_group_min_members nothing counts
    cs, _ = _pool_cluster(_rows(card=2, burst=2), ScoringConfig())
    assert cs.coordination <= ScoringConfig().weak_coordination_cap + 1e-9
    cs, _ = _pool_cluster(_rows(card=2, burst=2), ScoringConfig(harvest_group_min_members=2))
    assert cs.coordination > ScoringConfig().weak_coordination_cap


def test_a_lifted_cluster_does_not_take_an_account_another_cluster_flags():
    from distillguard.scan.engine import keep_highest

    row = lambda a, r, c: {"account_id": a, "risk": r, "cluster_id": c, "reasons": []}  # noqa: E731
    own = pa.Table.from_pylist([row("a", 0.7, "cl0e-0001"), row("b", 0.3, "cl0-0002")])
    lifted = pa.Table.from_pylist([row("a", 0.8, "cl0-0009"), row("b", 0.6, "cl0-0009")])
    best: dict = {}
    keep_highest(best, [own, lifted], {"cl0-0009": 0.5})
    assert best["a"]["cluster_id"] == "cl0e-0001"   # flagged in its own cluster: stays there
    assert best["b"]["cluster_id"] == "cl0-0009" and best["b"]["risk"] == 0.6   # lifted where nothing else flags
    best = {}
    keep_highest(best, [own, lifted])
    assert best["a"]["cluster_id"] == "cl0-0009"   # without the ceiling the higher risk wins


def _community_risk(cfg: ScoringConfig, users_receive: float = 0.1) -> tuple[dict[str, float], float | None]:
    """The pool and the tool's users as one community (not a harvesting sub-cluster), at the same own suspicion:
    only its counted card and burst make it strongly coordinated. The pool's accounts receive long answers (received-
    output rank 0.7), the tool's users ``users_receive``."""
    ids = POOL + USERS + OUTSIDE
    feats = pa.table({"account_id": ids, "suspicion": [0.5 if a in POOL + USERS else 0.1 for a in ids],
                      "c_received_output": [0.7 if a in POOL else users_receive if a in USERS else 0.0 for a in ids],
                      "n_exchanges": [200.0] * len(ids), "org_id": [None] * len(ids),
                      "verification_level": [0] * len(ids)})
    # one home ISP's ASN, held by as many accounts outside the community: a tie chance explains
    # and the pool's residential /24s, each shared by four of its accounts
    rows = [r for r in _rows() if r[1] != "user_agent"] + [(a, "asn", "as-home", 0.5) for a in POOL + USERS + OUTSIDE[:70]]
    rows += [(a, "ip24", f"10.0.{i // 4}", 0.5) for i, a in enumerate(POOL)]
    scores, out = score_clusters(_con(rows), feats, {a: 0 for a in POOL + USERS}, [], cfg)
    return dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True)), scores[0].unlifted_risk


def test_members_receiving_like_the_rare_tie_holders_take_the_lifted_level():
    """``rare_ties_received_quantile``: a quiet hydra's accounts without the card or burst collect long answers as the
    holders do; the tool's users in its community, as suspicious on their own, do not and stay capped."""
    off, capped = _community_risk(ScoringConfig(rare_ties_received_quantile=None))
    rest = POOL[7:]   # holding neither the card nor the burst
    assert capped is not None and max(off[a] for a in rest) <= capped + 1e-9 < 0.5
    on, _ = _community_risk(ScoringConfig())
    assert min(on[a] for a in rest) == pytest.approx(max(on[a] for a in POOL[:7]))
    assert min(on[a] for a in rest) >= 0.5
    assert max(on[a] for a in USERS) == pytest.approx(max(off[a] for a in USERS))
    # tool users receiving as much as the pool would be lifted too: what they receive is the difference
    same, _ = _community_risk(ScoringConfig(), users_receive=0.7)
    assert min(same[a] for a in USERS) > max(on[a] for a in USERS)


def _burst_community(cfg: ScoringConfig, holders_suspicion: float) -> tuple[dict[str, float], object]:
    """As ``_community_risk``, but the card and burst holders (``POOL[:7]``) at ``holders_suspicion`` on their own and
    everyone else in the community at 0.5: a benign cohort's sign-up burst in a community of busier tool users."""
    ids = POOL + USERS + OUTSIDE
    feats = pa.table({"account_id": ids,
                      "suspicion": [holders_suspicion if a in POOL[:7] else 0.5 if a in POOL + USERS else 0.1 for a in ids],
                      "c_received_output": [0.0] * len(ids), "n_exchanges": [200.0] * len(ids),
                      "org_id": [None] * len(ids), "verification_level": [0] * len(ids)})
    rows = [r for r in _rows() if r[1] != "user_agent"] + [(a, "asn", "as-home", 0.5) for a in POOL + USERS + OUTSIDE[:70]]
    rows += [(a, "ip24", f"10.0.{i // 4}", 0.5) for i, a in enumerate(POOL)]
    scores, out = score_clusters(_con(rows), feats, {a: 0 for a in POOL + USERS}, [], cfg)
    return dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True)), scores[0]


def test_a_cluster_lifted_by_its_rare_ties_is_judged_on_their_holders_suspicion():
    """``rare_ties_holders_suspicion``: the coordination is the holders', so is the suspicion. A hackathon's burst
    holders at 0.2 do not borrow the 0.5 of the tool users their community also holds (dev2 standard-301: a false
    record of 10); holders as suspicious as the rest keep the level they had."""
    off, cs_off = _burst_community(ScoringConfig(rare_ties_holders_suspicion=False), 0.2)
    assert cs_off.unlifted_risk is not None and min(off[a] for a in POOL[:7]) >= 0.5   # the lift flags the holders
    on, cs_on = _burst_community(ScoringConfig(), 0.2)
    assert cs_on.suspicion < cs_off.suspicion and max(on[a] for a in POOL[:7]) < 0.5
    assert any("their holders' suspicion" in r for r in cs_on.reasons)
    assert cs_on.unlifted_risk == pytest.approx(cs_off.unlifted_risk)   # the non-holders' capped level is unchanged
    same_off, _ = _burst_community(ScoringConfig(rare_ties_holders_suspicion=False), 0.5)
    same_on, cs_same = _burst_community(ScoringConfig(), 0.5)
    assert same_on == pytest.approx(same_off) and not any("their holders'" in r for r in cs_same.reasons)
