"""A strongly coordinated cluster is judged on its suspicion *as a percentile of the store's other accounts*
(``scoring.min_suspicion_percentile``): a cohort coordinated as tightly as an operation whose traffic is what much
of the store sends (the sampled worlds' course lab: coordination 0.92 at suspicion 0.38, the store's 65th
percentile) is capped as weakly coordinated; the same absolute suspicion in a store it stands out from is not."""

import math

import pyarrow as pa
import pytest

from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from tests.scoring.test_member_ties import _con
from tests.scoring.test_output_demand import OTHERS, TEAM, _team_rows


def _score(team_susp: float, others_susp: list[float], pct: float):
    ids = TEAM + OTHERS
    feats = pa.table({"account_id": ids, "suspicion": [team_susp] * len(TEAM) + others_susp,
                      "c_long_output": [0.0] * len(ids), "mean_max_tokens": pa.array([None] * len(ids), pa.float64()),
                      "n_exchanges": [200.0] * len(ids), "org_id": [None] * len(ids),
                      "verification_level": [0] * len(ids)})
    cfg = ScoringConfig(min_suspicion_percentile=pct)
    cs, risk = score_clusters(_con(_team_rows()), feats, {a: 0 for a in TEAM}, [], cfg)
    return cs[0], cfg


# the store's other 90 accounts: suspicion spread evenly over 0.05-0.65
SPREAD = [0.05 + 0.6 * i / 89 for i in range(90)]


@pytest.mark.parametrize("team_susp,others,pct,capped", [
    (0.45, SPREAD, 0.8, True),            # 0.45 sits at the store's ~67th percentile: a cohort
    (0.62, SPREAD, 0.8, False),           # above 95% of the store: judged as before
    (0.45, [0.1] * 90, 0.8, False),       # the same absolute suspicion in a quieter store stands out
    (0.45, SPREAD, 0.0, False),           # off
])
def test_cohort_judged_against_the_store(team_susp, others, pct, capped):
    c, cfg = _score(team_susp, others, pct)
    assert any("no more suspicious than" in r for r in c.reasons) == capped
    assert (c.coordination <= cfg.weak_coordination_cap + 1e-9) == capped


def test_percentile_counts_only_accounts_outside_the_cluster():
    """A campaign that is most of a small store is judged against the rest of it, not against itself."""
    import numpy as np

    from distillguard.scoring.risk import _suspicion_percentile

    feats_s = {f"c{i}": 0.7 for i in range(60)} | {f"b{i}": 0.1 for i in range(40)}
    store = np.sort(np.array(list(feats_s.values())))
    assert _suspicion_percentile(0.7, [f"c{i}" for i in range(60)], feats_s, store) == 1.0


def _score_received(team_out: float, collects: bool):
    """The team's suspicion at the store's ~67th percentile (a cohort by its prompts), receiving ``team_out``
    output tokens per exchange where the store's other accounts receive 300-600."""
    ids = TEAM + OTHERS
    feats = pa.table({"account_id": ids, "suspicion": [0.45] * len(TEAM) + SPREAD,
                      "c_long_output": [0.0] * len(ids), "mean_max_tokens": pa.array([None] * len(ids), pa.float64()),
                      "c_harvest_shape": [0.0] * len(ids),
                      "mean_output_tokens": [team_out] * len(TEAM) + [300.0 + 300.0 * i / 89 for i in range(90)],
                      "n_exchanges": [200.0] * len(ids), "org_id": [None] * len(ids),
                      "verification_level": [0] * len(ids)})
    cfg = ScoringConfig(percentile_gate_collects=collects)
    cs, _ = score_clusters(_con(_team_rows()), feats, {a: 0 for a in TEAM}, [], cfg)
    return cs[0], cfg


@pytest.mark.parametrize("team_out,collects,capped", [
    (900.0, True, False),   # receives longer answers than every other account: a quiet pool, judged as before
    (450.0, True, True),    # receives what the store receives: a cohort, capped
    (900.0, False, True),   # off: the percentile alone decides
])
def test_a_core_collecting_answers_beyond_the_store_is_not_a_cohort(team_out, collects, capped):
    """``scoring.percentile_gate_collects``: a quiet hydra mixes ordinary prompts into every account, so its
    suspicion sits at the store's median (sampled dev world standard-103: the 54th–62nd percentile), while its core
    receives longer answers than the rest of the store (effect 0.82); a course lab's or tutoring cohort's does not."""
    c, cfg = _score_received(team_out, collects)
    assert any("no more suspicious than" in r for r in c.reasons) == capped
    assert (c.coordination <= cfg.weak_coordination_cap + 1e-9) == capped
    assert any("receives clearly longer answers" in r for r in c.reasons) == (not capped)


