"""The bench scorecard says why a campaign's first-flag share is empty: the results came from a full scan."""

from distillguard.bench.cli import render
from distillguard.ui import REPLAY_HINT, REPLAY_NOTE


def _metrics(ebf: dict) -> dict:
    return {"account_precision": 1.0, "account_recall": 1.0, "campaigns": {"c1": {"accounts": 3, "recall": 1.0}},
            "exchanges_before_flag": {"c1": ebf}, "fpr_by_persona": {},
            "records": {"count": 1, "false_records": 0, "records_per_campaign": 1.0, "max_records_per_campaign": 1,
                        "campaigns_per_record": 1.0, "max_campaigns_per_record": 1}}


def test_full_scan_results_show_the_replay_hint(capsys):
    render(_metrics({"first": None, "p90": None, "note": REPLAY_NOTE}), None, "detector", None)
    assert REPLAY_HINT in capsys.readouterr().out


def test_replay_results_show_numbers_and_no_hint(capsys):
    render(_metrics({"first": 0.25, "p90": 0.5}), None, "detector", None)
    text = capsys.readouterr().out
    assert REPLAY_HINT not in text and "0.250 / 0.500" in text
