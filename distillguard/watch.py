"""`distillguard watch`: the loop that turns live traffic into enforcement in every gateway.

Each tick: (1) bring what the gateways recorded into the store — the Redis stream through the
writer (acknowledged only once written, parts keyed by stream ids) or spool segments no gateway
holds; (2) score only the exchange parts not scored yet (one ``exchange_signals`` part per
exchange part, keyed by its path, so a re-scored part replaces its rows instead of doubling
them); (3) every ``interval`` run detection, write recommendations and the enforcement the
policy applies by itself, send alerts; (4) publish the enforcement snapshot to Redis as a new
version, which every gateway replica polls (``enforcement_redis_url``) and applies within its
``reload_seconds``.

Offsets are crash-safe without a separate log: the state file (written atomically after each
step) records which exchange parts were scored, and the stream writer's own acknowledgements
record what was stored; a crash between a write and its record repeats the step, and every
repeated write lands on the same key.
"""

from __future__ import annotations

import hashlib
import logging
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa

from distillguard.store.sqltext import sql_string
from distillguard.watchlight import full_done, light_detect, light_due, save_reference
from distillguard.watchmerge import _disjoint_spans, _merge_sql, _shared_hours  # noqa: F401 - tests and load_partials
from distillguard.watchpublish import DEFAULT_PREFIX, publish, read_published, snapshot_blob  # noqa: F401 - bench, tests
from distillguard.watchtrigger import flagged_accounts, trigger_for, withhold

log = logging.getLogger("distillguard.watch")

STATE_FILE = "watch/state.json"


@dataclass
class WatchOptions:
    interval_seconds: float = 300.0
    #: Redis stream the gateways record to (``recorder.mode: redis``); None = spool mode.
    redis_url: str | None = None
    stream: str = "distillguard:exchanges"
    group: str = "distillguard-writer"
    consumer: str = "watch-1"
    spool_dir: Path | None = None
    #: Where the enforcement snapshot is published for gateway replicas (None = store files only).
    publish_url: str | None = None
    publish_prefix: str = DEFAULT_PREFIX
    scan_config: Path | None = None
    #: The loop's clock (epoch seconds). A replay of a simulated world passes its simulated clock, so
    #: detection runs once per simulated interval whatever the replay's speed (bench/loop_replay.py).
    clock: Callable[[], float] = time.time
    #: Detection from partial aggregates kept per exchange part (False: project every exchange each time).
    incremental: bool = True
    #: Incremental detection on the last this many hours of traffic (older findings carried forward until
    #: they expire); None: on all traffic. The CLI takes it from the scan config's ``watch_window_hours``.
    window_hours: float | None = None


@dataclass
class TickReport:
    recorded: int = 0
    scored: int = 0
    #: exchange parts whose partial aggregates this tick added (incremental detection)
    folded: int = 0
    detected: bool = False
    campaigns: int = 0
    published_version: int | None = None
    #: ``opts.clock()`` when this tick's detection started (the loop's time the decisions are as of).
    detected_at: float | None = None
    #: start of the traffic a windowed detection judged (None: all of it)
    window_since: datetime | None = None
    alerts: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    #: CPU seconds (this process and its finished children) of the tick's steps and of detection's parts
    cpu: dict[str, float] = field(default_factory=dict)
    #: ``opts.clock()`` when the tick started: every part stored before it is scored and folded
    clock_at: float | None = None
    #: the detection ran before its interval was up, on the volume trigger (watchtrigger.py): accounts that fired it
    #: (or, for a confirming detection, the withheld flags it judges again)
    triggered_by: int = 0
    trigger_accounts: list[str] = field(default_factory=list)  # those accounts
    #: new flags of this triggered detection whose enforcement waits for the next detection (watch_trigger_confirm)
    withheld: list[str] = field(default_factory=list)
    #: the detection was light (``watch_full_every``, watchlight.py): new accounts that joined a campaign
    light: bool = False
    joined: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- state
def load_state(store) -> dict:
    p = store.path / STATE_FILE
    if not p.exists():
        return {"signals": {}, "adopted": False, "last_detect": 0.0, "published": None}
    return orjson.loads(p.read_bytes())


