"""The slim per-exchange table every aggregation stage reads.

Exchanges are wide (text, turns, responses); behaviour and coordination need ~25 narrow columns.
Projecting once into a DuckDB table (spilling to disk past the memory limit) means the stages
after it never touch prompt text and never re-decode Parquet. On a distributed engine this is
the map side: a projection + join on exchange_id, partitioned by account_id.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from distillguard.store import Store

#: Signal columns that describe *what* is asked (capabilities) rather than an extraction intent.
CAPABILITY_PREFIX = "sig_cap_"


def signal_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The sig_* columns of exchange_signals, whatever detectors the signals stage registered."""
    try:
        cols = [r[0] for r in con.execute("DESCRIBE exchange_signals").fetchall()]
    except duckdb.CatalogException:
        return []
    return sorted(c for c in cols if c.startswith("sig_"))


def intent_signals(sig_cols: list[str]) -> list[str]:
    return [c for c in sig_cols if not c.startswith(CAPABILITY_PREFIX)]


def capability_signals(sig_cols: list[str]) -> list[str]:
    return [c for c in sig_cols if c.startswith(CAPABILITY_PREFIX)]


_IP24 = """CASE
  WHEN client_ip IS NULL OR client_ip = '' THEN NULL
  WHEN strpos(client_ip, ':') > 0 THEN array_to_string(list_slice(string_split(lower(client_ip), ':'), 1, 3), ':') || '::/48'
  ELSE regexp_extract(client_ip, '^(\\d+\\.\\d+\\.\\d+)\\.', 1) || '.0/24' END"""


def exact_sum(expr: str, filt: str = "") -> str:
    """SQL for the sum of a DOUBLE ``expr`` that does not depend on the order rows are added in: each value
    rounded to 9 decimals (DECIMAL(18, 9), an integer count of 1e-9 underneath), summed exactly, then back to
    DOUBLE. ``filt``: a FILTER clause's condition.

    Why: a DOUBLE sum's last digits depend on the order it adds in, and a parallel aggregation adds in a
    different order on every run (DuckDB's threads, Spark's partitions). Those digits reached decisions: Leiden
    breaks ties between moves on them, ``keep_highest`` picks an account's cluster on them, so two scans of one
    store gave different campaign records (docs/benchmarks.md "Reproducible scans"). Integer addition is
    associative, so the sum is the same in every order; 1e-9 is far below any threshold's resolution. Values
    must stay below 1e9 in magnitude (a signal score, a weight, a per-hour sum of either); a larger one fails
    the cast loudly rather than rounding wrong."""
    f = f" FILTER (WHERE {filt})" if filt else ""
    return f"CAST(sum(CAST({expr} AS DECIMAL(18, 9))){f} AS DOUBLE)"


def exact_partial(expr: str) -> str:
    """SQL for a partial table's exact sum of a DOUBLE ``expr``, kept as DECIMAL(18, 9): a later fold adds the
    partials exactly and ``exact_sum`` turns the total into DOUBLE once, at the end.

    Why not ``exact_sum`` here: its DOUBLE result, added up again by a fold (watch merges the partials of many
    stored parts, ``watch._merge_sql``), is rounded twice, and the last digit then depends on where the parts
    were cut: ``watch``'s incremental features differed from a full scan's in the 17th digit (0.095309994 vs
    0.09530999400000001). As DECIMAL the partials of any cut add up to the same integer count of 1e-9, so the
    full and the incremental path give the same features to the bit. DECIMAL(18, 9) is a 64-bit integer
    underneath (in memory and in Parquet), as small as the DOUBLE it replaces; a per-hour sum must stay below
    1e9, as ``exact_sum``'s values must."""
    return f"CAST(sum(CAST({expr} AS DECIMAL(18, 9))) AS DECIMAL(18, 9))"


def create_as(name: str) -> str:
    """The SQL before a partial table's SELECT when it is made whole (``build_partials``' ``into``)."""
    return f"CREATE OR REPLACE TABLE {name} AS"


