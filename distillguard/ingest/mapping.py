"""Bring your own log format: a YAML mapping file turns any flat or nested record into exchanges.

A provider's own gateway or data warehouse rarely writes one of the formats the built-in readers
know. Rather than asking every operator to write a Python adapter, a mapping file names, for each
exchange column, where its value lives in the source record (a field name or a JSON path), how its
timestamps are written, and which columns are constants. The mapping becomes an ordinary reader, so
bad records are quarantined one at a time with the same bookkeeping as every other format.

Mapping file (every key is checked; an error names the key)::

    name: flat_gateway            # stored as source_format "map:flat_gateway"
    format: auto                  # jsonl | json | csv | parquet | auto (by file extension)
    timestamp_formats: [iso, "%d/%b/%Y:%H:%M:%S %z", unix_ms]
    csv: {delimiter: ",", encoding: utf-8}
    keep_unmapped: true           # source fields no column took go to `extra`
    fields:
      account_id: account.id                     # dotted path; [0] / [-1] index lists
      ts: {path: timestamp, formats: [unix_s]}   # per-field timestamp formats
      prompt: [body.prompt, body.messages[-1].content]   # first path with a value wins
      client_asn: {path: net.asn, default: 0}
    constants:
      endpoint: chat.completions
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from distillguard.errors import ConfigError, RecordError
from distillguard.events.schema import EXCHANGE_SCHEMA
from distillguard.ingest.normalize import parse_ts
from distillguard.ingest.registry import READERS, RecordContext

_COLUMNS = set(EXCHANGE_SCHEMA.names)
_TOP_KEYS = {"name", "format", "fields", "constants", "timestamp_formats", "csv", "keep_unmapped", "description"}
_FIELD_KEYS = {"path", "paths", "formats", "default", "split"}
_FORMATS = {"auto", "jsonl", "json", "csv", "parquet"}
_CSV_KEYS = {"delimiter", "encoding", "quotechar"}
_UNIX = {"unix_s": 1, "unix_ms": 1e3, "unix_us": 1e6, "unix_ns": 1e9}
_STEP = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


def _parse_path(text: str, where: str) -> tuple:
    """'a.b[0].c' -> ('a', 'b', 0, 'c'); a leading '$.' (JSONPath style) is accepted."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: a path must be non-empty text, got {text!r}")
    s = text.strip()
    s = s[2:] if s.startswith("$.") else s
    steps, pos = [], 0
    for m in _STEP.finditer(s):
        gap = s[pos:m.start()]
        if gap not in ("", "."):
            raise ConfigError(f"{where}: cannot read path {text!r} near {gap!r}")
        steps.append(int(m.group(2)) if m.group(2) is not None else m.group(1))
        pos = m.end()
    if s[pos:] not in ("",) or not steps:
        raise ConfigError(f"{where}: cannot read path {text!r}")
    return tuple(steps)


def resolve(obj: Any, steps: tuple) -> Any:
    """Follow a path; a step into text that holds JSON parses it (Snowflake VARIANT, CSV cells)."""
    cur = obj
    for step in steps:
        if isinstance(cur, str | bytes) and cur[:1] in ("{", "[", b"{", b"["):
            try:
                cur = orjson.loads(cur)
            except orjson.JSONDecodeError:
                return None
        if isinstance(step, int):
            if not isinstance(cur, list) or not -len(cur) <= step < len(cur):
                return None
            cur = cur[step]
        elif isinstance(cur, dict):
            if step in cur:
                cur = cur[step]
            else:  # warehouse exports often change the case of column names (Snowflake upper-cases)
                low = {str(k).lower(): v for k, v in cur.items()}
                cur = low.get(step.lower())
        else:
            return None
        if cur is None:
            return None
    return cur


def _parse_time(value: Any, formats: list[str]) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    for fmt in formats:
        try:
            if fmt in _UNIX:
                return datetime.fromtimestamp(float(value) / _UNIX[fmt], tz=UTC)
            if fmt == "iso":
                return parse_ts(str(value).replace(" UTC", "+00:00").strip())
            dt = datetime.strptime(str(value).strip(), fmt)
            return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
        except (ValueError, TypeError, OverflowError, OSError, RecordError):
            continue
    raise RecordError(f"ts: {value!r} matches none of the timestamp formats {formats}")


