"""Incremental detection in `watch`: partial aggregates kept per exchange part, merged at detection time, give
the same result as projecting every exchange; a crash mid-fold neither skips nor double-counts a part."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from distillguard import watch
from distillguard.scan.config import ScanConfig
from distillguard.scan.run import close_scan, run_scan
from distillguard.store import Store
from distillguard.testing.worlds import build_tiny_world


def _split_store(tmp_path, n_parts: int = 4, hold_back: int = 0):
    """The tiny world's exchanges re-written as parts that cut through every hour and minute (row i → part
    i mod n), the way a stream writer's one-second parts do; ``hold_back`` parts are returned unwritten."""
    src = Store(tmp_path / "src", create=True)
    build_tiny_world(src, seed=5, days=3, hydra_accounts=12, slow_accounts=10)
    ex = src.exchanges().to_arrow_table()
    dst = Store(tmp_path / "dst", create=True)
    dst.write_accounts(src.accounts().to_arrow_table())
    idx = pa.array(range(ex.num_rows))
    parts = [ex.filter(pc.equal(pc.bit_wise_and(idx, 0) if n_parts == 1 else pc.remainder(idx, n_parts), k))
             for k in range(n_parts)]
    for k, p in enumerate(parts[: n_parts - hold_back]):
        dst.write_exchanges(p, key=f"p{k}")
    return dst, parts[n_parts - hold_back:], ex.num_rows


def _risk(res) -> dict:
    return {r["account_id"]: (round(r["risk"], 9), r["flagged"]) for r in res.account_risk.to_pylist()}


def _assert_same_tables(full, *others) -> None:
    """Every prepared table the partials feed holds the same rows in each of ``others`` as in ``full``."""
    for t in ("beh_ah", "beh_am", "beh_pd", "beh_at", "beh_as", "inc_h", "sync_b"):
        cols = [r[0] for r in full.con.execute(f"DESCRIBE {t}").fetchall()]
        q = f"SELECT {', '.join(cols)} FROM {t} ORDER BY ALL"
        want = full.con.execute(q).fetchall()
        for other in others:
            assert other.con.execute(q).fetchall() == want, t


def _both(st, cfg):
    full = run_scan(st, cfg, signals="never")
    inc = run_scan(st, cfg, signals="never", prepared=lambda con: watch.load_partials(st, con))
    try:
        _assert_same_tables(full, inc)
        return _risk(full), _risk(inc), len(full.campaigns), len(inc.campaigns)
    finally:
        close_scan(full)
        close_scan(inc)


def test_merged_partials_equal_a_full_projection(tmp_path):
    st, _, n = _split_store(tmp_path)
    cfg, state = ScanConfig(), watch.load_state(st)
    assert watch.score_new(st, state) == n
    assert watch.fold_new(st, state, cfg) == len(st.exchange_files())  # one per (part, day) file
    full, inc, n_full, n_inc = _both(st, cfg)
    assert full == inc and n_full == n_inc
    assert any(f for _, f in full.values())  # the world's campaigns are found at all


def test_crash_mid_fold_neither_skips_nor_doubles(tmp_path, monkeypatch):
    st, held, n = _split_store(tmp_path, n_parts=4, hold_back=1)
    cfg, state = ScanConfig(), watch.load_state(st)
    watch.score_new(st, state)
    watch.fold_new(st, state, cfg)
    # a new part arrives; the watch dies after writing three of its seven partial tables
    before = len(st.exchange_files())
    st.write_exchanges(held[0], key="p3")
    watch.score_new(st, state)
    real, calls = st.append_table, []

    def dying(name, table, key=None):
        calls.append(name)
        if len(calls) == 4:
            raise KeyboardInterrupt("killed")
        return real(name, table, key=key)

    monkeypatch.setattr(st, "append_table", dying)
    with pytest.raises(KeyboardInterrupt):
        watch.fold_new(st, state, cfg)
    monkeypatch.setattr(st, "append_table", real)
    state = watch.load_state(st)  # the restart reads what was saved
    n_new = len(st.exchange_files()) - before
    assert watch.fold_new(st, state, cfg) == n_new  # only the new part's files (the interrupted one again)
    assert watch.fold_new(st, watch.load_state(st), cfg) == 0
    con = st.connect()
    try:
        assert con.execute("SELECT sum(n) FROM watch_partial_beh_ah").fetchall()[0][0] == n  # each exchange once
        assert con.execute("SELECT sum(c) FROM watch_partial_beh_pm").fetchall()[0][0] == n
    finally:
        con.close()
    full, inc, *_ = _both(st, cfg)
    assert full == inc