def save_state(store, state: dict) -> None:
    """Atomic: a crash leaves the old state or the new, never half of one."""
    p = store.path / STATE_FILE
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(orjson.dumps({k: v for k, v in state.items() if not k.startswith("_")}))  # "_": this process's
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (a tick's cost on a shared machine)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _fp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


# ---------------------------------------------------------------------------------------- steps
def follow_stream(store, opts: WatchOptions, stop: threading.Event) -> threading.Thread:
    """The stream writer, in a thread for the life of the watch (it holds half-finished requests in memory)."""
    from distillguard.gateway.writer import run_writer

    def run():
        try:
            run_writer(store, opts.redis_url, opts.stream, opts.group, opts.consumer, batch_seconds=1.0, stop=stop)
        except Exception:  # noqa: BLE001 - logged; the next watch start resumes from the unacknowledged entries
            log.exception("stream writer stopped")

    t = threading.Thread(target=run, name="watch-writer", daemon=True)
    t.start()
    return t


def compact(store, opts: WatchOptions) -> int:
    from distillguard.gateway.recorder import compact_spool

    spool = opts.spool_dir or store.path / "spool"
    if not spool.exists():
        return 0
    done = compact_spool(spool, store)
    # the count of exchanges stored (TickReport.recorded is a number); what was not stored is said, not dropped
    if done.quarantined or done.failed:
        log.warning("watch: spool segments not fully compacted",
                    extra={"quarantined": done.quarantined, "failed": done.failed})
    return done.exchanges


def score_new(store, state: dict, cfg=None) -> int:
    """Signals for exchange parts not scored yet (or changed since); returns exchanges scored.

    Through this process's prompt memo (``signals.memo``, bounded by the scan config's ``signals_memo_prompts``
    / ``signals_memo_chars`` when ``cfg`` is given), as the scan's signals stage scores: watch lives for days
    and traffic repeats its prompts across ticks (apps' fixed prompts, a campaign's shared items), so a prompt
    scored at an earlier tick is not scored again. Exact: prompts are looked up by their full text."""
    from distillguard.signals import memo as prompt_memo
    from distillguard.signals.score import (
        TABLE,
        _resolve,
        input_columns,
        keep_freed_memory,
        output_schema,
        part_batches,
        score_batch,
        signals_identity,
        stale_parts,
    )

    if cfg is not None:
        prompt_memo.configure(cfg.signals_memo_prompts, cfg.signals_memo_chars)
        if cfg.watch_keep_freed_bytes and not state.get("_kept"):  # the scan's signals worker's allocator setting,
            state["_kept"] = keep_freed_memory(cfg.watch_keep_freed_bytes)  # once a process ("_": not saved)

    files = store.exchange_files()
    seen: dict = state.setdefault("signals", {})
    root = store.path
    dets = _resolve(None)
    ident = ";".join(f"{k}={v}" for k, v in sorted(signals_identity(dets).items()))
    if state.get("signal_identity") != ident:
        # First tick, or this install scores with another model than the one that wrote the table: keep
        # stored scores only when every part was written by this model, else rescore the whole store, so
        # the fold never mixes two models' scores under one set of thresholds.
        if stale_parts(store, dets):
            store.write_table(TABLE, output_schema(dets).empty_table())
            seen.clear()
            for k in ("folded", "batch", "spans"):  # partials folded from the old scores are folded again
                state.get(k, {}).clear()
        elif not state.get("adopted"):
            # Signals a scan (or `distillguard signals`) already computed are kept for the parts they cover.
            sig = sorted((root / "tables" / TABLE).glob("*.parquet"))
            if sig:
                newest = max(p.stat().st_mtime_ns for p in sig)
                for f in files:
                    if f.stat().st_mtime_ns <= newest:
                        seen[str(f.relative_to(root))] = _fp(f)
        state["adopted"], state["signal_identity"] = True, ident
        save_state(store, state)
    cols, schema = input_columns(dets), output_schema(dets)
    n = 0
    for f in files:
        rel = str(f.relative_to(root))
        fp = _fp(f)
        if seen.get(rel) == fp:
            continue
        memo = prompt_memo.process_memo()
        # read by pyarrow as the scan's workers read theirs: the rows, order and 64k-row batches DuckDB's reader gave
        parts = [score_batch(b, dets, memo) for b in part_batches(store, [f], cols, None, 65_536) if b.num_rows]
        tab = pa.Table.from_batches(parts, schema=schema) if parts else schema.empty_table()
        key = "watch-" + hashlib.sha1(rel.encode()).hexdigest()[:16]
        store.append_table("exchange_signals", tab, key=key)  # same part → same key: replaced, never doubled
        seen[rel] = fp
        save_state(store, state)
        n += tab.num_rows
    return n


# ------------------------------------------------------------------ incremental detection: partials per part
#: The scan's partial aggregates (distillguard/scan/engine.py ``prepare``) plus per-minute counts, kept per
#: exchange part under ``tables/watch_partial_<name>/part-<part key>.parquet``. Detection merges them
#: instead of projecting every exchange again: each tick reads only the parts that arrived since the last.
PARTIALS = ("beh_pm", "beh_ah", "beh_am", "beh_pd", "beh_at", "inc_h", "sync_b", "beh_as")
#: Partials a configuration may leave out (``behavior.system_prompt_partials``): not built, not stored, not loaded.
OPTIONAL_PARTIALS = ("beh_as",)
PARTIAL_TABLE = "watch_partial_{}"


class _PartStore:
    """The store seen through one exchange part (what build_base projects)."""

    def __init__(self, store, files: list[Path]):
        self.store, self.files = store, files

    def exchanges_sql(self) -> str:
        return self.store.exchanges_sql(files=self.files)


def _part_key(rel: str) -> str:
    return "watch-" + hashlib.sha1(rel.encode()).hexdigest()[:16]


def fold_part(store, files: list[Path], sig_files: list[Path], cfg) -> dict[str, pa.Table]:
    """The partial aggregates of some exchange parts (their exchanges and their signals only)."""
    import duckdb

    from distillguard.behavior import build_partials
    from distillguard.graph import build_graph_partials
    from distillguard.scan.base import build_base

    con = duckdb.connect(":memory:")
    try:
        con.execute("SET threads=1")
        con.execute("SET TimeZone='UTC'")
        if sig_files:
            paths = ", ".join(sql_string(str(p)) for p in sig_files)
            con.execute(f"CREATE VIEW exchange_signals AS SELECT * FROM read_parquet([{paths}], union_by_name=true)")
        sigs = build_base(con, _PartStore(store, files))
        con.execute("CREATE TABLE beh_pm AS SELECT account_id, date_trunc('minute', ts) AS minute, count(*) AS c "
                    "FROM ex GROUP BY 1, 2")
        made = set(build_partials(con, sigs, cfg.behavior)) | set(build_graph_partials(con, cfg.graph)) | {"beh_pm"}
        return {t: con.sql(f"SELECT * FROM {t}").to_arrow_table() for t in PARTIALS if t in made}
    finally:
        con.close()


def fold_new(store, state: dict, cfg) -> int:
    """Partials for exchange parts not folded yet (or changed since) whose signals ``score_new`` has computed;
    returns parts folded.

    The parts new to one call are folded together into one batch: one file per partial table, keyed by the
    batch's parts, so a tick's cost is its new traffic (not a fixed cost per writer part) and the partials
    stay one file per tick rather than one per part. Crash-safe: the state records a batch only once all its
    files are written; files of a batch the state does not hold (a fold interrupted by a crash) are deleted
    before this call returns, and the interrupted parts are folded again. A part that changed or left the
    store (rewritten under another name) takes its whole batch with it: the batch's other parts are folded
    again, so no exchange is counted twice or missed."""
    root = store.path
    folded: dict = state.setdefault("folded", {})
    batch: dict = state.setdefault("batch", {})  # part -> key of the batch it was folded in
    spans: dict = state.setdefault("spans", {})  # batch key -> [first hour, last hour] (epoch s)
    sig_dir = root / "tables" / "exchange_signals"
    files = {str(f.relative_to(root)): f for f in store.exchange_files()}
    stale = {batch.get(r, _part_key(r)) for r, fp in folded.items() if r not in files or _fp(files[r]) != fp}
    for r in [r for r in folded if batch.get(r, _part_key(r)) in stale]:
        del folded[r]
        batch.pop(r, None)
    for k in stale:
        spans.pop(k, None)
    # only parts whose signals are current (score_new): a part the writer stored after this tick's score_new
    # has no signals yet, and folded now its exchanges would enter the partials without templates, task items
    # or signal shares — for good, since the part does not change afterwards (issue 14: the loop replay's
    # two-part batches lost most of a window's template and schedule evidence). It waits for the next tick.
    scored = state.get("signals") or {}
    new = sorted(r for r in files if r not in folded and scored.get(r) == _fp(files[r]))
    if new:
        key = "watch-" + hashlib.sha1("\n".join(new).encode()).hexdigest()[:16]
        own = [sig_dir / f"part-{_part_key(r)}.parquet" for r in new]
        # signals watch scored for these parts; parts a scan scored before the watch started: all signals
        sig = own if all(p.exists() for p in own) else sorted(sig_dir.glob("*.parquet"))
        parts = fold_part(store, [files[r] for r in new], sig, cfg)
        for t, tab in parts.items():
            store.append_table(PARTIAL_TABLE.format(t), tab, key=key)
        # the batch's traffic span, so a windowed detection reads only the batches that reach its window
        hours = [h for h in parts["beh_ah"]["hour"].to_pylist() if h is not None]
        spans[key] = [_epoch(min(hours)), _epoch(max(hours))] if hours else None
        for r in new:
            folded[r], batch[r] = _fp(files[r]), key
        if cfg.watch_trigger_min_requests > 0:
            # the batch's requests per account, for the volume trigger (watchtrigger.py; not saved: "_")
            ah = parts["beh_ah"]
            counts = state.setdefault("_fold_counts", {})
            for a, n in zip(ah["account_id"].to_pylist(), ah["n"].to_pylist(), strict=True):
                counts[a] = counts.get(a, 0) + int(n or 0)
    live = {batch.get(r, _part_key(r)) for r in folded}
    save_state(store, state)  # first the state, then the files it no longer holds
    for t in PARTIALS:
        for p in (root / "tables" / PARTIAL_TABLE.format(t)).glob("part-watch-*.parquet"):
            if p.stem.removeprefix("part-") not in live:
                p.unlink()
    return len(new)


def _epoch(ts) -> float:
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


#: The time column of each partial table (what a windowed detection filters on).
_TIME_COL = {"beh_pm": "minute"}


def detect_window(state: dict, hours: float | None) -> datetime | None:
    """Start of a windowed detection: ``hours`` before the newest traffic folded (None: all traffic, or no
    part's span is known). Anchored on the traffic rather than the wall clock, so a replay or a store whose
    traffic stopped a while ago still has its last ``hours`` to judge."""
    ends = [sp[1] for sp in (state.get("spans") or {}).values() if sp]
    if not hours or not ends:
        return None
    newest = datetime.fromtimestamp(max(ends), UTC)
    return newest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1) - timedelta(hours=hours)


