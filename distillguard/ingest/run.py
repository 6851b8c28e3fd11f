"""The ingest loop: stream files, map records with a reader, quarantine what fails, store the rest.

Guarantees, in the order operators care about them:

* Nothing valid is lost because a neighbour was bad: every failure is per record, written to
  the quarantine file with its line number, reason and raw text.
* Memory is bounded by the batch size, not the file size: files are read line by line (native
  JSONL in ~8 MB blocks through Arrow's JSON parser, falling back to line by line for a block
  that has anything wrong with it).
* Running twice adds nothing: parts are named by a hash of the source bytes, so a re-run or a
  restart after a crash rewrites the same parts; a completed file is skipped; a file that has
  only grown since it was ingested is resumed from where the last run stopped.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq
import xxhash

from distillguard.errors import DistillguardError, RecordError
from distillguard.events.schema import ACCOUNT_SCHEMA, EXCHANGE_REQUIRED, EXCHANGE_SCHEMA
from distillguard.ingest.accounts import normalize_account
from distillguard.ingest.normalize import normalize_exchange
from distillguard.ingest.registry import SNIFF_ORDER, RecordContext, all_readers, get_reader
from distillguard.store import Store

BATCH_ROWS = 50_000
BLOCK_BYTES = 32 << 20
#: Arrow parses a block in chunks of this size on its own threads.
PARSE_CHUNK_BYTES = 8 << 20
SNIFF_RECORDS = 20
_SUFFIXES = (".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz", ".ndjson.gz", ".parquet")


@dataclass
class FileResult:
    path: str
    format: str | None
    records: int = 0
    accounts: int = 0
    quarantined: int = 0
    skipped: str | None = None
    quarantine_file: str | None = None
    #: Non-blank records read; each one ends up stored (``stored_lines``), mapped to no exchange
    #: (``empty``: batch request lines, OTLP lines without GenAI spans) or quarantined (``quarantined_lines``).
    lines: int = 0
    stored_lines: int = 0
    empty: int = 0
    quarantined_lines: int = 0


@dataclass
class IngestResult:
    files: list[FileResult] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)

    @property
    def accounts(self) -> int:
        return sum(f.accounts for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    def to_dict(self) -> dict:
        return {"ingested": self.records, "accounts": self.accounts, "quarantined": self.quarantined,
                "files": [f.__dict__ for f in self.files]}


def expand_paths(paths: list[str | os.PathLike]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            # A store kept under the input directory (its quarantine is JSONL too) is not input.
            stores = [m.parent for m in p.rglob(_STORE_MARKER) if _is_store_marker(m)]
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.name.endswith(_SUFFIXES)
                              and not any(q.is_relative_to(st) for st in stores)))
        elif p.exists():
            out.append(p)
        else:
            raise DistillguardError("no such file or directory", source=str(p))
    return out


_STORE_MARKER = "store.json"


def _is_store_marker(path: Path) -> bool:
    try:
        return orjson.loads(path.read_bytes()).get("format") == "distillguard-store"
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return False


def _hash_file(path: Path, limit: int | None = None) -> str:
    h = xxhash.xxh3_128()
    remaining = limit
    with open(path, "rb") as f:
        while True:
            n = 1 << 20 if remaining is None else min(1 << 20, remaining)
            if n == 0:
                break
            chunk = f.read(n)
            if not chunk:
                break
            h.update(chunk)
            if remaining is not None:
                remaining -= len(chunk)
    return h.hexdigest()


class _Quarantine:
    """Lazily opened quarantine file for one source; deterministic name so re-runs overwrite."""

    def __init__(self, store: Store, key: str, source: str):
        self.path = store.quarantine_dir() / f"{key}.jsonl"
        self.source = source
        self.count = 0
        self.records = 0
        self._fh = None

    def add(self, line: int, reason: str, raw: bytes | str) -> None:
        if self._fh is None:
            self._fh = open(self.path, "wb")
        raw_text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        self._fh.write(orjson.dumps({"path": self.source, "line": line, "reason": reason,
                                     "raw": raw_text[:1_000_000]}) + b"\n")
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        elif self.path.exists():
            self.path.unlink()  # a clean re-run leaves no stale quarantine behind


class _Sink:
    """Collects normalized rows and writes them in bounded batches under deterministic part names."""

    def __init__(self, store: Store, key: str):
        self.store = store
        self.key = key
        self.rows: list[dict] = []
        self.account_rows: list[dict] = []
        self.tables: list[pa.Table] = []
        self.pending = 0
        self.seq = 0
        self.records = 0
        self.accounts = 0
        self.lines = 0
        self.stored_lines = 0
        self.empty = 0
        # One Parquet write runs in the background while the next block is parsed (Arrow and
        # zstd release the GIL); at most one is in flight, so memory stays bounded.
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: Future | None = None

    def add_row(self, row: dict) -> None:
        self.rows.append(row)
        self.pending += 1
        if self.pending >= BATCH_ROWS:
            self.flush()

    def add_table(self, table: pa.Table) -> None:
        self.tables.append(table)
        self.pending += table.num_rows
        if self.pending >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        parts = list(self.tables)
        if self.rows:
            parts.append(pa.Table.from_pylist(self.rows, schema=EXCHANGE_SCHEMA))
        if parts:
            table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
            self._write(table, f"{self.key}-{self.seq:05d}")
            self.records += table.num_rows
            self.seq += 1
        self.rows, self.tables, self.pending = [], [], 0
        if self.account_rows:
            self.store.write_accounts(pa.Table.from_pylist(self.account_rows, schema=ACCOUNT_SCHEMA),
                                      key=f"{datetime.now(UTC):%Y%m%d%H%M%S%f}-{self.key}")
            self.accounts += len(self.account_rows)
            self.account_rows = []


    def _write(self, table: pa.Table, key: str) -> None:
        self.wait()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dg-ingest-write")
        self._inflight = self._pool.submit(self.store.write_exchanges, table, key)

    def wait(self) -> None:
        """Block until the background write is on disk; re-raises its error here."""
        if self._inflight is not None:
            fut, self._inflight = self._inflight, None
            fut.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


_BOM = b"\xef\xbb\xbf"


def _clean(raw: bytes) -> bytes:
    """A line without surrounding whitespace or a UTF-8 byte-order mark (Windows exports start with one)."""
    return raw.strip().removeprefix(_BOM).strip()


def _iter_lines(fh, start_line: int) -> Iterator[tuple[int, bytes]]:
    n = start_line
    for raw in fh:
        n += 1
        yield n, raw


def _open(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb", buffering=1 << 20)


def _sniff(path: Path, start_offset: int) -> str | None:
    """Pick the reader most of the first records agree on."""
    readers = all_readers()
    votes: dict[str, int] = {}
    with _open(path) as fh:
        fh.seek(start_offset) if start_offset else None
        seen = 0
        for raw in fh:
            if seen >= SNIFF_RECORDS:
                break
            raw = _clean(raw)
            if not raw:
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            seen += 1
            for name in SNIFF_ORDER:
                try:
                    if readers[name].sniff(obj):
                        votes[name] = votes.get(name, 0) + 1
                        break
                except Exception:  # a reader's sniff must never stop the run
                    continue
    if not votes:
        return _sniff_document(path)
    return max(votes, key=lambda k: (votes[k], -readers[k].sniff_priority))


def _sniff_document(path: Path) -> str | None:
    """A file holding one JSON document (an array, or a pretty-printed OTLP export)."""
    obj = _load_document(path)
    if obj is None:
        return None
    readers = all_readers()
    items = obj if isinstance(obj, list) else [obj]
    for item in items[:SNIFF_RECORDS]:
        for name in SNIFF_ORDER:
            try:
                if readers[name].sniff(item):
                    return name
            except Exception:
                continue
    return None


def _load_document(path: Path, max_bytes: int = 512 << 20):
    if path.stat().st_size > max_bytes:
        return None
    with _open(path) as fh:
        data = fh.read()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def ingest_paths(store: Store, paths: list[str | os.PathLike], fmt: str = "auto",
                 on_progress: Callable[[int], None] | None = None,
                 on_file: Callable[[Path, int], None] | None = None) -> IngestResult:
    """Ingest every file under ``paths`` into ``store``; returns per-file counts."""
    result = IngestResult()
    run_state: dict = {}
    files = expand_paths(paths)
    # Batch request files go first so that their result files, wherever they sort, can join to them.
    preamble = {p for p in files if _is_preamble(p, fmt)}
    files = [p for p in files if p in preamble] + [p for p in files if p not in preamble]
    for path in files:
        if on_file:
            on_file(path, path.stat().st_size)
        result.files.append(_ingest_file(store, path, fmt, run_state, on_progress, path in preamble))
    return result


def _first_record(path: Path):
    """The first record of a JSON Lines file, or the first item of a small one-document file."""
    if path.name.endswith(".parquet"):
        return None
    try:
        with _open(path) as fh:
            for raw in fh:
                if _clean(raw):
                    try:
                        return orjson.loads(_clean(raw))
                    except orjson.JSONDecodeError:
                        break
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if path.stat().st_size > _PREAMBLE_DOC_BYTES:
        return None
    doc = _load_document(path)
    return doc[0] if isinstance(doc, list) and doc else doc


_PREAMBLE_DOC_BYTES = 16 << 20


def _is_preamble(path: Path, fmt: str) -> bool:
    obj = _first_record(path)
    if obj is None:
        return False
    readers = all_readers()
    names = [fmt] if fmt != "auto" else list(SNIFF_ORDER)
    for name in names:
        check = getattr(readers.get(name), "is_preamble", None)
        try:
            if check is not None and check(obj):
                return True
        except Exception:
            continue
    return False


def _prime(path: Path, fmt: str, run_state: dict, limit: int | None = None) -> None:
    """Re-read a batch request file that needs no storing so this run's result files can join to it."""
    name = fmt if fmt != "auto" else _sniff(path, 0)
    if name is None:
        return
    reader = get_reader(name)

    def feed(n: int, raw: bytes, obj) -> None:
        try:
            reader.to_exchanges(obj, RecordContext(str(path), n, raw, run_state, lambda *_: None))
        except Exception:  # noqa: S112 - bad records were quarantined when the file was ingested
            pass

    if limit is None and (_first_char(path, 0) == b"[" or _needs_document_mode(path)):
        doc = _load_document(path)
        for i, item in enumerate(doc if isinstance(doc, list) else [doc], start=1):
            feed(i, orjson.dumps(item), item)
        return
    done = 0
    with _open(path) as fh:
        for n, raw in _iter_lines(fh, 0):
            done += len(raw)
            if limit is not None and done > limit:
                break
            if not _clean(raw):
                continue
            try:
                obj = orjson.loads(_clean(raw))
            except orjson.JSONDecodeError:
                continue
            feed(n, _clean(raw), obj)


