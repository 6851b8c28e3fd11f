"""The detector results contract (docs/tables.md): read, validate and write RESULTS directories."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillguard.errors import DistillguardError

RESULTS_FILE = "accounts.parquet"
META_FILE = "meta.json"
RESULTS_SCHEMA = pa.schema([
    ("account_id", pa.string()), ("risk", pa.float64()), ("flagged", pa.bool_()),
    ("first_flagged_at", pa.timestamp("ms", tz="UTC")), ("campaign_id", pa.string()),
])
_REQUIRED = ("account_id", "risk", "flagged")


def read_results(path: str | Path) -> tuple[pa.Table, dict]:
    """Results as a table in RESULTS_SCHEMA (optional columns filled with nulls) plus meta.json, if any."""
    p = Path(path)
    f = p / RESULTS_FILE if p.is_dir() else p
    if not f.exists() and (p / "tables" / "account_risk").is_dir():
        f = p / "tables" / "account_risk"  # a store scanned in place: its account_risk table has the same columns
    if not f.exists():
        raise DistillguardError(f"no {RESULTS_FILE} in results directory (nor a store with tables/account_risk)",
                                source=str(p))
    try:
        t = pq.read_table(f)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise DistillguardError(f"cannot read results: {e}", source=str(f)) from None
    missing = [c for c in _REQUIRED if c not in t.column_names]
    if missing:
        raise DistillguardError(f"results lack required column(s) {missing}; see docs/tables.md "
                                "'Detector results contract'", source=str(f))
    cols = []
    for field in RESULTS_SCHEMA:
        if field.name in t.column_names:
            col = t[field.name]
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise DistillguardError(f"column {field.name}: expected {field.type} ({e})", source=str(f)) from None
        else:
            col = pa.nulls(t.num_rows, field.type)
        cols.append(col)
    t = pa.Table.from_arrays(cols, schema=RESULTS_SCHEMA)
    if t.num_rows and pc.any(pc.is_null(t["account_id"])).as_py():
        raise DistillguardError("results have rows with a null account_id", source=str(f))
    if t.num_rows != len(pc.unique(t["account_id"])):
        raise DistillguardError("results list an account_id more than once", source=str(f))
    risk = t["risk"]
    if t.num_rows and (pc.any(pc.less(risk, 0)).as_py() or pc.any(pc.greater(risk, 1)).as_py()):
        raise DistillguardError("risk must lie in [0, 1]", source=str(f))
    t = t.set_column(1, "risk", pc.fill_null(risk, 0.0))
    t = t.set_column(2, "flagged", pc.fill_null(t["flagged"], False))
    meta = {}
    mf = (p if p.is_dir() else p.parent) / META_FILE
    if mf.exists():
        try:
            meta = json.loads(mf.read_text())
        except json.JSONDecodeError as e:
            raise DistillguardError(f"meta.json is not JSON: {e}", source=str(mf)) from None
    return t, meta


def write_results(path: str | Path, table: pa.Table, meta: dict | None = None) -> Path:
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    cols = [table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
            for f in RESULTS_SCHEMA]
    pq.write_table(pa.Table.from_arrays(cols, schema=RESULTS_SCHEMA), p / RESULTS_FILE)
    if meta is not None:
        (p / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return p
