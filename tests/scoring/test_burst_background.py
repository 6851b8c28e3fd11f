"""A sign-up burst is whoever signed up on one pathway in its minutes: in a big store ordinary users fall into a
hydra's bursts by chance (scale 1.0: about one holder in ten on the standard pathway), so a burst alone says little
about *one* member there. ``scoring.burst_background_check`` keeps it as a member's own distinctive tie only
when the burst's background share is small or the member shares a second evidence group in its cluster."""

from datetime import timedelta

import duckdb
import pyarrow as pa

from distillguard.scan.config import ScanConfig, ScoringConfig
from distillguard.scan.engine import detect_step, prepare
from distillguard.scoring.rare import burst_alone_dropped
from distillguard.testing.factory import BASE_TS, make_account, make_exchange, write_world


def _con(rows):
    con = duckdb.connect()
    con.register("_b", pa.table({"account_id": [r[0] for r in rows], "entity": [r[1] for r in rows],
                                 "chance": [r[2] for r in rows]}))
    con.execute("CREATE TEMP TABLE burst_members AS SELECT * FROM _b")
    return con


def test_a_burst_alone_with_many_background_sign_ups_is_not_a_members_own_tie():
    cfg = ScoringConfig()
    con = _con([("bystander", "standard|1", 0.10), ("pool", "standard|1", 0.10), ("early", "education|9", 0.004),
                ("carded", "standard|1", 0.10)])
    distinct = {"bystander": {"creation"}, "pool": {"creation", "timing"}, "early": {"creation"},
                "carded": {"creation"}}
    groups = {"bystander": {"creation"}, "pool": {"creation", "timing"}, "early": {"creation"},
              "carded": {"creation", "payment"}}
    out = burst_alone_dropped(con, distinct, groups, cfg)
    assert "bystander" not in out                      # the burst alone, one holder in ten by chance
    assert out["pool"] == {"creation", "timing"}       # a second distinctive tie: kept whole
    assert out["early"] == {"creation"}                # a burst few background sign-ups fall into
    assert out["carded"] == {"creation"}               # shares a card with the cluster too
    # the bound is scoring.distinctive_chance; off restores the old reading
    cfg.distinctive_chance = 0.2
    assert burst_alone_dropped(con, distinct, groups, cfg) == distinct
    cfg = ScoringConfig(burst_background_check=False)
    assert burst_alone_dropped(con, distinct, groups, cfg) is distinct


def test_without_an_incidence_nothing_is_dropped():
    cfg = ScoringConfig()
    distinct = {"a": {"creation"}}
    assert burst_alone_dropped(duckdb.connect(), distinct, {"a": {"creation"}}, cfg) == distinct


def test_the_incidence_records_each_bursts_background_share(store):
    accts, ex = [], []
    t0 = BASE_TS - timedelta(days=400)

    def add(a, created):
        accts.append(make_account(a, org_id=None, created_at=created, signup_pathway="standard"))
        ex.extend(make_exchange(account_id=a, client_ip=f"10.{len(accts)}.0.1", prompt=f"{a} {j}",
                                ts=BASE_TS + timedelta(minutes=5 * j)) for j in range(2))

    for i in range(6):   # six accounts within five minutes
        add(f"b{i}", BASE_TS - timedelta(days=2, minutes=-i))
    for i in range(200):   # the pathway's pace: 200 sign-ups over 400 days
        add(f"u{i}", t0 + timedelta(days=2 * i, hours=7))
    write_world(store, ex, accts)
    cfg = ScanConfig()
    cfg.graph.max_entity_share = 1.0
    con, sigs = prepare(store, cfg)
    detect_step(con, sigs, cfg)
    rows = con.execute("SELECT account_id, entity, chance FROM burst_members").fetchall()
    assert {a for a, _, _ in rows} == {f"b{i}" for i in range(6)}
    created = [r.created_at for r in accts]
    span = (max(created) - min(created)).total_seconds()
    lam = len(accts) * 600 / span
    holders = {}
    for a, e, _ in rows:
        holders.setdefault(e, set()).add(a)
    for _a, e, ch in rows:
        assert abs(ch - lam / len(holders[e])) < 1e-9
