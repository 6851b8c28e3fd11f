"""Light detections between full ones (``watch_full_every``, distillguard/watchlight.py): a full re-judgment on
schedule, and in between a new account holding a found campaign's own infrastructure joins it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pydantic import ValidationError

from distillguard import watch
from distillguard.scan.config import ScanConfig
from distillguard.store import Store
from distillguard.testing.worlds import build_tiny_world


def _flagged(st) -> set[str]:
    t = st.read_table("account_risk")
    return {a for a, f in zip(t["account_id"].to_pylist(), t["flagged"].to_pylist(), strict=True) if f}


def _slice(ex: pa.Table, lo: datetime, hi: datetime) -> pa.Table:
    return ex.filter(pc.and_(pc.greater_equal(ex["ts"], pa.scalar(lo, ex["ts"].type)),
                             pc.less(ex["ts"], pa.scalar(hi, ex["ts"].type))))


def _world(tmp_path):
    src = Store(tmp_path / "src", create=True)
    world = build_tiny_world(src, seed=5, days=3, hydra_accounts=12, slow_accounts=10)
    ex = src.exchanges().to_arrow_table()
    st = Store(tmp_path / "dst", create=True)
    st.write_accounts(src.accounts().to_arrow_table())
    t0 = min(ex["ts"].to_pylist()).replace(minute=0, second=0, microsecond=0)
    return src, st, ex, t0, world


def _tick(st, state, cfg):
    return watch.tick(st, watch.WatchOptions(interval_seconds=0, window_hours=168.0), state, cfg, force_detect=True)


def test_settings_validate():
    assert ScanConfig().watch_full_every == 1  # every detection full unless asked
    for bad in ({"watch_full_every": 0}, {"watch_join_entity_share": 0}, {"watch_join_entity_share": 1.5},
                {"watch_join_min_groups": 0}, {"watch_join_signup_kinds": ["sync"]}):
        with pytest.raises(ValidationError):
            ScanConfig(**bad)
    assert ScanConfig(watch_full_every=3, watch_join_entity_share=1.0, watch_join_min_groups=1).watch_full_every == 3


def test_a_full_detection_happens_on_schedule(tmp_path):
    _, st, ex, t0, _ = _world(tmp_path)
    cfg = ScanConfig(watch_full_every=3)
    state = watch.load_state(st)
    light = []
    for i in range(6):  # half days
        lo = t0 + timedelta(hours=12 * i)
        st.write_exchanges(_slice(ex, lo, lo + timedelta(hours=12)), key=f"h{i}")
        rep = _tick(st, state, cfg)
        assert rep.detected
        light.append(rep.light)
        if rep.light:  # a light detection runs none of the scan's stages
            assert not any(k.startswith("detect.") for k in rep.cpu)
    assert light == [False, True, True, False, True, True]
    # every detection full when asked: a tick equals a scan of its window
    st2 = Store(tmp_path / "dst2", create=True)
    st2.write_accounts(st.accounts().to_arrow_table())
    state2 = watch.load_state(st2)
    for i in range(2):
        lo = t0 + timedelta(hours=12 * i)
        st2.write_exchanges(_slice(ex, lo, lo + timedelta(hours=12)), key=f"h{i}")
        assert not _tick(st2, state2, ScanConfig()).light
    assert not st2.has_table("watch_reference")


def test_a_new_account_on_a_flagged_campaigns_infrastructure_joins_it(tmp_path):
    src, st, ex, t0, world = _world(tmp_path)
    cfg = ScanConfig(watch_full_every=3)
    state = watch.load_state(st)
    st.write_exchanges(_slice(ex, t0, t0 + timedelta(days=2)), key="d01")
    rep = _tick(st, state, cfg)
    assert not rep.light
    flagged, risk = _flagged(st), st.read_table("account_risk")
    members = dict(zip(st.read_table("campaign_members")["account_id"].to_pylist(),
                       st.read_table("campaign_members")["campaign_id"].to_pylist(), strict=True))
    # the test's own labels: a flagged member of the "slow" campaign (cards, sign-up burst, proxy pool, client)
    slow = sorted(a for a in flagged if world.labels.get(a, (None,))[0] == "camp-slow" and a in members)
    benign = sorted(a for a, (c, _) in world.labels.items() if c is None and a not in flagged)
    assert slow and benign
    model, quiet = slow[0], benign[0]
    accts = src.accounts().to_arrow_table()
    rows = {r["account_id"]: r for r in accts.to_pylist()}
    # two accounts no detection has seen: one on the campaign's infrastructure, one a copy of an unflagged account
    # with a card of its own
    new_rows = [{**rows[model], "account_id": "acct-joiner"},
                {**rows[quiet], "account_id": "acct-newcomer", "payment_fingerprint": "pay-own-1"}]
    st.write_accounts(pa.Table.from_pylist(new_rows, schema=accts.schema), key="1-new")
    day3 = _slice(ex, t0 + timedelta(days=2), t0 + timedelta(days=3))

    def clone(of: str, as_: str) -> pa.Table:
        t = day3.filter(pc.equal(day3["account_id"], of))
        t = t.set_column(t.schema.get_field_index("account_id"), "account_id", pa.array([as_] * t.num_rows, pa.string()))
        ids = [f"{as_}-{i}" for i in range(t.num_rows)]
        return t.set_column(t.schema.get_field_index("exchange_id"), "exchange_id", pa.array(ids, pa.string()))

    part = pa.concat_tables([day3, clone(model, "acct-joiner"), clone(quiet, "acct-newcomer")])
    st.write_exchanges(part, key="d2")
    rep = _tick(st, state, cfg)
    assert rep.light and rep.joined == ["acct-joiner"]
    now_flagged = _flagged(st)
    assert now_flagged == flagged | {"acct-joiner"}  # known accounts keep the full detection's verdict
    cm = st.read_table("campaign_members")
    got = dict(zip(cm["account_id"].to_pylist(), cm["campaign_id"].to_pylist(), strict=True))
    assert got["acct-joiner"] == members[model] and "acct-newcomer" not in got
    r = {x["account_id"]: x for x in st.read_table("account_risk").to_pylist()}
    assert r["acct-joiner"]["risk"] >= cfg.scoring.flag_threshold and r["acct-joiner"]["campaign_id"] == members[model]
    assert len(r) == risk.num_rows + 1
    # under the campaign's account-level enforcement, as its other members are
    enf = st.read_table("enforcement").to_pylist()
    actions = {(e["action"], e["source"]) for e in enf if e["subject_type"] == "account" and e["subject_id"] == model}
    assert actions
    assert actions == {(e["action"], e["source"]) for e in enf
                       if e["subject_type"] == "account" and e["subject_id"] == "acct-joiner"}
    # the next full detection (on schedule) judges both on their own traffic
    rep = _tick(st, state, cfg)
    assert rep.light  # the third detection: light again
    rep = _tick(st, state, cfg)
    assert not rep.light and not rep.joined
    assert "acct-newcomer" in {x["account_id"] for x in st.read_table("account_risk").to_pylist()}


@pytest.mark.parametrize("signup_kinds", [None, []])
def test_only_a_campaigns_sign_up_entities_let_a_stranger_on_its_traffic_join(tmp_path, signup_kinds):
    """A new account on a campaign's proxies, client and templates, but with a card and a sign-up time of its own,
    is what an ordinary user sharing a home /24 and a template with a hydra looks like (rep24): it joins only
    when no sign-up kind is required (rep23's rule), and not by default."""
    src, st, ex, t0, world = _world(tmp_path)
    cfg = ScanConfig(watch_full_every=3) if signup_kinds is None else \
        ScanConfig(watch_full_every=3, watch_join_signup_kinds=signup_kinds)
    state = watch.load_state(st)
    st.write_exchanges(_slice(ex, t0, t0 + timedelta(days=2)), key="d01")
    assert not _tick(st, state, cfg).light
    flagged = _flagged(st)
    members = dict(zip(st.read_table("campaign_members")["account_id"].to_pylist(),
                       st.read_table("campaign_members")["campaign_id"].to_pylist(), strict=True))
    slow = sorted(a for a in flagged if world.labels.get(a, (None,))[0] == "camp-slow" and a in members)
    assert slow
    model = slow[0]
    accts = src.accounts().to_arrow_table()
    row = {r["account_id"]: r for r in accts.to_pylist()}[model]
    stranger = {**row, "account_id": "acct-stranger", "payment_fingerprint": "pay-own-2",
                "created_at": row["created_at"] - timedelta(days=40)}
    st.write_accounts(pa.Table.from_pylist([stranger], schema=accts.schema), key="1-new")
    day3 = _slice(ex, t0 + timedelta(days=2), t0 + timedelta(days=3))
    t = day3.filter(pc.equal(day3["account_id"], model))
    t = t.set_column(t.schema.get_field_index("account_id"), "account_id",
                     pa.array(["acct-stranger"] * t.num_rows, pa.string()))
    t = t.set_column(t.schema.get_field_index("exchange_id"), "exchange_id",
                     pa.array([f"acct-stranger-{i}" for i in range(t.num_rows)], pa.string()))
    st.write_exchanges(pa.concat_tables([day3, t]), key="d2")
    rep = _tick(st, state, cfg)
    assert rep.light
    if signup_kinds == []:  # rep23's rule: the traffic's /24s, client and templates are enough
        assert rep.joined == ["acct-stranger"]
        log = st.read_table("watch_light_joins").to_pylist()
        assert [x["account_id"] for x in log] == ["acct-stranger"] and log[0]["campaign_id"] == members[model]
        assert not any(e.split("=", 1)[0] in ("payment", "payment_burst", "creation_burst")
                       for e in log[0]["entities"])
    else:
        assert rep.joined == [] and "acct-stranger" not in _flagged(st)
        assert not st.has_table("watch_light_joins")
