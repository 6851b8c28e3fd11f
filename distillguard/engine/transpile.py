"""DuckDB SQL → Spark SQL, so every stage's SQL is written once (in DuckDB's dialect) and runs on both engines.

sqlglot does the dialect work (``count(*) FILTER``, ``arg_max`` → ``max_by``, ``list`` → ``collect_list``,
``unnest`` → ``explode``, ``ORDER BY`` null placement, string escapes). What it leaves DuckDB-shaped, or
translates to something with a different meaning, is fixed here on the parsed tree, once for every stage:

- ``epoch(ts)`` / ``epoch(a - b)``: sqlglot emits ``unix_timestamp`` (whole seconds; undefined on an
  interval); DuckDB gives fractional seconds of a timestamp or an interval → ``unix_micros(..) / 1e6``.
- ``len(list)`` → ``size``; ``list_slice(l, a, b)`` (inclusive end) → ``slice(l, a, b - a + 1)``.
- ``range(n) r(j)`` in FROM → ``(SELECT id AS j FROM range(0, n)) r``.
- ``INTERVAL (expr) HOUR`` → ``expr * INTERVAL '1' HOUR`` (Spark takes only literal intervals).
- ``hash(..)`` (DuckDB: 64 bit) → ``xxhash64(..)`` (Spark's ``hash`` is 32 bit: distinct-prompt counts
  would collide at scale). The values differ from DuckDB's, so the order of a ring over a large entity
  and which MinHash value stands for a synchronised schedule differ too: see docs/spark.md (tolerance).
- ``quantile_cont(x, q)`` → ``percentile(x, q)`` (Spark's exact, interpolated percentile).
- ``WITH x AS MATERIALIZED`` → plain CTE (Spark plans CTEs itself).
- ``read_parquet(paths, ...)`` → a view the caller creates (``read_parquet`` hook): files are opened by the
  engine, not by SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlglot
from sqlglot import exp

#: Called with (paths, options) for each read_parquet in a statement; returns the name of a view over them.
ParquetHook = Callable[[list[str], dict[str, object]], str]

_LEN = re.compile(r"\blen\s*\(", re.IGNORECASE)


def parse_duckdb(sql: str) -> list[exp.Expression]:
    """The statements of ``sql`` in DuckDB's dialect (``len(`` is DuckDB's list length in every stage;
    strings use ``length``, so it is read as ``array_length`` to keep the two apart)."""
    return [s for s in sqlglot.parse(_LEN.sub("array_length(", sql), read="duckdb") if s is not None]


def _epoch_micros(node: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this="unix_micros", expressions=[node])


def _rewrite(node: exp.Expression, read_parquet: ParquetHook | None) -> exp.Expression:
    if isinstance(node, exp.TimeToUnix):
        arg = node.this
        if isinstance(arg, exp.Sub):
            micros = exp.Sub(this=_epoch_micros(arg.this), expression=_epoch_micros(arg.expression))
        else:
            micros = _epoch_micros(arg)
        return exp.Paren(this=exp.Div(this=exp.Paren(this=micros), expression=exp.Literal.number("1000000.0")))
    if isinstance(node, exp.Interval) and node.this is not None and not (
            isinstance(node.this, exp.Literal) and node.this.is_string):
        unit = node.args.get("unit")
        one = exp.Interval(this=exp.Literal.string("1"), unit=unit.copy() if unit else None)
        return exp.Paren(this=exp.Mul(this=exp.Paren(this=node.this.copy()), expression=one))
    if isinstance(node, exp.Anonymous) and node.name.lower() == "list_slice" and len(node.expressions) == 3:
        arr, a, b = (e.copy() for e in node.expressions)
        length = exp.Add(this=exp.Paren(this=exp.Sub(this=b, expression=a.copy())), expression=exp.Literal.number(1))
        return exp.Anonymous(this="slice", expressions=[arr, a, length])
    if isinstance(node, exp.Anonymous) and node.name.lower() == "hash":
        return exp.Anonymous(this="xxhash64", expressions=[e.copy() for e in node.expressions])
    if isinstance(node, exp.PercentileCont) and node.expression is not None:
        return exp.Anonymous(this="percentile", expressions=[node.this.copy(), node.expression.copy()])
    if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
        node.set("materialized", None)
        return node
    if isinstance(node, exp.Table) and isinstance(node.this, exp.GenerateSeries):
        gs = node.this
        alias = node.args.get("alias")
        col = alias.columns[0].name if alias is not None and alias.columns else "range"
        start, end = gs.args.get("start"), gs.args.get("end")
        if not gs.args.get("is_end_exclusive"):
            end = exp.Add(this=end.copy(), expression=exp.Literal.number(1))
        sel = exp.select(exp.alias_(exp.column("id"), col)).from_(
            exp.Table(this=exp.Anonymous(this="range", expressions=[start.copy(), end.copy()])))
        return exp.Subquery(this=sel, alias=exp.TableAlias(this=exp.to_identifier(alias.name if alias else "r")))
    if isinstance(node, exp.Table) and isinstance(node.this, exp.ReadParquet):
        if read_parquet is None:
            raise ValueError("read_parquet in a statement but no parquet hook given")
        args = node.this.expressions
        first = args[0]
        paths = [e.name for e in first.expressions] if isinstance(first, exp.Array) else [first.name]
        opts = {}
        for a in args[1:]:
            if isinstance(a, exp.EQ):
                v = a.expression
                opts[a.this.name.lower()] = (v.this if isinstance(v, exp.Boolean) else v.name)
        view = read_parquet(paths, opts)
        alias = node.args.get("alias")
        return exp.Table(this=exp.to_identifier(view), alias=alias.copy() if alias else None)
    return node


def to_spark_tree(tree: exp.Expression, read_parquet: ParquetHook | None = None) -> exp.Expression:
    """The statement's tree with the DuckDB-only constructs replaced (see the module docstring)."""
    return tree.copy().transform(lambda n: _rewrite(n, read_parquet))


def to_spark(sql: str, read_parquet: ParquetHook | None = None) -> list[str]:
    """Spark SQL text for each statement of the DuckDB SQL ``sql``."""
    return [to_spark_tree(t, read_parquet).sql(dialect="spark") for t in parse_duckdb(sql)]
