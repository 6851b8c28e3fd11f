"""The Spark engine: the stages' DuckDB SQL, transpiled, on a SparkSession; tables are temp views.

The stages talk to their engine through the few calls a DuckDB connection already offers (see
``distillguard.engine``): ``execute`` / ``sql`` a statement, ``register`` an Arrow table under a name,
fetch rows or Arrow. ``SparkEngine`` answers the same calls, so the SQL text a stage holds is the only
definition of what it computes, whichever engine runs it:

- ``CREATE [OR REPLACE] [TEMP] TABLE t AS SELECT ..`` → the SELECT as a DataFrame, materialised and checkpointed
  (lineage cut), named ``t`` as a temp view: later statements read it like DuckDB reads a table.
- ``INSERT INTO t SELECT ..`` → ``t`` becomes its old rows ∪ the new ones (positional, as in DuckDB).
- ``CREATE TEMP TABLE t(col TYPE, ..)`` + ``executemany('INSERT INTO t VALUES (?, ..)', rows)`` → a small
  driver-side table, sent to Spark as one DataFrame.
- ``CREATE VIEW``, ``DROP TABLE``, ``DESCRIBE``, DuckDB's catalog look-ups the stages make, ``SET`` (ignored).
- ``read_parquet(..)`` → ``spark.read.parquet`` over the same files (schemas merged by name).
"""

from __future__ import annotations

import glob as _glob
import os
import re
import sys
import uuid
import warnings
from typing import Any

import pyarrow as pa
from sqlglot import exp

from distillguard.engine.objectstore import RemoteParquet, is_remote, prune_columns
from distillguard.engine.transpile import parse_duckdb, to_spark_tree
from distillguard.errors import DistillguardError
from distillguard.store.sqltext import sql_literal

# DuckDB catalog look-ups the stages make ("does a view / table of this name exist"), answered from Spark's catalog
_CATALOG = re.compile(r"FROM\s+(?:duckdb_(?:views|tables)\(\)|information_schema\.tables)\s+WHERE\s+(?:view|table)_name"
                      r"\s*=\s*\?", re.IGNORECASE)


class SparkResult:
    """What ``execute`` / ``sql`` return: a lazy DataFrame with DuckDB's fetch methods."""

    def __init__(self, df=None, rows: list[tuple] | None = None, limit: int | None = None):
        self.df, self._rows, self._limit = df, rows, limit

    def to_arrow_table(self) -> pa.Table:
        if self.df is None:
            return pa.table({})
        if self._limit is not None:
            df = self.df.persist()
            n = df.count()
            if n > self._limit:  # too big for the driver: the caller keeps it distributed
                from distillguard.engine.communities import _TooLarge

                raise _TooLarge(df, n)
            out = normalise_arrow(df.toArrow())
            df.unpersist()
            return out
        return normalise_arrow(self.df.toArrow())

    arrow = to_arrow_table

    def fetchall(self) -> list[tuple]:
        if self._rows is not None:
            return self._rows
        t = self.to_arrow_table()
        cols = [c.to_pylist() for c in t.columns]
        return list(zip(*cols, strict=True)) if cols else []

    def fetchone(self) -> tuple | None:
        rows = self.fetchall()
        return rows[0] if rows else None


def normalise_arrow(t: pa.Table) -> pa.Table:
    """Spark's decimal literals (``1.0``) stay decimal through arithmetic where DuckDB's turn double: give
    the stages the float64 they get from DuckDB, and plain strings."""
    fields = []
    for f in t.schema:
        if pa.types.is_decimal(f.type):
            fields.append(pa.field(f.name, pa.float64()))
        elif pa.types.is_large_string(f.type):
            fields.append(pa.field(f.name, pa.string()))
        else:
            fields.append(f)
    schema = pa.schema(fields)
    return t if schema == t.schema else t.cast(schema)


