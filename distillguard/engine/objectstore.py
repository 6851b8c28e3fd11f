"""Spark over a store on object storage (``s3://``, ``gs://``, ``abfs://``): Parquet read and written by the
executors through the same fsspec / pyarrow layer as the rest of distillguard, not Hadoop's connectors.

Why not ``s3a://``: Spark's own Parquet reader reaches S3 through hadoop-aws and the AWS SDK bundle, jars that
PySpark does not ship and that come from Maven, not from PyPI. A cluster that has them (EMR, Databricks,
Dataproc's gcs connector) could read the store natively, but that path cannot be installed or tested from
distillguard's own dependencies. The fsspec route needs only ``distillguard[cloud]`` on the executors (they
need distillguard for the signals stage already), reads credentials and ``AWS_ENDPOINT_URL`` from the same
environment as ``ingest`` and the DuckDB scan, and is tested against the moto server.

How: the driver lists the objects and merges their footers' schemas (``union_by_name``, as DuckDB reads the
store); a DataFrame of object paths, one Spark partition per few objects, goes through ``mapInArrow``, where
each task opens its objects with pyarrow and yields Arrow batches of the columns asked for. Spark cannot push a
projection into a Python function, so the engine asks for the columns itself (``SparkEngine`` passes the
column names a statement mentions; ``prune_columns``): the exchange text (``response_text``, ``turns``,
``reasoning_text``: ~80% of the exchange bytes) is never fetched by the prepare stage.

Writing (the signals stage): each task writes its part straight to a staging prefix in the bucket and returns
its path; the driver then copies the parts of the successful attempts into the table (server-side copies) and
deletes the parts the new version no longer has — the same replacement protocol as ``Store.new_table`` on
object storage (docs/object-storage.md).
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from distillguard.errors import DistillguardError
from distillguard.store import remote

#: Rows per Arrow batch handed from an executor's reader to Spark.
BATCH_ROWS = 65536
#: Spark partitions per core for the object list (each reads its objects one after another).
PARTITIONS_PER_CORE = 4
#: Footers fetched at once on the driver when merging the objects' schemas.
FOOTER_THREADS = 16


def is_remote(path: str) -> bool:
    return remote.split_url(path)[0] is not None


def spark_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type Spark holds a column as (microsecond UTC timestamps, plain strings, signed ints)."""
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC") if t.tz else pa.timestamp("us")
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_dictionary(t):
        return spark_type(t.value_type)
    if pa.types.is_unsigned_integer(t):
        return {8: pa.int16(), 16: pa.int32(), 32: pa.int64(), 64: pa.int64()}[t.bit_width]
    if pa.types.is_large_list(t) or pa.types.is_list(t) or pa.types.is_list_view(t):
        return pa.list_(spark_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, spark_type(f.type), f.nullable) for f in t])
    if pa.types.is_map(t):
        return pa.map_(spark_type(t.key_type), spark_type(t.item_type))
    return t


@dataclass
class RemoteParquet:
    """Parquet objects on object storage, as one relation with the merged schema of their footers."""

    protocol: str           # fsspec protocol ("s3", "gcs", "abfs")
    files: list[str]        # "bucket/key" paths, sorted
    schema: pa.Schema       # merged, in Spark's types, plus ``filename`` when asked for
    filename: bool

    @classmethod
    def open(cls, paths: list[str], filename: bool = False) -> RemoteParquet:
        scheme, _ = remote.split_url(paths[0])
        fs = remote.filesystem(scheme, paths[0])
        files: list[str] = []
        for p in paths:
            s, where = remote.split_url(p)
            if s is None or remote.SCHEMES[s][1] != remote.SCHEMES[scheme][1]:
                raise DistillguardError(f"spark engine: one read_parquet over two filesystems ({paths[0]}, {p})")
            files += fs.glob(where) if any(ch in where for ch in "*?[") else [where]
        files = sorted(set(files))
        if not files:
            raise DistillguardError(f"spark engine: no Parquet objects match {', '.join(paths)}")

        def footer(f: str) -> pa.Schema:
            with fs.open(f, "rb") as fh:
                return pq.read_schema(fh)

        with ThreadPoolExecutor(min(FOOTER_THREADS, len(files))) as pool:
            schemas = list(pool.map(footer, files))
        merged = pa.unify_schemas(schemas, promote_options="permissive")
        fields = [pa.field(f.name, spark_type(f.type), True) for f in merged]
        if filename:
            fields.append(pa.field("filename", pa.string(), True))
        proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        return cls(proto, files, pa.schema(fields), filename)

    def columns(self, wanted: set[str] | None) -> list[str]:
        """The relation's columns among ``wanted`` (lower-cased names; None: all), in schema order."""
        return [n for n in self.schema.names if wanted is None or n.lower() in wanted]

    def dataframe(self, spark, columns: list[str] | None = None):
        """A lazy DataFrame of ``columns`` (default all) read by the executors."""
        from pyspark.sql.pandas.types import from_arrow_schema

        cols = self.schema.names if columns is None else columns
        if not cols:  # count(*) and the like: one cheap column keeps the row count
            cols = [self.schema.names[0]]
        out = pa.schema([self.schema.field(c) for c in cols])
        sc = spark.sparkContext
        n = max(1, min(len(self.files), max(1, sc.defaultParallelism) * PARTITIONS_PER_CORE))
        paths = spark.createDataFrame(sc.parallelize([(f,) for f in self.files], n), "path string")
        return paths.mapInArrow(_reader(self.protocol, out), from_arrow_schema(out))


