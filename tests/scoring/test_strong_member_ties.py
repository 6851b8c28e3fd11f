"""The ties that halve a member's suspicion ratio (``strong_member_ties``): a pool's proxy holds the pool's cards,
bursts and template set with many members; a bystander whose shared templates are a handful of members' does not
have its ratio halved by them (dev3 standard-713, quiet_hydra-707)."""
from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from tests.scoring.test_member_ties import OUTSIDE, POOL, _con, _features, _incidence


def test_a_handful_of_members_templates_are_no_strong_tie():
    """dev3 quiet_hydra-707: a chat user's client build (9 members) counts; the prompt it shares, sent by 6 of a
    62-account core, is not the template set the core relays. 713: a two-account schedule and a template 2 of a
    144-account core send: one strong tie."""
    from distillguard.scoring.risk import strong_member_ties
    cfg = ScoringConfig()
    assert strong_member_ties({"client", "content"}, {"client": 9, "content": 6}, 6, 62, cfg) == {"client"}
    assert strong_member_ties({"timing", "content"}, {"timing": 2, "content": 2}, 2, 144, cfg) == {"timing"}
    # a proxy sending the pool's template set (32 of a core of 45) and holding its card keeps both
    assert strong_member_ties({"payment", "content"}, {"payment": 5, "content": 40}, 32, 45, cfg) == {"payment", "content"}


def test_pair_evidence_rule_when_asked():
    """``tied_member_min_holders`` (off by default: it cost true accounts on dev2) drops ties only a pair holds."""
    from distillguard.scoring.risk import strong_member_ties
    cfg = ScoringConfig(tied_member_min_holders=3)
    assert strong_member_ties({"timing", "content"}, {"timing": 2, "content": 90}, 90, 144, cfg) == {"content"}
    assert strong_member_ties({"timing", "content"}, {"timing": 3, "content": 90}, 90, 144, cfg) == {"timing", "content"}


def test_off_restores_every_tie():
    from distillguard.scoring.risk import strong_member_ties
    off = ScoringConfig(tied_member_min_holders=None, tied_member_content_share=None)
    assert strong_member_ties({"client", "content"}, {"client": 2, "content": 2}, 2, 62, off) == {"client", "content"}


def _chat_risk(cfg: ScoringConfig, template_holders: int) -> float:
    """The hydra pool of ``test_member_ties`` plus a chat user near the bottom of the store's suspicion who keeps a
    schedule (a sync entity) with two of the pool's accounts and sends a template ``template_holders`` - 1 of the
    pool's accounts send too (all of them: the pool's own ``tpl-harvest``)."""
    tpl = "tpl-harvest" if template_holders > len(POOL) else "tpl-few"
    rows = _incidence() + [("chat", "template", tpl, 0.4), ("chat", "ip24", "198.51.0", 0.5),
                           ("chat", "ip24", "198.51.1", 0.5)]
    if tpl == "tpl-few":
        rows += [(a, "template", tpl, 0.4) for a in POOL[:template_holders - 1]]
    rows += [(a, "sync", "tpl-harvest~0~h", 0.5) for a in ["chat", *POOL[:2]]]
    susp = {a: 0.5 for a in POOL} | {"home": 0.4, "mixed": 0.2, "co1": 0.2, "co2": 0.2, "chat": 0.15}
    _, out = score_clusters(_con(rows), _features(susp | {a: 0.1 for a in OUTSIDE}), {a: 0 for a in susp}, [], cfg)
    return dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))["chat"]


def test_a_bystander_sending_a_handful_of_members_template_falls_off():
    """End to end: a schedule and a template one pool account sends: its ratio is not halved (on main it was: the
    template counted as a second strong tie). Sending the pool's own template set, it still is."""
    # the toy pool's core is a handful of accounts, so a pair is a quarter of it: judged at half the core here
    fields = ScoringConfig.model_fields
    cfg = ScoringConfig(**({"tied_member_content_share": 0.5} if "tied_member_content_share" in fields else {}))
    assert _chat_risk(cfg, 2) < cfg.flag_threshold
    assert _chat_risk(cfg, len(POOL) + 2) >= cfg.flag_threshold
    if "tied_member_content_share" in fields:   # the code before this rule has no switch
        assert _chat_risk(ScoringConfig(tied_member_content_share=None), 2) >= cfg.flag_threshold
