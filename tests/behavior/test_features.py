from datetime import timedelta

import pytest

from distillguard.behavior import account_features, build_partials
from distillguard.scan.base import build_base
from distillguard.scan.config import BehaviorConfig
from distillguard.scoring import account_suspicion
from distillguard.testing.factory import BASE_TS, make_account, make_exchange, write_world


def _features(store, until=None):
    con = store.connect()
    sigs = build_base(con, store)
    cfg = BehaviorConfig()
    build_partials(con, sigs, cfg)
    return {r["account_id"]: r for r in account_features(con, sigs, cfg, until).to_pylist()}


@pytest.fixture
def world(store):
    ex = []
    # a pool account running at 95/100 per day for 3 days, single-turn, every hour
    for d in range(3):
        for i in range(95):
            ex.append(make_exchange(account_id="pool", ts=BASE_TS + timedelta(days=d, minutes=15 * i), n_turns=1,
                                    model="model-a" if d < 2 else "model-new", reasoning_requested=True))
    # a daytime human: a few multi-turn conversations
    for d in range(3):
        for i in range(6):
            ex.append(make_exchange(account_id="human", ts=BASE_TS + timedelta(days=d, hours=i), n_turns=5,
                                    model="model-a"))
    accts = [make_account("pool", rpd_limit=100, rpm_limit=5, created_at=BASE_TS - timedelta(days=2)),
             make_account("human", rpd_limit=1000)]
    return write_world(store, ex, accts)


def test_volume_against_limit_and_shape(world):
    f = _features(world)
    p, h = f["pool"], f["human"]
    assert p["n_exchanges"] == 285 and p["peak_rpd"] == 95
    assert p["rpd_util"] == pytest.approx(0.95)
    assert p["rate_util"] > 0.8 and h["rate_util"] < 0.1
    assert p["single_turn_share"] == 1.0 and h["single_turn_share"] == 0.0
    assert p["reasoning_share"] == 1.0 and h["reasoning_share"] == 0.0
    assert p["hour_entropy"] > h["hour_entropy"]  # the pool runs round the clock
    assert p["account_age_days"] == pytest.approx(2.0, abs=0.05)


def test_release_detected_and_pivot_delay(world):
    f = _features(world)
    assert f["pool"]["new_model_share"] == pytest.approx(95 / 285)
    assert f["pool"]["pivot_delay_hours"] == pytest.approx(0.0)
    assert f["human"]["pivot_delay_hours"] is None


def test_until_sees_only_the_past(world):
    f = _features(world, until=BASE_TS + timedelta(days=1))
    assert f["pool"]["n_exchanges"] == 95
    assert f["pool"]["new_model_share"] == 0.0  # the release has not happened yet


def test_suspicion_orders_pool_above_human(world):
    import pyarrow as pa

    f = _features(world)
    t = account_suspicion(pa.Table.from_pylist(list(f.values())))
    s = dict(zip(t["account_id"].to_pylist(), t["suspicion"].to_pylist(), strict=True))
    assert s["pool"] > s["human"] + 0.2