def _ingest_file(store: Store, path: Path, fmt: str, run_state: dict,
                 on_progress: Callable[[int], None] | None, preamble: bool = False) -> FileResult:
    size = path.stat().st_size
    content_key = _hash_file(path)
    start_offset, start_line = 0, 0
    with store.catalog() as cat:
        done = cat.execute("SELECT 1 FROM ingest_log WHERE content_key = ? AND finished_at IS NOT NULL LIMIT 1",
                           [content_key]).fetchall()
        if done:
            if preamble:
                _prime(path, fmt, run_state)
            if on_progress:
                on_progress(size)
            return FileResult(str(path), None, skipped="already ingested")
        # A log that only grew since last time: resume after the bytes already stored.
        prev = cat.execute("""SELECT end_offset, last_line, prefix_hash FROM ingest_log
                              WHERE source_path = ? AND finished_at IS NOT NULL ORDER BY end_offset DESC LIMIT 1""",
                           [str(path.resolve())]).fetchall()
    if prev and not path.name.endswith((".gz", ".parquet")):
        end_offset, last_line, prefix_hash = prev[0]
        if end_offset < size and _hash_file(path, end_offset) == prefix_hash:
            start_offset, start_line = end_offset, last_line
            if preamble:
                _prime(path, fmt, run_state, limit=start_offset)
    key = f"{content_key[:20]}-{start_offset}"
    started = datetime.now(UTC)
    if hasattr(all_readers().get(fmt), "iter_records"):  # a --map mapping reads its own CSV/JSON/Parquet
        from distillguard.ingest.mapping import ingest_records

        res, end_line = ingest_records(store, path, all_readers()[fmt], key, run_state, on_progress, start_line)
    elif path.name.endswith(".parquet"):
        res = _ingest_parquet(store, path, fmt, key, on_progress)
        end_line = res.records + res.quarantined
    else:
        res, end_line = _ingest_text(store, path, fmt, key, start_offset, start_line, run_state, on_progress)
    with store.catalog() as cat:
        cat.execute("INSERT INTO ingest_log VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    [str(path.resolve()), content_key, start_offset, size, content_key, res.format,
                     res.records + res.accounts, res.quarantined, start_line + 1, end_line, started, datetime.now(UTC)])
    return res


