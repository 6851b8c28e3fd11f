from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillguard.bench.baseline import baseline_results
from distillguard.bench.metrics import average_precision, score
from distillguard.bench.results import RESULTS_SCHEMA, read_results, write_results
from distillguard.errors import DistillguardError
from distillguard.store import Store
from distillguard.testing.factory import BASE_TS, make_account, make_exchange, write_world
from distillguard.ui import REPLAY_NOTE

LABELS = [("a1", "c1", "campaign", "attacker"), ("a2", "c1", "campaign", "attacker"),
          ("a3", "c1", "campaign", "proxy"), ("a4", "c2", "campaign", "attacker"),
          ("b1", None, "p1", "benign"), ("b2", None, "p1", "benign"),
          ("b3", None, "p2", "benign"), ("b4", None, "p2", "benign")]


def _minute(i: int):
    return BASE_TS + timedelta(minutes=i)


@pytest.fixture
def world(tmp_path):
    st = Store(tmp_path / "w", create=True)
    ex = []
    for aid, camp, _, _ in LABELS:
        for i in range(10 if camp else 5):
            ex.append(make_exchange(exchange_id=f"{aid}-{i}", account_id=aid, ts=_minute(i)))
    write_world(st, ex, [make_account(a[0]) for a in LABELS])
    pq.write_table(pa.table({k: [r[i] for r in LABELS] for i, k in
                             enumerate(("account_id", "campaign_id", "persona", "role"))}), st.path / "labels.parquet")
    return st.path


def _results(rows):
    return pa.Table.from_pylist([dict(zip(("account_id", "risk", "flagged", "first_flagged_at", "campaign_id"), r,
                                          strict=True)) for r in rows], schema=RESULTS_SCHEMA)


RESULTS = [("a1", 0.9, True, _minute(5), "D1"), ("a2", 0.8, True, _minute(8), "D1"), ("a3", 0.3, False, None, None),
           ("a4", 0.7, True, _minute(2), "D2"), ("b1", 0.85, True, _minute(1), "D1"), ("b2", 0.1, False, None, None),
           ("b3", 0.2, False, None, None)]  # b4 not scored: counts as risk 0, not flagged


def test_metrics_known_answers(world):
    m = score(world, _results(RESULTS))
    assert m["account_precision"] == pytest.approx(0.75)
    assert m["account_recall"] == pytest.approx(0.75)
    assert m["account_f1"] == pytest.approx(0.75)
    assert m["campaign_recall"] == pytest.approx(0.5)  # c2 fully flagged, c1 only 2 of 3
    assert m["campaign_purity"] == pytest.approx(0.75)  # D1 = {a1, a2, b1} → 2/3; D2 = {a4} → 1/1
    assert m["benign_account_fpr"] == pytest.approx(0.25)
    assert m["fpr_by_persona"] == {"p1": 0.5, "p2": 0.0}
    assert m["recall_by_role"] == {"attacker": 1.0, "proxy": 0.0}
    ebf = m["exchanges_before_flag"]
    assert ebf["c1"]["first"] == pytest.approx(15 / 30) and ebf["c1"]["p90"] == 1.0
    assert ebf["c2"]["first"] == pytest.approx(0.2) and ebf["c2"]["p90"] == pytest.approx(0.2)
    assert m["auc_pr"] == pytest.approx(0.25 * (1 + 2 / 3 + 3 / 4 + 4 / 5))


def test_no_timestamps_means_unknown_and_unflagged_means_all(world):
    rows = [(a, r, f, None, c) for a, r, f, _, c in RESULTS]
    m = score(world, _results(rows))
    assert m["exchanges_before_flag"]["c1"] == {"first": None, "p90": None, "note": REPLAY_NOTE}
    m = score(world, _results([]))
    assert m["exchanges_before_flag"]["c1"]["first"] == 1.0
    assert m["account_recall"] == 0.0 and m["account_precision"] is None and m["campaign_purity"] is None


def test_average_precision_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500) + y * 0.3, 2)  # ties included
    assert average_precision(y, s) == pytest.approx(sk.average_precision_score(y, s))


def test_results_roundtrip_and_errors(tmp_path):
    write_results(tmp_path / "r", _results(RESULTS), {"detector": "x"})
    t, meta = read_results(tmp_path / "r")
    assert t.num_rows == 7 and meta["detector"] == "x"
    pq.write_table(pa.table({"account_id": ["a"], "risk": [0.5]}), tmp_path / "bad.parquet")
    with pytest.raises(DistillguardError, match="flagged"):
        read_results(tmp_path / "bad.parquet")
    pq.write_table(pa.table({"account_id": ["a", "a"], "risk": [0.5, 0.1], "flagged": [True, False]}),
                   tmp_path / "dup.parquet")
    with pytest.raises(DistillguardError, match="more than once"):
        read_results(tmp_path / "dup.parquet")
    pq.write_table(pa.table({"account_id": ["a"], "risk": [3.0], "flagged": [True]}), tmp_path / "risk.parquet")
    with pytest.raises(DistillguardError, match=r"\[0, 1\]"):
        read_results(tmp_path / "risk.parquet")
    with pytest.raises(DistillguardError, match="no accounts.parquet"):
        read_results(tmp_path / "nowhere")


def test_baseline_flags_by_daily_volume(world):
    t = baseline_results(Store(world), daily_threshold=8)
    by = {r["account_id"]: r for r in t.to_pylist()}
    assert {a for a, r in by.items() if r["flagged"]} == {"a1", "a2", "a3", "a4"}
    assert by["a1"]["first_flagged_at"] == _minute(7)  # the 8th request of the day
    assert by["b1"]["first_flagged_at"] is None and 0 < by["b1"]["risk"] < by["a1"]["risk"]
    m = score(world, t)
    assert m["account_recall"] == 1.0 and m["benign_account_fpr"] == 0.0


def test_results_from_a_scanned_store(world):
    """`--results` may also be a store whose account_risk table follows the same columns."""
    st = Store(world)
    st.write_table("account_risk", _results(RESULTS).append_column("reasons", pa.array([[]] * 7, pa.list_(pa.string()))))
    t, _ = read_results(world)
    assert t.num_rows == 7 and t.schema == RESULTS_SCHEMA
    assert score(world, t)["account_precision"] == pytest.approx(0.75)


def test_purity_is_zero_when_every_record_is_false(world):
    rows = [("b1", 0.9, True, None, "D1"), ("b2", 0.9, True, None, "D1"), ("b3", 0.9, True, None, "D2")]
    m = score(world, _results(rows))
    assert m["campaign_purity"] == 0.0
    assert m["records"]["count"] == 2 and m["records"]["false_records"] == 2
    assert m["records"]["records_per_campaign"] is None and m["records"]["campaigns_per_record"] is None


def test_records_per_campaign_and_campaigns_per_record(world):
    # c1 split over D1 and D3; D1 also holds c2's a4 (a merge) and a benign b1
    rows = [("a1", 0.9, True, None, "D1"), ("a4", 0.9, True, None, "D1"), ("b1", 0.9, True, None, "D1"),
            ("a2", 0.9, True, None, "D3"), ("b2", 0.9, True, None, "D4")]
    r = score(world, _results(rows))["records"]
    assert r["by_campaign"] == {"c1": ["D1", "D3"], "c2": ["D1"]}
    assert r["records_per_campaign"] == pytest.approx(1.5) and r["max_records_per_campaign"] == 2
    assert r["campaigns_per_record"] == pytest.approx(1.5) and r["max_campaigns_per_record"] == 2
    assert r["count"] == 3 and r["false_records"] == 1
