"""One stage two ways: the behaviour partials (table beh_ah) as the existing DuckDB SQL transpiled by sqlglot,
and re-expressed in Ibis, each on DuckDB and on Spark local[2] — code size and time (docs/benchmarks.md).

    PYTHONPATH=$PWD python bench/ibis_vs_sqlglot.py --store /tmp/world [--master local[2]]

Needs the 'spark' extra and ibis-framework[duckdb,pyspark] (not a dependency: measured, not chosen).
"""

from __future__ import annotations

import argparse
import inspect
import time

import ibis

from distillguard.behavior.features import build_partials
from distillguard.scan.base import build_base
from distillguard.scan.config import ScanConfig
from distillguard.scan.engine import open_connection


def beh_ah_ibis(ex, sigs: list[str], high_max_tokens: int, hit: float):
    """beh_ah of behavior.features.build_partials, in Ibis: the same aggregates, a second definition."""
    per_min = ex.group_by(account_id=ex.account_id, minute=ex.ts.truncate("m")).aggregate(c=ex.count())
    peak = per_min.group_by(account_id=per_min.account_id, hour=per_min.minute.truncate("h")).aggregate(
        peak_min=per_min.c.max())
    aggs = dict(
        n=ex.count(), n_single=ex.count(where=ex.n_turns <= 1), sum_turns=ex.n_turns.sum(),
        n_reason=ex.count(where=ex.reasoning), n_maxtok=ex.max_tokens.count(), sum_maxtok=ex.max_tokens.sum(),
        n_maxtok_high=ex.count(where=ex.max_tokens >= high_max_tokens), n_temp=ex.temperature.count(),
        sum_temp=ex.temperature.sum(), sum_temp2=(ex.temperature * ex.temperature).sum(),
        sum_in=ex.input_tokens.sum(), sum_out=ex.output_tokens.sum(), n_tools=ex.count(where=ex.has_tools),
        n_images=ex.count(where=ex.has_images), n_task=ex.task_item_key.count(), n_tmpl=ex.template_key.count())
    for s in sigs:
        aggs[f"sum_{s}"] = ex[s].sum()
        aggs[f"hit_{s}"] = ex.count(where=ex[s] >= hit)
    a = ex.group_by("account_id", "hour").aggregate(**aggs)
    return a.join(peak, ["account_id", "hour"])


def _time(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--no-spark", action="store_true", help="DuckDB side only")
    a = ap.parse_args()
    from distillguard.engine.open import open_engine
    from distillguard.store import Store

    st, cfg = Store(a.store), ScanConfig()
    bc = cfg.behavior
    con = open_connection(st, cfg)
    sigs = build_base(con, st)
    t_duck_sql, _ = _time(lambda: build_partials(con, sigs, bc))
    n_sql = con.execute("SELECT count(*) FROM beh_ah").fetchall()[0][0]
    ib = ibis.duckdb.from_connection(con)
    expr = beh_ah_ibis(ib.table("ex"), sigs, int(bc.high_max_tokens), float(bc.signal_hit))
    # Ibis 12's own to_pyarrow fails against DuckDB 2 (ImportError DuckDBPyArrowData): run the SQL it compiles
    t_duck_ibis, t1 = _time(lambda: con.sql(ibis.to_sql(expr, dialect="duckdb")).to_arrow_table())
    # same rows, same sums: the Ibis definition is a faithful copy (what keeping two copies would need forever)
    same = con.execute("SELECT count(*), sum(n), sum(sum_out), sum(peak_min) FROM beh_ah").fetchall()[0] == (
        t1.num_rows, sum(t1["n"].to_pylist()), sum(t1["sum_out"].to_pylist()), sum(t1["peak_min"].to_pylist()))
    src_ibis = len(inspect.getsource(beh_ah_ibis).splitlines())
    print(f"duckdb: build_partials SQL (4 tables) {t_duck_sql:.2f}s; beh_ah in Ibis {t_duck_ibis:.2f}s; "
          f"{n_sql} vs {t1.num_rows} rows; same sums: {same}; Ibis copy of beh_ah: {src_ibis} lines")
    if a.no_spark:
        return
    spark = open_engine("spark", st, cfg, a.master)
    build_base(spark, st)
    t_spark_sql, _ = _time(lambda: build_partials(spark, sigs, bc))
    n_spark = spark.execute("SELECT count(*) FROM beh_ah").fetchall()[0][0]
    ibs = ibis.pyspark.connect(spark.spark)
    expr_s = beh_ah_ibis(ibs.table("ex"), sigs, int(bc.high_max_tokens), float(bc.signal_hit))
    t_spark_ibis, t2 = _time(lambda: expr_s.to_pyarrow())
    src_ibis = len(inspect.getsource(beh_ah_ibis).splitlines())
    print(f"beh_ah rows: duckdb sql {n_sql}, duckdb ibis {t1.num_rows}, spark sql {n_spark}, spark ibis {t2.num_rows}")
    print(f"build_partials (4 tables) duckdb sql {t_duck_sql:.2f}s, spark sqlglot {t_spark_sql:.2f}s")
    print(f"beh_ah only: duckdb ibis {t_duck_ibis:.2f}s, spark ibis {t_spark_ibis:.2f}s")
    print(f"extra code: sqlglot path 0 lines per stage (engine/transpile.py once); ibis beh_ah {src_ibis} lines")


if __name__ == "__main__":
    main()
