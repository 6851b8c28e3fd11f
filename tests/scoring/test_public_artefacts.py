"""Public-artefact ties: a strongly coordinated cluster held together only by what using one product leaves in
every request — its client string, its system prompt and templates, one ISP gateway or campus NAT — is a campaign
only when its core collects the teacher's answers beyond the store's norm (long single-turn answers asked for, or
longer answers received). A card, a spread proxy range or a harvesting sub-cluster is not judged by it."""

import pyarrow as pa
import pytest

from distillguard.campaigns.describe import KindCount, Shared
from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from distillguard.scoring.demand import artefact_tie
from tests.scoring.test_member_ties import _con

TEAM = [f"u{i}" for i in range(10)]
OTHERS = [f"o{i}" for i in range(90)]
#: the rest of the store: harvest shape 0-0.5, 150-1,200 output tokens per exchange
HS_MIX = [0.5 * i / 89 for i in range(90)]
OUT_MIX = [150.0 + 1050.0 * i / 89 for i in range(90)]
ORDINARY_HS = [0.05 * i for i in range(10)]
ORDINARY_OUT = [200.0 + 100.0 * i for i in range(10)]


def _rows(card: bool) -> list[tuple[str, str, str, float]]:
    """The team sends one framework's system prompt (nobody else does: private content) from one campus /24;
    every account has a user agent of its own (so the one-client rule does not apply)."""
    rows = [(a, "system_prompt", "framework-sp", 0.6) for a in TEAM]
    rows += [(a, "ip24", "10.0.0", 0.6) for a in TEAM]
    if card:
        rows += [(a, "payment", "card-1", 1.5) for a in TEAM]
    rows += [(a, "user_agent", f"ua-{a}", 0.5) for a in TEAM + OTHERS]
    rows += [(a, "ip24", f"net-{i}", 0.6) for i, a in enumerate(OTHERS)]
    return rows + [(a, "system_prompt", f"sp-{i}", 0.5) for i, a in enumerate(OTHERS)]


def _score(hs=ORDINARY_HS, out=ORDINARY_OUT, card=False, harvest=False, alpha=0.05, with_out=True, subcluster_any=True):
    ids = TEAM + OTHERS
    cols = {"account_id": ids, "suspicion": [0.8 if a in TEAM else 0.1 for a in ids],
            "c_harvest_shape": list(hs) + HS_MIX, "n_exchanges": [200.0] * len(ids),
            "org_id": [None] * len(ids), "verification_level": [0] * len(ids)}
    if with_out:
        cols["mean_output_tokens"] = list(out) + OUT_MIX
    cfg = ScoringConfig(artefact_harvest_alpha=alpha, percentile_gate_subcluster_any=subcluster_any)
    cs, _ = score_clusters(_con(_rows(card)), pa.table(cols), {a: 0 for a in TEAM}, [], cfg, harvest=harvest,
                           parent={a: 0 for a in TEAM} if harvest else None)
    return cs[0], cfg


def _capped(c, cfg) -> bool:
    art = any("a product's users, not a harvest" in r for r in c.reasons)
    assert art == (c.coordination <= cfg.weak_coordination_cap + 1e-9)
    return art


def test_framework_users_on_one_nat_are_capped():
    c, cfg = _score()
    assert _capped(c, cfg)
    assert "one network" in next(r for r in c.reasons if "product's users" in r)


def test_off_judges_them_as_before():
    c, cfg = _score(alpha=None)
    assert not _capped(c, cfg)
    assert c.coordination > 0.5


@pytest.mark.parametrize("hs,out,capped", [
    ([0.6 + 0.03 * i for i in range(10)], ORDINARY_OUT, False),      # long single-turn answers asked for
    (ORDINARY_HS, [1300.0 + 50.0 * i for i in range(10)], False),    # longer answers received (agentic harvest)
    (ORDINARY_HS, ORDINARY_OUT, True),
])
def test_a_core_collecting_answers_beyond_the_store_stays_a_campaign(hs, out, capped):
    c, cfg = _score(hs, out)
    assert _capped(c, cfg) == capped


def test_without_output_counts_harvest_shape_alone_decides():
    assert _capped(*_score(with_out=False))
    assert not _capped(*_score(hs=[0.6 + 0.03 * i for i in range(10)], with_out=False))


def test_a_shared_card_is_not_an_artefact():
    c, cfg = _score(card=True)
    assert not _capped(c, cfg)


