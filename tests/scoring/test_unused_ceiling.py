"""Collecting means receiving (``scoring.percentile_gate_received_alpha``, ``percentile_gate_ceiling_any``): a
strongly coordinated core that asks clearly long single-turn answers (harvest shape above the accounts outside it)
but receives clearly fewer output tokens per exchange than they do is a cohort's generous ceiling — a course lab's homework
asking for step-by-step explanations — not a harvest, at any suspicion percentile. A harvest gets the long answers
it asks for (dev4 no_attackers-907: the lab's community spared by the percentile gate was un-spared on its harvest
shape alone, effect 0.83, while it received 418 tokens against the rest's 460; 216 of 256 students flagged)."""

import pyarrow as pa
import pytest

from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from tests.scoring.test_member_ties import _con
from tests.scoring.test_output_demand import OTHERS, TEAM, _team_rows
from tests.scoring.test_suspicion_percentile import SPREAD


def _score(team_susp: float, team_out: float, **cfg_kw):
    """The team asks long single-turn answers (harvest shape 0.9 against the store's 0-0.5) and receives
    ``team_out`` output tokens per exchange where the store's other accounts receive 300-600."""
    ids = TEAM + OTHERS
    feats = pa.table({"account_id": ids, "suspicion": [team_susp] * len(TEAM) + SPREAD,
                      "c_long_output": [0.0] * len(ids), "mean_max_tokens": pa.array([None] * len(ids), pa.float64()),
                      "c_harvest_shape": [0.9] * len(TEAM) + [0.5 * i / 89 for i in range(90)],
                      "mean_output_tokens": [team_out] * len(TEAM) + [300.0 + 300.0 * i / 89 for i in range(90)],
                      "n_exchanges": [200.0] * len(ids), "org_id": [None] * len(ids),
                      "verification_level": [0] * len(ids)})
    cfg = ScoringConfig(**cfg_kw)
    cs, _ = score_clusters(_con(_team_rows()), feats, {a: 0 for a in TEAM}, [], cfg)
    return cs[0], cfg


@pytest.mark.parametrize("team_susp,team_out,kw,capped", [
    (0.45, 350.0, {}, True),     # below the percentile, asks long, receives less than the store: a cohort
    (0.45, 900.0, {}, False),    # asks long and receives it: collecting, spared by the gate as before
    (0.45, 350.0, {"percentile_gate_received_alpha": None}, False),   # off: harvest shape alone un-spares it
    (0.62, 350.0, {}, True),     # above 95% of the store on suspicion, same ceiling unused: a cohort
    (0.62, 900.0, {}, False),    # above the percentile and receiving long answers: judged as before
    (0.62, 350.0, {"percentile_gate_ceiling_any": False}, False),     # off above the percentile
])
def test_a_ceiling_it_does_not_receive_is_a_cohort(team_susp, team_out, kw, capped):
    c, cfg = _score(team_susp, team_out, **kw)
    assert (c.coordination <= cfg.weak_coordination_cap + 1e-9) == capped
    assert any("a generous ceiling, not a harvest" in r for r in c.reasons) == capped


def test_the_ceiling_reading_is_not_applied_to_harvesting_subclusters():
    """A harvesting sub-cluster is judged on what it receives already (``percentile_gate_subcluster_columns``)."""

    ids = TEAM + OTHERS
    feats = pa.table({"account_id": ids, "suspicion": [0.45] * len(TEAM) + SPREAD,
                      "c_long_output": [0.0] * len(ids), "mean_max_tokens": pa.array([None] * len(ids), pa.float64()),
                      "c_harvest_shape": [0.9] * len(TEAM) + [0.5 * i / 89 for i in range(90)],
                      "mean_output_tokens": [350.0] * len(TEAM) + [300.0 + 300.0 * i / 89 for i in range(90)],
                      "n_exchanges": [200.0] * len(ids), "org_id": [None] * len(ids),
                      "verification_level": [0] * len(ids)})
    cs, _ = score_clusters(_con(_team_rows()), feats, {a: 0 for a in TEAM}, [], ScoringConfig(), harvest=True)
    assert not any("a generous ceiling" in r for r in cs[0].reasons)