def load_partials(store, con, since: datetime | None = None, state: dict | None = None, cfg=None) -> list[str]:
    """Build ``prepare``'s tables in ``con`` from the stored per-part partials; returns the signal columns.

    ``since``: only the traffic from then on — the partial files of parts whose span ends before it are not
    read at all (``state["spans"]``; a part without a known span is read), and rows before it are left out,
    so a windowed detection costs the window's partials, not the store's. With ``state``, the batches' rows of
    hours no two batches' spans share are unioned rather than grouped again (``_merge_sql``); ``cfg`` (the scan
    config) tells whether sync buckets stay inside an hour."""
    from distillguard.scan.base import signal_columns

    keep = None
    spans = (state or {}).get("spans") or {}
    if since is not None and state is not None:
        t0 = since.timestamp()
        batch = state.get("batch") or {}
        keys = {batch.get(r, _part_key(r)) for r in state.get("folded", {})}
        keep = {k for k in keys if not spans.get(k) or spans[k][1] >= t0}
    hour_buckets = cfg is not None and 3600 % (int(cfg.graph.sync_bucket_minutes) * 60) == 0
    shared: list[tuple[float, float]] | None = []
    for t in PARTIALS:
        src = PARTIAL_TABLE.format(t)
        files = sorted((store.path / "tables" / src).glob("*.parquet"))
        if t in OPTIONAL_PARTIALS and not files:
            continue  # not kept by this configuration (or by the watch that folded these parts)
        if since is not None:
            if keep is not None:
                files = [f for f in files if not f.stem.startswith("part-watch-") or f.stem[5:] in keep]
            col = _TIME_COL.get(t, "hour")
            body = (f"SELECT * FROM read_parquet([{', '.join(sql_string(str(f)) for f in files)}], union_by_name=true)"
                    if files else f"SELECT * FROM {src} WHERE false")
            con.execute(f"CREATE OR REPLACE TEMP VIEW _win_{t} AS SELECT * FROM ({body}) "
                        f"WHERE {col} >= TIMESTAMPTZ '{since.isoformat()}'")
            src = f"_win_{t}"
        if t == PARTIALS[0]:  # beh_pm (first) decides for all: every table has one file per batch
            shared = _shared_hours(files, spans) if state is not None else None
        con.execute(f"CREATE OR REPLACE TABLE {t} AS {_merge_sql(con, t, src, shared, hour_buckets)}")
    return signal_columns(con)


