"""Counts an operator checks first after an ingest: per day, model, endpoint, and accounts."""

from __future__ import annotations

from distillguard.store.store import Store


def store_stats(store: Store, top: int = 20) -> dict:
    con = store.connect()
    ex = store.exchanges_sql()

    def rows(sql):
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    totals = rows(f"""SELECT count(*) AS exchanges, count(DISTINCT account_id) AS accounts,
                             count(DISTINCT org_id) AS orgs, min(ts) AS first_ts, max(ts) AS last_ts
                      FROM ({ex})""")[0]
    for k in ("first_ts", "last_ts"):
        totals[k] = totals[k].isoformat() if totals[k] is not None else None
    by_day = rows(f"""SELECT strftime(ts, '%Y-%m-%d') AS day, count(*) AS exchanges,
                             count(DISTINCT account_id) AS accounts
                      FROM ({ex}) GROUP BY 1 ORDER BY 1""")
    by_model = rows(f"""SELECT coalesce(model, '(none)') AS model, count(*) AS exchanges,
                               count(DISTINCT account_id) AS accounts
                        FROM ({ex}) GROUP BY 1 ORDER BY 2 DESC LIMIT {int(top)}""")
    by_endpoint = rows(f"""SELECT coalesce(endpoint, '(none)') AS endpoint, count(*) AS exchanges
                           FROM ({ex}) GROUP BY 1 ORDER BY 2 DESC""")
    by_format = rows(f"""SELECT coalesce(source_format, '(none)') AS source_format, count(*) AS exchanges
                         FROM ({ex}) GROUP BY 1 ORDER BY 2 DESC""")
    acc = rows(f"""SELECT count(*) AS accounts, count(DISTINCT org_id) AS orgs FROM ({store.accounts_sql()})""")[0]
    by_pathway = rows(f"""SELECT coalesce(signup_pathway, '(none)') AS signup_pathway, count(*) AS accounts
                          FROM ({store.accounts_sql()}) GROUP BY 1 ORDER BY 2 DESC""")
    with store.catalog() as cat:
        q = cat.execute("SELECT coalesce(sum(records),0), coalesce(sum(quarantined),0), count(*) FROM ingest_log").fetchall()[0]
    return {"totals": totals, "by_day": by_day, "by_model": by_model, "by_endpoint": by_endpoint,
            "by_source_format": by_format, "accounts_table": acc, "by_signup_pathway": by_pathway,
            "ingest_log": {"records": int(q[0]), "quarantined": int(q[1]), "files": int(q[2])},
            "tables": store.tables()}
