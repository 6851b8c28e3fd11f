"""Held-out quality of the lexical models: phrasings, payloads and benign rows never trained on.

The held-out negatives are the simulator's corpora (12.9k real prompts, none trained on), so the
false-positive rate is the comparable measure; precision depends on how few positives there are.
"""

import math

import pytest

from distillguard.signals.evaluate import heldout_report


@pytest.fixture(scope="module")
def report():
    return {r["tactic"]: r for r in heldout_report()["tactics"]}


@pytest.mark.parametrize("tactic", ["cot_elicitation", "reward_grading", "policy_rewrite"])
def test_attack_tactics_separate_from_hard_negatives(report, tactic):
    r = report[tactic]
    assert r["positives"] >= 70 and r["hard_negatives"] >= 90 and r["negatives"] >= 10_000
    assert r["auc"] >= 0.98, r
    assert r["recall"] >= 0.8, r
    assert r["fpr"] <= 0.01, r
    # legitimate tutoring / code review / editing / research phrasings stay below 0.5 (3 of 99 for
    # policy_rewrite since the multilingual round; was 0: docs/signals.md, Held-out evaluation)
    assert r["hard_negatives_flagged"] <= 3, r


@pytest.mark.parametrize("tactic", ["coding", "agentic", "computer_use", "vision", "data_analysis"])
def test_capabilities_rank_well(report, tactic):
    r = report[tactic]
    assert not math.isnan(r["auc"]) and r["auc"] >= 0.93, r
