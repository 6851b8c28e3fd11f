"""``distillguard scan``: signals → behaviour → graph → scoring → campaigns, full or replayed."""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.behavior.features import released_models
from distillguard.campaigns import attribute_orgs, ban_evasion_links, build_campaigns
from distillguard.campaigns.build import CAMPAIGN_SCHEMA
from distillguard.campaigns.enforcement import RECOMMENDATIONS, latest_decisions, recommend, with_status
from distillguard.engine.open import open_engine, run_signals_spark
from distillguard.errors import ConfigError, DistillguardError
from distillguard.scan.checkpoint import Checkpoints, fingerprint
from distillguard.scan.config import ScanConfig
from distillguard.scan.engine import StepResult, detect_step, open_connection, prepare
from distillguard.scan.resources import TempSpace, stage_guard, temp_space
from distillguard.scoring.learn import UPDATES_TABLE, ModelUpdate, learn_account_model
from distillguard.store import Store

Progress = Callable[[str, float], None]


@dataclass
class ScanResult:
    step: StepResult
    account_risk: pa.Table            # account_risk contract
    campaigns: list[dict]
    campaign_members: dict[str, str]
    org_keys: dict[str, str]
    ban_links: list[tuple[str, str, float]]
    released: list[tuple]
    replay: bool
    n_exchanges: int
    timings: dict[str, float] = field(default_factory=dict)
    replay_steps: int = 0
    con: duckdb.DuckDBPyConnection | None = None
    space: TempSpace | None = None
    checkpoints: Checkpoints | None = None
    model_update: ModelUpdate | None = None


#: ``ensure_signals``' answer for ``--signals never`` on a store with no stored signals (the scan CLI warns with it).
MISSING_NEVER = ("missing (--signals never and the store has no tables/exchange_signals: detection ran without "
                 "content signals, on behaviour and infrastructure only; run `distillguard signals` or drop "
                 "--signals never)")