#: Per store (its path): Leiden's partitions of the last detection at each resolution, the next one's start
#: (``watch_warm_communities``). In memory only: a restarted watch starts its first detection cold.
_WARM: dict[str, dict] = {}

#: Tables a detection replaces and a windowed one carries earlier campaigns forward in.
_CARRIED = ("campaigns", "campaign_members", "enforcement_recommendations", "enforcement", "account_clusters",
            "account_risk")


def detect(store, cfg, now: datetime | None = None, incremental: bool = True, since: datetime | None = None,
           state: dict | None = None, timings: dict | None = None, release: bool = True) -> tuple[int, list[str]]:
    """Detection, then recommendations, enforcement and alerts; returns (campaigns, alerted). Incremental:
    from the merged per-part partials (fold_new); otherwise a full projection of every exchange. ``since``
    (incremental only): on the traffic from then on, with what earlier detections found carried forward
    (``carry_forward``). ``timings``: filled with the CPU seconds of each sub-step (``<name>_cpu``: the scan's
    stages and detect parts, then writing the tables, carrying forward, alerts), so a tick's cost can be read
    by part (bench/loop_replay.py records them per tick)."""
    from distillguard.alerts import alert_store
    from distillguard.scan.run import _cpu_seconds, close_scan, run_scan, write_tables

    now = now or datetime.now(UTC)
    prepared = (lambda con: load_partials(store, con, since, state, cfg)) if incremental else None
    c0 = _cpu_seconds()
    before = ({t: store.read_table(t) for t in _CARRIED if store.has_table(t)}
              if incremental and since is not None else None)
    warm = _WARM.setdefault(str(store.path), {}) if cfg.watch_warm_communities else None
    # a window's tables in memory (``watch_tables_in_memory``): the run's configuration only, the caller's
    # (its thresholds, its enforcement) is the one everything after the scan reads
    run_cfg = (cfg.model_copy(update={"tables_on_disk": False})
               if incremental and since is not None and cfg.watch_tables_in_memory else cfg)
    res = run_scan(store, run_cfg, signals="never", prepared=prepared, warm=warm)
    c1 = _cpu_seconds()
    try:
        write_tables(store, res, cfg, now=now)
        if cfg.watch_full_every > 1 and since is not None and state is not None:  # light detections follow
            save_reference(res.con, store, res.campaign_members, cfg)
            full_done(state)
    finally:
        close_scan(res, store)
    c2 = _cpu_seconds()
    carried = carry_forward(store, before, now, cfg.campaigns.enforcement_days, since, state,
                            cfg.watch_release_below, release) if before else 0
    c3 = _cpu_seconds()
    alerted = alert_store(store, cfg.alerts)
    if timings is not None:
        timings.update({k: round(v, 3) for k, v in res.timings.items()  # the scan's "signals" stage is skipped
                        if k.endswith("_cpu") and isinstance(v, float) and k != "signals_cpu"})
        timings.update(scan_cpu=round(c1 - c0, 3), write_cpu=round(c2 - c1, 3), carry_cpu=round(c3 - c2, 3),
                       alerts_cpu=round(_cpu_seconds() - c3, 3))
    return len(res.campaigns) + carried, alerted