def _ingest_text(store, path, fmt, key, start_offset, start_line, run_state, on_progress):
    reader_name = fmt if fmt != "auto" else _sniff(path, start_offset)
    res = FileResult(str(path), reader_name)
    quarantine = _Quarantine(store, key, str(path))
    sink = _Sink(store, key)
    last_line = start_line
    try:
        reader = get_reader(reader_name) if reader_name is not None else None
        if reader is None:
            last_line = _quarantine_all(path, start_offset, start_line, sink, quarantine, on_progress)
        elif _first_char(path, start_offset) == b"[" or (start_offset == 0 and _needs_document_mode(path)):
            last_line = _ingest_document(path, reader, sink, quarantine, run_state)
            if on_progress:
                on_progress(path.stat().st_size)
        elif reader_name == "native":
            last_line = _ingest_native_blocks(path, reader, sink, quarantine, start_offset, start_line,
                                              run_state, on_progress)
        else:
            with _open(path) as fh:
                if start_offset:
                    fh.seek(start_offset)
                for n, raw in _iter_lines(fh, start_line):
                    last_line = n
                    if on_progress:
                        on_progress(len(raw))
                    _map_line(reader, str(path), n, raw, sink, quarantine, run_state)
        sink.flush()
        sink.wait()
    finally:
        sink.close()
        quarantine.close()
    _counts(res, sink, quarantine)
    return res, last_line


