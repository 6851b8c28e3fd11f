"""Which accounts use which shareable value, in canonical form: the common ground of export and match.

Export needs it to count, for each campaign value, how many *benign* local accounts also use it;
match needs it to hash local values and join them against imported indicators. Both go through
the same canonicalisation (``keys.canonical``), so the two sides of a sharing group agree.
Distinct raw values are canonicalised in Python once each (there are far fewer distinct IPs
than exchanges); the per-account join stays in DuckDB.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from distillguard.intel.keys import GroupKey, canonical
from distillguard.store import Store

#: kind → (source relation, column). ``ip24`` is derived from ``client_ip``.
SOURCES = {
    "ip": ("exchanges", "client_ip"), "ip24": ("exchanges", "client_ip"), "asn": ("exchanges", "client_asn"),
    "ja4": ("exchanges", "tls_ja4"), "header_fp": ("exchanges", "header_order_fp"),
    "user_agent": ("exchanges", "user_agent"), "email_domain": ("accounts", "email_domain"),
    "payment": ("accounts", "payment_fingerprint"),
}
VALUE_KINDS = tuple(SOURCES)

_SCHEMA = pa.schema([("kind", pa.string()), ("raw", pa.string()), ("canon", pa.string())])


def account_values(store: Store, con: duckdb.DuckDBPyConnection, kinds=VALUE_KINDS,
                   accounts_sql: str | None = None, key: GroupKey | None = None,
                   name: str = "acct_values") -> str:
    """Create a temp table ``name(account_id, kind, canon[, hashed], n_exchanges, first_ts, last_ts)``.

    ``accounts_sql`` restricts to a set of accounts (a SELECT of account_id); ``key`` adds the
    HMAC of each canonical value. Returns the table name.
    """
    kinds = [k for k in kinds if k in SOURCES]
    where_acct = f"account_id IN ({accounts_sql})" if accounts_sql else "TRUE"
    parts = []
    canon_rows: dict[str, list] = {"kind": [], "raw": [], "canon": []}
    for kind in kinds:
        rel, col = SOURCES[kind]
        if rel == "exchanges":
            sel = (f"SELECT account_id, CAST({col} AS VARCHAR) AS raw, count(*) AS n, min(ts) AS first_ts, "
                   f"max(ts) AS last_ts FROM exchanges WHERE {col} IS NOT NULL AND {where_acct} GROUP BY ALL")
        else:
            sel = (f"SELECT account_id, CAST({col} AS VARCHAR) AS raw, NULL::BIGINT AS n, "
                   f"NULL::TIMESTAMPTZ AS first_ts, NULL::TIMESTAMPTZ AS last_ts FROM accounts "
                   f"WHERE {col} IS NOT NULL AND {where_acct}")
        parts.append(f"SELECT '{kind}' AS kind, * FROM ({sel})")
        raws = con.sql(f"SELECT DISTINCT raw FROM ({sel})").fetchall()
        for (raw,) in raws:
            c = canonical(kind, raw)
            if c is not None:
                canon_rows["kind"].append(kind)
                canon_rows["raw"].append(raw)
                canon_rows["canon"].append(c)
    cmap = pa.table(canon_rows, schema=_SCHEMA)
    if key is not None:
        hashed = {}
        for kind, c in zip(cmap["kind"].to_pylist(), cmap["canon"].to_pylist(), strict=True):
            hashed.setdefault((kind, c), key.hash_value(kind, c))
        cmap = cmap.append_column("hashed", pa.array(
            [hashed[(k, c)] for k, c in zip(cmap["kind"].to_pylist(), cmap["canon"].to_pylist(), strict=True)],
            pa.string()))
    con.register(f"_{name}_map", cmap)
    union = " UNION ALL ".join(parts) if parts else (
        "SELECT NULL::VARCHAR AS kind, NULL::VARCHAR AS account_id, NULL::VARCHAR AS raw, NULL::BIGINT AS n, "
        "NULL::TIMESTAMPTZ AS first_ts, NULL::TIMESTAMPTZ AS last_ts WHERE false")
    hcol = ", m.hashed" if key is not None else ""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {name} AS
        SELECT v.account_id, v.kind, m.canon{hcol}, sum(v.n) AS n_exchanges, min(v.first_ts) AS first_ts,
               max(v.last_ts) AS last_ts
        FROM ({union}) v JOIN _{name}_map m ON m.kind = v.kind AND m.raw = v.raw
        GROUP BY ALL""")
    con.unregister(f"_{name}_map")
    return name
