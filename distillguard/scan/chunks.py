"""``prepare`` in slices of whole days, so its temporary disk is one slice's, not the whole store's.

The partial tables (``beh_*``, ``inc_h``, ``sync_b``) are group-bys over the per-exchange projection
``ex``. Built over every exchange at once, ``ex`` and its join with ``exchange_signals`` are one
uncompressed row per exchange: at 30M exchanges that spilled 24 GiB (more than the 11 GiB store) before
the first group-by ran. Built one slice of days at a time, ``ex`` holds at most ``prepare_chunk_rows``
exchanges (a day more when one day alone is larger) and the spill is bounded by the slice, not the traffic.

A slice's ``ex`` is a TEMP table (buffer pool, uncompressed, spilling only past ``memory_limit``), and its
partials go straight into the scan's ``<table>__slices`` tables (the first slice creates them, later ones
INSERT), compressed there at the slice's CHECKPOINT. As tables of the scan's database (a file under the spill
directory, engine.py) ``ex`` and each slice's partials were compressed and written into it, read back by the
group-bys or the append, then dropped: at scale 1.0 a third of prepare's CPU. The partials as TEMP tables too
(reverted) held ~1 GB uncompressed per 2M-exchange slice in memory: peak RSS 1.3 → 2.0 GB at scale 0.1.
The tables folded are the ones ``build`` names, not a catalog listing (the Spark engine has no ``duckdb_tables()``).

Slicing on day boundaries (UTC, the connection's time zone) keeps every key that contains the hour or a
finer time (account × hour, account × minute, account × entity × hour, …) inside one slice, so those
tables are the union of the slices' rows. Keys without a time (distinct prompts, task items) are folded again
over the slices (first hour: min; count: sum), and so are sync buckets that straddle midnight (their rows at
hours 23 and 0 only). A partial
table the scan adds later must say here how it folds (``FOLDS``), or ``prepare`` refuses to slice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import duckdb

from distillguard.scan.base import create_as

#: Partial table → how the slices' rows fold into the table one pass over every exchange builds: None when its
#: key holds the hour (or a finer time), so no key is in two slices and the rows are unioned; else (which rows
#: to fold again, None: all; the fold over them). Only those rows are rewritten: a rewritten table is
#: uncompressed until the next CHECKPOINT, and ``inc_h``'s hourly rows are most of prepare's output.
FOLDS: dict[str, tuple[str | None, str] | None] = {
    "beh_ah": None,
    "beh_am": None,
    "beh_at": None,
    "beh_as": None,
    "beh_pd": (None, "SELECT account_id, prompt_h, min(hour) AS hour FROM {src} GROUP BY account_id, prompt_h"),
    # a sync bucket (at most an hour, GraphConfig.sync_bucket_minutes) is in two slices only when it straddles
    # midnight: then its rows hold hour 23 in one slice and hour 0 in the next. Only those rows are folded
    # again (~1/12 of them), not the whole table (~0.8 rows per exchange: ~25M rows at scale 1.0, grouped on
    # string keys)
    "sync_b": ("extract(hour FROM hour) IN (0, 23)",
               "SELECT account_id, template_key, bucket, min(hour) AS hour FROM {src} "
               "WHERE extract(hour FROM hour) IN (0, 23) GROUP BY account_id, template_key, bucket"),
    "inc_h": ("kind = 'task_item'",
              "SELECT account_id, kind, entity, min(hour) AS hour, CAST(sum(n) AS BIGINT) AS n FROM {src} "
              "WHERE kind = 'task_item' GROUP BY account_id, kind, entity"),
}
_ALL = "{}__slices"


def time_slices(con: duckdb.DuckDBPyConnection, exchanges_sql: str, max_rows: int) -> list[tuple[str, int]]:
    """Consecutive whole-day ranges of at most ``max_rows`` exchanges each (a single larger day is its own
    slice), as (predicate over a column named ``{c}``, rows). Exchanges without a time form a slice of
    their own. One pass over the ``ts`` column."""
    days = con.execute(f"SELECT date_trunc('day', ts) AS d, count(*) FROM ({exchanges_sql}) "
                       f"GROUP BY 1 ORDER BY d NULLS LAST").fetchall()
    out: list[tuple[str, int]] = []
    cur: list[tuple[datetime, int]] = []

    def close(hi: datetime | None) -> None:
        lo = cur[0][0]
        pred = f"{{c}} >= TIMESTAMPTZ '{lo.isoformat()}'"
        if hi is not None:
            pred += f" AND {{c}} < TIMESTAMPTZ '{hi.isoformat()}'"
        out.append((pred, sum(n for _, n in cur)))
        cur.clear()

    for d, n in days:
        if d is None:
            continue
        if cur and sum(m for _, m in cur) + n > max_rows:
            close(d)
        cur.append((d, n))
    if cur:
        close(None)  # open-ended: the last day's exchanges, whatever follows
    if out:  # the first slice open below too, so no exchange with a time falls outside every slice
        out[0] = (out[0][0].split(" AND ", 1)[1] if " AND " in out[0][0] else "true", out[0][1])
    nulls = sum(n for d, n in days if d is None)
    if nulls:
        out.append(("{c} IS NULL", nulls))
    return out


def fold_slices(con: duckdb.DuckDBPyConnection, slices: list[tuple[str, int]],
                build: Callable[[str | None, Callable[[str], str]], tuple[list[str], list[str]]],
                done: Callable[[int], None] | None = None,
                checkpoint: Callable[[], None] | None = None) -> list[str]:
    """Run ``build(predicate, into)`` once per slice, and leave the partial tables as one pass over every
    exchange would have built them. ``build`` makes the partial tables from the exchanges the predicate keeps,
    each statement starting ``into(table)``, and returns (signal columns, names of the tables). The first slice
    creates each table's ``<table>__slices``, later ones append to it. ``done(rows)`` is called after each
    slice, ``checkpoint()`` after each table's fold. Returns the signal columns.

    The tables are the ones ``build`` names, not a catalog listing: the Spark engine (distillguard/engine/spark.py)
    runs the same SQL but has no ``duckdb_tables()``, and the names the code made are what it must fold."""
    if len(slices) <= 1:
        sigs, _ = build(None, create_as)
        if done:
            done(slices[0][1] if slices else 0)
        return sigs
    sigs: list[str] = []
    made: list[str] = []
    for i, (pred, rows) in enumerate(slices):
        sigs, new = build(pred, _create_all if i == 0 else _append_all)
        unknown = [t for t in new if t not in FOLDS]
        if unknown:
            raise RuntimeError(f"prepare built partial table(s) {unknown} that distillguard/scan/chunks.py "
                               "FOLDS does not say how to fold across slices")
        if made and sorted(new) != sorted(made):
            raise RuntimeError(f"prepare built tables {sorted(new)} for a slice, {sorted(made)} for the first")
        made = made or new
        if done:
            done(rows)
    for t in made:
        fold, src = FOLDS[t], _ALL.format(t)
        if fold is None:
            con.execute(f"ALTER TABLE {src} RENAME TO {t}")
        elif fold[0] is None:
            con.execute(f"CREATE TABLE {t} AS {fold[1].format(src=src)}")
            con.execute(f"DROP TABLE {src}")
        else:
            con.execute(f"CREATE TEMP TABLE _refold AS {fold[1].format(src=src)}")
            con.execute(f"DELETE FROM {src} WHERE {fold[0]}")
            con.execute(f"INSERT INTO {src} SELECT * FROM _refold")
            con.execute("DROP TABLE _refold")
            con.execute(f"ALTER TABLE {src} RENAME TO {t}")
        if checkpoint:
            checkpoint()
    return sigs


def _create_all(table: str) -> str:
    return create_as(_ALL.format(table))


def _append_all(table: str) -> str:
    """A later slice's rows go straight into the table of all slices: written (and compressed at the slice's
    CHECKPOINT) once, never built as a table of their own, read back and dropped."""
    return f"INSERT INTO {_ALL.format(table)}"