def _quarantine_all(path, start_offset, start_line, sink, quarantine, on_progress) -> int:
    """Nothing parseable at all: every line is quarantined so the operator sees why."""
    last_line = start_line
    with _open(path) as fh:
        if start_offset:
            fh.seek(start_offset)
        for n, raw in _iter_lines(fh, start_line):
            if _clean(raw):
                sink.lines += 1
                quarantine.records += 1
                quarantine.add(n, "no reader recognises this record (not JSON, or an unknown log format)", raw)
            last_line = n
            if on_progress:
                on_progress(len(raw))
    return last_line


def _counts(res: FileResult, sink: _Sink, quarantine: _Quarantine) -> None:
    res.records, res.accounts, res.quarantined = sink.records, sink.accounts, quarantine.count
    res.lines, res.stored_lines, res.empty = sink.lines, sink.stored_lines, sink.empty
    res.quarantined_lines = quarantine.records
    res.quarantine_file = str(quarantine.path) if quarantine.count else None


def _first_char(path: Path, offset: int) -> bytes:
    with _open(path) as fh:
        if offset:
            fh.seek(offset)
        while True:
            c = fh.read(1)
            if not c or not c.isspace():
                return c


def _needs_document_mode(path: Path) -> bool:
    """A pretty-printed single JSON object: its first line alone is not valid JSON but the file is."""
    with _open(path) as fh:
        first = fh.readline().strip()
    if not first.startswith(b"{"):
        return False
    try:
        orjson.loads(first)
        return False
    except orjson.JSONDecodeError:
        return _load_document(path) is not None


def _map_line(reader, source: str, n: int, raw: bytes, sink: _Sink, quarantine: _Quarantine, run_state: dict) -> None:
    text = _clean(raw)
    if not text:
        return
    sink.lines += 1
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        quarantine.records += 1
        quarantine.add(n, f"invalid JSON: {e}", raw)
        return
    _map_obj(reader, obj, RecordContext(source, n, text, run_state), sink, quarantine)


