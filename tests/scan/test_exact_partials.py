"""Partial sums fold to the one-pass sum bit for bit, wherever the rows were cut: ``watch`` stores partials per
batch of parts and merges them at detection (``watch._merge_sql``), a full scan sums every exchange of an
(account, hour) at once, and both must give the same features (tests/gateway/test_watch_incremental.py)."""

import duckdb
import numpy as np
import pyarrow as pa

from distillguard.scan.base import exact_partial, exact_sum


def _cut_and_fold(x: np.ndarray, hours: np.ndarray, cuts: np.ndarray, partial: str) -> tuple[list, float]:
    """Sum ``x`` per (part, hour) with ``partial`` (part = ``cuts``: a batch of watch's stored parts), pass the
    partials through Arrow as Parquet would, merge them per hour the way ``watch._merge_sql`` does (a sum cast
    back to the stored type), then roll the hours up with ``exact_sum`` as ``account_features`` does. Returns
    the merged per-hour partials (as DOUBLE: the watch test compares ``beh_ah`` itself) and the roll-up."""
    con = duckdb.connect()
    con.execute("SET threads=4")
    con.register("_x", pa.table({"x": x, "hour": hours, "part": cuts}))
    parts = con.sql(f"SELECT part, hour, {partial} AS s FROM _x GROUP BY 1, 2").to_arrow_table()
    con.register("_p", parts)
    ty = con.execute("SELECT typeof(s) FROM _p LIMIT 1").fetchall()[0][0]
    con.execute(f"CREATE TABLE m AS SELECT hour, CAST(sum(s) AS {ty}) AS s FROM _p GROUP BY 1")
    return _hours_and_total(con)


def _hours_and_total(con) -> tuple[list, float]:
    per_hour = [float(v).hex() for (v,) in con.execute("SELECT s FROM m ORDER BY hour").fetchall()]
    return per_hour, con.execute(f"SELECT {exact_sum('s')} FROM m").fetchall()[0][0].hex()


def _one_pass(x: np.ndarray, hours: np.ndarray) -> tuple[list, float]:
    """A full scan: every row of an hour summed at once (``build_partials``), the hours rolled up."""
    con = duckdb.connect()
    con.register("_x", pa.table({"x": x, "hour": hours}))
    con.execute(f"CREATE TABLE m AS SELECT hour, {exact_partial('x')} AS s FROM _x GROUP BY 1")
    return _hours_and_total(con)


def _data(seed: int = 11, n: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random(n) * 10 ** rng.uniform(-4, 1, n), rng.integers(0, 24, n)


def test_decimal_partials_fold_to_the_one_pass_sum_for_any_cut():
    x, hours = _data()
    one_pass = _one_pass(x, hours)
    rng = np.random.default_rng(2)
    for n_parts in (1, 2, 3, 7, 64):
        cuts = rng.integers(0, n_parts, len(x))
        assert _cut_and_fold(x, hours, cuts, exact_partial("x")) == one_pass, n_parts


def test_double_partials_did_not():
    """Why the partials are DECIMAL: det15's partials (exact sums already turned into DOUBLE) folded to a value
    off in the last bits for some cut, which is what broke watch's full-vs-incremental equality."""
    x, hours = _data()
    one_pass = _one_pass(x, hours)
    rng = np.random.default_rng(2)
    double_partial = "CAST(sum(CAST(x AS DECIMAL(18, 9))) AS DOUBLE)"
    folds = [_cut_and_fold(x, hours, rng.integers(0, n, len(x)), double_partial) for n in (2, 3, 7, 64, 500)]
    assert any(per_hour != one_pass[0] for per_hour, _ in folds)
