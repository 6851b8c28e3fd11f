"""A store directory: the one place every stage reads exchanges from and writes its tables to.

Layout::

    STORE/store.json                       format marker + schema version
    STORE/catalog.duckdb                   ingest bookkeeping (which source bytes are already in)
    STORE/exchanges/day=YYYY-MM-DD/*.parquet
    STORE/accounts/*.parquet               later files override earlier ones per account_id
    STORE/tables/<name>/*.parquet          derived tables (signals, features, clusters, campaigns, ...)
    STORE/quarantine/*.jsonl               records a reader could not accept, with line and reason
    STORE/ids/                             index of stored exchange ids (exactly-once ingest; see ids.py)

Queries run on a fresh in-memory DuckDB connection over the Parquet globs, so any number of
readers (scan, console, gateway) can work while an ingest is writing: a Parquet part becomes
visible only when it is renamed into place complete. Only the catalog file takes a lock, and
only for the instant an ingest records itself.

A store can also live on object storage (``s3://bucket/prefix``, ``gs://``, ``abfs://``): the same
layout under the URL, read and written through an fsspec filesystem, with the bookkeeping
(catalog, ids) in a local working directory (``Store.path``) synced around each ingest; see
remote.py. A local path works exactly as before: every remote branch is behind ``self.fs``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillguard.errors import StoreError
from distillguard.events.schema import ACCOUNT_SCHEMA, EXCHANGE_SCHEMA, SCHEMA_VERSION
from distillguard.store import remote
from distillguard.store.sqltext import sql_string

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_MARKER = "store.json"


def open_store(path: str | os.PathLike, create: bool = False) -> Store:
    return Store(path, create=create)


def _atomic_write_parquet(table: pa.Table, dest: Path, compression: str = "zstd") -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(table, tmp, compression=compression, row_group_size=128 * 1024)
    os.replace(tmp, dest)


class Store:
    """A handle on a store directory. Cheap to create; holds no open files between calls."""

    #: (directory, byte limit) every connection of this handle spills to; the scan sets it for its run
    #: (see distillguard/scan/resources.py). None: DuckDB's default.
    spill: tuple[Path, int] | None = None

    #: The fsspec filesystem of a store on object storage; None for a local directory.
    fs = None
    #: "bucket/prefix" of a store on object storage (paths on ``fs``); None locally.
    root: str | None = None

    def __init__(self, path: str | os.PathLike, create: bool = False):
        scheme, where = remote.split_url(path)
        self._session = False
        self._pushed = 0.0
        if scheme is not None:
            self._open_remote(scheme, where, create)
            return
        self.path = Path(where)
        self.location = str(self.path)
        marker = self.path / _MARKER
        if not marker.exists():
            if not create:
                raise StoreError("not a distillguard store (no store.json); create one with `distillguard ingest`",
                                 source=str(self.path))
            self.path.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps(_new_marker()))
        else:
            _check_marker(marker.read_text(), str(marker))
        for sub in ("exchanges", "accounts", "tables", "quarantine"):
            (self.path / sub).mkdir(exist_ok=True)

    def _open_remote(self, scheme: str, root: str, create: bool) -> None:
        self.url = f"{scheme}://{root}"
        self.location = self.url
        self.fs = remote.filesystem(scheme, self.url)
        self.root = root
        proto = self.fs.protocol
        self._proto = proto if isinstance(proto, str) else (scheme if scheme in proto else proto[0])
        remote.check_access(self.fs, scheme, root, self.url)
        marker = self._r(_MARKER)
        try:
            text = self.fs.cat_file(marker).decode()
        except FileNotFoundError:
            if not create:
                raise StoreError("not a distillguard store (no store.json); create one with `distillguard ingest`",
                                 source=self.url) from None
            with self.fs.open(marker, "wb") as fh:
                fh.write(json.dumps(_new_marker()).encode())
        else:
            _check_marker(text, f"{self.url}/{_MARKER}")
        # Bookkeeping that needs a real file system (catalog, id index, spill, checkpoints) lives here.
        self.path = remote.working_dir(self.url)
        (self.path / "quarantine").mkdir(exist_ok=True)

    def __repr__(self) -> str:
        return f"Store({self.location!r})"

    # ------------------------------------------------------------------ locations
    def _r(self, *parts: str) -> str:
        """A path on the object store's filesystem."""
        return "/".join([self.root or "", *parts])

    def _duck(self, *parts: str) -> str:
        """A path DuckDB reads: a local path, or a URL on the filesystem registered on each connection."""
        if self.fs is None:
            return str(self.path.joinpath(*parts))
        return f"{self._proto}://{self._r(*parts)}"

    def _duck_file(self, f: str | os.PathLike) -> str:
        return str(f) if self.fs is None else f"{self._proto}://{f}"

    def file_infos(self, pattern: str) -> list[tuple[str | Path, str, int, int]]:
        """(location, path relative to the store, size, mtime in ns) of the files matching ``pattern``
        (a glob relative to the store, e.g. ``exchanges/**/*.parquet``), sorted by location."""
        if self.fs is None:
            out = []
            for p in sorted(self.path.glob(pattern), key=str):
                st = p.stat()
                out.append((p, str(p.relative_to(self.path)), st.st_size, st.st_mtime_ns))
            return out
        found = self.fs.glob(self._r(pattern), detail=True)
        n = len(self.root or "") + 1
        return [(k, k[n:], int(v.get("size") or 0), _mtime_ns(v)) for k, v in sorted(found.items())
                if v.get("type", "file") == "file"]

    def _ls(self, pattern: str) -> list:
        if self.fs is None:
            return sorted(self.path.glob(pattern), key=str)
        return sorted(self.fs.glob(self._r(pattern)))

    def parquet_file(self, f: str | os.PathLike) -> pq.ParquetFile:
        """A Parquet part of this store, opened for its metadata or row groups."""
        if self.fs is None:
            return pq.ParquetFile(f)
        return pq.ParquetFile(self.fs.open(str(f), "rb"))

    def read_parquet(self, f: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
        if self.fs is None:
            return pq.read_table(f, columns=columns)
        with self.fs.open(str(f), "rb") as fh:
            return pq.read_table(fh, columns=columns)

    def _write_parquet(self, table: pa.Table, *parts: str) -> str | Path:
        if self.fs is None:
            dest = self.path.joinpath(*parts)
            _atomic_write_parquet(table, dest)
            return dest
        dest = self._r(*parts)
        # one PUT when the object closes: readers see the whole part or none of it
        with self.fs.open(dest, "wb") as fh:
            pq.write_table(table, fh, compression="zstd", row_group_size=128 * 1024)
        return dest

    # ------------------------------------------------------------------ writing
    def write_exchanges(self, table: pa.Table, key: str) -> list[Path | str]:
        """Write exchanges as one part per day under a deterministic name.

        ``key`` names the parts; writing the same rows again under the same key replaces them
        instead of adding duplicates, which is what makes ingest and crash recovery idempotent.
        """
        if table.num_rows == 0:
            return []
        table = table.select(EXCHANGE_SCHEMA.names).cast(EXCHANGE_SCHEMA)
        days = pc.strftime(table["ts"], format="%Y-%m-%d")
        written = []
        uniq = pc.unique(days).to_pylist()
        for day in sorted(uniq):
            part = table if len(uniq) == 1 else table.filter(pc.equal(days, day))
            written.append(self._write_parquet(part, "exchanges", f"day={day}", f"{key}.parquet"))
        return written

    def write_accounts(self, table: pa.Table, key: str | None = None) -> Path | str:
        """Add account rows; a later write wins for the same account_id."""
        table = table.select(ACCOUNT_SCHEMA.names).cast(ACCOUNT_SCHEMA)
        key = key or f"{time.time_ns():020d}"
        return self._write_parquet(table, "accounts", f"{key}.parquet")

    @contextmanager
    def new_table(self, name: str) -> Iterator[Path]:
        """A directory to write table ``name``'s Parquet parts into (several processes may write parts
        concurrently); it replaces the table atomically when the block ends without an error."""
        if not _NAME_RE.match(name):
            raise StoreError(f"bad table name {name!r}: use lower_snake_case")
        if self.fs is not None:
            with self._new_remote_table(name) as tmp:
                yield tmp
            return
        final = self.path / "tables" / name
        tmp = self.path / "tables" / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.mkdir(parents=True)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = None
        if final.exists():
            old = final.with_name(f".{name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    @contextmanager
    def _new_remote_table(self, name: str) -> Iterator[Path]:
        """Parts are written to a local directory, then uploaded under the same names as the parts they
        replace (a PUT replaces an object atomically, so a one-part table swaps whole), then parts the
        new table no longer has are deleted. A reader listing the table between the last two steps of
        a many-part rewrite can see parts of both versions (docs/configuration.md)."""
        tmp = self.path / "staging" / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.mkdir(parents=True)
        try:
            yield tmp
            new = sorted(p for p in tmp.iterdir() if p.is_file())
            for p in new:
                self.fs.put_file(str(p), self._r("tables", name, p.name))
            keep = {p.name for p in new}
            old = [f for f in self.fs.glob(self._r("tables", name, "*")) if f.rsplit("/", 1)[-1] not in keep]
            if old:
                self.fs.rm(old)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def write_table(self, name: str, data: pa.Table | Iterable[pa.RecordBatch],
                    schema: pa.Schema | None = None) -> Path | str:
        """Replace derived table ``name`` atomically (readers see the old or the new, never half)."""
        with self.new_table(name) as tmp:
            if isinstance(data, pa.Table):
                pq.write_table(data, tmp / "part-00000.parquet", compression="zstd")
            else:
                writer = None
                for batch in data:
                    if writer is None:
                        writer = pq.ParquetWriter(tmp / "part-00000.parquet", schema or batch.schema, compression="zstd")
                    writer.write_batch(batch)
                if writer is None:
                    if schema is None:
                        raise StoreError(f"table {name!r}: no batches and no schema given")
                    pq.write_table(schema.empty_table(), tmp / "part-00000.parquet")
                else:
                    writer.close()
        return self.path / "tables" / name if self.fs is None else self._r("tables", name)

    def append_table(self, name: str, table: pa.Table, key: str | None = None) -> Path | str:
        """Add rows to derived table ``name`` without rewriting it (audit logs, labels, verdicts)."""
        if not _NAME_RE.match(name):
            raise StoreError(f"bad table name {name!r}: use lower_snake_case")
        key = key or f"{time.time_ns():020d}-{uuid.uuid4().hex[:6]}"
        return self._write_parquet(table, "tables", name, f"part-{key}.parquet")

    # ------------------------------------------------------------------ reading
    def _glob(self, sub: str) -> str:
        return self._duck(sub, "**", "*.parquet")

    def has_exchanges(self) -> bool:
        if self.fs is None:
            return any((self.path / "exchanges").glob("day=*/*.parquet"))
        return bool(self._ls("exchanges/day=*/*.parquet"))

    def exchange_files(self) -> list[Path | str]:
        """The exchange Parquet parts in the order the exchanges view reads them (by path)."""
        return self._ls("exchanges/**/*.parquet")

    def has_table(self, name: str) -> bool:
        if self.fs is None:
            return any((self.path / "tables" / name).glob("*.parquet"))
        return bool(self._ls(f"tables/{name}/*.parquet"))

    def tables(self) -> list[str]:
        if self.fs is None:
            return sorted(p.name for p in (self.path / "tables").iterdir()
                          if p.is_dir() and not p.name.startswith("."))
        try:
            entries = self.fs.ls(self._r("tables"), detail=True)
        except FileNotFoundError:
            return []
        names = (e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "directory")
        return sorted(n for n in names if not n.startswith("."))

    def tables_with_parts(self) -> list[str]:
        """The derived tables that have at least one part (on object storage: one listing, not one per table)."""
        if self.fs is None:
            return [t for t in self.tables() if self.has_table(t)]
        n = len(self._r("tables")) + 1
        names = set()
        for f in self.fs.find(self._r("tables")):
            rel = f[n:].split("/")
            if len(rel) == 2 and rel[1].endswith(".parquet") and not rel[0].startswith(".") and _NAME_RE.match(rel[0]):
                names.add(rel[0])
        return sorted(names)

    def duck(self) -> duckdb.DuckDBPyConnection:
        """A bare in-memory DuckDB connection that can read this store's files (no views)."""
        con = duckdb.connect(":memory:")
        if self.fs is not None:
            con.register_filesystem(self.fs)
        return con

    def connect(self, threads: int | None = None, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with views ``exchanges``, ``accounts`` and every derived table."""
        con = self.duck()
        if self.spill is not None:
            # each connection its own subdirectory: DuckDB names its spill files the same in every database
            root, limit = self.spill
            root.mkdir(parents=True, exist_ok=True)
            con.execute(f"SET temp_directory={sql_string(str(root / uuid.uuid4().hex[:12]))}")
            con.execute(f"SET max_temp_directory_size='{max(limit // 2**20, 1)}MiB'")
        if threads:
            con.execute(f"SET threads={int(threads)}")
        if memory_limit:
            con.execute(f"SET memory_limit={sql_string(memory_limit)}")
        con.execute("SET TimeZone='UTC'")
        self.register_views(con)
        return con

    def register_views(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(f"CREATE OR REPLACE VIEW exchanges AS {self.exchanges_sql()}")
        con.execute(f"CREATE OR REPLACE VIEW accounts AS {self.accounts_sql()}")
        for name in self.tables_with_parts():
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet("
                        f"{sql_string(self._duck('tables', name, '*.parquet'))}, union_by_name=true)")

    def exchanges_sql(self, columns: Iterable[str] | None = None, files: list[Path | str] | None = None) -> str:
        """SQL for the exchanges (all of them, or only those in ``files``, a subset of exchange_files())."""
        cols = ", ".join(columns) if columns else "*"
        if files is not None:
            return self._exchange_files_sql(list(columns) if columns else None, files)
        if not self.has_exchanges():
            # An empty relation with the right columns keeps every downstream query valid.
            return f"SELECT {cols} FROM ({_empty_select(EXCHANGE_SCHEMA)})"
        return (f"SELECT {cols} FROM read_parquet({sql_string(self._glob('exchanges'))}, "
                f"union_by_name=true, hive_partitioning=false)")

    def _exchange_files_sql(self, columns: list[str] | None, files: list[Path | str]) -> str:
        # A column of the contract that none of these parts has (written before the column existed)
        # is read as typed NULLs, as the union over all parts would read it.
        have: set[str] = set()
        for f in files:
            if self.fs is None:
                have.update(pq.read_schema(f).names)
            else:
                with self.fs.open(str(f), "rb") as fh:
                    have.update(pq.read_schema(fh).names)
        cols = columns or [c for c in EXCHANGE_SCHEMA.names if c in have] + sorted(have - set(EXCHANGE_SCHEMA.names))
        sel = ", ".join(c if c in have or c not in EXCHANGE_SCHEMA.names
                        else f"CAST(NULL AS {_duck_type(EXCHANGE_SCHEMA.field(c).type)}) AS {c}" for c in cols)
        if not files:
            return f"SELECT {sel} FROM ({_empty_select(EXCHANGE_SCHEMA)})"
        paths = ", ".join(sql_string(self._duck_file(f)) for f in files)
        return f"SELECT {sel} FROM read_parquet([{paths}], union_by_name=true, hive_partitioning=false)"

    def accounts_sql(self) -> str:
        files = self._ls("accounts/*.parquet")
        if not files:
            return _empty_select(ACCOUNT_SCHEMA)
        names = ", ".join(ACCOUNT_SCHEMA.names)
        # Later files win: file names sort by write time.
        return (f"SELECT {names} FROM (SELECT *, row_number() OVER (PARTITION BY account_id ORDER BY filename DESC) AS _rn "
                f"FROM read_parquet({sql_string(self._duck('accounts', '*.parquet'))}, union_by_name=true, filename=true)) "
                f"WHERE _rn = 1")

    def exchanges(self, con: duckdb.DuckDBPyConnection | None = None, columns: Iterable[str] | None = None,
                  where: str | None = None, files: list[Path | str] | None = None) -> duckdb.DuckDBPyRelation:
        """The one way every stage reads exchanges, whatever reader produced them."""
        con = con or self.connect()
        sql = self.exchanges_sql(columns, files)
        if where:
            sql = f"SELECT * FROM ({sql}) WHERE {where}"
        return con.sql(sql)

    def exchange_batches(self, columns: Iterable[str] | None = None, where: str | None = None,
                         batch_size: int = 65536, files: list[Path | str] | None = None,
                         threads: int | None = None) -> Iterator[pa.RecordBatch]:
        """Exchanges as Arrow record batches in bounded memory, for per-exchange (map) stages.

        ``files`` (from exchange_files()) reads one partition: map stages split the store by part so
        each worker reads its own exchanges instead of receiving them through a pipe."""
        con = self.connect(threads=threads)
        rel = self.exchanges(con, columns=columns, where=where, files=files)
        reader = rel.to_arrow_reader(batch_size)
        yield from reader

    def accounts(self, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyRelation:
        con = con or self.connect()
        return con.sql(self.accounts_sql())

    def read_table(self, name: str) -> pa.Table:
        if not self.has_table(name):
            raise StoreError(f"table {name!r} not in store; run the stage that writes it", source=self.location)
        con = self.duck()
        return con.sql(f"SELECT * FROM read_parquet({sql_string(self._duck('tables', name, '*.parquet'))}, "
                       f"union_by_name=true)").to_arrow_table()

    # ------------------------------------------------------------------ catalog
    @contextmanager
    def catalog(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The catalog, opened only for the moment it is needed (DuckDB files take a process lock).

        On object storage: the working directory's copy, fetched first unless this process is the
        ingest holding the store's lock (which fetched it when it took the lock)."""
        if self.fs is not None and not self._session:
            self._pull_catalog()
        path = str(self.path / "catalog.duckdb")
        con = None
        for attempt in range(50):
            try:
                con = duckdb.connect(path)
                break
            except duckdb.IOException:
                if attempt == 49:
                    raise
                time.sleep(0.1)
        assert con is not None
        try:
            con.execute("""CREATE TABLE IF NOT EXISTS ingest_log (
                source_path VARCHAR, content_key VARCHAR, start_offset BIGINT, end_offset BIGINT,
                prefix_hash VARCHAR, format VARCHAR, records BIGINT, quarantined BIGINT,
                first_line BIGINT, last_line BIGINT, started_at TIMESTAMP, finished_at TIMESTAMP)""")
            # Added for exactly-once ingest: the file's size when the run ended (a last line left
            # unfinished in a file that has not grown since is not being written) and duplicates skipped.
            con.execute("ALTER TABLE ingest_log ADD COLUMN IF NOT EXISTS file_size BIGINT")
            con.execute("ALTER TABLE ingest_log ADD COLUMN IF NOT EXISTS duplicates BIGINT")
            yield con
        finally:
            con.close()

    def quarantine_dir(self) -> Path:
        """Where ingest writes quarantine files (on object storage: locally, uploaded by push_bookkeeping)."""
        return self.path / "quarantine"

    # ------------------------------------------------------------------ object storage bookkeeping
    @contextmanager
    def writer(self) -> Iterator[None]:
        """Held by an ingest for its whole run. Locally a no-op (the id index's flock is the lock); on
        object storage: take the store's lock object, copy the catalog and id index here, and copy them
        back when the run ends (and after each file: see push_bookkeeping)."""
        if self.fs is None:
            yield
            return
        with remote.RemoteLock(self.fs, self._r(remote.LOCK_NAME), self.url):
            self._pull_catalog()
            self._pull_ids()
            self._session = True
            self._pushed = time.monotonic()
            try:
                yield
            finally:
                self._session = False
                self.push_bookkeeping(force=True)

    def _pull_catalog(self) -> None:
        local = self.path / "catalog.duckdb"
        tmp = self.path / f".catalog.{uuid.uuid4().hex[:8]}.tmp"
        try:
            self.fs.get_file(self._r("catalog.duckdb"), str(tmp))
        except FileNotFoundError:
            local.unlink(missing_ok=True)  # a copy of a store that no longer has one is stale
            return
        os.replace(tmp, local)
        (self.path / "catalog.duckdb.wal").unlink(missing_ok=True)

    def _pull_ids(self) -> None:
        d = self.path / "ids"
        d.mkdir(exist_ok=True)
        for p in d.iterdir():
            if p.name != ".lock":
                p.unlink()
        for f in self.fs.glob(self._r("ids", "*")):
            self.fs.get_file(f, str(d / f.rsplit("/", 1)[-1]))

    def push_bookkeeping(self, force: bool = False) -> None:
        """Copy the catalog, the id index and quarantine files to the object store: when the ingest ends,
        and between files at most every ``remote.push_interval()`` seconds. The id index is derived
        (rebuilt from the parts when lost), so a crash before a push costs time, not correctness: the
        next ingest re-reads what the lost catalog rows covered and stores none of it twice."""
        if self.fs is None:
            return
        now = time.monotonic()
        if not force and now - self._pushed < remote.push_interval():
            return
        self._pushed = now
        cat = self.path / "catalog.duckdb"
        if cat.exists():
            self.fs.put_file(str(cat), self._r("catalog.duckdb"))
        d = self.path / "ids"
        if d.is_dir():
            have = {f.rsplit("/", 1)[-1] for f in self.fs.glob(self._r("ids", "*"))}
            local = {p.name for p in d.iterdir() if p.name.startswith("run-")}
            for name in sorted(local - have):  # runs are immutable: new names only
                self.fs.put_file(str(d / name), self._r("ids", name))
            if (d / "parts.log").exists():
                self.fs.put_file(str(d / "parts.log"), self._r("ids", "parts.log"))
            gone = [self._r("ids", n) for n in sorted(have - local) if n.startswith("run-")]
            if gone:  # merged away locally
                self.fs.rm(gone)
        for p in sorted((self.path / "quarantine").glob("*.jsonl")):
            self.fs.put_file(str(p), self._r("quarantine", p.name))


def _new_marker() -> dict:
    return {"format": "distillguard-store", "schema_version": SCHEMA_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _check_marker(text: str, source: str) -> None:
    meta = json.loads(text)
    if meta.get("format") != "distillguard-store":
        raise StoreError("store.json does not describe a distillguard store", source=source)
    if int(meta.get("schema_version", "0")) > int(SCHEMA_VERSION):
        raise StoreError(f"store written by a newer schema version {meta.get('schema_version')} "
                         f"(this distillguard reads up to {SCHEMA_VERSION})", source=source)


def _mtime_ns(info: dict) -> int:
    """An object's modification time in ns from an fsspec info dict (each backend names it differently)."""
    for k in ("LastModified", "mtime", "last_modified", "updated", "created"):
        v = info.get(k)
        if v is None:
            continue
        if hasattr(v, "timestamp"):
            return int(v.timestamp() * 1e9)
        if isinstance(v, int | float):
            return int(v * 1e9)
        try:
            from datetime import datetime

            return int(datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp() * 1e9)
        except ValueError:
            continue
    return 0


def _empty_select(schema: pa.Schema) -> str:
    cols = ", ".join(f"CAST(NULL AS {_duck_type(f.type)}) AS {f.name}" for f in schema)
    return f"SELECT {cols} WHERE false"


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_string(t):
        return "VARCHAR"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_list(t):
        return _duck_type(t.value_type) + "[]"
    if pa.types.is_struct(t):
        return "STRUCT(" + ", ".join(f"{f.name} {_duck_type(f.type)}" for f in t) + ")"
    raise TypeError(f"no DuckDB type for {t}")
