"""The ties that halve a member's suspicion ratio (``strong_member_ties``): a pool's proxy holds the pool's cards,
bursts and template set with many members; a bystander's pair evidence does not halve the ratio (dev3 standard-713,
quiet_hydra-707)."""
from distillguard.scan.config import ScoringConfig
from distillguard.scoring.risk import strong_member_ties


def test_a_pair_schedule_is_no_strong_tie():
    """dev3 standard-713: an agent-framework user holds a schedule one other member keeps, and sends the
    cluster's template set: one strong tie, so its suspicion ratio is not halved."""
    cfg = ScoringConfig()
    ties = strong_member_ties({"timing", "content"}, {"timing": 2, "content": 90}, 90, 144, cfg)
    assert ties == {"content"}
    assert len(ties) < cfg.min_member_groups
    # a schedule three members keep still counts
    assert strong_member_ties({"timing", "content"}, {"timing": 3, "content": 90}, 90, 144, cfg) == {"timing", "content"}


def test_a_handful_of_members_templates_are_no_strong_tie():
    """dev3 quiet_hydra-707: a chat user's client build (9 members) counts; the prompt it shares, sent by 6 of a
    62-account core, is not the template set the core relays."""
    cfg = ScoringConfig()
    assert strong_member_ties({"client", "content"}, {"client": 9, "content": 6}, 6, 62, cfg) == {"client"}
    # a proxy sending the pool's template set (32 of a core of 45) and holding its card keeps both
    assert strong_member_ties({"payment", "content"}, {"payment": 5, "content": 40}, 32, 45, cfg) == {"payment", "content"}


def test_off_restores_every_tie():
    off = ScoringConfig(tied_member_min_holders=None, tied_member_content_share=None)
    assert strong_member_ties({"client", "content"}, {"client": 2, "content": 2}, 2, 62, off) == {"client", "content"}


def _pair_risk(cfg: ScoringConfig, pair_holders: int) -> float:
    """The hydra pool of ``test_member_ties`` plus a chat user near the bottom of the store's suspicion who sends
    the pool's template and keeps a schedule (a sync entity) with ``pair_holders`` - 1 of the pool's accounts."""
    from tests.scoring.test_member_ties import OUTSIDE, POOL, _con, _features, _incidence
    rows = _incidence() + [("chat", "template", "tpl-harvest", 0.4), ("chat", "ip24", "198.51.0", 0.5),
                           ("chat", "ip24", "198.51.1", 0.5)]
    rows += [(a, "sync", "tpl-harvest~0~h", 0.5) for a in ["chat", *POOL[:pair_holders - 1]]]
    susp = {a: 0.5 for a in POOL} | {"home": 0.4, "mixed": 0.2, "co1": 0.2, "co2": 0.2, "chat": 0.15}
    from distillguard.scoring import score_clusters
    _, out = score_clusters(_con(rows), _features(susp | {a: 0.1 for a in OUTSIDE}), {a: 0 for a in susp}, [], cfg)
    return dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))["chat"]


def test_a_bystander_with_a_pair_schedule_falls_off():
    """End to end: with a two-account schedule and the pool's template its ratio is not halved (on main it was:
    the schedule counted as a second strong tie)."""
    cfg = ScoringConfig()
    on = _pair_risk(cfg, 2)
    if "tied_member_min_holders" not in ScoringConfig.model_fields:   # the code before this rule: no switch
        assert on < cfg.flag_threshold
    off = _pair_risk(ScoringConfig(tied_member_min_holders=None, tied_member_content_share=None), 2)
    assert on < cfg.flag_threshold <= off
    # a schedule three of the cluster keep (a pool's) still halves it
    assert _pair_risk(cfg, 3) >= cfg.flag_threshold
