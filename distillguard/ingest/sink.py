"""Where mapped rows go: batched, deduplicated by exchange_id, written as parts that appear atomically.

The commit order is what makes a kill at any instant harmless:

1. drop rows whose id is already in the store (the id index) or earlier in the same batch;
2. write the remaining rows as new Parquet parts (each appears whole by rename, under a name no
   other run uses, so nothing stored is ever overwritten);
3. add their ids to the index and record the parts as indexed.

Killed before 2: nothing stored, the file is read again next run. Killed between 2 and 3: the
parts exist but are not in ``parts.log``; the next run indexes them before reading anything, so
the re-read rows are recognised as stored. Offsets are committed per file only after its last
batch (see ``run.py``), so a file is never marked done with rows missing.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
import orjson
import pyarrow as pa

from distillguard.errors import StoreError
from distillguard.events.schema import ACCOUNT_SCHEMA, EXCHANGE_SCHEMA
from distillguard.store import Store
from distillguard.store.ids import IdIndex, hash_ids


class Quarantine:
    """Lazily opened quarantine file for one source; deterministic name so a re-run overwrites it."""

    def __init__(self, store: Store, key: str, source: str):
        self.path = store.quarantine_dir() / f"{key}.jsonl"
        self.store = store
        self.source = source
        #: Quarantine entries written (an OTLP line can add several).
        self.count = 0
        #: Source lines that ended in quarantine (maintained by the loop).
        self.records = 0
        self._fh = None

    def add(self, line: int, reason: str, raw: bytes | str) -> None:
        raw_text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            if self._fh is None:
                self._fh = open(self.path, "wb")
            self._fh.write(orjson.dumps({"path": self.source, "line": line, "reason": reason,
                                         "raw": raw_text[:1_000_000]}) + b"\n")
        except OSError as e:  # the store, not the input, is at fault: stop the run with a clear error
            raise StoreError(f"cannot write the quarantine file: {e}", source=str(self.path)) from e
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        else:  # a clean re-run leaves no stale quarantine behind
            self.path.unlink(missing_ok=True)
            if self.store.fs is not None:  # nor in the bucket (the local copy may be another machine's)
                try:
                    self.store.fs.rm_file(self.store._r("quarantine", self.path.name))
                except FileNotFoundError:
                    pass


def first_occurrences(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each (hi, lo) key, in input order."""
    order = np.lexsort((lo, hi))  # stable: equal keys keep input order
    shi, slo = hi[order], lo[order]
    first = np.ones(len(hi), dtype=bool)
    first[1:] = (shi[1:] != shi[:-1]) | (slo[1:] != slo[:-1])
    mask = np.empty(len(hi), dtype=bool)
    mask[order] = first
    return mask


class Sink:
    """Collects normalized rows and commits them in bounded batches (dedup → part → index)."""

    def __init__(self, store: Store, key: str, index: IdIndex | None, batch_rows: int):
        self.store = store
        self.key = key
        self.index = index
        self.batch_rows = batch_rows
        self.rows: list[dict] = []
        self.account_rows: list[dict] = []
        self.tables: list[pa.Table] = []
        self.pending = 0
        self.seq = 0
        self.records = 0
        self.duplicates = 0
        self.accounts = 0
        self.lines = 0
        self.stored_lines = 0
        self.empty = 0
        # Part names are unique per run: with dedup, a re-run writes different rows, so reusing a
        # name could replace rows stored earlier.
        self._stamp = f"{datetime.now(UTC):%Y%m%d%H%M%S%f}"
        # One commit runs in the background while the next block is parsed (Arrow and zstd release
        # the GIL); at most one is in flight, so memory stays bounded and commits stay in order.
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: Future | None = None

    def add_row(self, row: dict) -> None:
        self.rows.append(row)
        self.pending += 1
        if self.pending >= self.batch_rows:
            self.flush()

    def add_table(self, table: pa.Table) -> None:
        self.tables.append(table)
        self.pending += table.num_rows
        if self.pending >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        # Arrow's JSON parser and from_pylist disagree on field nullability/metadata; cast both to
        # the contract so a block parsed fast and a block re-read line by line concatenate.
        parts = [t.cast(EXCHANGE_SCHEMA) for t in self.tables]
        if self.rows:
            parts.append(pa.Table.from_pylist(self.rows, schema=EXCHANGE_SCHEMA))
        if parts:
            table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
            self._submit(table, f"{self._stamp}-{self.key}-{self.seq:05d}")
            self.seq += 1
        self.rows, self.tables, self.pending = [], [], 0
        if self.account_rows:
            self.store.write_accounts(pa.Table.from_pylist(self.account_rows, schema=ACCOUNT_SCHEMA),
                                      key=f"{datetime.now(UTC):%Y%m%d%H%M%S%f}-{self.key}")
            self.accounts += len(self.account_rows)
            self.account_rows = []

    def _commit(self, table: pa.Table, key: str) -> tuple[int, int]:
        """Store the rows of ``table`` not already stored; returns (written, duplicates)."""
        if self.index is None:
            self.store.write_exchanges(table, key)
            return table.num_rows, 0
        hi, lo = hash_ids(table["exchange_id"])
        keep = first_occurrences(hi, lo)
        keep &= ~self.index.contains(hi, lo)
        n_keep = int(keep.sum())
        if n_keep < table.num_rows:
            table = table.filter(pa.array(keep))
        if n_keep:
            try:
                paths = self.store.write_exchanges(table, key)
                self.index.add(hi[keep], lo[keep])
                self.index.mark_parts(list(paths or []))
            except OSError as e:  # disk full, permissions: a store problem, not a bad input file
                raise StoreError(f"cannot write to the store: {e}", source=self.store.location) from e
        return n_keep, len(keep) - n_keep

    def _submit(self, table: pa.Table, key: str) -> None:
        self.wait()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dg-ingest-write")
        self._inflight = self._pool.submit(self._commit, table, key)

    def wait(self) -> None:
        """Block until the background commit is done; re-raises its error here."""
        if self._inflight is not None:
            fut, self._inflight = self._inflight, None
            written, dups = fut.result()
            self.records += written
            self.duplicates += dups

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