class MappedReader:
    """A reader built from a mapping file; ``iter_records`` lets it read CSV and Parquet as well as JSON."""

    kind = "exchanges"
    sniff_priority = 999

    def __init__(self, spec: dict, origin: str = "<mapping>"):
        self.origin = origin
        if not isinstance(spec, dict):
            raise ConfigError(f"{origin}: a mapping file must be a YAML mapping")
        unknown = set(spec) - _TOP_KEYS
        if unknown:
            raise ConfigError(f"{origin}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
        self.name = "map:" + str(spec.get("name") or Path(origin).stem)
        self.description = str(spec.get("description") or f"mapping file {origin}")
        self.format = str(spec.get("format", "auto"))
        if self.format not in _FORMATS:
            raise ConfigError(f"{origin}: format: {self.format!r} is not one of {sorted(_FORMATS)}")
        self.ts_formats = self._formats(spec.get("timestamp_formats", ["iso", "unix_s"]), "timestamp_formats")
        self.keep_unmapped = bool(spec.get("keep_unmapped", False))
        self.csv_opts = spec.get("csv") or {}
        if not isinstance(self.csv_opts, dict) or set(self.csv_opts) - _CSV_KEYS:
            raise ConfigError(f"{origin}: csv: allowed keys are {sorted(_CSV_KEYS)}")
        constants = spec.get("constants") or {}
        if not isinstance(constants, dict):
            raise ConfigError(f"{origin}: constants: expected a mapping of exchange field -> value")
        for k in constants:
            self._check_column(k, "constants")
        self.constants = dict(constants)
        fields = spec.get("fields")
        if not isinstance(fields, dict) or not fields:
            raise ConfigError(f"{origin}: fields: expected a mapping of exchange field -> source path")
        self.fields: dict[str, dict] = {}
        for col, rule in fields.items():
            self._check_column(col, "fields")
            self.fields[col] = self._rule(col, rule)
        missing = {"account_id", "ts"} - set(self.fields) - set(self.constants)
        if missing:
            raise ConfigError(f"{origin}: fields: required exchange field(s) {sorted(missing)} not mapped")
        self._used_roots = {p[0] for r in self.fields.values() for p in r["paths"]}

    def _check_column(self, col: Any, section: str) -> None:
        if col not in _COLUMNS or col in ("extra", "source_format"):
            raise ConfigError(f"{self.origin}: {section}.{col}: not an exchange field (see docs/schema.md)")

    def _formats(self, v: Any, where: str) -> list[str]:
        v = [v] if isinstance(v, str) else v
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            raise ConfigError(f"{self.origin}: {where}: expected a list of formats (iso, unix_s, unix_ms, "
                              "unix_us, unix_ns or a strptime pattern)")
        return v

    def _rule(self, col: str, rule: Any) -> dict:
        where = f"{self.origin}: fields.{col}"
        if isinstance(rule, str | list):
            rule = {"paths": rule if isinstance(rule, list) else [rule]}
        if not isinstance(rule, dict):
            raise ConfigError(f"{where}: expected a path, a list of paths or a mapping with 'path'")
        unknown = set(rule) - _FIELD_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_FIELD_KEYS)}")
        paths = rule.get("paths", [rule["path"]] if "path" in rule else [])
        if not paths and "default" not in rule:
            raise ConfigError(f"{where}: needs 'path', 'paths' or 'default'")
        out = {"paths": [_parse_path(p, where) for p in paths], "default": rule.get("default"),
               "split": rule.get("split")}
        if "formats" in rule:
            out["formats"] = self._formats(rule["formats"], f"fields.{col}.formats")
        return out

    def sniff(self, obj: Any) -> bool:
        return False  # used only when named with --map

    def to_exchanges(self, obj: Any, ctx: RecordContext) -> list[dict]:
        if not isinstance(obj, dict):
            raise RecordError(f"expected a record (object / row), got {type(obj).__name__}")
        row: dict[str, Any] = dict(self.constants)
        for col, rule in self.fields.items():
            value = next((v for v in (resolve(obj, p) for p in rule["paths"]) if v not in (None, "")), None)
            if value is None:
                value = rule["default"]
            if value is None:
                continue
            if col == "ts":
                value = _parse_time(value, rule.get("formats", self.ts_formats))
            elif rule["split"] and isinstance(value, str):
                value = [x.strip() for x in value.split(rule["split"]) if x.strip()]
            row[col] = value
        for col in ("account_id", "ts"):
            if row.get(col) in (None, ""):
                rule = self.fields.get(col)
                where = " or ".join(".".join(map(str, p)) for p in rule["paths"]) if rule else "constants"
                raise RecordError(f"{col}: no value at {where}")
        if "exchange_id" not in row:
            row["exchange_id"] = ctx.stable_id()
        if self.keep_unmapped:
            extra = {k: v for k, v in obj.items() if k not in self._used_roots and v is not None}
            if extra:
                row["extra"] = orjson.dumps(extra, default=str).decode()
        return [row]

    def file_format(self, path: Path) -> str:
        if self.format != "auto":
            return self.format
        name = path.name.lower().removesuffix(".gz")
        if name.endswith(".parquet"):
            return "parquet"
        if name.endswith((".csv", ".tsv")):
            return "csv"
        return "jsonl"

    def iter_records(self, path: Path) -> Iterator[tuple[int, bytes, Any]]:
        """(line or row number, raw bytes for quarantine, parsed record or an Exception) for every record."""
        fmt = self.file_format(path)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            n = 0
            for batch in pq.ParquetFile(path).iter_batches(batch_size=8192):
                for row in batch.to_pylist():
                    n += 1
                    yield n, orjson.dumps(row, default=str), row
            return
        opener = gzip.open if path.name.endswith(".gz") else open
        if fmt == "csv":
            enc = self.csv_opts.get("encoding", "utf-8")
            delim = self.csv_opts.get("delimiter", "\t" if path.name.lower().removesuffix(".gz").endswith(".tsv")
                                      else ",")
            with opener(path, "rb") as fh:
                text = io.TextIOWrapper(fh, encoding=enc, errors="replace", newline="")
                reader = csv.DictReader(text, delimiter=delim, quotechar=self.csv_opts.get("quotechar", '"'))
                for row in reader:
                    raw = orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS)
                    if None in row or None in row.values():  # more or fewer cells than the header
                        yield reader.line_num, raw, RecordError(
                            f"CSV row has {len(row) - (None in row)} cells where the header has "
                            f"{len(reader.fieldnames or [])}")
                        continue
                    yield reader.line_num, raw, row
            return
        with opener(path, "rb") as fh:
            if fmt == "json":
                doc = orjson.loads(fh.read())
                for i, item in enumerate(doc if isinstance(doc, list) else [doc], start=1):
                    yield i, orjson.dumps(item), item
                return
            for n, raw in enumerate(fh, start=1):
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    yield n, raw, orjson.loads(raw)
                except orjson.JSONDecodeError as e:
                    yield n, raw, RecordError(f"invalid JSON: {e}")


