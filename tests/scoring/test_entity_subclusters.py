"""Shared-entity sub-clusters: a young hydra's card holders judged as a group inside a mixed community.

Early in a hydra's life (issue 14: the first 1% of a campaign's exchanges) each of its accounts has sent a few
requests and community detection puts them among ordinary users they share a public tool's prompt or a home
/24 with. The hydra's card is held by a minority of that community, so the community is weakly coordinated
(``weak_coordination_cap``) and the pooled evidence of its card holders is never read, although strangers never
share a card by chance. The store here: a community of 24 users of a popular tool and, inside it, six young
hydra accounts (three requests each) on one card and one private template; a family of three sharing a card
with ordinary traffic; a verified company's three accounts on the company card.
"""

import pyarrow as pa

from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from distillguard.scoring.subclusters import entity_subclusters
from tests.scoring.test_member_ties import _con
from tests.scoring.test_pooled_evidence import HARVEST, ORDINARY, _feats

HYDRA = [f"hyd{i}" for i in range(6)]
FAMILY = [f"fam{i}" for i in range(3)]
COMPANY = [f"co{i}" for i in range(3)]   # "co" prefix: org-co, verified (tests/scoring/test_pooled_evidence._feats)
USERS = [f"user{i}" for i in range(24)]
OUTSIDE = [f"out{i}" for i in range(60)]
COMMUNITY = HYDRA + FAMILY + COMPANY + USERS


def _rows() -> list[tuple[str, str, str, float]]:
    rows = [(a, "system_prompt", "sp-popular-tool", 0.3) for a in COMMUNITY + OUTSIDE]
    rows += [(a, "ip24", f"203.0.{i // 2}", 0.5) for i, a in enumerate(USERS + HYDRA)]  # home /24s, two a range
    rows += [(a, "payment", "card-hydra", 1.5) for a in HYDRA]
    rows += [(a, "template", "tpl-hydra", 0.4) for a in HYDRA]
    rows += [(a, "payment", "card-family", 1.5) for a in FAMILY]
    rows += [(a, "ip24", "192.0.2", 0.5) for a in FAMILY]
    rows += [(a, "payment", "card-company", 1.5) for a in COMPANY]
    rows += [(a, "ip24", "198.18.0", 0.5) for a in COMPANY]
    return rows


def _risk(hydra_traffic: dict[str, float], cfg: ScoringConfig) -> dict[str, float]:
    per = ({a: (3, hydra_traffic) for a in HYDRA} | {a: (40, ORDINARY) for a in FAMILY + COMPANY + USERS}
           | {a: (40, ORDINARY) for a in OUTSIDE})
    feats = _feats(per)
    con = _con(_rows())
    return best_risk(con, feats, {a: 0 for a in COMMUNITY}, cfg)


def best_risk(con, feats: pa.Table, community: dict[str, int], cfg: ScoringConfig) -> dict[str, float]:
    """Each account's highest risk over the community and its shared-entity sub-clusters (as the scan keeps it)."""
    best: dict[str, float] = {}
    tables = [score_clusters(con, feats, community, [], cfg)[1]]
    sub = entity_subclusters(con, community, cfg)
    if sub:
        tables.append(score_clusters(con, feats, sub, [], cfg, id_prefix="cle", parent=community)[1])
    for t in tables:
        for a, r in zip(t["account_id"].to_pylist(), t["risk"].to_pylist(), strict=True):
            best[a] = max(best.get(a, 0.0), r)
    return best


def test_the_card_holders_are_a_group_of_their_own_and_a_verified_company_is_one_party():
    cfg = ScoringConfig()
    sub = entity_subclusters(_con(_rows()), {a: 0 for a in COMMUNITY}, cfg)
    groups: dict[int, set[str]] = {}
    for a, c in sub.items():
        groups.setdefault(c, set()).add(a)
    assert sorted(map(sorted, groups.values())) == [sorted(FAMILY), sorted(HYDRA)]
    assert entity_subclusters(_con(_rows()), {a: 0 for a in COMMUNITY}, ScoringConfig(entity_core_kinds=[])) == {}
    # a group that is its whole community is scored as the community already
    assert entity_subclusters(_con(_rows()), {a: 0 for a in HYDRA}, cfg) == {}


def test_a_young_hydra_in_a_mixed_community_is_flagged_through_its_card():
    on = _risk(HARVEST, ScoringConfig())
    off = _risk(HARVEST, ScoringConfig(entity_core_kinds=[]))
    assert max(off[a] for a in HYDRA) < 0.5
    assert min(on[a] for a in HYDRA) >= 0.5
    for a in FAMILY + COMPANY + USERS:
        assert on[a] < 0.5


def test_card_holders_with_ordinary_traffic_are_not_flagged():
    on = _risk(ORDINARY, ScoringConfig())
    assert max(on.values()) < 0.5
    assert pa.array(list(on.values())).null_count == 0


def _card_only_rows(burst: bool) -> list[tuple[str, str, str, float]]:
    """The hydra tied by its card alone (no private template, each account on its own /24), plus — with ``burst`` — the sign-up burst on that
    card (``payment_burst``, group creation); the family opened its three accounts on its card the same day too."""
    rows = [r for r in _rows() if r[1] != "template" and not (r[0] in HYDRA and r[1] == "ip24")]  # distinct /24s
    if burst:
        rows += [(a, "payment_burst", "card-hydra|1", 1.0) for a in HYDRA]
        rows += [(a, "payment_burst", "card-family|1", 1.0) for a in FAMILY]
    return rows


def _card_risk(hydra_traffic: dict[str, float], burst: bool) -> dict[str, float]:
    per = ({a: (3, hydra_traffic) for a in HYDRA} | {a: (40, ORDINARY) for a in FAMILY + COMPANY + USERS}
           | {a: (40, ORDINARY) for a in OUTSIDE})
    feats = _feats(per)
    con = _con(_card_only_rows(burst))
    return best_risk(con, feats, {a: 0 for a in COMMUNITY}, ScoringConfig())


def test_a_card_and_its_sign_up_burst_are_two_groups_and_the_traffic_still_decides():
    # a card alone is one evidence group: weakly coordinated, never pooled
    assert max(_card_risk(HARVEST, burst=False)[a] for a in HYDRA) < 0.5
    # the same card opened on in one afternoon: two groups, the pool's traffic is read
    on = _card_risk(HARVEST, burst=True)
    assert min(on[a] for a in HYDRA) >= 0.5
    # the family that opened its accounts on its card the same day, with ordinary traffic, stays clean
    assert max(on[a] for a in FAMILY + COMPANY + USERS) < 0.5
    assert max(_card_risk(ORDINARY, burst=True).values()) < 0.5