def test_a_two_account_core_is_judged():
    """Two accounts at the top of a store of a hundred reach p ≈ 2e-4: a pair *can* show a harvest, so a pair tied
    only by artefacts that does not show one is capped (``artefact_harvest_min_accounts``)."""
    team, others = TEAM[:2], OTHERS
    rows = [(a, "system_prompt", "framework-sp", 0.6) for a in team] + [(a, "ip24", "10.0.0", 0.6) for a in team]
    rows += [(a, "user_agent", f"ua-{a}", 0.5) for a in team + others]
    rows += [(a, "ip24", f"net-{i}", 0.6) for i, a in enumerate(others)]
    rows += [(a, "system_prompt", f"sp-{i}", 0.5) for i, a in enumerate(others)]
    ids = team + others

    def score(hs, cfg):
        cols = {"account_id": ids, "suspicion": [0.8 if a in team else 0.1 for a in ids],
                "c_harvest_shape": hs + HS_MIX, "mean_output_tokens": [300.0, 350.0] + OUT_MIX,
                "n_exchanges": [200.0] * len(ids), "org_id": [None] * len(ids), "verification_level": [0] * len(ids)}
        return score_clusters(_con(rows), pa.table(cols), {a: 0 for a in team}, [], cfg)[0][0]

    cfg = ScoringConfig()
    assert _capped(score([0.05, 0.1], cfg), cfg)
    assert not _capped(score([0.9, 0.95], cfg), cfg)                      # both above the whole store: a harvest
    old = ScoringConfig(artefact_harvest_min_accounts=3)
    assert not _capped(score([0.05, 0.1], old), old)                        # too small to judge: left as it was


def test_harvesting_subclusters_are_exempt():
    """Not judged by the artefact rule; what they receive judges them, at every suspicion percentile
    (``percentile_gate_subcluster_any``): this team's suspicion is the top of its store, its answers ordinary."""
    c, cfg = _score(harvest=True, subcluster_any=False)
    assert not _capped(c, cfg)
    c, cfg = _score(harvest=True)
    assert not any("product's users" in r for r in c.reasons)
    assert any("receives what the store's accounts receive" in r for r in c.reasons)
    assert c.coordination <= cfg.weak_coordination_cap + 1e-9
    c, cfg = _score(harvest=True, out=[1300.0 + 50.0 * i for i in range(10)])   # it collects: a harvest
    assert c.coordination > cfg.weak_coordination_cap


def _shared(ip_entities: int, top: int, holders: int) -> Shared:
    return Shared(10, [KindCount("ip24", ip_entities, holders, "x", top)])


def test_network_is_an_artefact_only_when_one_range_holds_it():
    cfg = ScoringConfig()
    groups = {"network": 0.9, "content": 0.8}
    core = [{"network", "content"}] * 10
    assert artefact_tie(groups, core, _shared(1, 10, 10), cfg) == ["network", "content"]
    assert artefact_tie(groups, core, _shared(2, 7, 10), cfg) is not None      # a NAT and a second gateway
    assert artefact_tie(groups, core, _shared(6, 3, 10), cfg) is None          # a proxy pool's spread ranges


def test_hidden_ties_held_by_half_the_core_are_not_artefacts():
    cfg = ScoringConfig()
    groups = {"client": 0.9, "content": 0.8}
    assert artefact_tie(groups, [{"client", "payment"}] * 6 + [{"client"}] * 4, None, cfg) is None
    assert artefact_tie(groups, [{"client", "payment"}] * 3 + [{"client"}] * 7, None, cfg) == ["client", "content"]
    assert artefact_tie({"client": 0.9, "creation": 0.6}, [{"client"}] * 10, None, cfg) is None


def test_a_shared_schedule_is_a_cohort_artefact():
    """Eval teams on one runner's cron, a class's lab windows: a schedule is what a cohort shares by being one, so
    a cluster held by a client, prompts and a schedule is judged by whether it collects answers; with timing left
    out of ``artefact_groups`` (the rule as first shipped) a schedule keeps it out of the rule."""
    groups = {"client": 0.9, "content": 0.8, "timing": 0.7}
    core = [{"client", "content", "timing"}] * 10
    assert artefact_tie(groups, core, None, ScoringConfig()) == ["client", "content", "timing"]
    assert artefact_tie(groups, core, None, ScoringConfig(artefact_groups=["client", "content", "network"])) is None


def test_prompts_alone_show_no_product():
    """A hydra's own kit through rotating proxies and varied clients: private prompts, no client, no gateway."""
    cfg = ScoringConfig()
    assert artefact_tie({"content": 0.9}, [{"content"}] * 10, None, cfg) is None
    assert artefact_tie({"content": 0.9}, [{"content"}] * 10, None, ScoringConfig(artefact_access_groups=[])) == ["content"]


CODERS = OTHERS[:30]   # outside the team, doing the same work (coding with tools)


