"""Bounded resources: where the scan spills, what happens when room runs out, resuming, progress."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import distillguard.scan.run as run_mod
from distillguard.scan.config import ScanConfig
from distillguard.scan.resources import ScanSpaceError, TempSpace, parse_size, stage_guard, temp_space
from distillguard.scan.run import close_scan, run_scan
from distillguard.store import Store
from distillguard.testing.worlds import build_tiny_world

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "distillguard", *args], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "160"})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    st = Store(tmp_path_factory.mktemp("res") / "store", create=True)
    build_tiny_world(st, seed=3, days=5)
    return st


def _cfg(**kw) -> ScanConfig:
    return ScanConfig(threads=1, **kw)  # one thread: two clean scans give the same communities


def _risk_rows(res):
    return sorted((r["account_id"], round(r["risk"], 9), r["flagged"], r["cluster_id"], r["campaign_id"])
                  for r in res.account_risk.to_pylist())


def test_scan_spills_under_the_store_and_cleans_up(world):
    res = run_scan(world, _cfg(), signals="never")
    tmp = res.con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
    limit = res.con.execute("SELECT current_setting('max_temp_directory_size')").fetchall()[0][0]
    assert Path(tmp).parent.parent == world.path / "tmp", tmp
    assert limit != "90% of available disk space"
    spill = res.space.path
    close_scan(res, world)
    assert not spill.exists() and world.spill is None


def test_configured_temp_directory_and_size(world, tmp_path):
    cfg = _cfg(temp_directory=str(tmp_path / "spill"), temp_max_size="64MiB")
    res = run_scan(world, cfg, signals="never")
    tmp = res.con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
    assert Path(tmp).is_relative_to(tmp_path / "spill")
    assert res.space.limit == 64 * 2**20
    assert res.con.execute("SELECT current_setting('max_temp_directory_size')").fetchall()[0][0] == "64.0 MiB"
    close_scan(res, world)
    assert list((tmp_path / "spill").iterdir()) == []


def test_stale_spill_of_a_dead_scan_is_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / "tmp" / f"scan-{int(dead.stdout)}-deadbeef"
    stale.mkdir(parents=True)
    (stale / "duckdb_temp_block").write_bytes(b"x" * 100)
    mine = tmp_path / "tmp" / f"scan-{os.getpid()}-0000aaaa"  # a live process's directory stays
    mine.mkdir()
    temp_space(tmp_path, None, None, "1MB")
    assert not stale.exists() and mine.exists()


def test_sizes_are_validated():
    assert parse_size("2GB", "k") == 2 * 10**9 and parse_size("8GiB", "k") == 8 * 2**30
    with pytest.raises(Exception, match="temp_max_size"):
        parse_size("lots", "temp_max_size")


def test_running_out_of_temp_space_is_a_clear_error(tmp_path):
    space = TempSpace(tmp_path / "spill", 2 * 2**20)
    con = duckdb.connect()
    con.execute(f"SET temp_directory='{space.path}'")
    con.execute("SET max_temp_directory_size='2MiB'")
    con.execute("SET memory_limit='40MB'")
    con.execute("SET threads=1")
    con.execute("SET preserve_insertion_order=false")
    with pytest.raises(ScanSpaceError) as ei:
        with stage_guard("detect", space, "40MB"):
            con.execute("CREATE TABLE t AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(4000000) ORDER BY s")
    msg = str(ei.value)
    assert str(space.path) in msg and "'detect'" in msg and "2.0 MiB" in msg and "free on its disk" in msg


def test_other_errors_pass_through(tmp_path):
    with pytest.raises(duckdb.CatalogException):
        with stage_guard("prepare", TempSpace(tmp_path, 2**20), "1GB"):
            duckdb.connect().execute("SELECT * FROM no_such_table")


def test_cli_out_of_room_exits_2_and_writes_nothing(world, tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("memory_limit: 4MB\ntemp_max_size: 1MB\nthreads: 1\n")
    out = tmp_path / "res"
    r = _cli("scan", "--store", str(world.path), "--out", str(out), "--signals", "never", "--config", str(cfg))
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "ran out of room" in r.stderr and str(world.path / "tmp") in r.stderr.replace("\n", "")
    assert not out.exists() or list(out.iterdir()) == []
    assert not [p for p in (world.path / "tmp").glob("scan-*")]  # its spill directory is gone


def test_resume_after_a_failure_in_detect_skips_prepare_and_matches_a_clean_scan(world, monkeypatch):
    clean = run_scan(world, _cfg(), signals="never")
    want = _risk_rows(clean)
    close_scan(clean, world)

    real_detect = run_mod.detect_step

    def dies(*a, **k):
        raise RuntimeError("killed in detect")

    monkeypatch.setattr(run_mod, "detect_step", dies)
    with pytest.raises(RuntimeError, match="killed in detect"):
        run_scan(world, _cfg(), signals="never", resume=True)
    assert (world.path / "tmp" / "resume" / "prepare" / "manifest.json").exists()

    def recomputed(*a, **k):
        raise AssertionError("prepare ran again")

    monkeypatch.setattr(run_mod, "prepare", recomputed)
    monkeypatch.setattr(run_mod, "detect_step", real_detect)
    res = run_scan(world, _cfg(), signals="never", resume=True)
    assert res.timings["resumed_from"] == "prepare"
    assert _risk_rows(res) == want
    close_scan(res, world)
    assert not (world.path / "tmp" / "resume").exists()  # finished: checkpoints removed


def test_resume_after_a_failure_in_campaigns_skips_detect(world, monkeypatch):
    clean = run_scan(world, _cfg(), signals="never")
    want, want_camps = _risk_rows(clean), sorted(c["n_accounts"] for c in clean.campaigns)
    close_scan(clean, world)
    real = run_mod._campaigns

    def dies(*a, **k):
        raise RuntimeError("killed in campaigns")

    monkeypatch.setattr(run_mod, "_campaigns", dies)
    with pytest.raises(RuntimeError):
        run_scan(world, _cfg(), signals="never", resume=True)
    monkeypatch.setattr(run_mod, "_campaigns", real)
    monkeypatch.setattr(run_mod, "prepare", lambda *a, **k: (_ for _ in ()).throw(AssertionError("prepare")))
    monkeypatch.setattr(run_mod, "detect_step", lambda *a, **k: (_ for _ in ()).throw(AssertionError("detect")))
    res = run_scan(world, _cfg(), signals="never", resume=True)
    assert res.timings["resumed_from"] == "detect"
    assert _risk_rows(res) == want and sorted(c["n_accounts"] for c in res.campaigns) == want_camps
    close_scan(res, world)


def test_checkpoints_of_other_inputs_are_not_used(world, monkeypatch):
    monkeypatch.setattr(run_mod, "_campaigns", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(RuntimeError):
        run_scan(world, _cfg(), signals="never", resume=True)
    monkeypatch.undo()
    calls = []
    real = run_mod.prepare
    monkeypatch.setattr(run_mod, "prepare", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = _cfg()
    cfg.graph.min_cluster_size = 4  # another configuration: the checkpoints do not apply
    res = run_scan(world, cfg, signals="never", resume=True)
    assert calls == [1] and res.timings["resumed_from"] is None
    close_scan(res, world)


def test_progress_moves_inside_stages(world):
    seen: list[tuple[str, float]] = []
    res = run_scan(world, _cfg(), signals="never", progress=lambda d, f: seen.append((d, f)))
    close_scan(res, world)
    stages = [d.split(":")[0] for d, _ in seen]
    assert {"signals", "prepare", "detect", "campaigns"} <= set(stages)
    detect = [f for d, f in seen if d.startswith("detect")]
    assert len(set(detect)) >= 5 and detect == sorted(detect)  # several steps inside detect, never backwards
    fr = [f for _, f in seen]
    assert fr == sorted(fr) and 0 <= fr[0] and fr[-1] <= 1
    assert any("score_clusters" in d for d, _ in seen)


def test_cli_off_a_terminal_prints_stage_lines(world, tmp_path):
    r = _cli("scan", "--store", str(world.path), "--out", str(tmp_path / "r"), "--signals", "never", "--no-report")
    assert r.returncode == 0, r.stderr
    for stage in ("signals", "prepare", "detect", "campaigns"):
        assert f"scan: {stage}:" in r.stderr
    assert "\x1b[" not in r.stderr  # no live bar or colour codes in a pipe
    assert (tmp_path / "r" / "accounts.parquet").exists()


def test_scan_tables_live_in_a_file_in_the_spill_directory_and_give_the_same_results(world):
    """The scan's own tables (prepare's partials, detect's incidence) sit in a database file under the run's
    spill directory, so the buffer pool evicts their blocks without writing them to spill files; the file goes
    with the directory, and the results are those of the in-memory database."""
    res = run_scan(world, _cfg(), signals="never")
    path = res.con.execute("SELECT path FROM duckdb_databases() WHERE database_name = 'dg_scan'").fetchall()[0][0]
    assert path and Path(path).parent == res.space.path and Path(path).stat().st_size > 0, path
    assert res.con.execute("SELECT count(*) FROM dg_scan.inc_h").fetchall()[0][0] > 0
    on_disk = _risk_rows(res)
    spill = res.space.path
    close_scan(res, world)
    assert not spill.exists()
    mem = run_scan(world, _cfg(tables_on_disk=False), signals="never")
    assert not mem.con.execute("SELECT path FROM duckdb_databases() WHERE database_name = 'dg_scan'").fetchall()[0][0]
    assert _risk_rows(mem) == on_disk
    close_scan(mem, world)
