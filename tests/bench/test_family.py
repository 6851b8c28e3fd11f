"""`bench --family`: sampled worlds are simulated, scanned by the real `scan` command and summarised."""

from __future__ import annotations

import json

import pytest

from distillguard.bench.family import run_family, summarise


def _row(world, n_camp, prec, fpr_by, records, false_records, first=None):
    return {"world": world, "true_campaigns": n_camp, "account_precision": prec, "account_recall": 1.0 if n_camp else None,
            "benign_account_fpr": max(fpr_by.values()), "campaign_purity": None, "fpr_by_persona": fpr_by,
            "records": records, "false_records": false_records, "max_records_per_campaign": 2 if n_camp else None,
            "max_campaigns_per_record": 1 if n_camp else None, "worst_first_flag_share": first,
            "simulate_seconds": 1.0, "scan_seconds": 2.0}


def test_summary_worst_case_and_no_attacker_worlds():
    rows = [_row("standard-0", 2, 0.9, {"a": 0.01, "b": 0.0}, 3, 1, 0.2),
            _row("standard-1", 1, 0.5, {"a": 0.0, "b": 0.02}, 1, 0, 0.05),
            _row("no_attackers-2", 0, None, {"a": 0.3, "b": 0.0}, 4, 4)]
    s = summarise(rows)
    assert s["account_precision"] == {"worst": 0.5, "median": 0.7, "worlds": 2}
    assert s["benign_account_fpr"]["worst"] == 0.3
    assert s["worst_persona"] == {"persona": "a", "fpr": 0.3, "world": "no_attackers-2"}
    assert s["no_attacker_worlds"] == 1 and s["no_attacker_false_campaigns"] == {"no_attackers-2": 4}
    assert s["first_flag_share"]["worst"] == 0.2 and s["records_per_campaign"]["worst"] == 2


@pytest.mark.slow
def test_family_of_small_providers_runs_scan(tmp_path):
    doc = run_family(2, tmp_path, "small_provider", seed=3, replay=False)
    assert doc["k"] == 2 and len(doc["worlds"]) == 2
    on_disk = json.loads((tmp_path / "family.json").read_text())
    assert on_disk["summary"]["worlds"] == 2
    for r in doc["worlds"]:
        assert r["family"] == "small_provider" and r["true_campaigns"] >= 2
        assert r["exchanges"] > 2000 and isinstance(r["records"], int)
        d = next(p for p in tmp_path.iterdir() if p.name.endswith(r["world"]))
        assert (d / "results" / "accounts.parquet").exists() and (d / "sampled_world.yaml").exists()
        assert not (d / "world").exists()  # stores are dropped unless --keep


def test_a_world_the_scan_rejects_is_reported_not_fatal(tmp_path, monkeypatch):
    import distillguard.bench.family as fam
    from distillguard.errors import DistillguardError

    def boom(world, results, replay, coarse="72h", exact=False):
        raise DistillguardError("store has no exchanges", source=str(world))

    monkeypatch.setattr(fam, "scan_world", boom)
    doc = run_family(1, tmp_path, "small_provider", seed=1, replay=False)
    assert doc["worlds"] == [] and doc["summary"]["failed_worlds"][0]["world"] == "small_provider-1"
    assert "no exchanges" in doc["summary"]["failed_worlds"][0]["error"]


def test_scan_world_replays_exactly_when_asked(tmp_path, monkeypatch):
    """``exact`` adds ``scan --exact``: every newly flagged account is bisected to the step, not only the accounts
    that open a detector campaign (a true campaign first flagged inside another's cluster otherwise gets the end
    of its coarse interval)."""
    import subprocess

    import distillguard.bench.family as fam

    seen = []

    class Done:
        returncode, stdout, stderr = 0, '{"seconds": 1}', ""

    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: seen.append(cmd) or Done())
    fam.scan_world(tmp_path, tmp_path / "r", True, "12h", exact=True)
    fam.scan_world(tmp_path, tmp_path / "r", True, "12h")
    fam.scan_world(tmp_path, tmp_path / "r", False, "12h", exact=True)
    assert seen[0][-4:] == ["--replay", "--coarse", "12h", "--exact"]
    assert seen[1][-3:] == ["--replay", "--coarse", "12h"] and "--exact" not in seen[1]
    assert "--replay" not in seen[2] and "--exact" not in seen[2]


def test_the_scan_child_runs_the_benchs_own_code_whatever_the_working_directory(tmp_path, monkeypatch):
    """``python -m distillguard`` imports a ``distillguard`` folder in the working directory before the installed
    package or ``PYTHONPATH``: a bench started inside another checkout would measure that checkout's scan."""
    import distillguard.bench.family as fam
    from distillguard.errors import DistillguardError

    other = tmp_path / "checkout" / "distillguard"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("")
    (other / "__main__.py").write_text("import sys\nprint('ANOTHER CHECKOUT', file=sys.stderr)\nsys.exit(42)\n")
    monkeypatch.chdir(tmp_path / "checkout")
    with pytest.raises(DistillguardError) as e:
        fam.scan_world(tmp_path / "no-store", tmp_path / "r", False)
    assert "ANOTHER CHECKOUT" not in e.value.message and "exit 42" not in e.value.message
