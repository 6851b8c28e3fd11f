"""The root command behaves in scripts: a version, exit codes, no tracebacks, no markup eaten, full width."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parents[1] / "data"


def _dg(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distillguard.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_version_prints_and_exits_zero():
    r = _dg("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("distillguard ") and r.stdout.strip().split()[1][0].isdigit()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    st = tmp_path_factory.mktemp("cli") / "st"
    r = _dg("ingest", str(DATA / "native_exchanges.jsonl"), "--store", str(st))
    assert r.returncode == 0, r.stderr
    return st


def test_bad_export_filter_is_a_clear_error_and_writes_nothing(store, tmp_path):
    out = tmp_path / "x.jsonl"
    r = _dg("export", "--store", str(store), "--out", str(out), "--where", "day = .")
    assert r.returncode == 2
    assert "not a valid filter" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and not list(tmp_path.iterdir())


def test_error_messages_keep_square_brackets(tmp_path):
    """Rich markup must not eat user-visible text such as a character class in a pattern or a path."""
    odd = tmp_path / "st[a-z0-9_]"
    r = _dg("stats", "--store", str(odd))
    assert r.returncode == 2
    assert "[a-z0-9_]" in r.stderr


def test_piped_tables_are_not_cut_at_80_columns(store):
    r = _dg("stats", "--store", str(store), "--top", "50")
    assert r.returncode == 0
    assert all("…" not in line for line in r.stdout.splitlines())
    assert "\x1b[" not in r.stdout  # no colour codes when piped


def test_export_json_summary(store, tmp_path):
    import json

    out = tmp_path / "x.jsonl"
    r = _dg("export", "--store", str(store), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["exchanges"] == len(out.read_text().splitlines()) > 0