def _peer_score(team_out: list[float], peer_min: int | None, harvest: bool = False):
    """The team codes with tools like 30 other accounts of the store (the other 60 chat); coders receive long
    answers, chat users short ones. A harvesting sub-cluster is tied by its prompts alone (a shared /24 would be a
    hidden tie that carries it, and it would not be judged)."""
    ids = TEAM + OTHERS
    coder = set(TEAM) | set(CODERS)
    out = {a: 1500.0 + 1000.0 * i / 29 for i, a in enumerate(CODERS)}
    out.update({a: 150.0 + 450.0 * i / 59 for i, a in enumerate(OTHERS[30:])})
    out.update(dict(zip(TEAM, team_out, strict=True)))
    cols = {"account_id": ids, "suspicion": [0.8 if a in TEAM else 0.1 for a in ids],
            "c_harvest_shape": ORDINARY_HS + HS_MIX, "mean_output_tokens": [out[a] for a in ids],
            "share_cap_coding": [0.9 if a in coder else 0.05 for a in ids],
            "tools_share": [0.8 if a in coder else 0.0 for a in ids],
            "share_cot_elicitation": [0.05 if a in coder else 0.3 for a in ids],
            "n_exchanges": [200.0] * len(ids), "org_id": [None] * len(ids), "verification_level": [0] * len(ids)}
    cfg = ScoringConfig(artefact_peer_min_accounts=peer_min)
    rows = [r for r in _rows(False) if not (harvest and r[1] == "ip24" and r[0] in TEAM)]
    cs, _ = score_clusters(_con(rows), pa.table(cols), {a: 0 for a in TEAM}, [], cfg, harvest=harvest,
                           parent={a: 0 for a in TEAM} if harvest else None)
    return cs[0], cfg


def _peer_capped(c) -> bool:
    return any("doing the same work" in r for r in c.reasons)


AS_PEERS = [1550.0 + 100.0 * i for i in range(10)]        # what the store's other coders receive
BEYOND = [3000.0 + 100.0 * i for i in range(10)]          # more than any of them: a coding harvest


def test_developers_receiving_what_coders_receive_are_capped_against_their_peers():
    assert ScoringConfig().artefact_peer_min_accounts == 20
    c, _ = _peer_score(AS_PEERS, None)
    assert not _peer_capped(c) and c.coordination > 0.5      # off: beyond the whole store, so flagged as before
    c, cfg = _peer_score(AS_PEERS, 20)
    assert _peer_capped(c) and c.coordination <= cfg.weak_coordination_cap + 1e-9


def test_a_harvest_receiving_more_than_its_workload_peers_stays():
    c, _ = _peer_score(BEYOND, 20)
    assert not _peer_capped(c) and c.coordination > 0.5


def test_too_few_peers_are_not_a_yardstick():
    c, _ = _peer_score(AS_PEERS, 31)                        # 30 peers: not judged
    assert not _peer_capped(c) and c.coordination > 0.5


def test_harvesting_subclusters_are_judged_against_peers_only():
    c, _ = _peer_score(AS_PEERS, 20, harvest=True)
    assert _peer_capped(c)
    c, _ = _peer_score(BEYOND, 20, harvest=True)
    assert not _peer_capped(c)
    c, _ = _peer_score(AS_PEERS, None, harvest=True)
    assert not _peer_capped(c)


def test_the_peer_test_judges_prompts_alone_but_not_prompts_on_a_schedule_without_the_product():
    """tests/scan's replay hydra: its own templates run on one schedule through varied clients and proxies."""
    cfg = ScoringConfig()
    assert artefact_tie({"content": 0.9}, [{"content"}] * 10, None, cfg, access=False) == ["content"]
    assert artefact_tie({"content": 0.9, "timing": 0.8}, [{"content", "timing"}] * 10, None, cfg, access=False) is None
    assert artefact_tie({"content": 0.9, "timing": 0.8, "client": 0.7}, [{"content", "timing", "client"}] * 10, None,
                        cfg, access=False) is not None


def test_a_schedule_two_accounts_keep_is_no_operators_automation():
    """dev3 standard-719: six agent-framework users, a core of four sending the framework's system prompt and
    templates (private to their community) and two of them busy in the same windows on its template. Two accounts'
    overlapping sessions are not a kit run on one schedule: the peer test judges the tie as prompts alone
    (``artefact_schedule_min_holders``); a schedule three of the core keep still exempts it."""
    cfg = ScoringConfig()
    pair = [{"content", "timing"}] * 2 + [{"content"}] * 2
    assert artefact_tie({"content": 0.75, "timing": 0.5}, pair, None, cfg, access=False) == ["content", "timing"]
    three = [{"content", "timing"}] * 3 + [{"content"}]
    assert artefact_tie({"content": 0.75, "timing": 0.75}, three, None, cfg, access=False) is None
    # the store test still asks for the product in sight; None restores the exemption for any schedule
    assert artefact_tie({"content": 0.75, "timing": 0.5}, pair, None, cfg) is None
    off = ScoringConfig(artefact_schedule_min_holders=None)
    assert artefact_tie({"content": 0.75, "timing": 0.5}, pair, None, off, access=False) is None
