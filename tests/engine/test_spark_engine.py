"""The Spark engine runs the same stage SQL as DuckDB and finds the same accounts and campaigns — from a store
on object storage, through the command line.

The fixtures (tests/engine/conftest.py) pay Spark's cost once for the session: one local[2] SparkSession, one
small world on local disk and on a moto S3 server, one DuckDB scan of the local copy and one
``scan --engine spark --store s3://...`` of the S3 copy. Skips only when Java is absent.
"""

from __future__ import annotations

import shutil

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillguard.scan.config import ScanConfig
from distillguard.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark"),
              pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17+ on the PATH (not found)")]


def _flagged(t: pa.Table) -> set[str]:
    return {a for a, f in zip(t["account_id"].to_pylist(), t["flagged"].to_pylist(), strict=True) if f}


def _campaign_sets(t: pa.Table) -> list[list[str]]:
    by: dict[str, list[str]] = {}
    for a, c in zip(t["account_id"].to_pylist(), t["campaign_id"].to_pylist(), strict=True):
        if c:
            by.setdefault(c, []).append(a)
    return sorted(sorted(v) for v in by.values())


def test_cli_spark_scan_of_a_store_on_s3_finds_what_duckdb_finds(spark_world, duck_scan, spark_cli_scan):
    duck, _ = duck_scan
    r, out, _ = spark_cli_scan
    from distillguard.scan.run import results_accounts

    got = pq.read_table(out / "accounts.parquet")
    want = results_accounts(duck)
    assert _flagged(want), "the world's campaigns must be found at all for the comparison to mean anything"
    attackers = {a for a, (_c, p) in spark_world.world.labels.items() if p == "attacker"}
    assert _flagged(want) & attackers
    # exact on this world: the hash-dependent parts (ring order over entities > clique_cap, MinHash values of
    # synchronised schedules) use md5 on both engines; docs/spark.md states the tolerance
    assert _flagged(got) == _flagged(want)
    assert _campaign_sets(got) == _campaign_sets(want)
    titles = sorted(c["title"] for c in orjson.loads((out / "campaigns.json").read_bytes()))
    assert titles == sorted(c["title"] for c in duck.campaigns)
    # risk agrees to floating-point noise account by account
    dr = dict(zip(want["account_id"].to_pylist(), want["risk"].to_pylist(), strict=True))
    sr = dict(zip(got["account_id"].to_pylist(), got["risk"].to_pylist(), strict=True))
    assert dr.keys() == sr.keys()
    assert max(abs(dr[a] - sr[a]) for a in dr) < 1e-6
    # the results went back to the bucket, and the report was written from the store on S3
    assert orjson.loads(r.stdout[r.stdout.index("{"):])
    st = Store(spark_world.url)
    assert _flagged(st.read_table("account_risk")) == _flagged(want)
    assert (out / "report.html").stat().st_size > 0


def test_the_spark_scan_read_only_the_columns_it_uses_from_object_storage(spark_cli_scan):
    _, _, eng = spark_cli_scan
    ran = " ".join(q for _, q in eng.statements)
    for table in ("beh_ah", "inc_h", "sync_b", "inc_raw", "edges", "_intra"):  # every stage ran on Spark
        assert table in ran
    # prepare's projection of the exchanges read a pruned view: no response text, turns or reasoning text
    pruned = {cols for (_src, cols) in eng._pruned}
    assert pruned, "the exchanges on S3 were read through column-pruned views"
    widest = max(pruned, key=len)
    assert "account_id" in widest and "prompt" in widest
    assert not {"response_text", "turns", "reasoning_text"} & set(widest)


def test_every_stage_statement_transpiles_and_spark_parses_it(duck_scan, spark):
    from distillguard.engine.transpile import parse_duckdb, to_spark_tree

    _, statements = duck_scan
    parser = spark._jsparkSession.sessionState().sqlParser()
    n = 0
    for q in set(statements):
        for tree in parse_duckdb(q):
            if tree.key in ("set", "command", "describe", "drop"):
                continue
            if tree.key in ("create", "insert") and (tree.expression is None or tree.expression.key == "values"):
                continue  # CREATE TABLE t(cols) / executemany INSERT … VALUES: driver-side tables, no Spark SQL
            body = tree.expression if tree.key in ("create", "insert") and tree.expression is not None else tree
            if body is None or "duckdb_" in q:
                continue
            parser.parsePlan(to_spark_tree(body, lambda p, o: "_pq").sql(dialect="spark"))
            n += 1
    assert n >= 25  # base, behaviour, incidence, edges, pairs, scoring, campaigns


