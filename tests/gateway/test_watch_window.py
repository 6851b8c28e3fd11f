"""Windowed detection in `watch`: a tick reads only the partials of the parts that reach its window, judges the
window's traffic as a store holding only that traffic would be judged, and keeps what earlier detections found
(members, flags, enforcement) after its traffic has left the window, until expiry or an analyst's word."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from distillguard import watch
from distillguard.campaigns.enforcement import record_decision
from distillguard.scan.config import ScanConfig
from distillguard.scan.run import close_scan, run_scan
from distillguard.store import Store
from distillguard.testing.worlds import build_tiny_world


def _daily_store(tmp_path) -> tuple[Store, pa.Table, dict]:
    """The tiny world arriving one day at a time, each day folded by its own tick (one batch per day)."""
    src = Store(tmp_path / "src", create=True)
    build_tiny_world(src, seed=5, days=3, hydra_accounts=12, slow_accounts=10)
    ex = src.exchanges().to_arrow_table()
    st = Store(tmp_path / "dst", create=True)
    st.write_accounts(src.accounts().to_arrow_table())
    state = watch.load_state(st)
    days = sorted({t.date() for t in ex["ts"].to_pylist()})
    for i, d in enumerate(days):
        lo = datetime(d.year, d.month, d.day, tzinfo=UTC)
        part = ex.filter(pc.and_(pc.greater_equal(ex["ts"], pa.scalar(lo, ex["ts"].type)),
                                 pc.less(ex["ts"], pa.scalar(lo + timedelta(days=1), ex["ts"].type))))
        st.write_exchanges(part, key=f"d{i}")
        watch.score_new(st, state)
        assert watch.fold_new(st, state, ScanConfig()) == 1
    assert len(state["spans"]) == len(days)
    return st, ex, state


def _flagged(st) -> set[str]:
    t = st.read_table("account_risk")
    return {a for a, f in zip(t["account_id"].to_pylist(), t["flagged"].to_pylist(), strict=True) if f}


def test_window_reads_only_its_parts_and_equals_a_store_of_its_traffic(tmp_path):
    st, ex, state = _daily_store(tmp_path)
    cfg = ScanConfig()
    newest = max(sp[1] for sp in state["spans"].values())
    since = watch.detect_window(state, 24.0)
    assert since == datetime.fromtimestamp(newest, UTC) + timedelta(hours=1) - timedelta(hours=24)
    since = since.replace(hour=0)  # a day boundary: whole parts in or out, so the comparison below is exact
    # the partials of batches wholly before the window are never read: give them the newest batch's rows
    # (inside the window), which would count twice if they were
    old = [k for k, sp in state["spans"].items() if sp[1] < since.timestamp()]
    newest_key = max(state["spans"], key=lambda k: state["spans"][k][1])
    assert old
    for k in old:
        for t in watch.PARTIALS:
            d = st.path / "tables" / watch.PARTIAL_TABLE.format(t)
            (d / f"part-{k}.parquet").write_bytes((d / f"part-{newest_key}.parquet").read_bytes())
    win = run_scan(st, cfg, signals="never", prepared=lambda con: watch.load_partials(st, con, since, state))
    only = Store(tmp_path / "only", create=True)
    only.write_accounts(st.accounts().to_arrow_table())
    only.write_exchanges(ex.filter(pc.greater_equal(ex["ts"], pa.scalar(since, ex["ts"].type))), key="w")
    only.write_table("exchange_signals", st.read_table("exchange_signals"))
    ref = run_scan(only, cfg, signals="never")
    try:
        for t in ("beh_ah", "beh_am", "beh_pd", "beh_at", "beh_as", "inc_h", "sync_b"):
            cols = [r[0] for r in ref.con.execute(f"DESCRIBE {t}").fetchall()]
            q = f"SELECT {', '.join(cols)} FROM {t} ORDER BY ALL"
            assert ref.con.execute(q).fetchall() == win.con.execute(q).fetchall(), t
        assert win.n_exchanges < ex.num_rows
    finally:
        close_scan(win)
        close_scan(ref)


def _found(st, cfg, since, state) -> set[str]:
    """What a detection on the window alone flags (nothing carried)."""
    win = run_scan(st, cfg, signals="never", prepared=lambda con: watch.load_partials(st, con, since, state))
    try:
        return {a for a, f in zip(win.account_risk["account_id"].to_pylist(), win.account_risk["flagged"].to_pylist(),
                                  strict=True) if f}
    finally:
        close_scan(win)


def test_findings_outlive_the_window_until_an_analyst_dismisses(tmp_path):
    st, ex, state = _daily_store(tmp_path)
    cfg = ScanConfig()
    t_first = min(ex["ts"].to_pylist()).replace(minute=0, second=0, microsecond=0)
    watch.detect(st, cfg, since=t_first, state=state)  # the whole store: the world's campaigns
    before = _flagged(st)
    enf = st.read_table("enforcement")
    subjects = set(zip(enf["subject_type"].to_pylist(), enf["subject_id"].to_pylist(), strict=True))
    camps = set(st.read_table("campaigns")["campaign_id"].to_pylist())
    assert before and camps and subjects
    # the last hour alone: part of that evidence has left the window
    last = watch.detect_window(state, 1.0)
    found_last = _found(st, cfg, last, state)
    assert before - found_last  # accounts only an earlier window shows
    watch.detect(st, cfg, since=last, state=state)
    assert before <= _flagged(st)
    enf = st.read_table("enforcement")
    assert subjects <= set(zip(enf["subject_type"].to_pylist(), enf["subject_id"].to_pylist(), strict=True))
    members = st.read_table("campaign_members")
    assert before <= set(members["account_id"].to_pylist())
    assert len(members["account_id"].to_pylist()) == len(set(members["account_id"].to_pylist()))  # one campaign each
    assert camps <= set(st.read_table("campaigns")["campaign_id"].to_pylist())
    # an analyst dismisses every campaign: the next windowed detection carries none of it
    for cid in set(members["campaign_id"].to_pylist()):
        record_decision(st, cid, "dismissed", "allow", datetime.now(UTC), "analyst@x", "test")
    watch.detect(st, cfg, since=last, state=state)
    assert _flagged(st) <= found_last


def test_findings_expire_with_their_rows(tmp_path):
    st, ex, state = _daily_store(tmp_path)
    cfg = ScanConfig()
    t_first = min(ex["ts"].to_pylist()).replace(minute=0, second=0, microsecond=0)
    now = datetime.now(UTC)
    watch.detect(st, cfg, now=now, since=t_first, state=state)
    assert _flagged(st)
    later = now + timedelta(days=cfg.campaigns.enforcement_days, hours=1)
    last = watch.detect_window(state, 1.0)
    watch.detect(st, cfg, now=later, since=last, state=state)
    assert _flagged(st) <= _found(st, cfg, last, state)


def _flag_transiently(st, accounts: list[str], cid: str) -> None:
    """What an earlier detection's false flag leaves behind: membership of ``cid``, a flag, a scan row."""
    m = st.read_table("campaign_members")
    st.write_table("campaign_members", pa.concat_tables([m, pa.table({
        "campaign_id": pa.array([cid] * len(accounts), m.schema.field("campaign_id").type),
        "account_id": pa.array(accounts, m.schema.field("account_id").type)})]))
    risk = st.read_table("account_risk").to_pylist()
    for r in risk:
        if r["account_id"] in accounts:
            r.update(flagged=True, risk=0.9, campaign_id=cid)
    st.write_table("account_risk", pa.Table.from_pylist(risk, schema=st.read_table("account_risk").schema))
    enf = st.read_table("enforcement")
    row = next(r for r in enf.to_pylist() if r["campaign_id"] == cid and r["subject_type"] == "account")
    st.write_table("enforcement", pa.concat_tables([enf, pa.Table.from_pylist(
        [{**row, "subject_id": a} for a in accounts], schema=enf.schema)]))


