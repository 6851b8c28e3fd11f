"""DuckDB → Spark SQL rewrites (no Spark needed) and the scan CLI's engine options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlglot

from distillguard.engine.transpile import to_spark

ROOT = Path(__file__).resolve().parents[2]


def _one(sql: str, hook=None) -> str:
    (out,) = to_spark(sql, hook)
    sqlglot.parse_one(out, read="spark")  # what we emit is Spark SQL sqlglot itself can read back
    return out


def test_epoch_of_timestamp_and_interval_keeps_fractional_seconds():
    out = _one("SELECT epoch(a - b) AS d, epoch(ts) AS t FROM x")
    assert "UNIX_MICROS(a) - UNIX_MICROS(b)" in out and "UNIX_MICROS(ts)" in out
    assert "UNIX_TIMESTAMP" not in out


def test_list_functions_ranges_intervals_and_quantiles():
    out = _one("SELECT len(l) AS n, length(s) AS m, list_slice(string_split(s, ':'), 1, 3) AS p FROM x")
    assert "SIZE(l)" in out and "LENGTH(s)" in out and "SLICE(" in out and "(3 - 1) + 1" in out
    assert "(SELECT id AS j FROM RANGE(0, 6)) AS r" in _one("SELECT * FROM t CROSS JOIN range(6) r(j)")
    assert "* INTERVAL '1' HOUR" in _one("SELECT x + INTERVAL (24.0) HOUR FROM t")
    assert "PERCENTILE(s, 0.8)" in _one("SELECT quantile_cont(s, 0.8) FROM t")
    assert "MATERIALIZED" not in _one("WITH s AS MATERIALIZED (SELECT 1 AS a) SELECT * FROM s")
    assert "XXHASH64(p)" in _one("SELECT hash(p) FROM t")


def test_read_parquet_becomes_the_hooks_view():
    seen = []

    def hook(paths, opts):
        seen.append((paths, opts))
        return "_pq_x"

    out = _one("SELECT * FROM read_parquet(['/a/1.parquet', '/a/2.parquet'], union_by_name=true, filename=true) e",
               hook)
    assert out == "SELECT * FROM _pq_x AS e"
    assert seen == [(["/a/1.parquet", "/a/2.parquet"], {"union_by_name": True, "filename": True})]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "distillguard", *args], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "160"})


def test_scan_engine_options_are_checked(tmp_path):
    r = _cli("scan", "--store", str(tmp_path), "--out", str(tmp_path / "o"), "--engine", "presto")
    assert r.returncode != 0 and "--engine" in r.stderr and "duckdb, spark" in r.stderr
    r = _cli("scan", "--store", str(tmp_path), "--out", str(tmp_path / "o"), "--master", "local[2]")
    assert r.returncode != 0 and "--master applies to --engine spark only" in r.stderr
