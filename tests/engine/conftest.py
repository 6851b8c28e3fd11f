"""Session fixtures for the Spark engine tests: one moto S3 server, one local[2] SparkSession, one small world
(on local disk and, byte-for-byte the same, on S3), one DuckDB scan of it and ONE Spark scan of it — the
command line's ``scan --engine spark --store s3://...``, run in this process so it reuses the session.

Spark's cost on a small world is its fixed per-statement cost (planning, scheduling, checkpointing: ~45
statements a scan), so the Spark tests share a single scan instead of paying it per module; every test that
needs Spark is marked ``xdist_group("spark")`` and so runs on the one worker that holds these fixtures.
The S3 environment is set before the SparkSession starts: local-mode Python workers (the object-store reader,
the signals' mapInArrow) inherit the JVM's environment, as executors on a cluster read their own.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from distillguard.store import Store
from distillguard.testing.worlds import TinyWorld, build_tiny_world
from tests.s3server import moto_s3

BUCKET = "dg-spark"
HAVE_JAVA = shutil.which("java") is not None
#: The scan config of both scans: two shuffle partitions (local[2], a 36k-exchange world).
#: Execution-mode settings for a world of thousands of rows, where Spark's CPU is JIT, code generation and
#: adaptive re-planning rather than data: the C1 compiler only, no whole-stage code generation, no adaptive
#: execution. They change how Spark runs a plan, not what it computes (the same 44 flags and 2 campaigns on
#: the 2-day tiny world); measured 180 instead of 221 CPU-s for that world's scan (docs/benchmarks.md).
FAST_SMALL = {"spark.sql.codegen.wholeStage": "false", "spark.sql.adaptive.enabled": "false",
              "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"}
SCAN_YAML = "engine:\n  spark:\n    shuffle_partitions: 2\n    driver_memory: 1g\n"


class Recorder:
    """A connection (DuckDB or Spark engine) that records every statement the stages send it."""

    def __init__(self, con):
        self._con, self.statements = con, []

    def __getattr__(self, k):
        return getattr(self._con, k)

    def __setattr__(self, k, v):
        if k in ("_con", "statements"):
            object.__setattr__(self, k, v)
        else:
            setattr(self._con, k, v)

    def execute(self, q, *a, **k):
        self.statements.append(q)
        return self._con.execute(q, *a, **k)

    def sql(self, q, *a, **k):
        self.statements.append(q)
        return self._con.sql(q, *a, **k)

    def executemany(self, q, *a, **k):
        self.statements.append(q)
        return self._con.executemany(q, *a, **k)


def cli_app():
    """The command line with its stage commands registered (``distillguard.cli`` adds them when it runs)."""
    from distillguard.cli import _load_stage_clis, app

    if not any(c.name == "scan" for c in app.registered_commands):
        _load_stage_clis()
    return app


@pytest.fixture(scope="session")
def cli():
    return cli_app()


@dataclass
class SparkWorld:
    world: TinyWorld
    local: Store
    url: str
    config: Path
    out: Path
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def object_store(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 (never the network) and the environment the SDKs read, for the session."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    with moto_s3(BUCKET, {"DISTILLGUARD_SCRATCH": str(tmp_path_factory.mktemp("scratch"))}) as (env, _fs):
        yield env


@pytest.fixture(scope="session")
def spark(object_store):
    if not HAVE_JAVA:
        pytest.skip("Spark needs Java 17+ on the PATH (not found)")
    from distillguard.engine.spark import spark_session

    s = spark_session("local[2]", app="distillguard-tests", conf={
        "spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2", "spark.driver.memory": "1g",
        "spark.default.parallelism": "2", **FAST_SMALL})
    yield s
    s.stop()


@pytest.fixture(scope="session")
def spark_world(object_store, tmp_path_factory) -> SparkWorld:
    base = tmp_path_factory.mktemp("spark")
    local = Store(base / "store", create=True)
    w = build_tiny_world(local, seed=4, days=5)
    url = f"s3://{BUCKET}/world/store"
    build_tiny_world(Store(url, create=True), seed=4, days=5)
    cfg = base / "scan.yaml"
    cfg.write_text(SCAN_YAML)
    return SparkWorld(w, local, url, cfg, base / "out", dict(object_store))


@pytest.fixture(scope="session")
def duck_scan(spark_world):
    """The embedded engine's scan of the local copy (in process: the tests read its connection's tables)."""
    import distillguard.scan.run as run
    from distillguard.scan.config import load_config

    mp = pytest.MonkeyPatch()
    rec: list[Recorder] = []
    orig = run.open_connection

    def recording(store, cfg):
        rec.append(Recorder(orig(store, cfg)))
        return rec[-1]

    mp.setattr(run, "open_connection", recording)
    try:
        res = run.run_scan(spark_world.local, load_config(spark_world.config), signals="never")
    finally:
        mp.undo()
    yield res, rec[0].statements
    run.close_scan(res, spark_world.local)


@pytest.fixture(scope="session")
def spark_cli_scan(spark_world, spark):
    """``distillguard scan --engine spark --master local[2] --store s3://...`` through the command line's own
    code, in this process (the session above is reused); returns the CLI result, the results directory and
    the engine the scan ran on (its statements)."""
    from typer.testing import CliRunner

    import distillguard.scan.run as run

    app = cli_app()
    engines = []
    orig = run.open_engine

    def keep(*a, **k):
        engines.append(orig(*a, **k))
        return engines[-1]

    mp = pytest.MonkeyPatch()
    mp.setattr(run, "open_engine", keep)
    out = spark_world.out / "spark-s3"
    try:
        r = CliRunner().invoke(app, ["scan", "--store", spark_world.url, "--out", str(out), "--engine", "spark",
                                     "--master", "local[2]", "--config", str(spark_world.config), "--signals",
                                     "never", "--json"], catch_exceptions=False)
    finally:
        mp.undo()
    assert r.exit_code == 0, r.output
    return r, out, engines[0]