def _enforced(st) -> set[str]:
    enf = st.read_table("enforcement")
    return {s for t, s in zip(enf["subject_type"].to_pylist(), enf["subject_id"].to_pylist(), strict=True)
            if t == "account"}


def test_a_flag_the_window_cleared_on_all_its_traffic_is_released(tmp_path):
    """Carry-forward keeps what the newer window could not see, not what it saw and cleared: two accounts an
    earlier detection flagged the same way, neither flagged by the newer one — the one with traffic before the
    window stays carried, the one whose every exchange is inside the window is released (membership, flag and
    enforcement) when the newer detection's risk for it is below ``watch_release_below``, unless an analyst
    confirmed its campaign."""
    st, ex, state = _daily_store(tmp_path)
    cfg = ScanConfig()
    first: dict[str, datetime] = {}
    for a, t in zip(ex["account_id"].to_pylist(), ex["ts"].to_pylist(), strict=True):
        first[a] = min(first.get(a, t), t)
    t_first = min(first.values()).replace(minute=0, second=0, microsecond=0)
    watch.detect(st, cfg, since=t_first, state=state)
    before = _flagged(st)
    cid = sorted(set(st.read_table("campaign_members")["campaign_id"].to_pylist()))[0]
    # the window starts at the hour the latest account began: that account's traffic is all inside it
    since = max(first.values()).replace(minute=0, second=0, microsecond=0)
    found = _found(st, cfg, since, state)
    inside = sorted(a for a in first if first[a] >= since and a not in found | before)
    older = sorted(a for a in first if first[a] < since and a not in found | before)
    assert inside and older
    fresh, aged = inside[0], older[0]
    _flag_transiently(st, [fresh, aged], cid)
    watch.detect(st, cfg, since=since, state=state)
    flagged, members = _flagged(st), set(st.read_table("campaign_members")["account_id"].to_pylist())
    assert aged in flagged and aged in members and aged in _enforced(st)
    assert fresh not in flagged and fresh not in members and fresh not in _enforced(st)
    assert before <= flagged  # the campaigns themselves are kept
    # hysteresis: released only below watch_release_below (0: never, the earlier behaviour)
    _flag_transiently(st, [fresh], cid)
    watch.detect(st, ScanConfig(watch_release_below=0.0), since=since, state=state)
    assert fresh in _flagged(st) and fresh in _enforced(st)
    watch.detect(st, cfg, since=since, state=state)
    assert fresh not in _flagged(st) and fresh not in _enforced(st)
    # a confirmed campaign's members stay carried: the analyst's verdict, not the window, releases them
    _flag_transiently(st, [fresh], cid)
    record_decision(st, cid, "confirmed", "block", datetime.now(UTC), "analyst@x", "test")
    watch.detect(st, cfg, since=since, state=state)
    assert fresh in _flagged(st) and fresh in set(st.read_table("campaign_members")["account_id"].to_pylist())