def _score_sub(team_out: float | None, columns, team_suspicion: float = 0.45, any_percentile: bool = True):
    """As ``_score_received`` but scored as a harvesting sub-cluster (its members the store's harvest-shape tail:
    harvest shape 0.9 against the store's 0-0.5), ``team_out`` output tokens received per exchange (None: the
    store records no output counts)."""
    ids = TEAM + OTHERS
    out = [team_out] * len(TEAM) + [300.0 + 300.0 * i / 89 for i in range(90)] if team_out is not None \
        else [None] * len(ids)
    feats = pa.table({"account_id": ids, "suspicion": [team_suspicion] * len(TEAM) + SPREAD,
                      "c_long_output": [0.0] * len(ids), "mean_max_tokens": pa.array([None] * len(ids), pa.float64()),
                      "c_harvest_shape": [0.9] * len(TEAM) + [0.5 * i / 89 for i in range(90)],
                      "mean_output_tokens": pa.array(out, pa.float64()),
                      "n_exchanges": [200.0] * len(ids), "org_id": [None] * len(ids),
                      "verification_level": [0] * len(ids)})
    cfg = ScoringConfig(percentile_gate_subcluster_columns=columns, percentile_gate_subcluster_any=any_percentile)
    cs, _ = score_clusters(_con(_team_rows()), feats, {a: 0 for a in TEAM}, [], cfg, harvest=True)
    return cs[0], cfg


@pytest.mark.parametrize("team_out,columns,capped", [
    (450.0, ["mean_output_tokens"], True),    # a cohort's busiest members: in the harvest-shape tail, receive the store's
    (900.0, ["mean_output_tokens"], False),   # receives longer answers than the whole store: a quiet pool, as before
    (None, ["mean_output_tokens"], False),    # no output counts recorded: not judged (exempt as before)
    (450.0, None, False),                     # off: sub-clusters exempt
])
def test_a_harvesting_subcluster_is_judged_on_what_it_receives(team_out, columns, capped):
    """``scoring.percentile_gate_subcluster_columns``: a course lab's busiest students are the store's harvest-shape
    tail and share its burst and lab windows, so they formed harvesting sub-clusters that the percentile gate never
    judged (dev world standard-100: three false records). Their harvest shape — what put them in the sub-cluster —
    is not read as collecting; only what they receive is."""
    c, cfg = _score_sub(team_out, columns)
    assert any("no more suspicious than" in r for r in c.reasons) == capped
    assert (c.coordination <= cfg.weak_coordination_cap + 1e-9) == capped


@pytest.mark.parametrize("team_out,weight,lifted", [
    (900.0, 0.5, True),    # spared for what it collects: its suspicion reads what it receives
    (900.0, None, False),  # off: the account model's own weight (0)
    (450.0, 0.5, False),   # receives the store's lengths: capped as a cohort, nothing to read
])
def test_a_collecting_core_is_scored_on_what_it_receives(team_out, weight, lifted):
    """``scoring.collecting_received_weight``: a quiet pool spared by the percentile gate because it receives far
    longer answers than the store stayed under the flag threshold on its half-ordinary prompts (dev world
    standard-111: risk 0.47–0.485 at suspicion 0.29–0.32); its received-output component now counts there."""
    ids = TEAM + OTHERS
    feats = pa.table({"account_id": ids, "suspicion": [0.45] * len(TEAM) + SPREAD,
                      "c_long_output": [0.0] * len(ids), "mean_max_tokens": pa.array([None] * len(ids), pa.float64()),
                      "c_harvest_shape": [0.0] * len(ids),
                      "c_received_output": [0.9 if team_out > 600 else 0.0] * len(TEAM) + [0.3] * 90,
                      "mean_output_tokens": [team_out] * len(TEAM) + [300.0 + 300.0 * i / 89 for i in range(90)],
                      "n_exchanges": [200.0] * len(ids), "org_id": [None] * len(ids),
                      "verification_level": [0] * len(ids)})
    cfg = ScoringConfig(collecting_received_weight=weight)
    cs, risk = score_clusters(_con(_team_rows()), feats, {a: 0 for a in TEAM}, [], cfg)
    c = cs[0]
    assert (c.suspicion > 0.45 + 1e-9) == lifted
    assert any("reads what it receives" in r for r in c.reasons) == lifted
    if lifted:   # 0.45 at logit + 0.5 × 0.9
        assert c.suspicion == pytest.approx(1 / (1 + math.exp(-(math.log(0.45 / 0.55) + 0.45))))
        team_risk = [r for a, r in zip(risk["account_id"].to_pylist(), risk["risk"].to_pylist(), strict=True) if a in TEAM]
        assert max(team_risk) == pytest.approx(c.risk, rel=1e-6)   # members read the same way: no fall-off


@pytest.mark.parametrize("team_out,any_percentile,capped", [
    (450.0, True, True),     # the top of its store on suspicion, yet it receives what the store receives: a cohort
    (900.0, True, False),    # receives longer answers than the whole store: a harvest
    (450.0, False, False),   # off: above the percentile a sub-cluster is not judged (as before)
])
def test_a_harvesting_subcluster_at_the_top_of_its_store_is_judged_on_what_it_receives(team_out, any_percentile, capped):
    """``scoring.percentile_gate_subcluster_any``: in a store without attackers a course lab's homework (step-by-step
    explanations asked for) is the store's most suspicious traffic, so the percentile gate never reached its busiest
    students' sub-cluster (dev world no_attackers-101: a false record of two students at risk 0.5045)."""
    c, cfg = _score_sub(team_out, ["mean_output_tokens"], team_suspicion=0.95, any_percentile=any_percentile)
    assert any("receives what the store's accounts receive" in r for r in c.reasons) == capped
    assert (c.coordination <= cfg.weak_coordination_cap + 1e-9) == capped
