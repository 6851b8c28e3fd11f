"""Execution engines for the detection stages: DuckDB (embedded, default) and Spark (``scan --engine spark``).

The engine interface is the handful of calls every stage already makes on its connection, so a stage's SQL
text is its one definition and the engine behind it can change:

- ``execute(sql, params=None)`` / ``sql(sql)`` → a relation with ``fetchall()`` and ``to_arrow_table()``;
  ``CREATE TABLE t AS ..`` names a stage's output ``t`` for the next stage (the schemas in docs/tables.md
  are the contracts between them);
- ``register(name, arrow_table)`` / ``unregister(name)``: driver-side data (suspicion, membership) as a relation;
- ``executemany('INSERT INTO t VALUES (?, ..)', rows)`` into a ``CREATE TABLE t(col TYPE, ..)``.

A DuckDB connection is the DuckDB engine as it is (no wrapper: the embedded path's speed and results do not
move); ``SparkEngine`` (``distillguard.engine.spark``) answers the same calls by transpiling the DuckDB SQL
with sqlglot (``distillguard.engine.transpile``) and running it on a SparkSession over temp views of the same
names. Parts that are Python over collected Arrow (dense blocks, Leiden, cluster scoring, campaigns) run on
the driver for both; communities switch to a distributed algorithm beyond a configured pair count
(``distillguard.engine.communities``). docs/spark.md has the design, limits and the cluster plan.
"""

from __future__ import annotations

ENGINES = ("duckdb", "spark")

__all__ = ["ENGINES"]
