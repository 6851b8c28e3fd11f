"""`scan` learns from analysts: labels on record re-weight the account model (or are refused, with why), and
the scan says so in its output and in ``account_model_updates``."""

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from distillguard.console.tables import label_rows
from distillguard.scoring.suspicion import COMPONENTS
from distillguard.store import Store
from distillguard.testing.worlds import build_tiny_world

ROOT = Path(__file__).resolve().parents[2]


def _scan(st: Store, out: Path, *extra: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "distillguard", "scan", "--store", str(st.path), "--out", str(out),
                        "--signals", "never", "--no-report", *extra], capture_output=True, text=True, cwd=ROOT,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("learn")
    st = Store(base / "store", create=True)
    w = build_tiny_world(st, seed=4, days=5)
    return w, base


def test_scan_without_labels_keeps_the_configured_model(world):
    w, base = world
    out = orjson.loads(_scan(w.store, base / "r0", "--json").stdout)
    assert out["account_model"]["applied"] is False and out["account_model"]["why"] == "no labels"
    t = w.store.read_table("account_model_updates").to_pylist()
    assert {r["component"] for r in t} == set(COMPONENTS) | {"bias"}
    assert all(r["change"] == 0 and not r["applied"] for r in t)


def test_analyst_verdicts_reach_the_next_scan(world):
    w, base = world
    at = datetime(2026, 12, 1, tzinfo=UTC)
    rows = []
    for a, (camp, persona) in sorted(w.labels.items()):
        if camp:  # the analyst confirmed the campaigns ...
            rows.append(dict(account_id=a, label="attack", campaign_id=f"c-{camp}", at=at, actor="ann", reason="r"))
        elif persona in ("tutoring_platform", "benchmark_researcher", "batch_labelling", "popular_tool", "nat_shared_ip",
                         "reseller"):
            # ... and dismissed the benign lookalikes it had surfaced
            rows.append(dict(account_id=a, label="benign", campaign_id=f"d-{persona}", at=at, actor="ann", reason="r"))
    w.store.append_table("analyst_labels", label_rows(rows))
    r = _scan(w.store, base / "r1")
    out = orjson.loads(_scan(w.store, base / "r2", "--json").stdout)["account_model"]
    t = {x["component"]: x for x in w.store.read_table("account_model_updates").to_pylist()}
    n_attack = sum(1 for x in rows if x["label"] == "attack")
    n_benign = len(rows) - n_attack
    assert out["n_attack"] == n_attack and out["n_benign"] == n_benign
    assert t["intent"]["n_attack"] == n_attack and t["intent"]["heldout_loss_before"] is not None
    assert "account model:" in r.stdout  # the plain output says what happened
    if out["applied"]:
        assert out["heldout_loss_after"] < out["heldout_loss_before"]
        assert any(x["change"] != 0 for x in t.values()) and all(x["applied"] for x in t.values())
        assert all(abs(t[k]["change"]) <= 1.5 + 1e-9 for k in COMPONENTS)
        feats = {x["account_id"]: x for x in w.store.read_table("account_features").to_pylist()}
        import numpy as np  # the scan's suspicion is the learned model's
        a = next(iter(feats))
        z = t["bias"]["weight_after"] + sum(t[k]["weight_after"] * feats[a][f"c_{k}"] for k in COMPONENTS)
        assert feats[a]["suspicion"] == pytest.approx(1 / (1 + np.exp(-z)), abs=1e-6)
    else:
        # refused: the table still says what the fit proposed, marked not applied, and the scan used the
        # configured model
        assert "held-out" in out["why"] and not any(x["applied"] for x in t.values())
        from distillguard.scan.config import DEFAULT_ACCOUNT_WEIGHTS
        assert all(t[k]["weight_before"] == DEFAULT_ACCOUNT_WEIGHTS[k] for k in COMPONENTS)
