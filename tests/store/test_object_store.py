"""Stores and inputs on object storage, against a local S3-compatible server the tests start themselves
(moto in server mode on 127.0.0.1, a free port): never the network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

from distillguard.errors import StoreError  # noqa: E402
from distillguard.ingest import ingest_paths  # noqa: E402
from distillguard.store import Store  # noqa: E402
from distillguard.store.stats import store_stats  # noqa: E402
from distillguard.testing.worlds import build_tiny_world  # noqa: E402
from tests.s3server import moto_s3  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
BUCKET = "dg-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    extra = {"DISTILLGUARD_SCRATCH": str(tmp_path_factory.mktemp("scratch")), "DISTILLGUARD_LOCK_WAIT": "2"}
    with moto_s3(BUCKET, extra) as (env, fs):
        yield {"env": env, "fs": fs}


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    base = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "160", "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([sys.executable, "-m", "distillguard", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**base, **env}, timeout=300)


def _stats(store: Store) -> dict:
    s = store_stats(store)
    s.pop("tables")
    # rows that tie on the count come in either order
    return {k: sorted(v, key=lambda r: orjson.dumps(r, default=str)) if isinstance(v, list) else v
            for k, v in s.items()}


def test_ingest_and_stats_on_s3_match_local(s3, tmp_path):
    url = f"s3://{BUCKET}/ingest/store"
    # the command line, as a user runs it
    cli = _cli(s3["env"], "ingest", str(DATA), "--store", url, "--json")
    assert cli.returncode == 3, cli.stderr  # tests/data holds malformed records: quarantined
    r = orjson.loads(cli.stdout)
    lo = ingest_paths(Store(tmp_path / "local", create=True), [DATA]).to_dict()
    assert r["ingested"] == lo["ingested"] > 0 and r["quarantined"] == lo["quarantined"] > 0
    assert r["accounts"] == lo["accounts"]
    fs = s3["fs"]
    assert fs.glob(f"{BUCKET}/ingest/store/exchanges/day=*/*.parquet")
    assert fs.glob(f"{BUCKET}/ingest/store/quarantine/*.jsonl")
    assert fs.exists(f"{BUCKET}/ingest/store/catalog.duckdb") and fs.glob(f"{BUCKET}/ingest/store/ids/run-*")
    assert not fs.exists(f"{BUCKET}/ingest/store/_ingest.lock")  # released
    assert _stats(Store(url)) == _stats(Store(tmp_path / "local"))


def test_ingest_is_exactly_once_on_s3_even_without_the_local_working_copy(s3, tmp_path, monkeypatch):
    url = f"s3://{BUCKET}/once/store"
    monkeypatch.setenv("DISTILLGUARD_SCRATCH", str(tmp_path / "scratch-a"))
    first = ingest_paths(Store(url, create=True), [DATA])
    again = ingest_paths(Store(url), [DATA])
    assert first.records > 0 and again.records == 0
    # another machine (no working copy): the catalog and id index come from the bucket
    monkeypatch.setenv("DISTILLGUARD_SCRATCH", str(tmp_path / "scratch-b"))
    third = ingest_paths(Store(url), [DATA])
    assert third.records == 0 and all(f.skipped == "already ingested" for f in third.files)
    # the id index is derived: lose it and the catalog in the bucket too, and the parts rebuild it
    s3["fs"].rm(f"{BUCKET}/once/store/ids", recursive=True)
    s3["fs"].rm(f"{BUCKET}/once/store/catalog.duckdb")
    monkeypatch.setenv("DISTILLGUARD_SCRATCH", str(tmp_path / "scratch-c"))
    fourth = ingest_paths(Store(url), [DATA])
    assert fourth.records == 0 and fourth.duplicates >= first.records
    assert _stats(Store(url))["totals"]["exchanges"] == first.records


def test_a_held_lock_stops_a_second_ingest_with_a_clear_error(s3):
    url = f"s3://{BUCKET}/locked/store"
    st = Store(url, create=True)
    s3["fs"].pipe_file(f"{BUCKET}/locked/store/_ingest.lock", b'{"host": "elsewhere", "pid": 1}')
    with pytest.raises(StoreError, match="another ingest holds the store's lock.*elsewhere"):
        ingest_paths(st, [DATA / "native_exchanges.jsonl"])
    assert not st.has_exchanges()


def test_inputs_on_s3_into_a_local_store(s3, tmp_path):
    fs = s3["fs"]
    for p in sorted(DATA.iterdir()):
        if p.is_file():
            fs.put_file(str(p), f"{BUCKET}/logs/{p.name}")
    a = Store(tmp_path / "a", create=True)
    r = ingest_paths(a, [f"s3://{BUCKET}/logs/"])
    lo = ingest_paths(Store(tmp_path / "b", create=True), [DATA])
    assert r.records == lo.records > 0 and r.quarantined == lo.quarantined and r.accounts == lo.accounts
    assert all(f.path.startswith(f"s3://{BUCKET}/logs/") for f in r.files)
    # the catalog names the objects, and the quarantine the object each bad line came from
    with a.catalog() as cat:
        sources = {x[0] for x in cat.execute("SELECT source_path FROM ingest_log").fetchall()}
    assert sources and all(s.startswith(f"s3://{BUCKET}/logs/") for s in sources)
    q = [orjson.loads(ln) for f in (tmp_path / "a" / "quarantine").glob("*.jsonl") for ln in f.read_bytes().splitlines()]
    assert q and all(x["path"].startswith(f"s3://{BUCKET}/logs/") for x in q)
    # the staged copies are gone; a re-run stores nothing new
    assert not list((Path(os.environ["DISTILLGUARD_SCRATCH"]) / "inputs").glob("*/*"))
    assert ingest_paths(a, [f"s3://{BUCKET}/logs"]).records == 0


@pytest.fixture(scope="module")
def scanned(s3, tmp_path_factory):
    """The same tiny world written to a local store and to one on S3, scanned by the CLI on both."""
    base = tmp_path_factory.mktemp("scan")
    url = f"s3://{BUCKET}/world/store"
    local = Store(base / "local", create=True)
    w = build_tiny_world(local, seed=3, days=5)
    build_tiny_world(Store(url, create=True), seed=3, days=5)
    out = {}
    for name, where in (("local", str(local.path)), ("s3", url)):
        r = _cli(s3["env"], "scan", "--store", where, "--out", str(base / name), "--signals", "never", "--json",
                 "--no-report")
        assert r.returncode == 0, r.stderr
        out[name] = base / name
    return w, url, local, out


def _flagged(res: Path) -> set[str]:
    t = pq.read_table(res / "accounts.parquet").to_pylist()
    return {r["account_id"] for r in t if r["flagged"]}


def _campaigns(res: Path) -> set[frozenset[str]]:
    t = pq.read_table(res / "accounts.parquet").to_pylist()
    by: dict[str, set[str]] = {}
    for r in t:
        if r["campaign_id"]:
            by.setdefault(r["campaign_id"], set()).add(r["account_id"])
    return {frozenset(v) for v in by.values()}


def test_scan_on_s3_flags_the_same_accounts_and_campaigns_as_local(scanned, s3):
    w, url, _local, out = scanned
    assert _flagged(out["s3"]) == _flagged(out["local"])
    assert _campaigns(out["s3"]) == _campaigns(out["local"])
    attackers = {a for a, (c, p) in w.labels.items() if p == "attacker"}
    assert _flagged(out["s3"]) & attackers  # the world is not trivially empty
    # derived tables were written back to the bucket, and read back the same
    st = Store(url)
    assert {"account_risk", "campaigns", "campaign_members"} <= set(st.tables())
    assert not list(st.path.glob("tables")) and not list(st.path.glob("exchanges"))  # no local data copy
    t = st.read_table("account_risk")
    assert {r["account_id"] for r in t.to_pylist() if r["flagged"]} == _flagged(out["local"])


def test_console_reads_a_store_on_s3(scanned):
    from distillguard.console.aggregates import aggregates_fresh, build_aggregates
    from distillguard.console.config import load_settings
    from distillguard.console.data import ConsoleData

    _w, url, local, _out = scanned
    settings = load_settings(None, secret_key="test-secret-key-0123456789")
    st = Store(url)
    build_aggregates(st)
    assert aggregates_fresh(st)
    remote_view, local_view = ConsoleData(st, settings), ConsoleData(local, settings)
    try:
        rc = remote_view.campaigns()
        assert rc and {c["campaign_id"] for c in rc} == {c["campaign_id"] for c in local_view.campaigns()}
        h = remote_view.headline()
        assert h["n_campaigns"] == len(rc) and h["n_accounts"] > 0
        acct = rc[0]["campaign_id"]
        assert remote_view.campaign(acct) is not None
    finally:
        remote_view.close()
        local_view.close()


def test_bad_scheme_missing_bucket_and_missing_credentials_are_clear_errors(s3, tmp_path, monkeypatch):
    env = s3["env"]
    r = _cli(env, "ingest", str(DATA / "native_exchanges.jsonl"), "--store", "ftp://host/store")
    assert r.returncode == 2 and "unsupported store URL scheme 'ftp'" in r.stderr
    assert not (ROOT / "ftp:").exists()
    no_creds = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    no_creds["AWS_SHARED_CREDENTIALS_FILE"] = no_creds["AWS_CONFIG_FILE"] = str(tmp_path / "none")
    r = _cli(no_creds, "ingest", str(DATA / "native_exchanges.jsonl"), "--store", f"s3://{BUCKET}/nocreds")
    assert r.returncode == 2 and "no credentials" in r.stderr, r.stderr
    assert env["AWS_SECRET_ACCESS_KEY"] not in r.stderr + r.stdout
    assert not s3["fs"].exists(f"{BUCKET}/nocreds/store.json")
    with pytest.raises(StoreError, match="does not exist"):
        Store(f"s3://no-such-bucket-{os.getpid()}/store", create=True)
    with pytest.raises(StoreError, match="not a distillguard store"):
        Store(f"s3://{BUCKET}/never-created")
    with pytest.raises(StoreError, match="names no bucket"):
        Store("s3://")
    with pytest.raises(StoreError, match="unsupported store URL scheme 'http'"):
        ingest_paths(Store(tmp_path / "st", create=True), ["http://example.com/logs.jsonl"])


def test_a_url_mangled_by_pathlib_still_opens_the_object_store(s3):
    Store(f"s3://{BUCKET}/mangled", create=True)
    st = Store(Path(f"s3://{BUCKET}/mangled"))  # Path() turns s3:// into s3:/
    assert st.location == f"s3://{BUCKET}/mangled" and st.fs is not None and not st.has_exchanges()


def test_signals_workers_score_a_store_on_s3_as_they_score_a_local_one(s3, tmp_path):
    """The partitioned signals stage forks workers that each read their parts from the bucket and write a part
    that is uploaded into the table: the same scores as on local disk."""
    from distillguard.signals.score import TABLE, run_signals

    tables = {}
    for name, where in (("local", str(tmp_path / "local")), ("s3", f"s3://{BUCKET}/signals/store")):
        st = Store(where, create=True)
        build_tiny_world(st, seed=2, days=2)
        assert len(st.exchange_files()) > 1  # the partitioned path runs
        run_signals(st, progress=False, workers=2)
        tables[name] = st.read_table(TABLE).sort_by("exchange_id")
    assert tables["s3"].num_rows == tables["local"].num_rows > 0
    assert tables["s3"].equals(tables["local"])
    assert len(s3["fs"].glob(f"{BUCKET}/signals/store/tables/{TABLE}/*.parquet")) > 1
