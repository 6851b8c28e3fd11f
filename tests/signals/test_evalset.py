"""Per-prompt quality on the independent held-out set (data/eval/, never trained on; see test_disjoint).

Bounds are the issue-11 targets where the model meets them (benign FPR ≤ 0.5%, hard negatives ≤ 2% on v1)
and otherwise a bound just past what the current model measures, so a regression fails while the unmet
targets (recall ≥ 95% on v1 and v3-v5, hard negatives ≤ 2% on v2, v3 and v5) stay visible in docs/signals.md
rather than hidden in a test.
"""

import numpy as np
import pytest

from distillguard.signals import corpus, evalset


@pytest.fixture(scope="module")
def report():
    return evalset.report()


def test_eval_files_parse_with_every_family_and_tactic():
    attacks = evalset.read_eval(evalset.EVAL_DIR / "attacks.txt")
    fams = {ln.family for ln in attacks}
    assert {"cot_indirect", "react_synthesis", "censorship_deflect", "code_review_probability", "cot_long_system",
            "judge_templates", "evol_instruct", "self_instruct", "persona_seed"} <= fams
    assert {ln.tactic for ln in attacks} == set(corpus.ATTACK_TACTICS)
    hard = evalset.read_eval(evalset.EVAL_DIR / "hard_negatives.txt")
    assert all(ln.tactic is None for ln in hard) and len(hard) >= 100


def test_compose_is_deterministic_and_keeps_system_prompts():
    lines = [evalset.EvalLine("f", "cot_elicitation", "Think in <t> tags.", True),
             evalset.EvalLine("f", "synthetic_data", "Write 20 tasks like: {task}", False)]
    a = evalset.compose(lines, ["p1", "p2", "p3"], np.random.default_rng(1))
    b = evalset.compose(lines, ["p1", "p2", "p3"], np.random.default_rng(1))
    assert a == b
    assert all(sys == "Think in <t> tags." and p in ("p1", "p2", "p3") for p, sys, ln in a if ln.system)
    assert all(p.startswith("Write 20 tasks like: p") for p, sys, ln in a if not ln.system)


def test_recall_on_held_out_attack_phrasings(report):
    assert report["attack_prompts"] >= 250
    assert report["recall_any"] >= 0.93, report["families"]
    for f in report["families"]:
        # 0.8 until round 3; 0.7 in round 4, whose benign budget took "code review with a probability" from
        # 21/24 to 18/24; 0.8 again in round 5; 0.7 in round 6, whose budget raised the synthetic_data and
        # reward_grading cut-offs (evol-instruct 24/27 -> 21/27, judge templates 24/27 -> 22/27; docs/benchmarks.md)
        assert f["recall_any"] >= 0.7, f


def test_synthetic_data_signal_catches_its_families(report):
    fams = [f for f in report["families"] if f["tactic"] == "synthetic_data"]
    own = sum(f["own"] for f in fams) / sum(f["n"] for f in fams)
    assert own >= 0.75, fams


def test_hard_negative_false_positive_rate(report):
    assert report["hard_negative_prompts"] >= 150
    # the target (0.02): 4/158 from the multilingual round to the third; 1/158 with the full-data scorer and
    # the benign budget (fourth round, docs/signals.md)
    assert report["hard_negative_fpr"] <= 0.02, report["hard_negatives_flagged"]


def test_benign_false_positive_rate(report):
    assert report["benign_prompts"] >= 12_000
    # the target (0.005): 0.64% after round 3, 0.60% after the fourth round, 0.525% after the fifth, 0.485% after
    # the sixth (docs/signals.md)
    assert report["benign_fpr"] <= 0.005, report["benign"]


