"""Two scans of one store with the same configuration give the same results, to the bit, whatever the thread
count or the slicing of ``prepare`` (``scan:graph.seed`` promises a reproducible scan; thread count and slice
size are resource keys, not detection keys). Parallel aggregation adds floats in a different order on every
run; the scan must not let that reach a decision or a score (``scan.base.exact_sum`` / ``exact_partial``,
``graph.communities.leiden_graph``)."""

import dataclasses
import json
from pathlib import Path

import pyarrow as pa
import pytest

from distillguard.scan.config import ScanConfig
from distillguard.scan.run import close_scan, results_accounts, run_scan
from distillguard.sim.config import load_world
from distillguard.sim.run import simulate
from distillguard.store import Store

TINY = Path(__file__).resolve().parents[1] / "sim" / "tiny.yaml"


def _bits(v):
    """A value as compared here: floats by their exact bits (NaN equal to NaN, 0.1 + 0.2 unequal to 0.3)."""
    if isinstance(v, float):
        return v.hex()
    if isinstance(v, dict):
        return {k: _bits(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_bits(x) for x in v]
    return v


def _rows(t: pa.Table) -> list[str]:
    """A table's rows in a canonical order, every float by its bits (row order is not a result)."""
    return sorted(json.dumps(_bits(r), sort_keys=True, default=str) for r in t.to_pylist())


def _results(res) -> dict[str, list[str]]:
    return {"accounts": _rows(results_accounts(res)),
            "account_risk": _rows(res.account_risk),
            "features": _rows(res.step.features),
            "edges": _rows(res.step.edges),
            "clusters": sorted(json.dumps(_bits(dataclasses.asdict(c)), sort_keys=True, default=str)
                               for c in res.step.clusters),
            "campaigns": sorted(json.dumps(_bits(c), sort_keys=True, default=str) for c in res.campaigns),
            "campaign_members": sorted(res.campaign_members.items())}


@pytest.mark.slow
def test_scans_of_one_store_agree_bit_for_bit(tmp_path):
    spec, base = load_world(TINY)
    out = tmp_path / "world"
    simulate(spec, base, out, workers=1)
    st = Store(out)
    # 4 threads (more than rows per thread: the aggregation order varies run to run), again, 1 thread (one
    # order), and 2 threads with prepare cut into day slices (the partials built slice by slice)
    cfgs = [ScanConfig(threads=4), ScanConfig(threads=4), ScanConfig(threads=1),
            ScanConfig(threads=2, prepare_chunk_rows=2_000)]
    runs = []
    for cfg in cfgs:
        res = run_scan(st, cfg, signals="auto")
        try:
            runs.append(_results(res))
        finally:
            close_scan(res, st)
    first = runs[0]
    assert first["campaigns"], "the tiny world has campaigns"
    assert any('"flagged": true' in r for r in first["accounts"]), "the tiny world has flagged accounts"
    for cfg, other in zip(cfgs[1:], runs[1:], strict=True):
        for k, rows in first.items():
            diff = [(x, y) for x, y in zip(rows, other[k], strict=False) if x != y]
            assert len(rows) == len(other[k]) and not diff, \
                f"threads={cfg.threads} chunk={cfg.prepare_chunk_rows}: {k} differ, e.g. {diff[:2]}"
