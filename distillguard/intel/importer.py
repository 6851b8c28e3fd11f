"""A partner's bundle → rows of ``intel_indicators`` that ``match`` can join against local traffic.

The bundle is checked for size, encoding and unknown extensions (``vet.read_bundle``), parsed
with ``stix2`` in strict mode (only STIX 2.1 types and the registered distillguard types), so a
malformed or tampered bundle is refused whole rather than half-stored; then each indicator is
vetted (``vet.vet_rows``) and stored under the configured partner that delivered it.
Indicators are keyed by partner and STIX id; re-importing the same bundle, or a newer version of
it, replaces rows instead of adding duplicates (the newest ``modified`` wins).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa

from distillguard.errors import DistillguardError
from distillguard.intel.config import ImportLimits, IntelConfig, Partner
from distillguard.intel.export import validate_bundle_text
from distillguard.intel.stixobjects import EXT_INDICATOR, TLP_BY_ID, parse_pattern
from distillguard.intel.vet import BundleRefused, collapse_repeats, read_bundle, vet_rows
from distillguard.store import Store

_TS = pa.timestamp("ms", tz="UTC")

INDICATOR_SCHEMA = pa.schema([
    ("indicator_id", pa.string()), ("modified", _TS), ("source", pa.string()), ("source_identity", pa.string()),
    ("kind", pa.string()), ("value_form", pa.string()), ("value", pa.string()), ("key_id", pa.string()),
    ("confidence", pa.int32()), ("valid_from", _TS), ("valid_until", _TS), ("campaign_refs", pa.list_(pa.string())),
    ("campaign_names", pa.list_(pa.string())), ("tlp", pa.string()), ("pattern", pa.string()),
    ("params", pa.string()), ("labels", pa.list_(pa.string())), ("revoked", pa.bool_()), ("imported_at", _TS),
    ("bundle_id", pa.string()), ("claimed_by", pa.string()),
])


@dataclass
class ImportReport:
    bundle_id: str = ""
    indicators: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    unsupported: int = 0
    total_stored: int = 0
    #: The configured partner the bundle came from (what its indicators are stored under).
    source: str | None = None
    trust: float | None = None
    #: The identity name the bundle gives itself: shown, never trusted.
    claimed_by: str | None = None
    rejected: list[dict] = field(default_factory=list)
    duplicates: int = 0

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _ts(v) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(v).replace("Z", "+00:00"))


def indicator_rows(bundle, source: str, now: datetime | None = None) -> list[dict]:
    """Rows for ``intel_indicators`` from a parsed bundle (or a list of parsed objects).

    ``source`` is the configured partner that delivered the bundle; the bundle's own ``created_by_ref``
    identity is kept as ``claimed_by`` for the analyst, because anyone can write any name there.
    """
    now = now or datetime.now(UTC)
    objs = list(getattr(bundle, "objects", None) or bundle or [])
    by_id = {o.id: o for o in objs if hasattr(o, "id")}
    indicates: dict[str, list[str]] = {}
    for o in objs:
        if o.type == "relationship" and o.relationship_type == "indicates":
            indicates.setdefault(o.source_ref, []).append(o.target_ref)
    rows = []
    for o in objs:
        if o.type != "indicator":
            continue
        ext = dict((o.get("extensions") or {}).get(EXT_INDICATOR) or {})
        ext.pop("extension_type", None)
        parsed = parse_pattern(o.pattern, ext) if o.pattern_type == "stix" else parse_pattern("")
        creator = by_id.get(o.get("created_by_ref"))
        camps = indicates.get(o.id, [])
        marks = [TLP_BY_ID.get(m) for m in (o.get("object_marking_refs") or [])]
        params = {k: v for k, v in ext.items() if k in ("template_scheme", "num_perm", "seed", "shingle_size",
                                                        "n_shingles", "keyed", "support_accounts",
                                                        "benign_accounts", "benign_share")}
        rows.append({
            "indicator_id": o.id, "modified": _ts(o.modified),
            "source": source, "claimed_by": getattr(creator, "name", None),
            "source_identity": o.get("created_by_ref"), "kind": parsed.kind, "value_form": parsed.value_form,
            "value": parsed.value, "key_id": ext.get("key_id"),
            "confidence": int(o.get("confidence")) if o.get("confidence") is not None else 50,
            "valid_from": _ts(o.valid_from), "valid_until": _ts(o.get("valid_until")),
            "campaign_refs": camps,
            "campaign_names": [by_id[c].name for c in camps if c in by_id and hasattr(by_id[c], "name")],
            "tlp": next((m for m in marks if m), None), "pattern": o.pattern,
            "params": json.dumps(params, sort_keys=True), "labels": list(o.get("labels") or []),
            "revoked": bool(o.get("revoked", False)), "imported_at": now, "bundle_id": getattr(bundle, "id", None),
        })
    return rows


def store_indicators(store: Store, rows: list[dict]) -> int:
    """Merge rows into ``intel_indicators``: one row per (partner, indicator id), the newest version wins.

    Keyed by partner too: otherwise one partner could replace another's indicator by reusing its id
    with a later ``modified``."""
    new = pa.Table.from_pylist(rows, schema=INDICATOR_SCHEMA)
    if store.has_table("intel_indicators"):
        old = store.read_table("intel_indicators")
        old = old.select([n for n in INDICATOR_SCHEMA.names if n in old.column_names])
        for f in INDICATOR_SCHEMA:
            if f.name not in old.column_names:
                old = old.append_column(f, pa.nulls(old.num_rows, f.type))
        old = old.select(INDICATOR_SCHEMA.names).cast(INDICATOR_SCHEMA)
        import duckdb

        con = duckdb.connect(":memory:")
        con.register("t", pa.concat_tables([old, new]))
        merged = con.sql("""SELECT * EXCLUDE (_rn) FROM (SELECT *, row_number() OVER (PARTITION BY source, indicator_id
                            ORDER BY modified DESC, imported_at DESC) AS _rn FROM t) WHERE _rn = 1
                            ORDER BY indicator_id""").to_arrow_table().cast(INDICATOR_SCHEMA)
    else:
        merged = new
    store.write_table("intel_indicators", merged)
    return merged.num_rows


def _read_source(src: str | bytes | Path, limits: ImportLimits) -> tuple[bytes, str]:
    """Bytes of a bundle file (read no further than the size limit) or of bundle text, and a name for errors."""
    if isinstance(src, bytes):
        return src, "bundle"
    if isinstance(src, str) and src.lstrip().startswith("{"):
        return src.encode("utf-8", "surrogatepass"), "bundle"
    p = Path(src)
    if not p.is_file():
        raise DistillguardError("bundle file not found", source=str(p))
    size = p.stat().st_size
    if size > limits.max_bundle_bytes:
        raise BundleRefused(f"bundle is {size:,} bytes, over the limit of {limits.max_bundle_bytes:,} "
                            "(intel.limits.max_bundle_bytes)", source=str(p))
    try:
        with p.open("rb") as f:
            data = f.read(limits.max_bundle_bytes + 1)  # a file growing meanwhile is still read only this far
    except OSError as e:
        raise DistillguardError(f"cannot read the bundle: {e.strerror}", source=str(p)) from None
    return data, str(p)


def import_bundle(src: str | bytes | Path, store: Store, partner: str | Partner,
                  config: IntelConfig | None = None) -> ImportReport:
    """Validate a bundle from ``partner`` (a name configured in ``config.partners``, or a ``Partner``) and store
    its acceptable indicators under that partner; rejected indicators are reported with their reasons."""
    cfg = config or IntelConfig()
    who = partner if isinstance(partner, Partner) else cfg.partner(partner)
    data, where = _read_source(src, cfg.limits)
    doc = read_bundle(data, cfg.limits, where)
    repeats = collapse_repeats(doc)
    bundle = validate_bundle_text(orjson.dumps(doc).decode() if repeats else data.decode("utf-8"))
    rows = indicator_rows(bundle, source=who.name)
    vetted = vet_rows(rows, cfg.limits)
    rows = vetted.kept
    claimed = next((r["claimed_by"] for r in rows if r["claimed_by"]), None)
    rep = ImportReport(bundle_id=bundle.id, indicators=len(rows), source=who.name, trust=who.trust,
                       claimed_by=claimed, rejected=vetted.rejected, duplicates=repeats + vetted.duplicates)
    for r in rows:
        rep.by_kind[r["kind"]] = rep.by_kind.get(r["kind"], 0) + 1
    rep.unsupported = rep.by_kind.get("unsupported", 0)
    if rows:
        rep.total_stored = store_indicators(store, rows)
    elif store.has_table("intel_indicators"):
        rep.total_stored = store.read_table("intel_indicators").num_rows
    return rep
