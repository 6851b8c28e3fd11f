"""Pre-aggregated ``console_*`` tables so a page view never scans the exchanges.

A store with 16M exchanges takes seconds to scan; an analyst clicking through campaigns needs
answers in well under one. So the console pays for one pass at build time and every page then
reads small tables sorted by the key it filters on (Parquet row-group statistics let DuckDB skip
everything but the one account's or campaign's rows).

The build is keyed by a fingerprint of the input files: the console rebuilds at start-up only
when ingest or scan changed something since the last build.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

import duckdb
import orjson
import pyarrow as pa

from distillguard.store import Store

#: Tables the aggregates are computed from (besides exchanges and accounts).
INPUT_TABLES = ("campaigns", "campaign_members", "account_risk", "exchange_signals", "coordination_edges",
                "cluster_members")
META = "console_meta"
#: Bump when an aggregate's columns or meaning change: older builds then count as stale.
AGG_VERSION = "2"
PROMPT_CHARS = 2000


def fingerprint(store: Store) -> str:
    """Hash of the names, sizes and mtimes of every input file: changes iff an input changed."""
    h = hashlib.sha256(f"console-aggregates-v{AGG_VERSION}\n".encode())
    patterns = ["exchanges/**/*.parquet", "accounts/**/*.parquet"] + [f"tables/{t}/**/*.parquet" for t in INPUT_TABLES]
    for pattern in patterns:
        for _loc, rel, size, mtime_ns in sorted(store.file_infos(pattern), key=lambda f: f[1]):
            h.update(f"{rel}:{size}:{mtime_ns}\n".encode())
    return h.hexdigest()


def aggregates_fresh(store: Store) -> bool:
    if not store.has_table(META):
        return False
    meta = store.read_table(META).to_pylist()
    return bool(meta) and meta[-1]["fingerprint"] == fingerprint(store)


def _write(con: duckdb.DuckDBPyConnection, store: Store, name: str, sql: str) -> int:
    reader = con.sql(sql).to_arrow_reader(65536)
    n = 0

    def batches():
        nonlocal n
        for b in reader:
            n += b.num_rows
            yield b

    store.write_table(name, batches(), schema=reader.schema)
    return n


def build_aggregates(store: Store, *, sample_prompts: int = 12, account_samples: int = 10,
                     threads: int | None = None, on_step: Callable[[str], None] | None = None) -> dict:
    """Build every ``console_*`` table; returns row counts per table and the build time."""
    t0 = time.perf_counter()
    fp = fingerprint(store)
    con = store.connect(threads=threads)
    step = on_step or (lambda s: None)
    has = store.has_table
    counts: dict[str, int] = {}

    def w(name: str, sql: str) -> None:
        step(name)
        counts[name] = _write(con, store, name, sql)

    # A narrow projection of exchanges, materialised once: every aggregate below reuses it.
    step("reading exchanges")
    con.execute("""CREATE TEMP TABLE x AS SELECT exchange_id, account_id, ts, model, client_ip
                   FROM exchanges""")
    members_sql = None
    if has("campaign_members"):
        members_sql = "SELECT DISTINCT campaign_id, account_id FROM campaign_members"
    elif has("account_risk"):
        members_sql = "SELECT DISTINCT campaign_id, account_id FROM account_risk WHERE campaign_id IS NOT NULL"
    if members_sql:
        con.execute(f"CREATE TEMP TABLE m AS {members_sql}")
    else:
        con.execute("CREATE TEMP TABLE m (campaign_id VARCHAR, account_id VARCHAR)")

    w("console_daily", """SELECT CAST(date_trunc('day', ts) AS DATE) AS day, count(*) AS n_exchanges,
                              count(DISTINCT account_id) AS n_accounts
                          FROM x GROUP BY 1 ORDER BY 1""")
    w("console_account_hourly", """SELECT account_id, date_trunc('hour', ts) AS hour, count(*) AS n
                                   FROM x GROUP BY 1, 2 ORDER BY 1, 2""")
    w("console_account_models", """SELECT account_id, model, count(*) AS n, min(ts) AS first_ts, max(ts) AS last_ts
                                   FROM x GROUP BY 1, 2 ORDER BY 1, 3 DESC""")
    # Sorted by account: the account page filters on it (row-group skipping); IP search scans either way
    # because it matches prefixes.
    w("console_account_ips", """SELECT account_id, client_ip, count(*) AS n, min(ts) AS first_ts, max(ts) AS last_ts
                                FROM x WHERE client_ip IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2""")
    w("console_account_summary", """
        WITH e AS (SELECT account_id, count(*) AS n_exchanges, min(ts) AS first_ts, max(ts) AS last_ts,
                          count(DISTINCT client_ip) AS n_ips, count(DISTINCT model) AS n_models
                   FROM x GROUP BY 1)
        SELECT coalesce(a.account_id, e.account_id) AS account_id, coalesce(e.n_exchanges, 0) AS n_exchanges,
               e.first_ts, e.last_ts, coalesce(e.n_ips, 0) AS n_ips, coalesce(e.n_models, 0) AS n_models,
               a.org_id, a.created_at, a.email_domain, a.email_local, a.signup_country, a.signup_ip,
               a.signup_pathway, a.verification_level, a.payment_fingerprint, a.tier, a.status
        FROM accounts a FULL OUTER JOIN e ON a.account_id = e.account_id ORDER BY 1""")
    w("console_campaign_daily", """SELECT m.campaign_id, CAST(date_trunc('day', x.ts) AS DATE) AS day, x.model,
                                          count(*) AS n
                                   FROM x JOIN m USING (account_id) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""")
    # Samples: choose ids on the narrow table, then fetch only those prompts.
    con.execute(f"""CREATE TEMP TABLE cs AS SELECT campaign_id, exchange_id FROM (
                        SELECT m.campaign_id, x.exchange_id,
                               row_number() OVER (PARTITION BY m.campaign_id ORDER BY hash(x.exchange_id)) AS r
                        FROM x JOIN m USING (account_id)) WHERE r <= {int(sample_prompts)}""")
    con.execute(f"""CREATE TEMP TABLE asx AS SELECT account_id, exchange_id FROM (
                        SELECT account_id, exchange_id,
                               row_number() OVER (PARTITION BY account_id ORDER BY ts DESC) AS r FROM x)
                    WHERE r <= {int(account_samples)}""")
    con.execute(f"""CREATE TEMP TABLE px AS
                    SELECT exchange_id, account_id, ts, model, client_ip, user_agent,
                           left(prompt, {PROMPT_CHARS}) AS prompt, left(system_prompt, {PROMPT_CHARS}) AS system_prompt
                    FROM exchanges
                    WHERE exchange_id IN (SELECT exchange_id FROM cs UNION SELECT exchange_id FROM asx)""")
    w("console_campaign_samples", """SELECT cs.campaign_id, px.* FROM cs JOIN px USING (exchange_id)
                                     ORDER BY cs.campaign_id, px.ts""")
    w("console_account_samples", """SELECT px.* FROM asx JOIN px USING (exchange_id, account_id)
                                    ORDER BY px.account_id, px.ts DESC""")

    if has("exchange_signals"):
        cols = [r[0] for r in con.sql("DESCRIBE exchange_signals").fetchall()]
        sig = [c for c in cols if c.startswith("sig_")]
        if sig:
            unpivot = " UNION ALL ".join(
                f"SELECT account_id, '{c[4:]}' AS detector, avg({c}) AS mean, max({c}) AS max, "
                f"CAST(count_if({c} >= 0.5) AS BIGINT) AS n_high, count({c}) AS n FROM exchange_signals GROUP BY 1"
                for c in sig)
            w("console_account_signals", f"SELECT * FROM ({unpivot}) ORDER BY account_id, mean DESC")
        if "template_key" in cols:
            w("console_template_index", """SELECT template_key, account_id, count(*) AS n, min(ts) AS first_ts,
                                                  max(ts) AS last_ts
                                           FROM exchange_signals WHERE template_key IS NOT NULL
                                           GROUP BY 1, 2 ORDER BY 1, 3 DESC""")
            con.execute("""CREATE TEMP TABLE tk AS SELECT template_key, count(*) AS n,
                                  count(DISTINCT account_id) AS n_accounts, min(exchange_id) AS exchange_id
                           FROM exchange_signals WHERE template_key IS NOT NULL GROUP BY 1
                           ORDER BY n DESC LIMIT 20000""")
            w("console_templates", f"""SELECT tk.template_key, tk.n, tk.n_accounts, left(e.prompt, {PROMPT_CHARS}) AS example
                                       FROM tk LEFT JOIN (SELECT exchange_id, prompt FROM exchanges
                                                          WHERE exchange_id IN (SELECT exchange_id FROM tk)) e
                                       USING (exchange_id) ORDER BY tk.template_key""")
    if has("coordination_edges"):
        w("console_account_links", """SELECT src_account AS account_id, dst_account AS other_account, kind, entity, weight
                                      FROM coordination_edges
                                      UNION ALL
                                      SELECT dst_account, src_account, kind, entity, weight FROM coordination_edges
                                      ORDER BY 1, weight DESC""")
    tot = con.sql("SELECT count(*), min(ts), max(ts) FROM x").fetchall()[0]
    elapsed = time.perf_counter() - t0
    meta = pa.Table.from_pylist([{
        "built_at": datetime.now(UTC), "fingerprint": fp, "n_exchanges": int(tot[0]), "first_ts": tot[1],
        "last_ts": tot[2], "build_seconds": elapsed, "counts": orjson.dumps(counts).decode(),
    }], schema=pa.schema([("built_at", pa.timestamp("ms", tz="UTC")), ("fingerprint", pa.string()),
                          ("n_exchanges", pa.int64()), ("first_ts", pa.timestamp("ms", tz="UTC")),
                          ("last_ts", pa.timestamp("ms", tz="UTC")), ("build_seconds", pa.float64()),
                          ("counts", pa.string())]))
    # Aggregates that no longer have an input (a table was removed) must not linger.
    for stale in ("console_account_signals", "console_template_index", "console_templates", "console_account_links"):
        if stale not in counts and store.has_table(stale):
            store.write_table(stale, _empty_like(store, stale))
    store.write_table(META, meta)
    con.close()
    return {"counts": counts, "seconds": elapsed, "n_exchanges": int(tot[0])}


def _empty_like(store: Store, name: str) -> pa.Table:
    return store.read_table(name).schema.empty_table()
