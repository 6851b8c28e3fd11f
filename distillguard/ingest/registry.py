"""The registry of log readers.

A reader knows one log format. It sees one parsed JSON object at a time (one line of a JSONL
file, or one element of a JSON array) and returns zero or more exchange rows as plain dicts
with schema column names. Everything else (streaming, line numbers, quarantine, batching,
idempotence) is the ingest loop's job, so a reader is a small pure mapping that is easy to test
against the format's documentation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import xxhash

from distillguard.errors import DistillguardError


@dataclass
class RecordContext:
    """What a reader may know about the record it is mapping."""

    source: str
    line: int
    raw: bytes
    #: Shared by every file of one ingest run (e.g. batch input files remembered for their output files).
    run_state: dict[str, Any] = field(default_factory=dict)
    #: Quarantines one part of a record (e.g. one span of an OTLP line) while the rest is stored.
    on_reject: Callable[[str, bytes], None] | None = None

    def reject(self, reason: str, raw: bytes | None = None) -> None:
        if self.on_reject is None:
            from distillguard.errors import RecordError

            raise RecordError(reason)
        self.on_reject(reason, self.raw if raw is None else raw)

    def stable_id(self, *parts: str) -> str:
        """A deterministic exchange id for records that carry none: same content, same id.

        Without ``parts`` the record's content is hashed in canonical form (keys sorted, no
        whitespace), so the id survives re-encoding: gzip, reordered lines, re-serialised JSON.
        """
        h = xxhash.xxh3_128()
        for p in parts:
            h.update(p.encode() if isinstance(p, str) else p)
        if not parts:
            h.update(canonical_bytes(self.raw))
        return "dg-" + h.hexdigest()[:24]


def canonical_bytes(raw: bytes) -> bytes:
    """The record as canonical JSON (sorted keys, compact); the raw bytes if they are not JSON."""
    try:
        return orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, TypeError):
        return bytes(raw)


def content_id(obj: Any) -> str:
    """``dg-`` + the 96-bit xxh3 hash of a parsed record in canonical form (sorted keys, compact JSON)."""
    return "dg-" + xxhash.xxh3_128_hexdigest(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))[:24]


class Reader(Protocol):
    name: str
    description: str

    def sniff(self, obj: Any) -> bool:
        """True when a parsed object looks like this format (used by --format auto)."""

    def to_exchanges(self, obj: Any, ctx: RecordContext) -> list[dict]:
        """Map one parsed record to exchange rows; raise RecordError to quarantine it."""


READERS: dict[str, Reader] = {}
#: Sniffing order: the more specific formats first, native last (it accepts anything with its columns).
SNIFF_ORDER: list[str] = []


def register_reader(reader_cls: type | Callable[[], Reader], *, sniff_priority: int = 50):
    """Register a reader class (used as a decorator); lower priority sniffs first."""
    reader = reader_cls()
    READERS[reader.name] = reader
    SNIFF_ORDER.append(reader.name)
    prio = getattr(reader, "sniff_priority", sniff_priority)
    reader.sniff_priority = prio
    SNIFF_ORDER.sort(key=lambda n: READERS[n].sniff_priority)
    return reader_cls


def get_reader(name: str) -> Reader:
    _load_builtin()
    if name not in READERS:
        raise DistillguardError(f"unknown format {name!r}; known: {', '.join(sorted(READERS))}")
    return READERS[name]


def _load_builtin() -> None:
    # Importing the modules registers them; kept lazy so `import distillguard.ingest` stays cheap.
    from distillguard.ingest import native  # noqa: F401

    for mod in ("openai", "anthropic", "litellm", "otel", "requeue"):
        try:
            __import__(f"distillguard.ingest.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"distillguard.ingest.{mod}":
                raise


def all_readers() -> dict[str, Reader]:
    _load_builtin()
    return READERS
