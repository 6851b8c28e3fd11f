"""Stored signals remember the model that scored them: a store scored by another model (an upgrade, a
retrained corpus) is scored again by `scan --signals auto` and by `watch`, never mixed with this model's
scores under one set of thresholds, and never counted twice."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq

from distillguard import watch
from distillguard.scan.config import ScanConfig
from distillguard.scan.run import ensure_signals
from distillguard.signals import score
from distillguard.store import Store
from distillguard.testing.worlds import build_tiny_world


def _world(tmp_path) -> Store:
    """The tiny world, without the stand-in scores it supplies (this test is about the stage's own)."""
    st = Store(tmp_path / "w", create=True)
    build_tiny_world(st, seed=3, days=2, hydra_accounts=8, slow_accounts=6)
    shutil.rmtree(st.path / "tables" / score.TABLE)
    return st


def _rows(st: Store) -> int:
    return st.read_table(score.TABLE).num_rows


def test_scan_rescores_a_store_scored_by_another_model(tmp_path, monkeypatch):
    st = _world(tmp_path)
    n = st.exchanges().count("*").fetchall()[0][0]
    assert ensure_signals(st, "auto") == "computed"
    assert ensure_signals(st, "auto") == "fresh" and score.stale_parts(st) == []
    monkeypatch.setattr(score, "_model_identity", lambda: "lexical-retrained")
    assert score.stale_parts(st) != []
    assert ensure_signals(st, "auto").startswith("computed (stored scores were from another signal model")
    assert score.stale_parts(st) == [] and _rows(st) == n
    assert ensure_signals(st, "auto") == "fresh"


def test_stage_parts_without_a_recorded_model_count_as_another_model(tmp_path):
    st = _world(tmp_path)
    ensure_signals(st, "auto")
    (part,) = sorted((st.path / "tables" / score.TABLE).glob("*.parquet"))
    tab = pq.read_table(part)
    meta = dict(tab.schema.metadata)
    del meta[b"distillguard.signal_model"]  # as written before the model was recorded
    pq.write_table(tab.replace_schema_metadata(meta), part)
    assert len(score.stale_parts(st)) == 1
    assert ensure_signals(st, "auto").startswith("computed (")


def test_supplied_scores_are_kept(tmp_path):
    """Scores written from outside the stage (no stage metadata) are not this install's to replace."""
    st = Store(tmp_path / "w", create=True)
    build_tiny_world(st, seed=3, days=2, hydra_accounts=8, slow_accounts=6)
    before = st.read_table(score.TABLE)
    assert score.stale_parts(st) == []
    assert ensure_signals(st, "auto") == "fresh"
    assert st.read_table(score.TABLE).equals(before)


def test_watch_rescores_and_refolds_after_a_model_change(tmp_path, monkeypatch):
    st = _world(tmp_path)
    n = st.exchanges().count("*").fetchall()[0][0]
    cfg, state = ScanConfig(), watch.load_state(st)
    assert watch.score_new(st, state) == n
    parts = watch.fold_new(st, state, cfg)
    assert parts == len(st.exchange_files())
    assert watch.score_new(st, state) == 0  # nothing new
    monkeypatch.setattr(score, "_model_identity", lambda: "lexical-retrained")
    state = watch.load_state(st)  # the upgraded watch restarts
    assert watch.score_new(st, state) == n and _rows(st) == n  # rescored once, not appended beside the old
    assert watch.fold_new(st, state, cfg) == parts  # every part folded again from the new scores
    assert watch.score_new(st, watch.load_state(st)) == 0


def test_watch_adopts_a_scan_s_signals_from_the_same_model(tmp_path):
    st = _world(tmp_path)
    ensure_signals(st, "auto")
    assert watch.score_new(st, watch.load_state(st)) == 0


def test_signals_never_on_a_store_without_signals_says_so(tmp_path):
    """--signals never on a store that has no stored signals is detection without its content half: the scan's
    answer says so (and the CLI warns on stderr), instead of the silent "skipped" a store with signals gets."""
    import subprocess
    import sys
    from pathlib import Path

    from distillguard.scan.run import MISSING_NEVER

    st = _world(tmp_path)
    assert ensure_signals(st, "never") == MISSING_NEVER
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "-m", "distillguard", "scan", "--store", str(st.path), "--out",
                          str(tmp_path / "r"), "--signals", "never", "--no-report", "--json"], capture_output=True,
                         text=True, cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "without content signals" in res.stderr and "without content signals" in res.stdout  # warning + JSON
    assert ensure_signals(st, "auto") == "computed"
    assert ensure_signals(st, "never") == "skipped"
