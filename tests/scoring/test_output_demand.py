"""Opt-in output-demand cap: a strongly coordinated core that asks for no longer answers than the store's typical
account collects no teacher output and is capped as weakly coordinated; never judged without max_tokens."""

import pyarrow as pa
import pytest

from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from tests.scoring.test_member_ties import _con

TEAM = [f"team{i}" for i in range(10)]
OTHERS = [f"o{i}" for i in range(90)]


def _team_rows() -> list[tuple[str, str, str, float]]:
    """A team tied by one /24 and one card; the store's other accounts each on their own /24."""
    rows = [(a, "ip24", "10.9.9", 0.5) for a in TEAM] + [(a, "payment", "card-1", 1.5) for a in TEAM]
    return rows + [(a, "ip24", f"203.1.{i}", 0.5) for i, a in enumerate(OTHERS)]


def _score(long_output: float, max_tokens, gate):
    ids = TEAM + OTHERS
    feats = pa.table({"account_id": ids, "suspicion": [0.8 if a in TEAM else 0.1 for a in ids],
                      "c_long_output": [long_output if a in TEAM else 0.0 for a in ids],
                      "mean_max_tokens": pa.array([max_tokens] * len(ids), pa.float64()),
                      "n_exchanges": [200.0] * len(ids), "org_id": [None] * len(ids),
                      "verification_level": [0] * len(ids)})
    cfg = ScoringConfig(min_core_output_demand=gate)
    cs, _ = score_clusters(_con(_team_rows()), feats, {a: 0 for a in TEAM}, [], cfg)
    return cs[0], cfg


@pytest.mark.parametrize("long_output,max_tokens,gate,capped", [
    (0.0, 1000.0, 0.0, True),     # ordinary answers: no output collected
    (0.6, 9000.0, 0.0, False),    # long answers: judged as before
    (0.0, None, 0.0, False),      # the store does not record max_tokens: never judged by it
    (0.0, 1000.0, None, False),   # off (the default)
])
def test_output_demand_cap(long_output, max_tokens, gate, capped):
    c, cfg = _score(long_output, max_tokens, gate)
    gated = any("no longer answers" in r for r in c.reasons)
    assert gated == capped
    if capped:
        assert c.coordination <= cfg.weak_coordination_cap + 1e-9
    else:
        assert c.coordination > cfg.weak_coordination_cap


def _score_ranked(team_tokens, alpha):
    """The store's 90 other accounts ask 500-8,000 max_tokens (their own mix); the team asks ``team_tokens``."""
    ids = TEAM + OTHERS
    mix = [500.0 + 7500.0 * i / 89 for i in range(90)]
    feats = pa.table({"account_id": ids, "suspicion": [0.8 if a in TEAM else 0.1 for a in ids],
                      "c_long_output": [0.0] * len(ids), "mean_max_tokens": list(team_tokens) + mix,
                      "n_exchanges": [200.0] * len(ids), "org_id": [None] * len(ids),
                      "verification_level": [0] * len(ids)})
    cfg = ScoringConfig(output_demand_alpha=alpha)
    cs, _ = score_clusters(_con(_team_rows()), feats, {a: 0 for a in TEAM}, [], cfg)
    return cs[0], cfg


@pytest.mark.parametrize("team_tokens,alpha,capped", [
    ([400.0 + 10 * i for i in range(10)], 1e-3, True),           # clearly shorter answers than the store's
    ([500.0 + 800.0 * i for i in range(10)], 1e-3, False),       # the store's own mix: noise, never capped
    ([6000.0 + 100 * i for i in range(10)], 1e-3, False),        # long answers
    ([400.0 + 10 * i for i in range(10)], None, False),          # off
])
def test_output_demand_rank_test(team_tokens, alpha, capped):
    c, cfg = _score_ranked(team_tokens, alpha)
    assert any("no longer answers" in r for r in c.reasons) == capped
    assert (c.coordination <= cfg.weak_coordination_cap + 1e-9) == capped