def _map_obj(reader, obj, ctx: RecordContext, sink: _Sink, quarantine: _Quarantine) -> None:
    before = quarantine.count
    ctx.on_reject = lambda reason, raw: quarantine.add(ctx.line, reason, raw)
    try:
        rows = reader.to_exchanges(obj, ctx)
        if not isinstance(rows, list):
            raise TypeError(f"to_exchanges returned {type(rows).__name__}, not a list")
        if getattr(reader, "kind", "exchanges") == "accounts":
            normalized = [normalize_account(r) for r in rows]
            sink.account_rows.extend(normalized)
            sink.stored_lines += 1 if rows else 0
            sink.empty += 0 if rows else 1
            return
        normalized = [normalize_exchange(r) for r in rows]
    except RecordError as e:
        quarantine.records += 1
        quarantine.add(ctx.line, e.message, ctx.raw)
        return
    except Exception as e:  # a reader bug must cost one record, not the run
        quarantine.records += 1
        quarantine.add(ctx.line, f"reader {reader.name} failed: {type(e).__name__}: {e}", ctx.raw)
        return
    if normalized:
        sink.stored_lines += 1
    elif quarantine.count > before:
        quarantine.records += 1  # every part of the record was rejected
    else:
        sink.empty += 1
    for row in normalized:
        row.setdefault("source_format", reader.name)
        if row.get("source_format") is None:
            row["source_format"] = reader.name
        sink.add_row(row)


def _ingest_document(path: Path, reader, sink: _Sink, quarantine: _Quarantine, run_state: dict) -> int:
    obj = _load_document(path)
    if obj is None:
        sink.lines += 1
        quarantine.records += 1
        quarantine.add(1, "file is neither JSON Lines nor one JSON document (or larger than 512 MB)", b"")
        return 1
    items = obj if isinstance(obj, list) else [obj]
    for i, item in enumerate(items, start=1):
        raw = orjson.dumps(item)
        sink.lines += 1
        _map_obj(reader, item, RecordContext(str(path), i, raw, run_state), sink, quarantine)
    return len(items)


def _blocks(fh):
    """Yield (buffer, length) pairs of whole lines, ~BLOCK_BYTES each, without copying the block.

    Each block is read into a fresh buffer after the previous block's partial last line, so the
    only copy is that short tail. The final block may lack a trailing newline.
    """
    carry = b""
    while True:
        buf = bytearray(len(carry) + BLOCK_BYTES)
        buf[: len(carry)] = carry
        n = fh.readinto(memoryview(buf)[len(carry):])
        if not n:
            if carry:
                yield bytearray(carry), len(carry)
            return
        end = len(carry) + n
        cut = buf.rfind(b"\n", 0, end) + 1
        if cut == 0:  # one enormous line: keep reading
            carry = bytes(buf[:end])
            continue
        carry = bytes(buf[cut:end])
        yield buf, cut


def _ingest_native_blocks(path, reader, sink, quarantine, start_offset, start_line, run_state, on_progress) -> int:
    """Native JSONL through Arrow's C++ JSON parser, a block at a time; any doubt → line by line."""
    opts = pajson.ParseOptions(explicit_schema=EXCHANGE_SCHEMA, unexpected_field_behavior="error",
                               newlines_in_values=False)
    line = start_line
    with _open(path) as fh:
        if start_offset:
            fh.seek(start_offset)
        for buf, size in _blocks(fh):
            if on_progress:
                on_progress(size)
            n_lines = buf.count(b"\n", 0, size) + (0 if buf[size - 1] == 0x0A else 1)
            table = _fast_parse(buf, size, n_lines, opts)
            if table is not None:
                sink.lines += table.num_rows
                sink.stored_lines += table.num_rows
                sink.add_table(_with_source(table, reader.name))
            else:
                raws = bytes(buf[:size]).split(b"\n")
                if raws and raws[-1] == b"":
                    raws.pop()
                for i, raw in enumerate(raws, start=1):
                    _map_line(reader, str(path), line + i, raw, sink, quarantine, run_state)
            line += n_lines
    return line


_READ_OPTS = pajson.ReadOptions(use_threads=True, block_size=PARSE_CHUNK_BYTES)


