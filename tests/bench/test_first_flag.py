"""bench/first_flag.py: per-campaign first-flag shares of replayed kept worlds, and their worst case and median
against issue 11's 2% target (a campaign never flagged counts as 100%)."""

from datetime import UTC, datetime


def _w(name, *shares):
    t = datetime(2026, 1, 1, tzinfo=UTC)
    return {"world": name, "campaigns": [
        {"campaign": f"c{i}", "accounts": 3, "exchanges": 1000, "first_exchange": t,
         "first_flag": None if s == 1.0 else datetime(2026, 1, 1, 5, tzinfo=UTC), "hours": None if s == 1.0 else 5.0,
         "first": s, "p90": s} for i, s in enumerate(shares)]}


def test_summary_worst_median_and_under_target(bench_script):
    ff = bench_script("first_flag")
    s = ff.summary([_w("a", 0.005, 0.3), _w("b", 1.0, 0.019, 0.05)])
    assert s["campaigns"] == 5 and s["worst"] == 1.0 and s["median"] == 0.05 and s["under_target"] == 2


def test_table_lists_every_campaign_and_marks_the_never_flagged(bench_script):
    ff = bench_script("first_flag")
    md = ff.markdown([_w("07-standard-107", 0.0104, 1.0)])
    lines = md.splitlines()
    assert len(lines) == 4
    assert "| 07-standard-107 | c0 | 3 | 1,000 | 01-01 00:00 | 01-01 05:00 | 5.0 | 1.04% | 1.04% |" == lines[2]
    assert "| never | — | 100.00% |" in lines[3]
