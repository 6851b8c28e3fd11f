"""The ingest loop: stream files, map records with a reader, quarantine what fails, store the rest once.

Guarantees, in the order operators care about them:

* Nothing valid is lost because a neighbour was bad: every failure is per record, written to
  the quarantine file with its line number, reason and raw text. A damaged compressed file keeps
  every record that decompressed; the damage itself is one quarantine entry (file and offset).
* Every exchange is stored once, by ``exchange_id``, across runs and files (``sink.py`` and the id
  index in ``store/ids.py``): a re-run, a restart after a kill, an overlapping rotation or the same
  records re-encoded store nothing new.
* A log that grew is resumed after its last complete line; a last line still being written is
  left for the next run (see ``_finish_tail``); a rewritten file is read whole.
* Memory is bounded by the batch size, not the file size: files are read in blocks of whole
  lines (native JSONL through Arrow's JSON parser, falling back to line by line for a block
  that has anything wrong with it).
* Inputs on object storage (``s3://bucket/prefix``) are copied to the scratch directory one
  object at a time, ingested from there under their URL (catalog, results and quarantine name the
  URL), and the copy deleted; the store itself may be local or on object storage.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
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
from distillguard.ingest.sink import Quarantine, Sink
from distillguard.ingest.source import Blocks, fingerprint, is_compressed, open_source, stream_error
from distillguard.store import Store, remote
from distillguard.store.ids import IdIndex

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
    #: Exchanges not written because their exchange_id is already stored (or earlier in this run).
    duplicates: int = 0
    #: Byte offset this run started from (> 0: the file grew since an earlier run and was resumed).
    resumed_from: int = 0
    #: Bytes of an unterminated last line left for the next run (the file may still be written).
    held_bytes: int = 0


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

    @property
    def duplicates(self) -> int:
        return sum(f.duplicates for f in self.files)

    def to_dict(self) -> dict:
        return {"ingested": self.records, "accounts": self.accounts, "quarantined": self.quarantined,
                "duplicates": self.duplicates,
                "files": [f.__dict__ for f in self.files]}


@dataclass(eq=False)
class RemoteInput:
    """An input object on object storage (ingested from a local copy; see ``ingest_paths``)."""

    url: str
    fs: object
    path: str
    size: int

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


#: Local copies of inputs staged from object storage -> the URL they came from, so the catalog,
#: the results and quarantine name the URL (set only while that copy is being ingested).
_staged: dict[str, str] = {}


def _name(path: Path) -> str:
    return _staged.get(str(path), str(path))


def expand_inputs(paths: list[str | os.PathLike]) -> list[Path | RemoteInput]:
    """expand_paths, plus ``s3://bucket/prefix`` (etc.): every object under the prefix with a log suffix,
    except those of a store kept under it."""
    out: list[Path | RemoteInput] = []
    local: list[str | os.PathLike] = []
    for p in paths:
        if isinstance(p, RemoteInput):
            out.extend(expand_paths(local))
            local = []
            out.append(p)
            continue
        scheme, where = remote.split_url(p)
        if scheme is None:
            local.append(where)
            continue
        out.extend(expand_paths(local))
        local = []
        url = f"{scheme}://{where}"
        fs = remote.filesystem(scheme, url)
        remote.check_access(fs, scheme, where, url)
        found = fs.find(where, detail=True)
        if not found:
            raise DistillguardError("no such object or prefix", source=url)
        stores = [k[: -len(_STORE_MARKER)] for k in found if k.endswith("/" + _STORE_MARKER)]
        keys = [k for k in sorted(found) if (k == where or k.endswith(_SUFFIXES))
                and not any(k.startswith(st) for st in stores)]
        out.extend(RemoteInput(f"{scheme}://{k}", fs, k, int(found[k].get("size") or 0)) for k in keys)
    out.extend(expand_paths(local))
    return out


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


_BOM = b"\xef\xbb\xbf"


def _clean(raw: bytes) -> bytes:
    """A line without surrounding whitespace or a UTF-8 byte-order mark (Windows exports start with one)."""
    return raw.strip().removeprefix(_BOM).strip()


def _open(path: Path):
    return open_source(path)


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
    files = expand_inputs(paths)
    # Batch request files go first so that their result files, wherever they sort, can join to them.
    # (Inputs on object storage are not read ahead: they keep their listed order after local files.)
    preamble = {p for p in files if isinstance(p, Path) and _is_preamble(p, fmt)}
    files = [p for p in files if p in preamble] + [p for p in files if p not in preamble]
    # The id index is held for the whole run: it is also the store's ingest lock (on object storage,
    # store.writer() takes the store's lock object and syncs the bookkeeping).
    with store.writer(), IdIndex(store.path, store=store) as index:
        for path in files:
            if isinstance(path, RemoteInput):
                result.files.append(_ingest_remote(store, path, fmt, run_state, on_progress, on_file, index))
            else:
                if on_file:
                    on_file(path, path.stat().st_size)
                result.files.append(_ingest_file(store, path, fmt, run_state, on_progress, path in preamble, index))
            store.push_bookkeeping()
    return result


def _ingest_remote(store: Store, item: RemoteInput, fmt: str, run_state: dict, on_progress, on_file,
                   index: IdIndex) -> FileResult:
    """Copy one object to the scratch directory, ingest the copy under the object's URL, delete the copy."""
    d = remote.scratch_root() / "inputs" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        try:
            local = remote.stage_input(item.fs, item.path, d)
        except Exception as e:  # noqa: BLE001 - vanished, denied, network: say so and go on
            quarantine = Quarantine(store, f"unreadable-{xxhash.xxh3_64_hexdigest(item.url)}", item.url)
            quarantine.add(0, f"object could not be read: {type(e).__name__}: {e}", b"")
            quarantine.close()
            return FileResult(item.url, None, skipped=f"unreadable: {type(e).__name__}", quarantined=1,
                              quarantine_file=str(quarantine.path))
        _staged[str(local)] = item.url
        if on_file:
            on_file(local, item.size)
        return _ingest_file(store, local, fmt, run_state, on_progress, False, index)
    finally:
        _staged.clear()
        shutil.rmtree(d, ignore_errors=True)


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
    except OSError:
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
            reader.to_exchanges(obj, RecordContext(_name(path), n, raw, run_state, lambda *_: None))
        except Exception:  # noqa: S112 - bad records were quarantined when the file was ingested
            pass

    if limit is None and (_first_char(path, 0) == b"[" or _needs_document_mode(path)):
        doc = _load_document(path)
        for i, item in enumerate(doc if isinstance(doc, list) else [doc], start=1):
            feed(i, orjson.dumps(item), item)
        return
    done = 0
    with _open(path) as fh:
        for n, raw in enumerate(fh, start=1):
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


