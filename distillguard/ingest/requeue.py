"""Re-ingest a quarantine file once the cause is fixed (a missing batch input file, a reader bug).

Each quarantine line keeps the original path, line number and raw text, so the record can be
mapped again exactly as if it came from its original file: same reader (sniffed from the raw
record), same source path (batch ids come from file names), same raw bytes (so derived ids do
not change and nothing is stored twice under two names).
"""

from __future__ import annotations

from typing import Any

import orjson

from distillguard.errors import RecordError
from distillguard.ingest.registry import READERS, SNIFF_ORDER, RecordContext, register_reader

_KEYS = frozenset({"path", "line", "reason", "raw"})


@register_reader
class QuarantineReader:
    name = "quarantine"
    description = "distillguard quarantine files ({path, line, reason, raw}): re-map each record with its own reader"
    kind = "exchanges"
    sniff_priority = 5

    def sniff(self, obj: Any) -> bool:
        return isinstance(obj, dict) and obj.keys() == _KEYS and isinstance(obj.get("raw"), str)

    def to_exchanges(self, obj: Any, ctx: RecordContext) -> list[dict]:
        if not self.sniff(obj):
            raise RecordError("not a quarantine record: expected {path, line, reason, raw}")
        raw = obj["raw"].strip().encode()
        try:
            inner = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise RecordError(f"still not JSON: {e}") from e
        for name in SNIFF_ORDER:
            reader = READERS[name]
            if name == self.name or getattr(reader, "kind", "exchanges") != "exchanges":
                continue
            try:
                if not reader.sniff(inner):
                    continue
            except Exception:  # noqa: S112 - a sniff never decides the run
                continue
            line = obj["line"] if isinstance(obj["line"], int) else ctx.line
            sub = RecordContext(str(obj["path"]), line, raw, ctx.run_state, ctx.on_reject)
            rows = reader.to_exchanges(inner, sub)
            for r in rows:
                r.setdefault("source_format", name)
                r["source_format"] = r["source_format"] or name
            return rows
        raise RecordError(f"still no reader recognises this record (first quarantined because: {obj['reason']})")
