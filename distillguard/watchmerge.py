"""How `watch` merges the partials of a window's batches into the tables ``prepare`` builds (``watch.load_partials``):
grouped again only where two batches' rows can hold the same key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path


def _merge_sql(con, t: str, src: str, shared: list[tuple[float, float]] | None = None,
               hour_buckets: bool = False) -> str:
    """Partials of many parts → the table ``prepare`` would have built over all of them at once, to the bit: the
    float sums are stored as DECIMAL (``scan.base.exact_partial``), so summing the parts' partials here is exact
    and each is cast back to its stored type; a DOUBLE partial would be rounded once per part and once here.

    ``shared``: the hours two or more of the parts' traffic spans share (``_shared_hours``: ranges of hour
    starts, epoch seconds; empty when none do), None when the spans are not known. A key holding the hour
    (or a finer time) in no shared hour is in one part only, so those rows are the union of the parts' rows, as
    ``prepare``'s day slices are (distillguard/scan/chunks.py); only the rows of the shared hours, and keys
    without a time (distinct prompts, task items), are grouped again. A tick's batches follow time, so they
    share at most the hour each tick cut through; grouping every row of a week's partials again (as when one
    shared hour made the whole merge group, which at scale 0.1 was every tick: the replay's ticks cut the
    first second of each day) was most of the merge. ``hour_buckets``: sync buckets never straddle an hour
    (their length divides 60 minutes), so ``sync_b`` is keyed by time too."""
    cols = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    types = {c: ty for c, ty, *_ in cols}

    def agg(fn: str, c: str) -> str:
        return f"CAST({fn}({c}) AS {types[c]}) AS {c}"

    keys = {"beh_pm": ["account_id", "minute"], "beh_ah": ["account_id", "hour"],
            "beh_am": ["account_id", "model", "hour"], "beh_pd": ["account_id", "prompt_h"],
            "beh_at": ["account_id", "template_key", "hour"], "sync_b": ["account_id", "template_key", "bucket"],
            "beh_as": ["account_id", "entity", "hour"]}
    in_s = None if shared is None else _in_hours("minute" if t == "beh_pm" else "hour", shared)
    if t == "inc_h":
        timed = (f"SELECT account_id, kind, entity, hour, {agg('sum', 'n')} FROM {src} "
                 f"WHERE kind <> 'task_item' GROUP BY account_id, kind, entity, hour")
        if in_s is not None:
            timed = (f"SELECT account_id, kind, entity, hour, n FROM {src} WHERE kind <> 'task_item' AND NOT ({in_s}) "
                     f"UNION ALL SELECT account_id, kind, entity, hour, {agg('sum', 'n')} FROM {src} "
                     f"WHERE kind <> 'task_item' AND ({in_s}) GROUP BY account_id, kind, entity, hour")
        return (f"SELECT account_id, kind, entity, {agg('min', 'hour')}, {agg('sum', 'n')} FROM {src} "
                f"WHERE kind = 'task_item' GROUP BY account_id, kind, entity UNION ALL {timed}")
    k = keys[t]
    rest = [c for c, *_ in cols if c not in k and not (t == "beh_ah" and c == "peak_min")]
    fn = "min" if t in ("beh_pd", "sync_b") else "sum"
    sel = ", ".join(k + [agg(fn, c) for c in rest])
    timed = t in ("beh_pm", "beh_ah", "beh_am", "beh_at", "beh_as") or (t == "sync_b" and hour_buckets)
    where = f" WHERE {in_s}" if timed and in_s is not None else ""
    grouped = f"SELECT {sel} FROM {src}{where} GROUP BY {', '.join(k)}"
    if t == "beh_ah":  # a minute split across two parts: its peak from the merged per-minute counts
        grouped = (f"SELECT a.*, CAST(p.peak_min AS {types['peak_min']}) AS peak_min FROM ({grouped}) a JOIN "
                   f"(SELECT account_id, date_trunc('hour', minute) AS hour, max(c) AS peak_min FROM beh_pm "
                   f"GROUP BY 1, 2) p USING (account_id, hour)")
    if not where or t == "beh_pm":  # beh_pm: read only for the peaks of the shared hours' minutes
        return grouped
    # each key of an hour no two parts share is in one part only: its row as that part folded it (peak_min
    # included: the hour's minutes are all in that part)
    alone = f"SELECT {', '.join(k + rest + (['peak_min'] if t == 'beh_ah' else []))} FROM {src} WHERE NOT ({in_s})"
    return f"{alone} UNION ALL {grouped}"


def _shared_hours(files: list[Path], spans: dict) -> list[tuple[float, float]] | None:
    """The hours that two or more of the files' traffic spans share, as ranges (first, last hour start; epoch
    seconds; empty when none do), or None when a file is not a watch batch or its span is not known. Batches
    that follow time share at most the hour a tick cut through."""
    iv = []
    for f in files:
        k = f.stem.removeprefix("part-")
        if not f.stem.startswith("part-watch-") or not spans.get(k):
            return None
        iv.append(spans[k])
    iv.sort()
    ranges, reach = [], None
    for a, b in iv:  # an hour in two spans: in the later-starting one, and no later than an earlier one's end
        if reach is not None and a <= reach:
            ranges.append((a, min(b, reach)))
        reach = b if reach is None else max(reach, b)
    return ranges


def _in_hours(col: str, ranges: list[tuple[float, float]]) -> str:
    """SQL: ``col`` (an hour or a finer time) lies in one of the hour ``ranges``, or is NULL (a row without a time
    is grouped, as a full merge groups it). Plain range tests, so a parquet row group outside them is skipped."""
    def lit(e: float) -> str:
        return f"TIMESTAMPTZ '{datetime.fromtimestamp(e, UTC).isoformat()}'"

    return "(" + " OR ".join([f"{col} IS NULL"] + [f"({col} >= {lit(a)} AND {col} < {lit(b + 3600)})"
                                                   for a, b in ranges]) + ")"


def _disjoint_spans(files: list[Path], spans: dict) -> bool:
    """True when every file is a watch batch whose traffic span is known and no two batches' spans share an
    hour (then no hour-keyed partial row is in two files)."""
    return _shared_hours(files, spans) == []