def test_tick_detects_incrementally_and_restart_repeats_nothing(tmp_path, monkeypatch):
    st, held, n = _split_store(tmp_path, n_parts=3, hold_back=1)
    # each detection starts Leiden cold, as the scan compared with does (warm starts may find other communities)
    cfg = ScanConfig(watch_warm_communities=False)
    opts = watch.WatchOptions(interval_seconds=0)
    r1 = watch.tick(st, opts, watch.load_state(st), cfg, force_detect=True)
    assert r1.folded == len(st.exchange_files()) and r1.detected
    before = len(st.exchange_files())
    st.write_exchanges(held[0], key="p2")
    state = watch.load_state(st)  # a restarted watch: what it saved, and no Leiden start kept in memory
    monkeypatch.setattr(watch, "_WARM", {})
    r2 = watch.tick(st, opts, state, cfg, force_detect=True)
    assert r2.folded == len(st.exchange_files()) - before and r2.scored == held[0].num_rows
    r3 = watch.tick(st, opts, watch.load_state(st), cfg)
    assert r3.folded == 0 and r3.scored == 0
    inc = {r["account_id"]: (round(r["risk"], 9), r["flagged"]) for r in st.read_table("account_risk").to_pylist()}
    full = run_scan(st, cfg, signals="never")
    try:
        assert _risk(full) == inc
    finally:
        close_scan(full)


def test_exchanges_stored_after_the_fold_wait_for_the_next_tick(tmp_path, monkeypatch):
    """The stream writer runs beside the ticks: a part stored between a tick's fold and its detection is not
    in that detection (and must not break it); the next tick folds it."""
    st, _, _ = _split_store(tmp_path, n_parts=2)
    opts = watch.WatchOptions(interval_seconds=0)
    monkeypatch.setattr(watch, "fold_new", lambda store, state, cfg: 0)  # as if every part arrived after the fold
    rep = watch.tick(st, opts, watch.load_state(st), ScanConfig(), force_detect=True)
    assert not rep.detected
    monkeypatch.undo()
    rep = watch.tick(st, opts, watch.load_state(st), ScanConfig(), force_detect=True)
    assert rep.folded == len(st.exchange_files()) and rep.detected


def test_a_detection_judges_every_part_stored_before_its_time(tmp_path):
    """A detection stamped with the loop's time t judges every part stored before t. The clock is read before the
    fold: a part stored while a tick folds, with the clock moving meanwhile (a replay's lock-step moves it as soon
    as the writer has stored the window), goes to the next detection instead of missing from one stamped after it."""
    st, held, _ = _split_store(tmp_path, n_parts=2, hold_back=1)
    state = watch.load_state(st)
    now = {"t": 1000.0}

    def clock():
        # the writer stores the window's last part (at t = 1000), then the lock-step moves the clock past it
        if held:
            st.write_exchanges(held.pop(), key="p1")
            now["t"] = 1000.0 + 3600
        return now["t"]

    opts = watch.WatchOptions(interval_seconds=3600, clock=clock)
    state["last_detect"] = 0.0
    reps = [watch.tick(st, opts, state, ScanConfig()) for _ in range(2)]
    det = [r for r in reps if r.detected]
    assert det and det[-1].detected_at == now["t"]
    # the detection as of t = 4600 judged every part (the one stored at 1000 included)
    assert sum(r.folded for r in reps[: reps.index(det[-1]) + 1]) == len(st.exchange_files())


def test_a_part_stored_after_the_signals_step_waits_for_its_signals(tmp_path):
    # The stream writer stores parts while a tick runs. A part stored after score_new and before fold_new has
    # no signals yet; folded then, its exchanges entered the partials without templates, task items or signal
    # shares, for good (issue 14: the loop replay's batches of two parts lost one part's template and schedule
    # evidence, and seed 1's hydra was flagged an hour late). It is folded by the next tick, with its signals.
    st, held, n = _split_store(tmp_path, n_parts=4, hold_back=1)
    cfg, state = ScanConfig(), watch.load_state(st)
    watch.score_new(st, state)
    st.write_exchanges(held[0], key="p3")          # stored between the two steps of one tick
    folded_now = watch.fold_new(st, state, cfg)
    assert folded_now == len(st.exchange_files()) - len(list((st.path / "exchanges").rglob("p3*.parquet")))
    watch.score_new(st, state)                     # the next tick
    assert watch.fold_new(st, state, cfg) > 0
    full, inc, n_full, n_inc = _both(st, cfg)
    assert full == inc and n_full == n_inc


