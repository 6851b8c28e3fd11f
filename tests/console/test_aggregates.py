"""The console_* aggregates agree with the raw tables and know when they are stale."""

from __future__ import annotations

from datetime import timedelta

from distillguard.console.aggregates import aggregates_fresh, build_aggregates
from distillguard.console.charts import account_activity, campaign_timeline
from distillguard.testing.console_fixture import T0, write_console_fixture
from distillguard.testing.factory import make_exchange, write_world


def test_aggregates_match_raw_tables(tmp_path):
    st = write_console_fixture(tmp_path / "s")
    res = build_aggregates(st, sample_prompts=5, account_samples=3)
    con = st.connect()
    assert res["n_exchanges"] == con.sql("SELECT count(*) FROM exchanges").fetchall()[0][0]
    want = dict(con.sql("""SELECT m.campaign_id, count(*) FROM exchanges e JOIN campaign_members m USING (account_id)
                           GROUP BY 1""").fetchall())
    got = dict(con.sql("SELECT campaign_id, sum(n) FROM console_campaign_daily GROUP BY 1").fetchall())
    assert got == want and set(want) == {"camp-cot", "camp-agent", "camp-uni"}
    assert con.sql("SELECT sum(n) FROM console_account_hourly").fetchall()[0][0] == res["n_exchanges"]
    per_camp = dict(con.sql("SELECT campaign_id, count(*) FROM console_campaign_samples GROUP BY 1").fetchall())
    assert per_camp == {"camp-cot": 5, "camp-agent": 5, "camp-uni": 5}
    assert con.sql("SELECT max(c) FROM (SELECT count(*) c FROM console_account_samples GROUP BY account_id)"
                   ).fetchall()[0][0] == 3
    # The newest exchanges per account are the ones kept.
    newest = con.sql("SELECT max(ts) FROM exchanges WHERE account_id = 'acct-legit-00'").fetchall()[0][0]
    assert con.sql("SELECT max(ts) FROM console_account_samples WHERE account_id = 'acct-legit-00'"
                   ).fetchall()[0][0] == newest
    links = con.sql("SELECT count(*) FROM console_account_links").fetchall()[0][0]
    assert links == 2 * con.sql("SELECT count(*) FROM coordination_edges").fetchall()[0][0]
    sig = con.sql("SELECT mean FROM console_account_signals WHERE account_id = 'acct-agent-00' "
                  "AND detector = 'tool_harvest'").fetchall()[0][0]
    assert abs(sig - 0.9) < 1e-6


def test_freshness_follows_inputs(tmp_path):
    st = write_console_fixture(tmp_path / "s")
    assert not aggregates_fresh(st)
    build_aggregates(st)
    assert aggregates_fresh(st)
    write_world(st, [make_exchange(account_id="late-1", ts=T0 + timedelta(days=9))], key="late")
    assert not aggregates_fresh(st)
    build_aggregates(st)
    assert aggregates_fresh(st)
    assert st.connect().sql("SELECT n_exchanges FROM console_account_summary WHERE account_id = 'late-1'"
                            ).fetchall() == [(1,)]


def test_charts_fill_gaps_and_mark_pivot():
    hourly = [{"hour": T0, "n": 3}, {"hour": T0 + timedelta(hours=3), "n": 1}]
    a = account_activity(hourly)
    assert a["series"][0]["data"] == [3, 0, 0, 1] and len(a["labels"]) == 4
    long = [{"hour": T0, "n": 2}, {"hour": T0 + timedelta(days=30), "n": 5}]
    d = account_activity(long)
    assert len(d["labels"]) == 31 and sum(d["series"][0]["data"]) == 7
    t = campaign_timeline([{"day": T0.date(), "model": "a", "n": 4}, {"day": (T0 + timedelta(days=1)).date(),
                                                                        "model": "b", "n": 6}], T0 + timedelta(days=1))
    assert t["labels"] == ["2026-03-02", "2026-03-03"] and t["markers"][0]["at"] == "2026-03-03"
    assert [s["label"] for s in t["series"]] == ["b", "a"] and t["series"][1]["data"] == [4, 0]
