"""The object-store reader's driver-side parts, without Spark: which columns a statement may read, and how one
object's batch is conformed to the merged schema (union_by_name)."""

from __future__ import annotations

import pyarrow as pa
import pytest

pytest.importorskip("sqlglot")

from distillguard.engine.objectstore import conform, prune_columns, spark_type  # noqa: E402
from distillguard.engine.transpile import parse_duckdb  # noqa: E402


def _cols(sql: str, sources=("exchanges",)):
    return prune_columns(parse_duckdb(sql)[0], set(sources))


def test_a_projection_over_the_star_subquery_reads_only_the_names_it_uses():
    got = _cols("SELECT e.account_id, hash(e.prompt) AS h, s.sig_x FROM (SELECT * FROM exchanges) e "
                "LEFT JOIN exchange_signals s ON s.exchange_id = e.exchange_id WHERE e.ts > 0")
    assert {"account_id", "prompt", "exchange_id", "ts", "sig_x"} <= got
    assert "response_text" not in got and "turns" not in got
    assert "model" in _cols("SELECT count(*) FROM exchanges WHERE model = 'm'")


@pytest.mark.parametrize("sql", [
    "SELECT * FROM exchanges",                                    # every column is the result
    "SELECT e.* FROM (SELECT * FROM exchanges) e",                 # a qualified star passes them on
    "SELECT * FROM (SELECT * FROM exchanges) e",                   # so does an outer star
    "SELECT x.a FROM (SELECT * FROM exchanges JOIN t ON true) x",  # a star over a join
    "SELECT a FROM ((SELECT * FROM exchanges) UNION ALL (SELECT * FROM exchanges))",
])
def test_a_star_that_could_pass_columns_on_unnamed_reads_everything(sql):
    assert _cols(sql) is None


def test_types_spark_holds_and_batches_conformed_to_the_merged_schema():
    assert spark_type(pa.timestamp("ns", tz="Etc/UTC")) == pa.timestamp("us", tz="UTC")
    assert spark_type(pa.large_list(pa.struct([("t", pa.large_string())]))) == pa.list_(pa.struct([("t", pa.string())]))
    assert spark_type(pa.dictionary(pa.int32(), pa.string())) == pa.string()
    assert spark_type(pa.uint32()) == pa.int64()
    schema = pa.schema([("a", pa.int64()), ("b", pa.string()), ("ts", pa.timestamp("us", tz="UTC")),
                        ("filename", pa.string())])
    rb = pa.RecordBatch.from_pydict({"ts": pa.array([0, 1_000_000_000], pa.timestamp("ns", tz="UTC")),
                                     "a": pa.array([1, 2], pa.int32())})
    out = conform(rb, schema, "s3://b/k.parquet")
    assert out.schema == schema
    assert out.column("a").to_pylist() == [1, 2] and out.column("b").null_count == 2
    assert out.column("filename").to_pylist() == ["s3://b/k.parquet"] * 2
    assert out.column("ts").cast(pa.int64()).to_pylist() == [0, 1_000_000]


def test_simulate_into_a_bucket_is_refused_before_anything_is_written(tmp_path):
    """A store on object storage comes from ingest or a copied directory: simulate's labels and world.json are
    local files, so ``simulate --out s3://..`` stops with a clear message (it wrote half a store, then failed)."""
    from typer.testing import CliRunner

    from distillguard.errors import ConfigError
    from tests.engine.conftest import cli_app

    r = CliRunner().invoke(cli_app(), ["simulate", "--config", "default", "--scale", "0.001", "--out",
                                       "s3://no-such-bucket/w"])
    assert isinstance(r.exception, ConfigError), r.output  # the command line prints it and exits 2
    assert "local store directory" in str(r.exception) and "aws s3 sync" in str(r.exception)