def test_watch_partials_carry_the_count(tmp_path):
    """`n_max_tokens` and the max_tokens ranking built on it, and `mean_output_tokens` / `n_output_tokens` (what
    the software-users rule reads as answers received), agree between a full projection and `watch`'s merged
    partials of parts that cut through every hour."""
    st, _, _ = _split_store(tmp_path, n_parts=3)
    cfg, state = ScanConfig(), watch.load_state(st)
    watch.score_new(st, state)
    watch.fold_new(st, state, cfg)
    full = run_scan(st, cfg, signals="never")
    inc = run_scan(st, cfg, signals="never", prepared=lambda con: watch.load_partials(st, con))
    try:
        cols = ["account_id", "n_exchanges", "n_max_tokens", "mean_max_tokens", "c_long_output",
                "n_output_tokens", "mean_output_tokens"]
        a, b = (r.step.features.select(cols).sort_by("account_id").to_pylist() for r in (full, inc))
        assert a == b
        known = [r for r in a if r["mean_max_tokens"] is not None]
        assert known and all(0 < r["n_max_tokens"] <= r["n_exchanges"] for r in known)
        got = [r for r in a if r["mean_output_tokens"] is not None]
        assert got and all(0 < r["n_output_tokens"] <= r["n_exchanges"] and r["mean_output_tokens"] > 0 for r in got)
    finally:
        close_scan(full)
        close_scan(inc)


def test_signals_through_the_prompt_memo_equal_scoring_each_part_alone(tmp_path, monkeypatch):
    """score_new scores through the process's prompt memo (watch ticks repeat prompts): a prompt an earlier tick
    scored is looked up, not scored again, and every stored signal row equals scoring the exchanges afresh."""
    from distillguard.signals import memo as prompt_memo
    from distillguard.signals.score import score_batch

    st, held, n = _split_store(tmp_path, n_parts=3, hold_back=1)
    monkeypatch.setattr(prompt_memo, "_memo", None)  # a memo of this test's own
    cfg, state = ScanConfig(), watch.load_state(st)
    watch.score_new(st, state, cfg)
    memo = prompt_memo.process_memo()
    hits = memo.hits
    # the next tick's part sends prompts the first parts sent (the tiny world's prompts are all distinct)
    sent = st.exchanges().to_arrow_table()["prompt"].slice(0, held[0].num_rows)
    st.write_exchanges(held[0].set_column(held[0].schema.get_field_index("prompt"), "prompt", sent), key="p2")
    watch.score_new(st, state, cfg)
    assert memo.hits - hits >= held[0].num_rows // 2
    got = st.read_table("exchange_signals").sort_by("exchange_id")
    fresh = pa.Table.from_batches([score_batch(st.exchanges().to_arrow_table())]).sort_by("exchange_id")
    assert got.num_rows == n
    assert got.select(fresh.column_names).equals(fresh.cast(got.select(fresh.column_names).schema))


def test_batches_that_follow_time_are_unioned_and_equal_a_full_projection(tmp_path):
    """Parts that arrive in time order (one per day, folded at separate ticks) have spans sharing no hour: their
    hour-keyed partials are unioned instead of grouped again, with the same tables and results as projecting
    every exchange (and as the grouped merge)."""
    src = Store(tmp_path / "src", create=True)
    build_tiny_world(src, seed=5, days=3, hydra_accounts=12, slow_accounts=10)
    ex = src.exchanges().to_arrow_table()
    st = Store(tmp_path / "dst", create=True)
    st.write_accounts(src.accounts().to_arrow_table())
    day = pc.floor_temporal(ex["ts"], unit="day")
    cfg, state = ScanConfig(), watch.load_state(st)
    for k, d in enumerate(sorted(set(day.to_pylist()))):
        st.write_exchanges(ex.filter(pc.equal(day, pa.scalar(d, day.type))), key=f"d{k}")
        watch.score_new(st, state, cfg)
        assert watch.fold_new(st, state, cfg) == 1
    files = sorted((st.path / "tables" / "watch_partial_beh_ah").glob("*.parquet"))
    assert len(files) >= 3 and watch._disjoint_spans(files, state["spans"])
    full = run_scan(st, cfg, signals="never")
    union = run_scan(st, cfg, signals="never", prepared=lambda con: watch.load_partials(st, con, None, state, cfg))
    grouped = run_scan(st, cfg, signals="never", prepared=lambda con: watch.load_partials(st, con))
    try:
        _assert_same_tables(full, union, grouped)
        assert _risk(full) == _risk(union) == _risk(grouped)
        assert len(full.campaigns) == len(union.campaigns) >= 1
    finally:
        for r in (full, union, grouped):
            close_scan(r)


