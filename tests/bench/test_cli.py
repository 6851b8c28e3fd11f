from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "sim" / "tiny.yaml"
KEYS = {"account_precision", "account_recall", "account_f1", "campaign_recall", "campaign_purity",
        "benign_account_fpr", "fpr_by_persona", "exchanges_before_flag", "auc_pr"}


def dg(*args, check=True):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "distillguard", *map(str, args)], capture_output=True, text=True,
                       env=env, cwd=ROOT)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


@pytest.mark.slow
def test_simulate_baseline_bench(tmp_path):
    w, r = tmp_path / "world", tmp_path / "base"
    p = dg("simulate", "--config", TINY, "--out", w, "--scale", "0.5", "--json")
    summary = json.loads(p.stdout)
    assert summary["exchanges"] > 1000 and (w / "labels.parquet").exists()
    dg("baseline", "--store", w, "--out", r)
    p = dg("bench", "--world", w, "--results", r, "--json")
    m = json.loads(p.stdout)
    assert KEYS <= set(m) and KEYS <= set(m["baseline"])
    assert set(m["exchanges_before_flag"]) == {"camp-x", "camp-y"}
    assert json.loads((r / "metrics.json").read_text())["account_recall"] == m["account_recall"]
    p = dg("bench", "--world", w, "--results", r, "--baseline", r)
    assert "detection scorecard" in p.stdout and "false-positive rate by benign persona" in p.stdout



def test_simulate_prints_its_table_and_summary_without_json(tmp_path):
    """The human path (what `make demo` runs) prints the world table and where it wrote; --json skips that code."""
    w = tmp_path / "world"
    p = dg("simulate", "--config", TINY, "--out", w, "--scale", "0.2")
    assert "wrote " in p.stdout and str(w) in p.stdout.replace("\n", "")
    assert (w / "labels.parquet").exists()

def test_bad_config_exits_2_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text().replace("  - name: chat_users\n    accounts: 120", "  - name: chat_users\n    acounts: 120"))
    p = dg("simulate", "--config", bad, "--out", tmp_path / "w", check=False)
    assert p.returncode == 2
    assert "personas[0].acounts" in p.stderr.replace("\n", "")


def test_world_schema_command():
    p = dg("world-schema")
    assert "campaigns" in json.loads(p.stdout)["properties"]


@pytest.mark.slow
def test_cli_family_and_randomized_simulate(tmp_path):
    p = dg("simulate", "--family", "small_provider", "--seed", "4", "--out", tmp_path / "w", "--json")
    s = json.loads(p.stdout)
    assert s["name"] == "small_provider-4" and (tmp_path / "w" / "sampled_world.yaml").exists()
    p = dg("bench", "--family", "1", "--family-name", "small_provider", "--seed", "4", "--no-replay",
           "--out", tmp_path / "fam")
    assert "no-attacker worlds" in p.stdout and (tmp_path / "fam" / "family.json").exists()
    p = dg("bench", "--family", "1", check=False)
    assert p.returncode == 2 and "--out" in p.stderr