def ensure_signals(store: Store, mode: str = "auto", workers: int = 1,
                   runner: Callable[[Store], object] | None = None, memo: tuple[int, int] | None = None) -> str:
    """Run the signals stage when its table is missing, older than the exchanges, or written by another
    signal model or detector set (``runner``: how, when not the local worker processes, e.g. the Spark
    engine's mapInArrow)."""
    if mode == "never":
        # a store without stored signals scanned with --signals never is detection without its content half: said,
        # not silent (a copy of a store that lost its tables/exchange_signals scores far lower recall)
        return "skipped" if store.has_table("exchange_signals") else MISSING_NEVER
    ex_files = store.file_infos("exchanges/day=*/*.parquet")
    stale = not store.has_table("exchange_signals")
    if not stale and ex_files:
        sig_m = max(f[3] for f in store.file_infos("tables/exchange_signals/*.parquet"))
        stale = max(f[3] for f in ex_files) > sig_m
    try:
        from distillguard.signals import run_signals
        from distillguard.signals.score import stale_parts
    except ModuleNotFoundError as e:
        if store.has_table("exchange_signals"):
            return "fresh" if not (stale or mode == "always") else "stale (signals stage not installed)"
        if e.name and e.name.startswith("distillguard.signals"):
            return "missing (signals stage not installed: behaviour and infrastructure only)"
        raise
    # Scores from another model or detector set are not comparable with this install's thresholds.
    other_model = not stale and mode != "always" and bool(stale_parts(store))
    if not (stale or other_model or mode == "always"):
        return "fresh"
    if runner is not None:
        runner(store)
    else:
        if memo is not None:  # (prompts, characters): the workers forked by run_signals create theirs with these bounds
            from distillguard.signals import memo as prompt_memo

            prompt_memo.configure(*memo)
        run_signals(store, progress=False, workers=workers)
    return "computed (stored scores were from another signal model)" if other_model else "computed"


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the signals workers): with other
    work on the machine, a stage's CPU time says more about its cost than its wall time."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class _Laps:
    """Wall and CPU seconds per stage into ``timings``: each ``lap(name)`` closes the stage that began at
    the previous lap (or at construction). ``<name>_at`` is the stage's end as Unix time, so a sampler
    outside the process (bench/scan_bench.py's spill-directory sizes) can tell which stage it saw."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.t, self.cpu = time.perf_counter(), _cpu_seconds()

    def lap(self, name: str) -> None:
        t, cpu = time.perf_counter(), _cpu_seconds()
        self.timings[name], self.timings[f"{name}_cpu"] = t - self.t, cpu - self.cpu
        self.timings[f"{name}_at"] = time.time()
        self.t, self.cpu = t, cpu


def _flag_set(step: StepResult) -> set[str]:
    t = step.account_risk.filter(step.account_risk["flagged"])
    return set(t["account_id"].to_pylist())


def replay(con: duckdb.DuckDBPyConnection, sigs: list[str], cfg: ScanConfig, step: timedelta, coarse: timedelta,
           progress: Progress | None = None, exact: bool = False) -> tuple[StepResult, dict[str, datetime], int]:
    """First-flag time per account as an hourly (``step``) live deployment would have seen it.

    Evaluating every step over a month is hundreds of full graph builds; instead the engine runs
    at ``coarse`` intervals. Inside an interval where an account opens a new campaign (its cluster
    held no flagged account before), it bisects on the ``step`` grid to find the first step it was
    flagged — so each campaign's time-to-detect is exact when flags only accumulate; accounts
    joining an already-flagged campaign get the interval's end (an upper bound). ``exact`` bisects
    for every newly flagged account.
    """
    lo, hi = con.execute("SELECT min(hour), max(hour) + INTERVAL 1 HOUR FROM beh_ah").fetchall()[0]
    if lo is None:
        return detect_step(con, sigs, cfg, None), {}, 0
    n_steps = max(1, int((hi - lo) / step + 0.999999))
    k_coarse = max(1, int(coarse / step))
    cache: dict[int, StepResult] = {}

    window = timedelta(hours=cfg.replay_window_hours) if cfg.replay_window_hours else None

    def at(i: int) -> StepResult:
        if i not in cache:
            until = lo + i * step
            # every step but the last sees the last `window` of traffic (a live watch's view; its cost follows
            # the window, not the history); the last is the full scan, so the replay ends where a scan ends
            since = until - window if window is not None and i < n_steps and until - window > lo else None
            cache[i] = detect_step(con, sigs, cfg, until, since=since)
            if progress:
                progress("replay", min(1.0, len(cache) / (n_steps / k_coarse * 3 + 1)))
        return cache[i]

    first: dict[str, datetime] = {}

    def refine(a: int, b: int, cand: set[str]) -> None:
        if not cand:
            return
        if b - a <= 1:
            for x in cand:
                first.setdefault(x, lo + b * step)
            return
        mid = (a + b) // 2
        fm = _flag_set(at(mid))
        refine(a, mid, cand & fm)
        refine(mid, b, cand - fm)

    grid = list(range(k_coarse, n_steps, k_coarse)) + [n_steps]
    prev = 0
    for i in grid:
        res = at(i)
        fi = _flag_set(res)
        new = fi - set(first)
        # accounts whose cluster already held a flagged account join a known campaign: their first-flag
        # time is the end of the interval (an upper bound); accounts that open a new campaign are bisected
        # to the step grid, so each campaign's time-to-detect is exact
        cl = dict(zip(res.account_risk["account_id"].to_pylist(), res.account_risk["cluster_id"].to_pylist(),
                      strict=True))
        members: dict[str, set[str]] = {}
        for cs in res.clusters:
            members[cs.cluster_id] = set(cs.members)
        opens = {a for a in new if not (members.get(cl.get(a) or "", set()) & set(first))}
        if exact:
            opens = new
        refine(prev, i, opens)
        for a in new - opens:
            first.setdefault(a, lo + i * step)
        prev = i
        # keep memory bounded: only the last coarse result is needed later
        for j in [j for j in cache if j < i]:
            del cache[j]
    return cache[n_steps], first, len(grid)


def run_scan(store: Store, cfg: ScanConfig, *, replay_step: timedelta | None = None,
             coarse: timedelta = timedelta(hours=24), signals: str = "auto",
             progress: Progress | None = None, replay_exact: bool = False, resume: bool = False,
             prepared: Callable[[duckdb.DuckDBPyConnection], list[str]] | None = None,
             engine: str = "duckdb", master: str | None = None, warm: dict | None = None) -> ScanResult:
    """Run the scan. It spills under ``STORE/tmp`` (or ``cfg.temp_directory``), bounded, and turns running out
    of room into a ScanSpaceError; ``resume`` keeps stage checkpoints and starts from the newest one whose
    inputs and configuration match. Call ``close_scan`` on the result when done with its connection.
    ``prepared(con)`` builds the prepare stage's tables itself and returns the signal columns (`watch`
    merges partials it keeps per exchange part instead of projecting every exchange again).
    ``engine="spark"`` runs the same stages on Spark (``master``; docs/spark.md); replay, resume and ``prepared``
    are DuckDB's only (a ConfigError on Spark, never silently ignored). ``warm``: Leiden's starting partitions
    kept across runs (`watch`'s successive detections; ``graph.communities.community_levels``)."""
    if engine != "duckdb" and (replay_step is not None or resume or prepared is not None):
        what = "replay" if replay_step is not None else "resume" if resume else "a prepared stage"
        raise ConfigError(f"{what} runs on the DuckDB engine only, not --engine {engine} (docs/spark.md)")
    if not store.has_exchanges():
        raise DistillguardError("store has no exchanges; ingest or simulate first", source=store.location)
    timings: dict[str, float] = {}
    laps = _Laps(timings)
    space = temp_space(store.path, cfg.temp_directory, cfg.temp_max_size, cfg.temp_free_margin)
    store.spill = (space.path, space.limit)
    bar = _StageBar(progress)
    done = None
    try:
        with stage_guard("signals", space, cfg.memory_limit):
            bar.stage("signals", 0, "scoring exchanges")
            spark = open_engine(engine, store, cfg, master) if engine != "duckdb" else None
            sig_state = ensure_signals(store, signals, cfg.signals_workers or os.cpu_count() or 1,
                                       runner=spark and (lambda st: run_signals_spark(spark, st)),
                                       memo=(cfg.signals_memo_prompts, cfg.signals_memo_chars))
        laps.lap("signals")
        ckpt = Checkpoints(space.path.parent / "resume", fingerprint(store, cfg)) if resume else None
        done = ckpt.latest() if ckpt else None
        con = spark or open_connection(store, cfg)
        with stage_guard("prepare", space, cfg.memory_limit):
            if prepared is not None:
                sigs = prepared(con)
            elif done:
                bar.stage("prepare", 1, f"resumed from the {done[0]} checkpoint")
                ckpt.load(done[0], con)  # type: ignore[union-attr]
                con.execute("CHECKPOINT")  # compress the loaded tables (open_connection's database)
                sigs = list(done[1]["sigs"])
            else:
                n_rows = sum(store.parquet_file(f).metadata.num_rows for f in store.exchange_files())
                bar.stage("prepare", 0, f"projecting exchanges, 0 of {n_rows:,} rows")
                sl = {"done": 0, "cur": n_rows, "f": 0.0}

                def rows_done(f: float) -> None:  # within a slice: its statements' progress, never backwards
                    sl["f"] = max(sl["f"], f)
                    n = int(sl["done"] + sl["f"] * sl["cur"])
                    bar.stage("prepare", n / max(n_rows, 1), f"projecting and folding exchanges, {n:,} of {n_rows:,} rows")

                def next_slice(d: int, _total: int, cur: int) -> None:
                    sl.update(done=d, cur=cur, f=0.0)
                    rows_done(0.0)

                with _poll_query(con, rows_done):
                    con, sigs = prepare(store, cfg, con, done=next_slice)
                if ckpt:
                    ckpt.save("prepare", con, {"sigs": sigs})
            n_ex = int(con.execute("SELECT coalesce(sum(n), 0) FROM beh_ah").fetchall()[0][0])
        laps.lap("prepare")
        first: dict[str, datetime] = {}
        n_steps = 0
        with stage_guard("detect", space, cfg.memory_limit):
            cfg, update = _learned(store, con, sigs, cfg)
            if replay_step is not None:
                step, first, n_steps = replay(con, sigs, cfg, replay_step, max(coarse, replay_step), progress,
                                              replay_exact)
            elif done and done[0] == "detect":
                step = ckpt.load_step("detect")  # type: ignore[union-attr]
            else:
                parts = 7 + 2 * len(cfg.graph.resolutions)  # + operations and their scoring
                inner = _Laps(timings)

                def mark(name: str) -> None:
                    inner.lap(f"detect.{name}")
                    bar.count += 1
                    bar.stage("detect", bar.count / parts, f"{name} done ({n_ex:,} exchanges)")

                bar.count = 0
                bar.stage("detect", 0, "account features")
                step = detect_step(con, sigs, cfg, None, mark, warm=warm)
                if ckpt:
                    ckpt.save("detect", con, {"sigs": sigs}, step)
        laps.lap("detect")
        with stage_guard("campaigns", space, cfg.memory_limit):
            bar.stage("campaigns", 0, "campaigns and enforcement")
            res = _campaigns(con, cfg, step, first, replay_step is not None)
        laps.lap("campaigns")
    except BaseException:
        space.cleanup()
        store.spill = None
        raise
    risk, campaigns, members, org_keys, links, released = res
    out = ScanResult(step, risk, campaigns, members, org_keys, links, released, replay_step is not None, n_ex,
                     timings, n_steps, con, space, ckpt, update)
    out.timings["signals_state"] = sig_state  # type: ignore[assignment]
    out.timings["resumed_from"] = done[0] if done else None  # type: ignore[assignment]
    return out


def _learned(store: Store, con, sigs: list[str], cfg: ScanConfig) -> tuple[ScanConfig, ModelUpdate]:
    """The scan's configuration with the account model re-weighted from analysts' verdicts and partner
    indicators (distillguard/scoring/learn.py), when its held-out check passes; else ``cfg`` as given."""
    from distillguard.behavior import account_features

    sc = cfg.scoring
    model, update = learn_account_model(store, lambda: account_features(con, sigs, cfg.behavior, None),
                                        sc.account_model, sc.learning, tuple(cfg.behavior.non_intent_signals))
    if model is sc.account_model:
        return cfg, update
    return cfg.model_copy(update={"scoring": sc.model_copy(update={"account_model": model})}), update


def close_scan(res: ScanResult, store: Store | None = None, *, finished: bool = True) -> None:
    """Close the scan's connection and remove its spill directory (and, once its results are written,
    its resume checkpoints)."""
    if res.con is not None:
        res.con.close()
        res.con = None
    if res.space is not None:
        res.space.cleanup()
    if finished and res.checkpoints is not None:
        res.checkpoints.clear()
    if store is not None:
        store.spill = None


def _campaigns(con, cfg: ScanConfig, step: StepResult, first: dict[str, datetime], replayed: bool):
    # ban evasion: a new account inheriting a banned account's fingerprints/templates/workload
    links = ban_evasion_links(con, cfg.campaigns.ban_evasion_overlap)
    risk = step.account_risk
    if links:
        risk = _apply_ban_links(risk, links, step, cfg)
    released = released_models(con, cfg.behavior)
    chosen = {c for c, f in zip(risk["cluster_id"].to_pylist(), risk["flagged"].to_pylist(), strict=True) if f and c}
    flagged_clusters = {cs.cluster_id: cs.members for cs in step.clusters
                        if cs.risk >= cfg.scoring.flag_threshold and cs.cluster_id in chosen}
    org_keys = attribute_orgs(con, flagged_clusters, cfg.campaigns.merge_exclusive)
    campaigns, members = build_campaigns(con, step.clusters, risk, step.features, org_keys, released,
                                         cfg.campaigns, cfg.scoring.flag_threshold, edges=step.edges)
    risk = _drop_lone_flags(risk, members, {n for n, _, _ in links}, cfg)
    ids = risk["account_id"].to_pylist()
    flagged = risk["flagged"].to_pylist()
    if replayed:
        ffa = [first.get(a) if f else None for a, f in zip(ids, flagged, strict=True)]
    else:
        ffa = [None] * len(ids)
    risk = risk.append_column("first_flagged_at", pa.array(ffa, pa.timestamp("ms", tz="UTC")))
    risk = risk.append_column("campaign_id", pa.array([members.get(a) for a in ids], pa.string()))
    for c in campaigns:
        times = [first[a] for a, cid in members.items() if cid == c["campaign_id"] and a in first]
        c["first_flagged_at"] = min(times) if times else None
    return risk, campaigns, members, org_keys, links, released


class _StageBar:
    """Maps (stage, fraction within it) onto one bar: each stage owns a slice of 0..1 sized roughly by what it
    costs, and the description names the stage and what it has done."""

    SLICES = {"signals": (0.0, 0.45), "prepare": (0.45, 0.6), "detect": (0.6, 0.95), "campaigns": (0.95, 1.0)}

    def __init__(self, progress: Progress | None):
        self.progress, self.count, self.last = progress, 0, 0.0

    def stage(self, name: str, frac: float, detail: str) -> None:
        if self.progress is None:
            return
        lo, hi = self.SLICES[name]
        self.last = max(self.last, lo + (hi - lo) * max(0.0, min(1.0, frac)))
        self.progress(f"{name}: {detail}", self.last)


@contextmanager
def _poll_query(con: duckdb.DuckDBPyConnection, report: Callable[[float], None], every: float = 0.5):
    """Report DuckDB's progress through the running statement (0..1) from a side thread: one projection over
    every exchange is minutes at scale, and a bar frozen for minutes looks like a hang."""
    con.execute("SET enable_progress_bar=true")
    con.execute("SET enable_progress_bar_print=false")
    stop = threading.Event()

    def loop() -> None:
        # each statement counts from 0%: the caller keeps the furthest (the projection, first in each slice
        # of prepare, is most of its work)
        while not stop.wait(every):
            p = con.query_progress()
            if p >= 0:
                report(p / 100)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        con.execute("SET enable_progress_bar=false")


def _drop_lone_flags(risk: pa.Table, members: dict[str, str], ban_linked: set[str], cfg: ScanConfig) -> pa.Table:
    """A flag needs a campaign: an account whose cluster produced no campaign (no second flagged account)
    is one ordinary-looking user on the edge of a community, not a finding (ban-evasion links excepted)."""
    rows = risk.to_pylist()
    cap = cfg.scoring.flag_threshold - 1e-3
    for r in rows:
        if r["flagged"] and r["account_id"] not in members and r["account_id"] not in ban_linked:
            r["flagged"] = False
            r["risk"] = min(r["risk"], cap)
            r["reasons"] = list(r["reasons"] or []) + ["not flagged: no other account of its cluster was flagged"]
    return pa.Table.from_pylist(rows, schema=risk.schema)


def _apply_ban_links(risk: pa.Table, links, step: StepResult, cfg: ScanConfig) -> pa.Table:
    by_new: dict[str, tuple[str, float]] = {}
    for new, banned, ov in links:
        if new not in by_new or ov > by_new[new][1]:
            by_new[new] = (banned, ov)
    cl_of = dict(zip(risk["account_id"].to_pylist(), risk["cluster_id"].to_pylist(), strict=True))
    rows = risk.to_pylist()
    for r in rows:
        hit = by_new.get(r["account_id"])
        if not hit:
            continue
        banned, ov = hit
        r["risk"] = max(r["risk"], min(0.99, 0.5 + 0.5 * ov))
        r["flagged"] = r["risk"] >= cfg.scoring.flag_threshold
        r["cluster_id"] = r["cluster_id"] or cl_of.get(banned)
        r["reasons"] = [f"took over banned account {banned}: inherits {ov:.0%} of its weighted fingerprints, "
                        "templates and workload"] + list(r["reasons"] or [])
    return pa.Table.from_pylist(rows, schema=risk.schema)


# ---------------------------------------------------------------------------------------- output
ACCOUNT_RISK_SCHEMA = pa.schema([
    ("account_id", pa.string()), ("risk", pa.float64()), ("flagged", pa.bool_()),
    ("first_flagged_at", pa.timestamp("ms", tz="UTC")), ("cluster_id", pa.string()), ("campaign_id", pa.string()),
    ("reasons", pa.list_(pa.string())),
])


def write_tables(store: Store, res: ScanResult, cfg: ScanConfig, now: datetime | None = None) -> pa.Table:
    """The derived tables of docs/tables.md (detection + enforcement); returns the final account risk."""
    now = now or datetime.now(UTC)
    step = res.step
    store.write_table("account_features", step.features)
    store.write_table("coordination_edges", step.edges)
    cl_rows, cm_rows = [], []
    camp_of_cluster = {cl: c["campaign_id"] for c in res.campaigns for cl in c["cluster_ids"]}
    for cs in step.clusters:
        cl_rows.append(dict(cluster_id=cs.cluster_id, n_accounts=len(cs.members), risk=cs.risk, reasons=cs.reasons,
                            campaign_id=camp_of_cluster.get(cs.cluster_id), coordination=cs.coordination,
                            suspicion=cs.suspicion))
        for a in cs.members:
            cm_rows.append(dict(cluster_id=cs.cluster_id, account_id=a, org_key=res.org_keys.get(cs.cluster_id)))
    store.write_table("clusters", pa.Table.from_pylist(cl_rows, schema=pa.schema([
        ("cluster_id", pa.string()), ("n_accounts", pa.int64()), ("risk", pa.float64()),
        ("reasons", pa.list_(pa.string())), ("campaign_id", pa.string()), ("coordination", pa.float64()),
        ("suspicion", pa.float64())])))
    store.write_table("cluster_members", pa.Table.from_pylist(cm_rows, schema=pa.schema([
        ("cluster_id", pa.string()), ("account_id", pa.string()), ("org_key", pa.string())])))
    store.write_table("account_risk", res.account_risk.select(ACCOUNT_RISK_SCHEMA.names).cast(ACCOUNT_RISK_SCHEMA))
    if res.model_update is not None:
        store.write_table(UPDATES_TABLE, res.model_update.table(now))
    decisions = latest_decisions(store)  # analysts' verdicts outlive a re-scan
    store.write_table("campaigns", with_status(pa.Table.from_pylist(res.campaigns, schema=CAMPAIGN_SCHEMA), decisions))
    store.write_table("campaign_members", pa.table({
        "campaign_id": pa.array(list(res.campaign_members.values()), pa.string()),
        "account_id": pa.array(list(res.campaign_members), pa.string())}))
    recs, enf = recommend(res.campaigns, res.campaign_members, now, cfg.campaigns.enforcement_days,
                          cfg.campaigns.enforcement, decisions, {cs.cluster_id: cs.members for cs in step.clusters})
    store.write_table(RECOMMENDATIONS, recs)
    store.write_table("enforcement", _with_other_sources(store, enf, now))
    chosen = {c for c, f in zip(res.account_risk["cluster_id"].to_pylist(), res.account_risk["flagged"].to_pylist(),
                                strict=True) if f and c}
    flagged_cl = {cs.cluster_id for cs in step.clusters if cs.risk >= cfg.scoring.flag_threshold and cs.cluster_id in chosen}
    ac = [(a, cs.cluster_id) for cs in step.clusters if cs.cluster_id in flagged_cl for a in cs.members]
    store.write_table("account_clusters", pa.table({"account_id": pa.array([a for a, _ in ac], pa.string()),
                                                    "cluster_id": pa.array([c for _, c in ac], pa.string())}))
    if store.has_table("intel_boost"):
        # Partner indicators matched earlier (`intel match`) must survive a re-scan, so fold them in again.
        from distillguard.intel.apply import apply_intel

        apply_intel(store, now=now)
        return store.read_table("account_risk")
    return res.account_risk


def _with_other_sources(store: Store, scan_rows: pa.Table, now: datetime) -> pa.Table:
    """Scan replaces its own decisions only: analyst, intel and policy rows stay in the table.

    The enforcement contract is "newest row per subject wins", so an analyst's later unblock still beats an older
    scan row, and a re-scan never erases what a person decided.
    """
    if not store.has_table("enforcement"):
        return scan_rows
    old = store.read_table("enforcement")
    if "source" in old.column_names:
        old = old.filter(pc.invert(pc.is_in(pc.fill_null(old["source"], ""), pa.array(["scan", "scan:shadow"]))))
    if old.num_rows == 0:
        return scan_rows
    scan_rows = _defer_to_analysts(old, scan_rows, now)
    for f in scan_rows.schema:  # DuckDB reads timestamps back as us/Etc/UTC: align to the contract's types
        if f.name in old.column_names and old.schema.field(f.name).type != f.type:
            old = old.set_column(old.schema.get_field_index(f.name), f, old[f.name].cast(f.type))
    return pa.concat_tables([scan_rows, old], promote_options="permissive")


def _defer_to_analysts(old: pa.Table, scan_rows: pa.Table, now: datetime) -> pa.Table:
    """Drop scan rows for subjects an analyst has ruled on (and whose ruling has not expired).

    A scan's rows are always the newest, so "newest row per subject wins" alone would let the next scan undo an
    analyst's unblock of one account inside a campaign still awaiting review. A person's decision on a subject
    stands until a person changes it or it expires; campaign-wide verdicts already reach scans through
    `campaign_decisions`.
    """
    if "source" not in old.column_names or scan_rows.num_rows == 0:
        return scan_rows
    now = _aware(now)
    ruled = set()
    for st, sid, src, exp in zip(old["subject_type"].to_pylist(), old["subject_id"].to_pylist(),
                                 old["source"].to_pylist(), old["expires_at"].to_pylist(), strict=True):
        if src == "analyst" and (exp is None or _aware(exp) > now):
            ruled.add((st, sid))
    if not ruled:
        return scan_rows
    keep = [(st, sid) not in ruled for st, sid in zip(scan_rows["subject_type"].to_pylist(),
                                                       scan_rows["subject_id"].to_pylist(), strict=True)]
    return scan_rows.filter(pa.array(keep, pa.bool_()))


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def results_accounts(res: ScanResult, account_risk: pa.Table | None = None) -> pa.Table:
    t = res.account_risk if account_risk is None else account_risk
    return pa.table({
        "account_id": t["account_id"].cast(pa.string()),
        "risk": pc.cast(t["risk"], pa.float64()),
        "flagged": t["flagged"].cast(pa.bool_()),
        "first_flagged_at": t["first_flagged_at"].cast(pa.timestamp("ms", tz="UTC")),
        "campaign_id": t["campaign_id"].cast(pa.string()),
    })