def test_distributed_communities_are_strong_components(duck_scan, spark):
    """The fallback beyond driver_max_pairs, on the DuckDB scan's edges handed to a Spark engine."""
    import igraph as ig

    from distillguard.engine.communities import DistributedPairs, find_communities, pair_graph
    from distillguard.engine.config import CommunitiesConfig
    from distillguard.engine.spark import SparkEngine

    duck, _ = duck_scan
    eng = SparkEngine(spark)
    eng.register("edges", duck.con.sql("SELECT * FROM edges").to_arrow_table())
    cfg = ScanConfig()
    ccfg = CommunitiesConfig(driver_max_pairs=1, strong_pair_weight=0.5)
    pairs = pair_graph(eng, cfg.graph, ccfg)
    assert isinstance(pairs, DistributedPairs) and pairs.n_pairs > 1
    got = find_communities(pairs, cfg.graph, ccfg)
    # the same components computed on the driver from the collected pairs
    t = pa.Table.from_pylist(pairs.df.toArrow().to_pylist())
    strong = [(s, d) for s, d, w in zip(t["src"].to_pylist(), t["dst"].to_pylist(), t["weight"].to_pylist(),
                                         strict=True) if w >= 0.5]
    names = sorted({x for e in strong for x in e})
    idx = {n: i for i, n in enumerate(names)}
    g = ig.Graph(n=len(names), edges=[(idx[s], idx[d]) for s, d in strong])
    want = sorted(sorted(names[v] for v in comp) for comp in g.connected_components() if len(comp) >= 3)
    have: dict[int, list[str]] = {}
    for a, c in got.items():
        have.setdefault(c, []).append(a)
    assert want, "the world must have strong components"
    assert sorted(sorted(v) for v in have.values()) == want
    # numbered like Leiden's communities: largest first
    sizes = [len(have[c]) for c in sorted(have)]
    assert sizes == sorted(sizes, reverse=True)
    # within the limit the pairs come to the driver (Leiden), and equal DuckDB's pair table
    local = pair_graph(eng, cfg.graph, CommunitiesConfig())
    assert isinstance(local, pa.Table)
    from distillguard.graph.edges import pair_weights

    ref = pair_weights(duck.con, cfg.graph)
    assert sorted(zip(local["src"].to_pylist(), local["dst"].to_pylist(), strict=True)) == \
        sorted(zip(ref["src"].to_pylist(), ref["dst"].to_pylist(), strict=True))
    eng.close()


def test_spark_reads_a_local_store_and_the_same_store_on_s3_alike(spark_world, spark):
    """Spark's own Parquet reader (local disk) and the executors' fsspec reader (object storage) give the same
    relations: exchanges (all columns and a pruned projection) and the newest-wins accounts view."""
    from distillguard.engine.spark import SparkEngine

    out = {}
    for name, where in (("local", spark_world.local), ("s3", Store(spark_world.url))):
        eng = SparkEngine(spark)
        where.register_views(eng)
        out[name] = (
            # the subquery over all columns is the shape the prepare stage reads (pruned on S3)
            eng.sql("SELECT count(*), count(DISTINCT e.account_id), sum(e.input_tokens), min(e.ts), max(e.ts), "
                    "sum(length(e.prompt)), count(e.response_text) FROM (SELECT * FROM exchanges) e").fetchall(),
            sorted(eng.sql("SELECT account_id, org_id, created_at FROM accounts").fetchall()),
            {r[0] for r in eng.sql("DESCRIBE exchanges").fetchall()},
        )
        eng.close()
    assert out["s3"] == out["local"]
    assert out["s3"][0][0][0] > 0


def test_signals_through_map_in_arrow_on_s3_equal_the_local_stage(spark_world, spark, tmp_path):
    """The signals stage on Spark over a store on S3: executors read the exchanges from the bucket and write
    their parts back to it; the table equals the local stage's scores."""
    from distillguard.engine.signals import run_signals_spark
    from distillguard.engine.spark import SparkEngine
    from distillguard.signals.score import TABLE, iter_signals
    from distillguard.testing.worlds import build_tiny_world

    url = spark_world.url.replace("/world/", "/signals/")
    st = Store(url, create=True)
    build_tiny_world(st, seed=5, days=1)
    local = Store(tmp_path / "local", create=True)
    build_tiny_world(local, seed=5, days=1)
    eng = SparkEngine(spark)
    st.register_views(eng)
    n = run_signals_spark(eng, st)
    got = Store(url).read_table(TABLE)
    want = pa.Table.from_batches(list(iter_signals(local)))
    assert got.num_rows == want.num_rows == n > 0
    assert not list(st.fs.glob(f"{url.removeprefix('s3://')}/staging/**"))  # staged parts cleaned up
    g = {r["exchange_id"]: r for r in got.to_pylist()}
    for r in want.to_pylist():
        o = g[r["exchange_id"]]
        for k, v in r.items():
            if k.startswith("sig_"):
                assert abs(o[k] - v) < 1e-6, (k, r["exchange_id"])
            elif k != "ts":
                assert o[k] == v, k
    eng.close()


def test_replay_and_resume_are_duckdb_only_and_say_so(spark_world, cli):
    from typer.testing import CliRunner

    from distillguard.errors import ConfigError
    from distillguard.scan.run import run_scan

    base = ["scan", "--store", str(spark_world.local.path), "--out", str(spark_world.out / "x"), "--engine", "spark"]
    for extra, word in ((["--replay"], "--replay"), (["--resume"], "--resume")):
        r = CliRunner().invoke(cli, base + extra)  # (distillguard's main maps a ConfigError to exit 2)
        assert isinstance(r.exception, ConfigError), r.output
        assert word in str(r.exception) and "DuckDB engine only" in str(r.exception)
    with pytest.raises(ConfigError, match="replay runs on the DuckDB engine only"):
        from datetime import timedelta

        run_scan(spark_world.local, ScanConfig(), engine="spark", replay_step=timedelta(hours=1))
    with pytest.raises(ConfigError, match="resume runs on the DuckDB engine only"):
        run_scan(spark_world.local, ScanConfig(), engine="spark", resume=True)