def test_warm_communities_start_from_the_last_partition(tmp_path):
    """Leiden started from an earlier partition (watch_warm_communities): the first call (nothing kept) equals a
    cold start; it keeps each account's community per resolution; the next call starts from them (accounts new
    to the graph alone) and still returns communities of at least min_cluster_size."""
    import importlib

    gc = importlib.import_module("distillguard.graph.communities")  # the package exports a function of that name

    pairs = pa.table({"src": ["a", "a", "b", "d", "d", "e", "c"], "dst": ["b", "c", "c", "e", "f", "f", "d"],
                      "weight": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.1]})
    cfg = ScanConfig().graph
    g = gc.leiden_graph(pairs)
    cold = gc.community_levels(g, cfg, [1.0, 3.0], workers=1)
    warm: dict = {}
    assert gc.community_levels(g, cfg, [1.0, 3.0], workers=1, warm=warm) == cold
    assert set(warm) == {1.0, 3.0} and set(warm[1.0]) == set("abcdef")
    assert gc._initial(["a", "b", "z"], {"a": 4, "b": 0}) == [4, 0, 5]  # z is new: a community of its own
    again = gc.community_levels(g, cfg, [1.0, 3.0], workers=1, warm=warm)
    assert again[0] == cold[0] and sorted(set(again[0].values())) == [0, 1]


def test_batches_cut_inside_an_hour_group_only_the_shared_hours(tmp_path):
    """Ticks that cut through an hour (a replay stepping from the world's first second, a writer's part ending at
    any time) give batches whose spans share that hour: only the rows of the shared hours are grouped again, the
    rest unioned, with the same tables and results as projecting every exchange."""
    from datetime import timedelta

    src = Store(tmp_path / "src", create=True)
    build_tiny_world(src, seed=5, days=3, hydra_accounts=12, slow_accounts=10)
    ex = src.exchanges().to_arrow_table().sort_by("ts")
    st = Store(tmp_path / "dst", create=True)
    st.write_accounts(src.accounts().to_arrow_table())
    t0, t1 = pc.min(ex["ts"]).as_py(), pc.max(ex["ts"]).as_py()
    cfg, state = ScanConfig(), watch.load_state(st)
    cut, k = t0 + timedelta(hours=7, minutes=17, seconds=13), 0
    while True:  # batches cut at 7h17m13s past the first exchange, then every 19 hours 31 minutes
        lo = t0 if k == 0 else cut + timedelta(hours=19, minutes=31) * (k - 1)
        hi = cut + timedelta(hours=19, minutes=31) * k
        part = ex.filter(pc.and_(pc.greater_equal(ex["ts"], pa.scalar(lo, ex["ts"].type)),
                                 pc.less(ex["ts"], pa.scalar(hi, ex["ts"].type))))
        if part.num_rows:
            st.write_exchanges(part, key=f"c{k}")
            watch.score_new(st, state, cfg)
            assert watch.fold_new(st, state, cfg) >= 1
        if hi > t1:
            break
        k += 1
    files = sorted((st.path / "tables" / "watch_partial_beh_ah").glob("*.parquet"))
    shared = watch._shared_hours(files, state["spans"])
    assert len(files) >= 3 and shared and not watch._disjoint_spans(files, state["spans"])
    assert len(shared) == len(files) - 1 and all(a == b for a, b in shared)  # one hour per cut
    full = run_scan(st, cfg, signals="never")
    merged = run_scan(st, cfg, signals="never", prepared=lambda con: watch.load_partials(st, con, None, state, cfg))
    # as a windowed detection runs it (watch_tables_in_memory): the tables in memory, not in a database file
    in_memory = run_scan(st, cfg.model_copy(update={"tables_on_disk": False}), signals="never",
                         prepared=lambda con: watch.load_partials(st, con, None, state, cfg))
    try:
        _assert_same_tables(full, merged, in_memory)
        assert _risk(full) == _risk(merged) == _risk(in_memory)
        assert len(full.campaigns) == len(merged.campaigns) == len(in_memory.campaigns) >= 1
    finally:
        for r in (full, merged, in_memory):
            close_scan(r)


def test_a_windowed_detection_keeps_its_tables_in_memory(tmp_path, monkeypatch):
    """watch_tables_in_memory: a windowed detection runs the scan with its tables in memory (a window bounds
    them); off, or on all traffic, it follows tables_on_disk as a scan does."""
    import distillguard.scan.run as scan_run

    st, _, _ = _split_store(tmp_path, n_parts=2)
    cfg, state = ScanConfig(), watch.load_state(st)
    watch.score_new(st, state, cfg)
    watch.fold_new(st, state, cfg)
    seen, real = [], scan_run.run_scan
    monkeypatch.setattr(scan_run, "run_scan", lambda store, c, **kw: seen.append(c.tables_on_disk) or real(store, c, **kw))
    since = watch.detect_window(state, 48.0)
    watch.detect(st, cfg, since=since, state=state)
    watch.detect(st, cfg.model_copy(update={"watch_tables_in_memory": False}), since=since, state=state)
    watch.detect(st, cfg, state=state)
    assert seen == [False, True, True]