def _file_key(path: Path, start_offset: int) -> str:
    """Names this file's quarantine: the same path, leading bytes and offset give the same name."""
    size = path.stat().st_size
    name = _staged.get(str(path)) or str(path.resolve())
    return f"{xxhash.xxh3_64_hexdigest((name + fingerprint(path, min(size, 1 << 16))).encode())}-{start_offset}"


def _ingest_file(store: Store, path: Path, fmt: str, run_state: dict, on_progress: Callable[[int], None] | None,
                 preamble: bool, index: IdIndex) -> FileResult:
    try:
        return _ingest_file_at(store, path, fmt, run_state, on_progress, preamble, index)
    except OSError as e:  # unreadable (permissions, vanished, I/O error): say so and go on with the next file
        quarantine = Quarantine(store, _file_key(path, 0) if path.exists() else f"unreadable-{os.getpid()}", _name(path))
        quarantine.add(0, f"file could not be read: {type(e).__name__}: {e}", b"")
        quarantine.close()
        return FileResult(_name(path), None, skipped=f"unreadable: {e}", quarantined=1,
                          quarantine_file=str(quarantine.path))


def _ingest_file_at(store: Store, path: Path, fmt: str, run_state: dict, on_progress, preamble: bool,
                    index: IdIndex) -> FileResult:
    size = path.stat().st_size
    resolved = _staged.get(str(path)) or str(path.resolve())
    whole = is_compressed(path) or path.name.endswith(".parquet")
    start_offset, start_line, final_tail = 0, 0, False
    with store.catalog() as cat:
        prev = cat.execute("""SELECT end_offset, last_line, prefix_hash, file_size, format FROM ingest_log
                              WHERE source_path = ? AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT 1""",
                           [resolved]).fetchall()
    if prev and prev[0][0] <= size and fingerprint(path, prev[0][0]) == prev[0][2]:
        end_offset, last_line, _, prev_size, prev_format = prev[0]
        if end_offset == size:
            if preamble:
                _prime(path, fmt, run_state)
            if on_progress:
                on_progress(size)
            return FileResult(_name(path), None, skipped="already ingested")
        if not whole and _first_char(path, 0) != b"[":
            # A log that grew: resume after its last complete line. Bytes left over last time
            # (an unterminated line) with the file unchanged since: that line is not being written.
            start_offset, start_line = end_offset, last_line
            final_tail = prev_size == size
            if fmt == "auto" and prev_format:  # the new bytes may be too few (or too torn) to sniff
                fmt = prev_format
            if preamble:
                _prime(path, fmt, run_state, limit=start_offset)
        # else: a compressed or one-document file that changed: read whole, ids deduplicate.
    # Otherwise new, or rewritten/rotated (prefix differs): read whole; ids deduplicate.
    key = _file_key(path, start_offset)
    started = datetime.now(UTC)
    if hasattr(all_readers().get(fmt), "iter_records"):  # a --map mapping reads its own CSV/JSON/Parquet
        from distillguard.ingest.mapping import ingest_records

        res, end_line = ingest_records(store, path, all_readers()[fmt], key, run_state, on_progress, index,
                                       start_line)
        end_offset = size
    elif path.name.endswith(".parquet"):
        res = _ingest_parquet(store, path, fmt, key, on_progress, index)
        end_line, end_offset = res.records + res.quarantined, size
    else:
        res, end_line, end_offset = _ingest_text(store, path, fmt, key, start_offset, start_line, run_state,
                                                 on_progress, index, final_tail, size)
        end_offset = size if whole else end_offset
    res.resumed_from = start_offset
    with store.catalog() as cat:
        cat.execute("""INSERT INTO ingest_log (source_path, content_key, start_offset, end_offset, prefix_hash,
                       format, records, quarantined, first_line, last_line, started_at, finished_at, file_size,
                       duplicates) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                    [resolved, key, start_offset, end_offset, fingerprint(path, end_offset), res.format,
                     res.records + res.accounts, res.quarantined, start_line + 1, end_line, started,
                     datetime.now(UTC), path.stat().st_size, res.duplicates])
    return res


def _ingest_text(store, path, fmt, key, start_offset, start_line, run_state, on_progress, index, final_tail, size):
    """Returns (result, last line number consumed, byte offset after the last consumed line)."""
    reader_name = fmt if fmt != "auto" else _sniff(path, start_offset)
    res = FileResult(_name(path), reader_name)
    quarantine = Quarantine(store, key, _name(path))
    sink = Sink(store, key, index, BATCH_ROWS)
    try:
        reader = get_reader(reader_name) if reader_name is not None else None
        if reader is not None and (_first_char(path, start_offset) == b"["
                                   or (start_offset == 0 and _needs_document_mode(path))):
            last_line = _ingest_document(path, reader, sink, quarantine, run_state)
            end_offset = path.stat().st_size
            if on_progress:
                on_progress(end_offset)
        else:
            last_line, end_offset, res.held_bytes = _ingest_lines(path, reader, reader_name, sink, quarantine,
                                                                  start_offset, start_line, run_state, on_progress,
                                                                  final_tail, size)
        sink.flush()
        sink.wait()
    finally:
        sink.close()
        quarantine.close()
    _counts(res, sink, quarantine)
    return res, last_line, end_offset


_NO_READER = "no reader recognises this record (not JSON, or an unknown log format)"


def _ingest_lines(path, reader, reader_name, sink, quarantine, start_offset, start_line, run_state, on_progress,
                  final_tail, size) -> tuple[int, int, int]:
    """Every whole line from ``start_offset`` up to ``size`` (the file's size when the run began), then the
    tail; returns (last line, end offset, held bytes). Bytes appended meanwhile are the next run's."""
    line = start_line
    opts = pajson.ParseOptions(explicit_schema=EXCHANGE_SCHEMA, unexpected_field_behavior="error",
                               newlines_in_values=False)
    with _open(path) as fh:
        if start_offset:
            fh.seek(start_offset)
        blocks = Blocks(fh, BLOCK_BYTES, start_offset, None if is_compressed(path) else max(size - start_offset, 0))
        for buf, n_bytes in blocks:
            if on_progress:
                on_progress(n_bytes)
            n_lines = buf.count(b"\n", 0, n_bytes)
            table = _fast_parse(buf, n_bytes, n_lines, opts) if reader_name == "native" else None
            if table is not None:
                sink.lines += table.num_rows
                sink.stored_lines += table.num_rows
                sink.add_table(_with_source(table, reader.name))
            else:
                raws = bytes(buf[:n_bytes]).split(b"\n")
                raws.pop()  # the block ends with a newline
                for i, raw in enumerate(raws, start=1):
                    if reader is None:
                        _quarantine_line(line + i, raw, sink, quarantine)
                    else:
                        _map_line(reader, _name(path), line + i, raw, sink, quarantine, run_state)
            line += n_lines
        held = len(blocks.tail) if blocks.cut_short else _finish_tail(
            blocks.tail, stream_error(fh), line + 1, path, reader, sink, quarantine, run_state, final_tail)
    if blocks.tail and not held:
        line += 1
    return line, blocks.offset + (len(blocks.tail) if not held else 0), held


def _quarantine_line(n: int, raw: bytes, sink: Sink, quarantine: Quarantine, reason: str = _NO_READER) -> None:
    if _clean(raw) or reason != _NO_READER:
        sink.lines += 1
        quarantine.records += 1
        quarantine.add(n, reason, raw)


def _finish_tail(tail: bytes, damage: str | None, n: int, path: Path, reader, sink: Sink, quarantine: Quarantine,
                 run_state: dict, final_tail: bool) -> int:
    """The bytes after the last newline; returns how many are held back for the next run.

    * The stream was damaged (a truncated or corrupt ``.gz``): one quarantine entry with the
      reason (file, offset) and the partial record, if any.
    * The tail is a whole JSON record (writers need not end the file with a newline): mapped.
    * Otherwise it is a line cut short. In a file that may still be growing it is held: not
      quarantined, and the next run starts at its first byte. If the file has not changed since
      the previous run left it held, or the file is compressed (complete by nature), it is quarantined.
    """
    if damage is not None:
        if _clean(tail):
            _quarantine_line(n, tail, sink, quarantine, f"{damage}; this partial last record is all that remains")
        else:
            quarantine.add(n, damage, b"")
        return 0
    if not _clean(tail):
        return 0
    try:
        orjson.loads(_clean(tail))
        complete = True
    except orjson.JSONDecodeError:
        complete = False
    if complete:
        if reader is None:
            _quarantine_line(n, tail, sink, quarantine)
        else:
            _map_line(reader, _name(path), n, tail, sink, quarantine, run_state)
        return 0
    if final_tail or is_compressed(path):
        why = ("the file has not grown since the previous run left it unfinished" if final_tail
               else "a compressed file ends mid-record")
        _quarantine_line(n, tail, sink, quarantine, f"unterminated last line ({why}): not valid JSON")
        return 0
    return len(tail)


def _counts(res: FileResult, sink: Sink, quarantine: Quarantine) -> None:
    res.records, res.accounts, res.quarantined = sink.records, sink.accounts, quarantine.count
    res.lines, res.stored_lines, res.empty = sink.lines, sink.stored_lines, sink.empty
    res.quarantined_lines = quarantine.records
    res.duplicates = sink.duplicates
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


def _map_line(reader, source: str, n: int, raw: bytes, sink: Sink, quarantine: Quarantine, run_state: dict) -> None:
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


def _map_obj(reader, obj, ctx: RecordContext, sink: Sink, quarantine: Quarantine) -> None:
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


def _ingest_document(path: Path, reader, sink: Sink, quarantine: Quarantine, run_state: dict) -> int:
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
        _map_obj(reader, item, RecordContext(_name(path), i, raw, run_state), sink, quarantine)
    return len(items)


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


def _ingest_parquet(store: Store, path: Path, fmt: str, key: str, on_progress, index: IdIndex) -> FileResult:
    pf = pq.ParquetFile(path)
    cols = set(pf.schema_arrow.names)
    is_accounts = fmt == "accounts" or (fmt == "auto" and "account_id" in cols and "ts" not in cols)
    schema = ACCOUNT_SCHEMA if is_accounts else EXCHANGE_SCHEMA
    res = FileResult(_name(path), "accounts" if is_accounts else "native")
    quarantine = Quarantine(store, key, _name(path))
    sink = Sink(store, key, index, BATCH_ROWS)
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
                    _map_obj(reader, row, RecordContext(_name(path), row0 + i + 1, orjson.dumps(row, default=str), {}),
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
