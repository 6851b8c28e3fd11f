"""A simulated world is valid provider data: it exports to native JSONL and re-ingests with nothing quarantined."""

from pathlib import Path

import pytest

from distillguard.ingest import ingest_paths
from distillguard.sim.config import load_world
from distillguard.sim.run import simulate
from distillguard.store import Store
from distillguard.store.export import export_native

TINY = Path(__file__).parent / "tiny.yaml"


@pytest.mark.slow
def test_export_and_reingest(tmp_path):
    spec, base = load_world(TINY)
    simulate(spec.model_copy(update={"days": 1}), base, tmp_path / "w", workers=1)
    n = export_native(Store(tmp_path / "w"), tmp_path / "ex.jsonl")
    res = ingest_paths(Store(tmp_path / "s", create=True), [tmp_path / "ex.jsonl"], fmt="auto")
    assert n > 1000 and res.records == n and res.quarantined == 0
