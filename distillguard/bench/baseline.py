"""The baseline detector: what a provider without distillguard has — a per-account volume threshold.

It flags an account on the first day its request count reaches the threshold, at the request that
crossed it. Campaigns that spread over many accounts below per-account limits slip under it, while
heavy legitimate users (benchmarks, batch jobs, resellers) trip it; the bench report shows that gap.
"""

from __future__ import annotations

import math

import pyarrow as pa

from distillguard.store import Store

#: With no explicit threshold, flag the busiest 1% of accounts (by their busiest day): a provider sets
#: its alarm where only its heaviest users trip it, whatever the size of its traffic.
AUTO_QUANTILE = 0.99


def auto_threshold(store: Store, quantile: float = AUTO_QUANTILE) -> int:
    con = store.connect()
    v = con.sql(f"""SELECT quantile_cont(mx, {float(quantile)}) FROM (
                      SELECT account_id, max(n) AS mx FROM (
                        SELECT account_id, CAST(date_trunc('day', ts) AS DATE) AS d, count(*) AS n
                        FROM exchanges GROUP BY ALL) GROUP BY 1)""").fetchall()[0][0]
    return max(10, int(math.ceil(v or 10)))


def baseline_results(store: Store, daily_threshold: int | None = None) -> pa.Table:
    if daily_threshold is None:
        daily_threshold = auto_threshold(store)
    if daily_threshold < 1:
        from distillguard.errors import ConfigError

        raise ConfigError("--daily-threshold must be >= 1")
    con = store.connect()
    th = int(daily_threshold)
    sql = f"""
    WITH ex AS (SELECT account_id, ts, CAST(date_trunc('day', ts) AS DATE) AS day FROM exchanges),
    d AS (SELECT account_id, day, count(*) AS n FROM ex GROUP BY ALL),
    m AS (SELECT account_id, max(n) AS max_daily FROM d GROUP BY 1),
    fd AS (SELECT account_id, min(day) AS day FROM d WHERE n >= {th} GROUP BY 1),
    cross_ts AS (
        SELECT account_id, ts FROM (
            SELECT ex.account_id, ex.ts,
                   row_number() OVER (PARTITION BY ex.account_id ORDER BY ex.ts) AS rn
            FROM ex JOIN fd ON ex.account_id = fd.account_id AND ex.day = fd.day)
        WHERE rn = {th}),
    accts AS (SELECT account_id FROM accounts UNION SELECT account_id FROM m)
    SELECT a.account_id,
           CAST(least(1.0, coalesce(m.max_daily, 0) / (2.0 * {th})) AS DOUBLE) AS risk,
           coalesce(m.max_daily, 0) >= {th} AS flagged,
           c.ts AS first_flagged_at,
           CAST(NULL AS VARCHAR) AS campaign_id
    FROM accts a LEFT JOIN m USING (account_id) LEFT JOIN cross_ts c USING (account_id)
    ORDER BY a.account_id
    """
    t = con.sql(sql).to_arrow_table()
    return t.replace_schema_metadata({"daily_threshold": str(th)})


def baseline_meta(daily_threshold: int) -> dict:
    return {"detector": "baseline-volume-threshold", "version": "1",
            "params": {"daily_threshold": int(daily_threshold)}}