def _reader(protocol: str, schema: pa.Schema):
    """The executor side: open each object, read the asked columns it has, conform to ``schema``."""

    def run(batches):
        import fsspec

        fs = fsspec.filesystem(protocol, use_listings_cache=False)
        for b in batches:
            for path in b.column(0).to_pylist():
                with fs.open(path, "rb") as fh:
                    pf = pq.ParquetFile(fh, pre_buffer=True)
                    have = set(pf.schema_arrow.names)
                    cols = [n for n in schema.names if n in have]
                    for rb in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols):
                        yield conform(rb, schema, f"{protocol}://{path}")

    return run


def conform(rb: pa.RecordBatch, schema: pa.Schema, filename: str) -> pa.RecordBatch:
    """One object's batch in the relation's schema: missing columns as typed nulls (union_by_name)."""
    arrays = []
    for f in schema:
        if f.name == "filename" and f.name not in rb.schema.names:
            arrays.append(pa.array([filename] * rb.num_rows, pa.string()))
        elif f.name in rb.schema.names:
            a = rb.column(f.name)
            arrays.append(a if a.type == f.type else a.cast(f.type))
        else:
            arrays.append(pa.nulls(rb.num_rows, f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def prune_columns(tree: exp.Expression, sources: set[str]) -> set[str] | None:
    """The lower-cased names a statement could read from the relations named in ``sources``, or None when it
    may need all their columns.

    Every identifier in the statement is a candidate (a superset: aliases and function names cost nothing). A
    ``*`` that could pass a relation's columns on unnamed makes the answer None, except the one shape the stages
    use: ``(SELECT * [, more] FROM source) alias`` as a subquery whose consumer names what it reads (prepare's
    projection of the exchanges)."""
    for star in tree.find_all(exp.Star):
        parent = star.parent
        if isinstance(parent, exp.Func):
            continue  # count(*): no column read
        if not isinstance(parent, exp.Select) or star.arg_key != "expressions":
            return None
        frm = _from(parent)
        if parent.args.get("joins") or frm is None or not isinstance(frm.this, exp.Table):
            return None
        sub = parent.parent
        if frm.this.name not in sources or not isinstance(sub, exp.Subquery) or \
                not isinstance(sub.parent, exp.From | exp.Join):
            return None  # its output is the statement's, a union's or a CTE's: every column may be used
    return {i.name.lower() for i in tree.find_all(exp.Identifier)}


def _from(sel: exp.Expression):
    """A SELECT's FROM clause (``from_`` in recent sqlglot, ``from`` before)."""
    return sel.args.get("from_") or sel.args.get("from")


def write_parts(df, store, name: str) -> int:
    """Replace derived table ``name`` of a store on object storage with ``df``'s rows: each task writes one
    part to ``staging/`` in the bucket, the driver copies the parts of the attempts that succeeded into the
    table and deletes the rest. Returns the rows written."""
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    fs = store.fs
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    run = uuid.uuid4().hex[:12]
    staging = store._r("staging", f"{name}-{run}")
    schema = to_arrow_schema(df.schema, timezone="UTC")  # the session's time zone (spark.sql.session.timeZone)
    written = pa.schema([("path", pa.string()), ("rows", pa.int64())])

    def task(batches):
        import fsspec

        out_fs = fsspec.filesystem(proto, use_listings_cache=False)
        path = f"{staging}/part-{uuid.uuid4().hex}.parquet"
        n = 0
        with out_fs.open(path, "wb") as fh, pq.ParquetWriter(fh, schema, compression="zstd") as w:
            for b in batches:
                if b.num_rows:
                    w.write_batch(b.cast(schema) if b.schema != schema else b)
                    n += b.num_rows
        yield pa.RecordBatch.from_pydict({"path": [path], "rows": [n]}, schema=written)

    parts = [(r["path"], r["rows"]) for r in df.mapInArrow(task, from_arrow_schema(written)).collect()]
    if not parts:  # no partitions at all: an empty table with the schema, as a local write leaves
        store.write_table(name, schema.empty_table())
        return 0
    try:
        keep = []
        # empty partitions write empty parts: keep one only when every part is empty (the schema survives)
        for path, _rows in [p for p in parts if p[1]] or parts[:1]:
            dest = store._r("tables", name, path.rsplit("/", 1)[-1])
            fs.copy(path, dest)
            keep.append(dest.rsplit("/", 1)[-1])
        old = [f for f in fs.glob(store._r("tables", name, "*")) if f.rsplit("/", 1)[-1] not in set(keep)]
        if old:
            fs.rm(old)
    finally:
        if fs.exists(staging):
            fs.rm(staging, recursive=True)
    return sum(r for _, r in parts)


__all__ = ["RemoteParquet", "conform", "is_remote", "prune_columns", "spark_type", "write_parts"]