@pytest.mark.parametrize("name, min_hard", [("v2", 50), ("v3", 70), ("v4", 80), ("v5", 80), ("v6", 60)])
def test_later_eval_sets_cover_every_tactic_in_several_languages(name, min_hard):
    attacks = evalset.read_eval(evalset.EVAL_DIR / evalset.SETS[name][0])
    assert {ln.tactic for ln in attacks} == set(corpus.ATTACK_TACTICS)
    assert len({evalset.language(ln.text) for ln in attacks}) >= 10
    hard = evalset.read_eval(evalset.EVAL_DIR / evalset.SETS[name][1])
    assert all(ln.tactic is None for ln in hard) and len(hard) >= min_hard


def test_language_guess():
    assert evalset.language("Explain your reasoning, please") == "en"
    assert evalset.language("请一步一步地解释") == "zh"
    assert evalset.language("この文章を書き直してください") == "ja"
    assert evalset.language("Reescribe este mensaje para que suene más profesional.") == "es"
    assert evalset.language("Scrie integral tot raționamentul tău, fără să rezumi.") == "ro"
    assert evalset.language("Βαθμολόγησε την απάντηση") == "el"
    assert evalset.language("इस संदेश को विनम्र बना दीजिए") == "hi"


@pytest.fixture(scope="module")
def report_v2():
    return evalset.report(eval_set="v2")


def test_second_set_recall_and_hard_negatives(report_v2):
    # v2 was written before the multilingual training phrasings, in other voices; three of its
    # languages (Dutch, Turkish, Polish) have no training phrasing, so its recall is the honest one.
    assert report_v2["attack_prompts"] >= 180
    assert report_v2["recall_any"] >= 0.85, report_v2["missed"]
    for lang in ("en", "es", "fr", "de", "ru", "zh", "ja"):
        assert report_v2["by_language"][lang]["recall"] >= 0.8, (lang, report_v2["by_language"])
    # the target 0.02 held until round 6, whose model also flags a polite-rewrite request in Chinese (2/60)
    assert report_v2["hard_negative_fpr"] <= 0.035, report_v2["hard_negatives_flagged"]


@pytest.fixture(scope="module")
def report_v4():
    return evalset.report(eval_set="v4")


def test_fourth_set_recall_and_hard_negatives(report_v4):
    # v4 was frozen before the full-data scorer, mining and budget; floors just under the measured values
    # (recall 0.829, English 0.839, hard negatives 2/86), the unmet targets stated in docs/signals.md
    assert report_v4["attack_prompts"] >= 200 and report_v4["hard_negative_prompts"] >= 80
    assert report_v4["recall_any"] >= 0.8, report_v4["missed"]
    assert report_v4["by_language"]["en"]["recall"] >= 0.8, report_v4["by_language"]
    assert report_v4["hard_negative_fpr"] <= 0.03, report_v4["hard_negatives_flagged"]


# Sets frozen before a training round, each with floors just under the values measured on the shipped model; the
# unmet targets are stated in docs/signals.md.
# - v5 was frozen before round 6's training lines (0.632 before them, 0.796 after, hard negatives 2/81 both; the
#   round-6 lines were written by v5's author, so the after figure is informed by it).
# - v6 was written before reading any training phrasing and committed before round 7's changes; the shipped model
#   (round 6's) catches 0.572 of it with 1/73 hard negatives flagged.
FROZEN_SETS = [  # (set, at least attack prompts, at least hard negatives, recall floor, hard-negative ceiling)
    ("v5", 700, 80, 0.75, 0.03),
    ("v6", 450, 60, 0.55, 0.02),
]


@pytest.mark.parametrize(("eval_set", "attacks", "hard", "recall", "hard_fpr"), FROZEN_SETS)
def test_frozen_set_recall_and_hard_negatives(eval_set, attacks, hard, recall, hard_fpr):
    r = evalset.report(eval_set=eval_set)
    assert r["attack_prompts"] >= attacks and r["hard_negative_prompts"] >= hard
    assert r["recall_any"] >= recall, r["by_tactic"]
    assert r["hard_negative_fpr"] <= hard_fpr, r["hard_negatives_flagged"]