_TYPES = {"VARCHAR": pa.string(), "TEXT": pa.string(), "STRING": pa.string(), "BIGINT": pa.int64(),
          "INT": pa.int32(), "INTEGER": pa.int32(), "DOUBLE": pa.float64(), "FLOAT": pa.float32(),
          "BOOLEAN": pa.bool_(), "TIMESTAMP": pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ": pa.timestamp("us", tz="UTC")}


class SparkEngine:
    """A DuckDB-connection-shaped front for a SparkSession (see the module docstring)."""

    def __init__(self, spark, persist: bool = True, checkpoint_dir: str | None = None):
        self.spark = spark
        self.persist = persist
        self.reliable = checkpoint_dir is not None
        if checkpoint_dir:
            spark.sparkContext.setCheckpointDir(checkpoint_dir)
        self._cached: dict[str, Any] = {}        # view name -> persisted DataFrame
        self._local: dict[str, pa.Table] = {}    # small driver-side tables (executemany)
        self._parquet: dict[tuple, str] = {}     # (paths, options) -> view name
        self._remote: dict[str, Any] = {}        # view name -> objectstore.RemoteParquet (stores on s3:// ..)
        self._pruned: dict[tuple, str] = {}      # (source view, columns) -> view of just those columns
        self.collect_limit: int | None = None    # set by engine.communities.pair_graph
        self.statements: list[tuple[str, str]] = []  # (DuckDB SQL, Spark SQL) as run: the parse test reads these

    # ---------------------------------------------------------------- connection API the stages use
    def execute(self, sql: str, params: list | tuple | None = None) -> SparkResult:
        m = _CATALOG.search(sql)
        if m:  # DuckDB catalog look-up: does a view / table of this name exist
            return SparkResult(rows=[(int(self.has_view(str(params[0]))),)])
        if params:
            parts = sql.split("?")
            if len(parts) - 1 != len(params):
                raise DistillguardError(f"spark engine: {len(params)} parameters for {len(parts) - 1} placeholders")
            sql = parts[0] + "".join(sql_literal(p) + rest for p, rest in zip(params, parts[1:], strict=True))
        out = SparkResult(rows=[])
        for tree in parse_duckdb(sql):
            out = self._run(tree, sql)
        return out

    def sql(self, sql: str) -> SparkResult:
        return self.execute(sql)

    def executemany(self, sql: str, rows) -> None:
        tree = parse_duckdb(sql)[0]
        if not isinstance(tree, exp.Insert):
            raise DistillguardError(f"spark engine: executemany supports INSERT ... VALUES only, not: {sql[:80]}")
        name = tree.this.name if isinstance(tree.this, exp.Table) else tree.this.this.name
        old = self._local.get(name)
        if old is None:
            raise DistillguardError(f"spark engine: executemany into {name!r}, which no CREATE TABLE made")
        cols = list(zip(*[tuple(r) for r in rows], strict=True)) if rows else [[] for _ in old.schema]
        new = pa.table({f.name: pa.array(list(c), f.type) for f, c in zip(old.schema, cols, strict=True)})
        self._set_local(name, pa.concat_tables([old, new]))

    def register(self, name: str, table: pa.Table) -> None:
        self._replace(name, self._from_arrow(table), persist=False)

    def unregister(self, name: str) -> None:
        self._drop(name)

    def refresh_files(self) -> None:
        """Forget the file lists behind earlier ``read_parquet`` calls (listed once per pattern): after a stage
        rewrote a table's parts, the next read lists them again instead of reading parts that are gone."""
        self._parquet.clear()

    def query_progress(self) -> float:
        return -1.0

    def close(self) -> None:
        for name in list(self._cached):
            self._drop(name)

    # ---------------------------------------------------------------- engine interface
    def has_view(self, name: str) -> bool:
        return self.spark.catalog.tableExists(name)

    def to_spark_sql(self, tree: exp.Expression) -> str:
        return self._prune(to_spark_tree(tree, self._read_parquet)).sql(dialect="spark")

    def dataframe(self, name: str, columns: list[str] | None = None):
        """View ``name`` (only ``columns`` of it, when given: on object storage only those are fetched)."""
        src = self._remote.get(name)
        if src is not None and columns is not None:
            return src.dataframe(self.spark, src.columns({c.lower() for c in columns}))
        df = self.spark.table(name)
        return df if columns is None else df.select(*columns)

    def _prune(self, tree: exp.Expression) -> exp.Expression:
        """Point each reference to a relation on object storage at a view of only the columns the statement
        can read (``objectstore.prune_columns``): the reader runs in Python, where Spark cannot prune."""
        refs = [t for t in tree.find_all(exp.Table) if t.name in self._remote and not t.args.get("db")]
        if not refs:
            return tree
        wanted = prune_columns(tree, {t.name for t in refs})
        if wanted is None:  # all columns: the full views already carry the names referenced
            return tree
        for t in refs:
            src = self._remote[t.name]
            cols = tuple(src.columns(wanted))
            key = (t.name, cols)
            if key not in self._pruned:
                view = f"_rpq_{uuid.uuid4().hex[:10]}"
                src.dataframe(self.spark, list(cols)).createOrReplaceTempView(view)
                self._pruned[key] = view
            if t.args.get("alias") is None:
                t.set("alias", exp.TableAlias(this=exp.to_identifier(t.name)))
            t.set("this", exp.to_identifier(self._pruned[key]))
        return tree

    # ---------------------------------------------------------------- statements
    def _run(self, tree: exp.Expression, src: str) -> SparkResult:
        if isinstance(tree, exp.Set) or (isinstance(tree, exp.Command) and tree.name.upper() in ("SET", "RESET")):
            return SparkResult(rows=[])
        if isinstance(tree, exp.Describe):
            df = self.spark.table(tree.find(exp.Table).name)
            return SparkResult(rows=[(f.name, f.dataType.simpleString(), "YES", None, None, None)
                                     for f in df.schema.fields])
        if isinstance(tree, exp.Drop):
            for t in tree.find_all(exp.Table):
                self._drop(t.name)
            return SparkResult(rows=[])
        if isinstance(tree, exp.Create):
            return self._create(tree)
        if isinstance(tree, exp.Insert):
            return self._insert(tree)
        q = self.to_spark_sql(tree)
        self.statements.append((tree.sql(dialect="duckdb"), q))
        return SparkResult(self.spark.sql(q), limit=self.collect_limit)

    def _create(self, tree: exp.Create) -> SparkResult:
        target = tree.this
        kind = (tree.args.get("kind") or "").upper()
        if isinstance(target, exp.Schema):  # CREATE TABLE t(col TYPE, ...): an empty driver-side table
            name = target.this.name
            fields = [pa.field(c.name, _TYPES.get(c.args["kind"].sql(dialect="duckdb").upper(), pa.string()))
                      for c in target.expressions if isinstance(c, exp.ColumnDef)]
            self._set_local(name, pa.schema(fields).empty_table())
            return SparkResult(rows=[])
        name = target.name
        body = self._prune(to_spark_tree(tree.expression, self._read_parquet))
        q = body.sql(dialect="spark")
        self.statements.append((tree.sql(dialect="duckdb"), q))
        df = self.spark.sql(q)
        self._replace(name, df, persist=kind == "TABLE" and self.persist)
        # a view that is all of a relation on object storage (the store's ``exchanges``, its tables) stays
        # prunable under its own name
        src = _plain_view_of(body, self._remote)
        if kind == "VIEW" and src is not None:
            self._remote[name] = self._remote[src]
        return SparkResult(rows=[])

    def _insert(self, tree: exp.Insert) -> SparkResult:
        name = tree.this.name
        body = tree.expression.copy()
        if tree.args.get("with") is not None and body.args.get("with") is None:
            body.set("with", tree.args["with"].copy())
        q = self.to_spark_sql(body)
        self.statements.append((tree.sql(dialect="duckdb"), q))
        new = self.spark.sql(q)
        old = self.spark.table(name)
        self._replace(name, old.union(new.toDF(*old.columns)), persist=self.persist)
        return SparkResult(rows=[])

    # ---------------------------------------------------------------- views
    def _replace(self, name: str, df, persist: bool) -> None:
        prev = self._cached.pop(name, None)
        self._remote.pop(name, None)
        for key in [k for k in self._pruned if k[0] == name]:
            self.spark.catalog.dropTempView(self._pruned.pop(key))
        if persist:
            # materialise now, as DuckDB's CREATE TABLE does, and cut the lineage: a view over a merely
            # persisted DataFrame keeps its whole plan, and every later statement re-optimised the plans of
            # all the stages before it (minutes per statement in Catalyst by the edges stage). A reliable
            # checkpoint directory (engine.spark.checkpoint_dir) survives a lost executor; a local one is faster.
            df = df.checkpoint(eager=True) if self.reliable else df.localCheckpoint(eager=True)
            self._cached[name] = df
        df.createOrReplaceTempView(name)
        if prev is not None:
            prev.unpersist()

    def _drop(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)
        self._remote.pop(name, None)
        self._local.pop(name, None)
        prev = self._cached.pop(name, None)
        if prev is not None:
            prev.unpersist()

    def _set_local(self, name: str, table: pa.Table) -> None:
        self._local[name] = table
        self._replace(name, self._from_arrow(table), persist=False)

    def _from_arrow(self, table: pa.Table):
        from pyspark.sql.types import StructType

        if table.num_rows == 0:
            from pyspark.sql.pandas.types import from_arrow_schema

            schema: StructType = from_arrow_schema(table.schema)
            return self.spark.createDataFrame([], schema)
        return self.spark.createDataFrame(table)

    def _read_parquet(self, paths: list[str], opts: dict[str, object]) -> str:
        key = (tuple(paths), tuple(sorted(opts.items())))
        if key in self._parquet:
            return self._parquet[key]
        name = f"_pq_{uuid.uuid4().hex[:10]}"
        if any(is_remote(p) for p in paths):  # a store on object storage: the executors' fsspec reader
            src = RemoteParquet.open(paths, filename=str(opts.get("filename", "false")).lower() in ("true", "1"))
            src.dataframe(self.spark).createOrReplaceTempView(name)
            self._remote[name] = src
            self._parquet[key] = name
            return name
        files: list[str] = []
        for p in paths:
            if "://" in p or not any(ch in p for ch in "*?["):
                files.append(p)
            else:
                files += sorted(_glob.glob(p, recursive=True))
        if not files:
            raise DistillguardError(f"spark engine: no Parquet files match {', '.join(paths)}")
        from pyspark.sql import functions as F

        df = self.spark.read.option("mergeSchema", "true").parquet(*files)
        if str(opts.get("filename", "false")).lower() in ("true", "1"):
            df = df.withColumn("filename", F.input_file_name())
        df.createOrReplaceTempView(name)
        self._parquet[key] = name
        return name


def _plain_view_of(body: exp.Expression, sources: dict) -> str | None:
    """``SELECT * FROM v`` (nothing else) over a relation in ``sources``: the name of that relation (after the
    read_parquet hook has named it), else None."""
    if not isinstance(body, exp.Select) or len(body.expressions) != 1 or not isinstance(body.expressions[0], exp.Star):
        return None
    if any(body.args.get(k) for k in ("joins", "where", "group", "having", "qualify", "order", "limit", "with",
                                       "with_")):
        return None
    frm = body.args.get("from_") or body.args.get("from")
    t = frm.this if frm is not None else None
    return t.name if isinstance(t, exp.Table) and t.name in sources else None


def spark_session(master: str | None = None, app: str = "distillguard-scan", conf: dict[str, str] | None = None):
    """A SparkSession for the scan (``master`` e.g. ``local[2]``, ``spark://host:7077``, ``yarn``); on a
    cluster launched by spark-submit the existing session is reused. Fails with the extra to install
    when pyspark is missing, and with Spark's own message when Java is."""
    try:
        from pyspark.sql import SparkSession
    except ModuleNotFoundError as e:
        raise DistillguardError("--engine spark needs pyspark: pip install 'distillguard[spark]' "
                                "(and Java 17 or newer on the PATH)") from e
    b = SparkSession.builder.appName(app)
    if master:
        b = b.master(master)
    base = {"spark.sql.session.timeZone": "UTC", "spark.sql.ansi.enabled": "false",
            "spark.sql.execution.arrow.pyspark.enabled": "true", "spark.ui.showConsoleProgress": "false"}
    for k, v in {**base, **(conf or {})}.items():
        b = b.config(k, str(v))
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    # PySpark 4 warns on every pandas 3 import check (twice a scan, on stderr); the engine hands Arrow, not
    # pandas, to Spark, so the warning says nothing about this scan
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    # Python workers (signals' mapInArrow) run this interpreter unless told otherwise: the one with distillguard
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


__all__ = ["SparkEngine", "SparkResult", "spark_session", "normalise_arrow"]
