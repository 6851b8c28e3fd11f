"""The volume trigger: `watch` detects before its interval is up when an unflagged account's traffic has grown
since the last detection, and only then (distillguard/watchtrigger.py)."""

from __future__ import annotations

import pyarrow.compute as pc

from distillguard import watch
from distillguard.scan.config import ScanConfig
from distillguard.store import Store
from distillguard.testing.worlds import build_tiny_world
from distillguard.watchtrigger import VolumeTrigger


def test_an_account_whose_traffic_doubled_fires_a_steady_or_flagged_one_does_not():
    t = VolumeTrigger(min_requests=8, growth=2.0, min_minutes=10)
    t.add({"new": 20})
    assert not t.hot  # nothing judged yet: a restarted watch waits for its first detection
    t.detected(flagged=set())
    t.add({"steady": 100})
    t.detected(flagged={"camp"})
    t.add({"steady": 60, "small": 7, "camp": 500})  # steady 160 < 2 × 100; small under 8; camp already flagged
    assert not t.hot
    t.add({"new": 21})  # 41 ≥ 2 × 20
    assert t.hot == {"new"}
    assert not t.fires(now=1000.0 + 300, last_detect=1000.0)  # 5 minutes after the last detection
    assert t.fires(now=1000.0 + 601, last_detect=1000.0)
    assert not t.fires(now=1000.0 + 601, last_detect=1000.0)  # the same clock again (a replay's standing clock)
    t.detected(flagged=set())
    assert not t.hot


def _two_halves(tmp_path):
    src = Store(tmp_path / "src", create=True)
    build_tiny_world(src, seed=5, days=3, hydra_accounts=12, slow_accounts=10)
    ex = src.exchanges().to_arrow_table().sort_by("ts")
    mid = ex["ts"][ex.num_rows // 2]
    st = Store(tmp_path / "dst", create=True)
    st.write_accounts(src.accounts().to_arrow_table())
    st.write_exchanges(ex.filter(pc.less(ex["ts"], mid)), key="a")
    return st, ex.filter(pc.greater_equal(ex["ts"], mid))


def _run(tmp_path, cfg) -> list[watch.TickReport]:
    st, later = _two_halves(tmp_path)
    now = {"t": 10_000.0}
    opts = watch.WatchOptions(interval_seconds=3600, clock=lambda: now["t"])
    state = watch.load_state(st)
    reps = [watch.tick(st, opts, state, cfg)]  # due: the first detection
    st.write_exchanges(later, key="b")
    now["t"] += 900  # 15 minutes later: the interval is not up
    reps.append(watch.tick(st, opts, state, cfg))
    return reps


def test_a_tick_detects_early_when_the_trigger_fires(tmp_path):
    first, second = _run(tmp_path, ScanConfig(watch_trigger_min_requests=8))
    assert first.detected and not first.triggered_by
    assert second.detected and second.triggered_by > 0 and second.detected_at == first.detected_at + 900


def test_with_the_trigger_off_a_tick_waits_for_the_interval(tmp_path):
    first, second = _run(tmp_path, ScanConfig())  # off by default
    assert first.detected and not second.detected and second.folded > 0


def test_a_triggered_detection_does_not_move_the_schedule(tmp_path):
    cfg = ScanConfig(watch_trigger_min_requests=8)
    st, later = _two_halves(tmp_path)
    now = {"t": 10_000.0}
    opts = watch.WatchOptions(interval_seconds=3600, clock=lambda: now["t"])
    state = watch.load_state(st)
    assert watch.tick(st, opts, state, cfg).detected  # scheduled, at 10,000
    st.write_exchanges(later, key="b")
    now["t"] += 900
    assert watch.tick(st, opts, state, cfg).triggered_by  # triggered, at 10,900
    now["t"] = 10_000.0 + 3600  # an interval after the scheduled one, 45 minutes after the triggered one
    rep = watch.tick(st, opts, state, cfg)
    assert rep.detected and not rep.triggered_by
