"""Two scans of one store with the same configuration give the same results (``scan:graph.seed`` promises a
reproducible scan). Parallel aggregation adds floats in a different order on every run; the scan must not let
that reach a decision (``scan.base.exact_sum``, ``graph.communities.leiden_graph``)."""

import json
from pathlib import Path

import pytest

from distillguard.scan.config import ScanConfig
from distillguard.scan.run import results_accounts, run_scan
from distillguard.sim.config import load_world
from distillguard.sim.run import simulate
from distillguard.store import Store

TINY = Path(__file__).resolve().parents[1] / "sim" / "tiny.yaml"


def _campaign_records(res) -> list[str]:
    return sorted(json.dumps(c, sort_keys=True, default=str) for c in res.campaigns)


@pytest.mark.slow
def test_two_scans_of_one_store_agree(tmp_path):
    spec, base = load_world(TINY)
    out = tmp_path / "world"
    simulate(spec, base, out, workers=1)
    st = Store(out)
    cfg = ScanConfig(threads=4)  # more threads than rows per thread: the aggregation order varies run to run
    runs = []
    for _ in range(3):
        res = run_scan(st, cfg, signals="auto")
        runs.append((results_accounts(res).sort_by("account_id").to_pylist(), _campaign_records(res),
                     sorted(res.campaign_members.items())))
    first = runs[0]
    assert first[1], "the tiny world has campaigns"
    for other in runs[1:]:
        diff = [(x, y) for x, y in zip(first[0], other[0], strict=True) if x != y]
        assert not diff, f"{len(diff)} account rows differ, e.g. {diff[:3]}"
        assert other[1] == first[1]
        assert other[2] == first[2]
