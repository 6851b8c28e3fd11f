"""Check that two scans of the same store agree: per-exchange signals and account flags.

    python bench/scan_equivalence.py BEFORE_TABLES_DIR AFTER_TABLES_DIR

Each argument is a store's ``tables`` directory (copy it aside after the first scan). Signal scores
must agree within float32 rounding, template/task keys exactly, and account_risk flags exactly;
risk values are compared too (reported, within 1e-9). Used to show a speed change changed nothing.
"""

from __future__ import annotations

import sys

import duckdb
import numpy as np


def _table(con: duckdb.DuckDBPyConnection, d: str, name: str, order: str):
    return con.sql(f"SELECT * FROM read_parquet('{d}/{name}/*.parquet') ORDER BY {order}").to_arrow_table()


def main() -> int:
    before, after = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    ok = True
    a, b = _table(con, before, "exchange_signals", "exchange_id"), _table(con, after, "exchange_signals", "exchange_id")
    if a.num_rows != b.num_rows or a["exchange_id"] != b["exchange_id"]:
        print(f"exchange_signals: rows differ ({a.num_rows:,} vs {b.num_rows:,})")
        return 1
    for col in a.column_names:
        if col.startswith("sig_"):
            x, y = a[col].to_numpy(), b[col].to_numpy()
            diff = float(np.max(np.abs(x - y))) if len(x) else 0.0
            n_diff = int(np.sum(x != y))
            good = diff <= 1e-6
            ok &= good
            print(f"{col:24s} max |diff| {diff:.2e}  rows differing {n_diff:,}  {'ok' if good else 'DIFFERENT'}")
        elif col in ("template_key", "task_item_key", "account_id", "ts"):
            same = a[col].equals(b[col])
            ok &= same
            print(f"{col:24s} {'identical' if same else 'DIFFERENT'}")
    ra, rb = _table(con, before, "account_risk", "account_id"), _table(con, after, "account_risk", "account_id")
    same_ids = ra["account_id"].equals(rb["account_id"])
    same_flags = same_ids and ra["flagged"].equals(rb["flagged"])
    risk_diff = float(np.max(np.abs(ra["risk"].to_numpy() - rb["risk"].to_numpy()))) if same_ids else float("nan")
    ok &= same_flags
    print(f"account_risk: {ra.num_rows:,} accounts, {sum(ra['flagged'].to_pylist()):,} flagged before, "
          f"{sum(rb['flagged'].to_pylist()):,} after; flags {'identical' if same_flags else 'DIFFERENT'}; "
          f"max |risk diff| {risk_diff:.2e}")
    print("EQUIVALENT" if ok else "NOT EQUIVALENT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