def traffic_before(store, state: dict | None, since: datetime, accounts: set[str]) -> set[str] | None:
    """The ``accounts`` with traffic before ``since`` (their rows in the stored ``beh_ah`` partials), or None
    when it cannot be told (no partials or no state: then every account counts as having such traffic).

    Only the partial files of batches whose span starts before ``since`` (or is not known) are read, and only
    two columns of them; a detection that starts this check has read the window's files already."""
    import duckdb

    d = store.path / "tables" / PARTIAL_TABLE.format("beh_ah")
    files = sorted(d.glob("*.parquet")) if d.exists() else []
    if not accounts:
        return set()
    if state is None or not files:
        return None
    t0, spans = since.timestamp(), state.get("spans") or {}
    files = [f for f in files if not f.stem.startswith("part-watch-") or not spans.get(f.stem[5:])
             or spans[f.stem[5:]][0] < t0]
    if not files:
        return set()
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET threads=1")
        con.execute("SET TimeZone='UTC'")
        con.register("_cand", pa.table({"account_id": pa.array(sorted(accounts), pa.string())}))
        rows = con.execute(
            f"SELECT DISTINCT p.account_id FROM read_parquet([{', '.join(sql_string(str(f)) for f in files)}], "
            f"union_by_name=true) p JOIN _cand USING (account_id) WHERE p.hour < TIMESTAMPTZ '{since.isoformat()}'"
        ).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}