def load_mapping(path: str | Path) -> MappedReader:
    """Read and check a mapping file, register it as a reader and return it (its name is the --format)."""
    p = Path(path)
    try:
        spec = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read mapping file: {e.strerror}", source=str(p)) from e
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {e}", source=str(p)) from e
    reader = MappedReader(spec, origin=str(p))
    READERS[reader.name] = reader
    return reader


def ingest_records(store, path: Path, reader: MappedReader, key: str, run_state: dict, on_progress,
                   index, skip_through: int = 0):
    """The ingest loop for a mapped file: every record mapped on its own, bad ones quarantined.

    ``skip_through`` is the last line a previous run stored when the file has only grown since.
    """
    from distillguard.ingest import run
    from distillguard.ingest.sink import Quarantine, Sink

    res = run.FileResult(run._name(path), reader.name)
    quarantine = Quarantine(store, key, run._name(path))
    sink = Sink(store, key, index, run.BATCH_ROWS)  # through the id index: exactly once like every reader
    last = 0
    try:
        try:
            for n, raw, obj in reader.iter_records(path):
                last = n
                if n <= skip_through:
                    continue
                sink.lines += 1
                if isinstance(obj, Exception):
                    quarantine.records += 1
                    quarantine.add(n, str(obj), raw)
                    continue
                run._map_obj(reader, obj, RecordContext(run._name(path), n, raw, run_state), sink, quarantine)
        except (orjson.JSONDecodeError, UnicodeDecodeError, OSError, ValueError) as e:
            # A file that cannot be read as the mapping's format at all (e.g. broken Parquet): one entry says why.
            quarantine.records += 1
            quarantine.add(last + 1, f"cannot read as {reader.file_format(path)}: {type(e).__name__}: {e}",
                           b"")
        if on_progress:
            on_progress(path.stat().st_size)
        sink.flush()
        sink.wait()
    finally:
        sink.close()
        quarantine.close()
    run._counts(res, sink, quarantine)
    return res, last