def _fast_parse(buf: bytearray, size: int, n_lines: int, opts) -> pa.Table | None:
    if buf.find(b"\r", 0, size) != -1:
        return None
    try:
        table = pajson.read_json(pa.BufferReader(pa.py_buffer(memoryview(buf)[:size])), parse_options=opts,
                                 read_options=_READ_OPTS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    # Every line must have become one row; only count non-blank lines when the quick count disagrees.
    if table.num_rows != n_lines:
        if table.num_rows != sum(1 for ln in bytes(buf[:size]).split(b"\n") if ln.strip()):
            return None
    for name in EXCHANGE_REQUIRED:
        col = table[name]
        if col.null_count:
            return None
        if pa.types.is_string(col.type) and pc.any(pc.equal(pc.utf8_trim_whitespace(col), "")).as_py():
            return None
    return table


def _with_source(table: pa.Table, name: str) -> pa.Table:
    src = table["source_format"]
    if src.null_count:
        filled = pc.fill_null(src, name)
        table = table.set_column(table.schema.get_field_index("source_format"),
                                 EXCHANGE_SCHEMA.field("source_format"), filled)
    # Derived conveniences, the same as normalize_exchange fills for row-wise readers.
    table = _fill_derived(table)
    return table


def _fill_derived(table: pa.Table) -> pa.Table:
    def setcol(t, name, values):
        return t.set_column(t.schema.get_field_index(name), EXCHANGE_SCHEMA.field(name), values)

    if table["response_chars"].null_count and table["response_text"].null_count < table.num_rows:
        table = setcol(table, "response_chars",
                       pc.coalesce(table["response_chars"], pc.cast(pc.utf8_length(table["response_text"]), pa.int32())))
    if table["reasoning_chars"].null_count and table["reasoning_text"].null_count < table.num_rows:
        table = setcol(table, "reasoning_chars",
                       pc.coalesce(table["reasoning_chars"], pc.cast(pc.utf8_length(table["reasoning_text"]), pa.int32())))
    if table["n_turns"].null_count:
        table = setcol(table, "n_turns", pc.coalesce(table["n_turns"], pc.cast(pc.list_value_length(table["turns"]), pa.int32())))
    if table["prompt"].null_count:
        # Last user turn, computed row-wise only for the rows that lack it (rare in native files).
        prompts = table["prompt"].to_pylist()
        turns = table["turns"]
        for i, p in enumerate(prompts):
            if p is None:
                ts = turns[i].as_py() or []
                users = [t["text"] for t in ts if t and t.get("role") == "user"]
                prompts[i] = users[-1] if users else None
        table = setcol(table, "prompt", pa.array(prompts, pa.string()))
    for name in ("tools_offered", "tool_calls", "action_reasons"):
        col = table[name]
        if col.null_count:
            table = setcol(table, name, pc.fill_null(col, pa.scalar([], type=col.type)))
    return table


def _ingest_parquet(store: Store, path: Path, fmt: str, key: str, on_progress) -> FileResult:
    pf = pq.ParquetFile(path)
    cols = set(pf.schema_arrow.names)
    is_accounts = fmt == "accounts" or (fmt == "auto" and "account_id" in cols and "ts" not in cols)
    schema = ACCOUNT_SCHEMA if is_accounts else EXCHANGE_SCHEMA
    res = FileResult(str(path), "accounts" if is_accounts else "native")
    quarantine = _Quarantine(store, key, str(path))
    sink = _Sink(store, key)
    row0 = 0
    reader = get_reader(res.format)
    try:
        for batch in pf.iter_batches(batch_size=BATCH_ROWS):
            # Convert row-wise only when the batch cannot be cast wholesale; errors stay per row.
            try:
                table = _cast_batch(batch, schema)
                required = ("account_id",) if is_accounts else EXCHANGE_REQUIRED
                ok = all(table[c].null_count == 0 for c in required)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, KeyError):
                ok = False
            if ok and not is_accounts:
                sink.lines += table.num_rows
                sink.stored_lines += table.num_rows
                sink.add_table(_with_source(table, "native"))
            else:
                for i, row in enumerate(batch.to_pylist()):
                    sink.lines += 1
                    _map_obj(reader, row, RecordContext(str(path), row0 + i + 1, orjson.dumps(row, default=str), {}),
                             sink, quarantine)
            row0 += batch.num_rows
            if on_progress:
                on_progress(int(path.stat().st_size * batch.num_rows / max(pf.metadata.num_rows, 1)))
        sink.flush()
        sink.wait()
    finally:
        sink.close()
        quarantine.close()
    _counts(res, sink, quarantine)
    return res


def _cast_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    arrays = []
    for f in schema:
        if f.name in batch.schema.names:
            arrays.append(batch.column(f.name).cast(f.type))
        else:
            arrays.append(pa.nulls(batch.num_rows, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)