def carry_forward(store, old: dict[str, pa.Table], now: datetime, days: int, since: datetime | None = None,
                  state: dict | None = None, release_below: float = 1.0, release: bool = True) -> int:
    """Keep what earlier detections found after its traffic has left a windowed detection's window.

    A detection replaces the derived tables with what its window shows, so without this a campaign would be
    released as soon as its evidence aged out of the window. Every account that was a member of a campaign
    in the tables before this detection and is in none of its campaigns stays: in ``campaign_members`` (under
    its old campaign), flagged in ``account_risk`` (its risk the higher of the two), with its scan enforcement
    rows and cluster mapping — until that campaign was last found ``days`` ago (``enforcement_days``: its
    rows then expire) or an analyst dismissed the campaign or ruled on the subject. Campaigns the new
    detection did not find again keep their ``campaigns`` and recommendation rows. Returns the number of
    campaigns carried (not found again).

    Only what the new detection could not see is carried: with ``since`` (the window's start) and ``state``
    (the batches' spans), a former member none of whose traffic lies before ``since`` was judged by this
    detection on everything an earlier one could have judged it on, and it cleared it — the new verdict
    supersedes the old one and the account is released (a transient false flag does not stay enforced for
    ``enforcement_days``) — if that detection's risk for it is below ``release_below`` (``watch_release_below``:
    hysteresis, so a member that only dipped under the flag threshold stays carried). Members of a campaign an
    analyst confirmed stay carried whatever the window shows: a person's verdict is released by a person
    (dismissing the campaign or ruling on the subject).
    ``release`` False (a triggered detection, ``watch_trigger_confirm``): nothing is released this way — a look
    between two scheduled detections adds flags, it does not take them back (issue 14's replay, seed 2: triggered
    detections at 03:20 and 03:50 released the agentic trio the 03:00 detection had flagged, and its enforcement
    came at 05:41 instead of 03:51). New flags of the detection before, awaiting this one
    (``state["trigger_pending"]``), are never carried: this detection's own verdict confirms or drops them."""
    from distillguard.campaigns.enforcement import latest_decisions
    from distillguard.scan.run import ACCOUNT_RISK_SCHEMA, _defer_to_analysts

    if "campaign_members" not in old or "campaigns" not in old:
        return 0
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    decisions = latest_decisions(store)
    new_members = (set(store.read_table("campaign_members")["account_id"].to_pylist())
                   if store.has_table("campaign_members") else set())
    new_camps = set(store.read_table("campaigns")["campaign_id"].to_pylist()) if store.has_table("campaigns") else set()
    # when each old campaign was last found: its newest recommendation (a carried one keeps its first time)
    found: dict[str, datetime] = {}
    if "enforcement_recommendations" in old:
        for cid, at in zip(old["enforcement_recommendations"]["campaign_id"].to_pylist(),
                           old["enforcement_recommendations"]["created_at"].to_pylist(), strict=True):
            if at is not None:
                found[cid] = max(found.get(cid, at), at)
    if "enforcement" in old:  # a campaign without a recommendation row: as long as a scan row of it is live
        for cid, exp in zip(old["enforcement"]["campaign_id"].to_pylist(), old["enforcement"]["expires_at"].to_pylist(),
                            strict=True):
            if cid and exp is not None and cid not in found:
                found[cid] = _aware(exp) - timedelta(days=days)
    live = {cid for cid in old["campaigns"]["campaign_id"].to_pylist()
            if (decisions.get(cid) or {}).get("status") != "dismissed"
            and cid in found and _aware(found[cid]) + timedelta(days=days) > now}
    carried: dict[str, str] = {}  # account -> its old campaign
    # new flags of a triggered detection awaiting this one (watch_trigger_confirm): its own verdict decides
    pending = set((state or {}).get("trigger_pending") or ())
    for a, cid in zip(old["campaign_members"]["account_id"].to_pylist(),
                      old["campaign_members"]["campaign_id"].to_pylist(), strict=True):
        if cid in live and a not in new_members and a not in pending:
            carried[a] = cid
    if carried and since is not None and release:
        # superseded: judged again on all of its traffic (none before the window) and cleared
        seen_before = traffic_before(store, state, since, set(carried))
        if seen_before is not None:
            confirmed = {cid for cid, d in decisions.items() if (d or {}).get("status") == "confirmed"}
            nr = store.read_table("account_risk") if store.has_table("account_risk") else None
            risk = (dict(zip(nr["account_id"].to_pylist(), nr["risk"].to_pylist(), strict=True))
                    if nr is not None else {})
            carried = {a: cid for a, cid in carried.items()
                       if a in seen_before or cid in confirmed or (risk.get(a) or 0.0) >= release_below}
    if not carried:
        return 0
    camps = set(carried.values())
    gone = camps - new_camps  # campaigns not found again: their own rows carry too

    def _append(name: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        if store.has_table(name):
            cur = store.read_table(name)
            rows = rows.select([c for c in cur.column_names if c in rows.column_names])
            rows = pa.concat_tables([cur, rows.cast(cur.select(rows.column_names).schema)],
                                    promote_options="permissive")
        store.write_table(name, rows)

    def _rows(name: str, pred) -> pa.Table:
        t = old[name]
        cols = [t[c].to_pylist() for c in t.column_names]
        keep = [pred(dict(zip(t.column_names, vals, strict=True))) for vals in zip(*cols, strict=True)]
        return t.filter(pa.array(keep, pa.bool_())) if keep else t

    if gone:
        c = _rows("campaigns", lambda r: r["campaign_id"] in gone)
        n = [sum(1 for cid in carried.values() if cid == x) for x in c["campaign_id"].to_pylist()]
        c = c.set_column(c.schema.get_field_index("n_accounts"), "n_accounts", pa.array(n, c.schema.field("n_accounts").type))
        _append("campaigns", c)
        if "enforcement_recommendations" in old:
            _append("enforcement_recommendations", _rows("enforcement_recommendations", lambda r: r["campaign_id"] in gone))
    _append("campaign_members", pa.table({"campaign_id": pa.array([carried[a] for a in sorted(carried)], pa.string()),
                                          "account_id": pa.array(sorted(carried), pa.string())}))
    # cluster rows of the carried accounts the new detection maps to no cluster
    mapped = (set(store.read_table("account_clusters")["account_id"].to_pylist())
              if store.has_table("account_clusters") else set())
    clusters: set[str] = set()
    if "account_clusters" in old:
        ac = _rows("account_clusters", lambda r: r["account_id"] in carried and r["account_id"] not in mapped)
        clusters = set(ac["cluster_id"].to_pylist())
        _append("account_clusters", ac)
    if "enforcement" in old:
        cur = store.read_table("enforcement") if store.has_table("enforcement") else None
        have = set(zip(cur["subject_type"].to_pylist(), cur["subject_id"].to_pylist(), strict=True)) if cur else set()

        def still(r) -> bool:
            if r.get("source") not in ("scan", "scan:shadow") or r["campaign_id"] not in camps:
                return False
            if r["expires_at"] is not None and _aware(r["expires_at"]) <= now:
                return False
            if (r["subject_type"], r["subject_id"]) in have:
                return False  # the new detection (or a person) has a newer word on this subject
            return ((r["subject_type"] == "account" and r["subject_id"] in carried)
                    or (r["subject_type"] == "cluster" and r["subject_id"] in clusters)
                    or (r["subject_type"] == "org" and r["campaign_id"] in gone))

        rows = _rows("enforcement", still)
        if cur is not None and rows.num_rows:
            rows = _defer_to_analysts(cur, rows, now)
        _append("enforcement", rows)
    # flagged stays flagged
    risk = store.read_table("account_risk") if store.has_table("account_risk") else ACCOUNT_RISK_SCHEMA.empty_table()
    prev = {r["account_id"]: r for r in old["account_risk"].to_pylist()} if "account_risk" in old else {}
    out, seen = [], set()
    for r in risk.to_pylist():
        a = r["account_id"]
        seen.add(a)
        if a in carried:
            p = prev.get(a) or {}
            r.update(flagged=True, risk=max(r["risk"] or 0.0, p.get("risk") or 0.0), campaign_id=carried[a],
                     first_flagged_at=p.get("first_flagged_at") or r["first_flagged_at"],
                     reasons=list(r["reasons"] or []) or list(p.get("reasons") or []))
        out.append(r)
    for a in sorted(carried):
        if a not in seen and a in prev:
            out.append({**{k: prev[a].get(k) for k in ACCOUNT_RISK_SCHEMA.names}, "flagged": True,
                        "campaign_id": carried[a]})
    store.write_table("account_risk", pa.Table.from_pylist(out, schema=ACCOUNT_RISK_SCHEMA))
    return len(gone)


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def tick(store, opts: WatchOptions, state: dict, cfg, force_detect: bool = False) -> TickReport:
    rep = TickReport()
    # The loop's time is read before anything is folded: a detection "as of" this time then judges every part
    # stored before it. Read after the fold, a part the writer stored while this tick was folding (the clock
    # moving meanwhile) would be missing from a detection stamped later than it — in a lock-step replay, the
    # last seconds of a window, often most of it (bench/loop_replay.py's seed-5 hydra flagged an hour late).
    clock_now = opts.clock()
    t = time.perf_counter()
    if opts.redis_url is None:
        rep.recorded = compact(store, opts)
    rep.seconds["record"] = time.perf_counter() - t
    t, c = time.perf_counter(), _cpu()
    rep.scored = score_new(store, state, cfg)
    rep.seconds["signals"], rep.cpu["tick.signals_cpu"] = time.perf_counter() - t, _cpu() - c
    if opts.incremental:
        t, c = time.perf_counter(), _cpu()
        rep.folded = fold_new(store, state, cfg)
        rep.seconds["fold"], rep.cpu["tick.fold_cpu"] = time.perf_counter() - t, _cpu() - c
    rep.clock_at = clock_now
    last = float(state.get("last_detect") or 0)
    # the schedule runs from the last scheduled detection: a triggered one adds a detection, never moves one
    # (loop18's replay, seed 2: with the schedule reset by each trigger, the 03:00 detection that flags the
    # agentic trio did not happen)
    due = clock_now - float(state.get("last_scheduled") or last) >= opts.interval_seconds
    # off (watch_trigger_min_requests 0): no counts kept, no flagged set read after each detection
    trig = trigger_for(store, cfg) if cfg.watch_trigger_min_requests > 0 else None
    if trig is not None:
        trig.add(state.pop("_fold_counts", None) or {})
    # called at every tick: it remembers the clock it was last asked at
    fired = trig is not None and trig.fires(clock_now, last)
    if not due and not force_detect and fired:
        # the accounts whose traffic grew, or (a confirmation) the new flags the last detection withheld
        rep.trigger_accounts = sorted(trig.hot) or list(state.get("trigger_pending") or ())
        due, rep.triggered_by = True, max(1, len(rep.trigger_accounts))
    # incremental: what has been folded (exchanges the writer stored after this tick's fold wait for the next)
    ready = store.has_table(PARTIAL_TABLE.format(PARTIALS[0])) if opts.incremental else store.has_exchanges()
    if (force_detect or due) and ready:
        t = time.perf_counter()
        since = detect_window(state, opts.window_hours) if opts.incremental else None
        c = _cpu()
        rep.light = opts.incremental and since is not None and not rep.triggered_by and light_due(store, state, cfg)
        if rep.light:  # only new accounts joining found campaigns (watchlight.py); triggered ones are full
            rep.campaigns, rep.joined = light_detect(store, state, cfg, datetime.now(UTC))
        # a triggered detection releases nothing (watch_trigger_confirm): it adds a look between two scheduled
        # ones, and what an earlier detection found is released at a scheduled detection, as without the trigger
        else:
            rep.campaigns, rep.alerts = detect(store, cfg, incremental=opts.incremental, since=since, state=state,
                                               timings=rep.cpu,
                                               release=not (rep.triggered_by and cfg.watch_trigger_confirm))
        rep.cpu["tick.detect_cpu"] = _cpu() - c
        if trig is not None:
            flagged = flagged_accounts(store)
            # a triggered detection's new flags wait for a second detection (watch_trigger_confirm); what the
            # next detection flags again is enforced by it, the rest released (carry_forward skips them)
            new = flagged - trig.flagged if rep.triggered_by and cfg.watch_trigger_confirm else set()
            rep.withheld = sorted(new)
            if new:
                withhold(store, new)
            state["trigger_pending"] = sorted(new)
            trig.detected(flagged)
            trig.pending = bool(new)
        rep.window_since = since
        rep.detected, rep.detected_at = True, clock_now
        state["last_detect"] = clock_now
        if not rep.triggered_by:
            state["last_scheduled"] = clock_now
        save_state(store, state)
        rep.seconds["detect"] = time.perf_counter() - t
    if opts.publish_url and store.has_table("enforcement"):
        version, h = publish(store, opts.publish_url, opts.publish_prefix, state.get("published"))
        if version is not None:
            rep.published_version = version
            state["published"] = h
            save_state(store, state)
    return rep


def run_watch(store, opts: WatchOptions, stop: threading.Event | None = None, poll_seconds: float = 5.0,
              on_tick=None) -> None:
    """Tick every ``poll_seconds`` (recording and signals), detecting every ``opts.interval_seconds``."""
    from distillguard.scan.config import load_config

    cfg = load_config(opts.scan_config)
    stop = stop or threading.Event()
    writer = follow_stream(store, opts, stop) if opts.redis_url else None
    state = load_state(store)
    try:
        while not stop.is_set():
            try:
                rep = tick(store, opts, state, cfg)
            except Exception:  # noqa: BLE001 - one failed tick (a full disk, a store being rewritten) is retried
                log.exception("watch tick failed; retrying")
                state = load_state(store)  # what was saved, not what the failed tick left half-updated
                stop.wait(poll_seconds)
                continue
            if on_tick:
                on_tick(rep)
            if rep.detected or rep.published_version:
                log.info("watch tick", extra={"scored": rep.scored, "campaigns": rep.campaigns,
                                              "published_version": rep.published_version,
                                              "alerts": len(rep.alerts), "seconds": rep.seconds})
            stop.wait(poll_seconds)
    finally:
        stop.set()
        if writer is not None:
            writer.join(15)


def register(app) -> None:
    import typer

    @app.command("watch")
    def watch(
        store: Path = typer.Option(..., "--store", "-s", help="Store the gateways record into."),
        interval: float = typer.Option(5.0, "--interval", help="Minutes between detection runs."),
        redis_url: str = typer.Option(None, "--redis-url", help="Follow the gateways' Redis stream (else the spool)."),
        stream: str = typer.Option("distillguard:exchanges", "--stream"),
        group: str = typer.Option("distillguard-writer", "--group"),
        consumer: str = typer.Option("watch-1", "--consumer"),
        spool: Path = typer.Option(None, "--spool", help="Spool directory (default STORE/spool)."),
        publish_redis: str = typer.Option(None, "--publish-redis",
                                          help="Publish each enforcement snapshot here for gateway replicas."),
        prefix: str = typer.Option(DEFAULT_PREFIX, "--prefix", help="Redis key prefix of the published snapshot."),
        config: Path = typer.Option(None, "--config", "-c", help="Scan config YAML (thresholds, enforcement, alerts)."),
        poll: float = typer.Option(5.0, "--poll", help="Seconds between recording/signals steps."),
        once: bool = typer.Option(False, "--once", help="One tick with detection, then exit."),
    ) -> None:
        """Follow what the gateways record, detect every --interval minutes, publish decisions to every replica."""
        from rich.console import Console

        from distillguard.errors import DistillguardError
        from distillguard.gateway.logs import setup_logging
        from distillguard.scan.config import load_config
        from distillguard.store import Store

        setup_logging("info")
        opts = WatchOptions(interval_seconds=interval * 60, redis_url=redis_url, stream=stream, group=group,
                            consumer=consumer, spool_dir=spool, publish_url=publish_redis, publish_prefix=prefix,
                            scan_config=config, window_hours=load_config(config).watch_window_hours)
        st = Store(store, create=True)
        if st.fs is not None:
            raise DistillguardError("watch needs a local store (it keeps a spool and state beside the parts); "
                                    "run scan on the object-storage copy instead", source=st.location)
        if once:
            if redis_url:
                from distillguard.gateway.writer import run_writer

                run_writer(st, redis_url, stream, group, consumer, batch_seconds=1.0, once=True)
            rep = tick(st, opts, load_state(st), load_config(config), force_detect=True)
            Console().print_json(orjson.dumps(rep.__dict__, default=str).decode())
            return
        try:
            run_watch(st, opts, poll_seconds=poll)
        except KeyboardInterrupt:
            return