def temp_strings(con: duckdb.DuckDBPyConnection, name: str, columns: dict[str, list]) -> None:
    """A TEMP table ``name`` of VARCHAR ``columns`` (name -> values), made from one Arrow table. Not
    ``executemany('INSERT ..')``: DuckDB runs that as one statement per row, ~0.2 CPU-ms a row — the campaigns
    step inserted every flagged record's accounts that way three times and every campaign's once, several
    CPU-s of each `watch` tick at scale 0.1 (docs/benchmarks.md). The same rows, in the same order; the Spark
    engine answers ``register`` and ``CREATE .. AS SELECT`` as well."""
    src = f"_{name}_rows"
    con.register(src, pa.table({c: pa.array(v, pa.string()) for c, v in columns.items()}))
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {src}")
    finally:
        con.unregister(src)


def build_base(con: duckdb.DuckDBPyConnection, store: Store, where: str | None = None, temp: bool = False) -> list[str]:
    """Create table ``ex`` (one row per exchange, narrow). Returns the signal columns carried.

    ``where``: a predicate over the time column written ``{c}`` (distillguard/scan/chunks.py slices prepare by
    days); it filters the exchanges and, when the signals table carries ``ts`` (the exchange's own time), the
    signals side of the join too, so each slice reads only its days' row groups of both.

    ``temp``: a TEMP table (``prepare`` slices, whose ``ex`` lives only while its slice's partials are built): in
    a scan whose tables are a database file, a plain table would be compressed and written into that file
    and read back by every group-by over it, then dropped; a TEMP table stays in the buffer pool and spills
    only past ``memory_limit``."""
    sigs = signal_columns(con)
    has_sig_table = bool(sigs) or has_view(con, "exchange_signals")
    sig_select = ", ".join(f"s.{c} AS {c}" for c in sigs)
    tk = "s.template_key" if has_sig_table and _has_col(con, "exchange_signals", "template_key") else "CAST(NULL AS VARCHAR)"
    ti = "s.task_item_key" if has_sig_table and _has_col(con, "exchange_signals", "task_item_key") else "CAST(NULL AS VARCHAR)"
    sig_src = "exchange_signals"
    if where and has_sig_table and _has_col(con, "exchange_signals", "ts"):
        sig_src = f"(SELECT * FROM exchange_signals WHERE {where.replace('{c}', 'ts')})"
    join = f"LEFT JOIN {sig_src} s ON s.exchange_id = e.exchange_id" if has_sig_table else ""
    filt = f"WHERE {where.replace('{c}', 'e.ts')}" if where else ""
    con.execute(f"""
    CREATE OR REPLACE {'TEMP ' if temp else ''}TABLE ex AS
    SELECT e.account_id, e.ts, date_trunc('hour', e.ts) AS hour,
           e.model, coalesce(e.n_turns, 1) AS n_turns,
           (coalesce(e.reasoning_requested, false) OR e.reasoning_effort IS NOT NULL
              OR coalesce(e.thinking_budget, 0) > 0) AS reasoning,
           e.max_tokens, e.temperature,
           coalesce(e.input_tokens, 0) AS input_tokens, coalesce(e.output_tokens, 0) AS output_tokens,
           coalesce(e.has_images, false) AS has_images,
           coalesce(len(e.tools_offered), 0) > 0 AS has_tools,
           {_IP24.replace('client_ip', 'e.client_ip')} AS ip24,
           CAST(e.client_asn AS VARCHAR) AS asn,
           nullif(e.tls_ja4, '') AS ja4, nullif(e.header_order_fp, '') AS header_fp,
           CASE WHEN e.user_agent IS NULL AND e.sdk_name IS NULL THEN NULL
                ELSE coalesce(e.user_agent, '') || ' | ' || coalesce(e.sdk_name, '') || '/' || coalesce(e.sdk_version, '') END AS user_agent,
           CASE WHEN length(e.system_prompt) >= 20
                THEN substr(md5(regexp_replace(lower(e.system_prompt), '[0-9]+', '0', 'g')), 1, 16) END AS system_prompt,
           hash(e.prompt) AS prompt_h
           {', ' + sig_select if sig_select else ''},
           {tk} AS template_key, {ti} AS task_item_key
    FROM ({store.exchanges_sql()}) e {join} {filt}
    """)
    return sigs


def has_view(con, name: str) -> bool:
    # a name look-up in DuckDB's catalog: the Spark engine answers exactly this form from its own catalog
    # (distillguard/engine/spark.py ``_CATALOG``), so keep it one name, ``= ?``
    return bool(con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [name]).fetchall()[0][0]
                or con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchall()[0][0])


def _has_col(con, table: str, col: str) -> bool:
    return col in {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
