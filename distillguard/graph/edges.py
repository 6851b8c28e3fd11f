"""Account × entity incidence and the coordination edge table built from it.

An *entity* is something accounts can share: an IP /24, a TLS fingerprint, a payment
instrument, a prompt template, a burst of sign-ups, a synchronised schedule. Two accounts are
linked once per shared entity, weighted by how telling the sharing is:

    weight(entity) = kind_weight × idf × (floor + (1 − floor) × mean suspicion of its accounts)

idf = ln((N+1)/df) / ln(N+1) discounts what many accounts share (a free-mail domain, a popular
SDK), and the suspicion factor discounts entities whose accounts look benign (a university NAT,
a popular tool's system prompt). An entity with df ≤ clique_cap members becomes a clique with
edge weight w/(df−1); a larger one becomes a ring over a hashed order of its members with edge
weight w/2 — every member gets the same total strength either way, and the edge count stays
linear in the incidence (never O(n²) on a 20,000-account entity).

All of it is SQL over DuckDB tables (group-by, window row_number, self-join on rank), which
maps to Spark SQL partitioned by (kind, entity) for edges and by account for incidence.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import duckdb
import pyarrow as pa

from distillguard.scan.base import create_as, exact_sum
from distillguard.scan.config import GraphConfig

#: Kinds whose entity comes from individual exchanges (counted per account, share-filtered).
EXCHANGE_KINDS = ("ip24", "asn", "ja4", "header_fp", "user_agent", "system_prompt", "template")

#: Kind → evidence group. Groups, not kinds, are what "shares N kinds of infrastructure" counts,
#: because /24 and ASN (or JA4 and header order) are two views of one thing.
KIND_GROUP = {
    "ip24": "network", "asn": "network", "ja4": "client", "header_fp": "client", "user_agent": "client",
    "payment": "payment", "email_domain": "email", "email_pattern": "email", "creation_burst": "creation",
    "payment_burst": "creation", "template": "content", "system_prompt": "content", "task_item": "content", "sync": "timing", "intel": "intel",
}
INFRA_GROUPS = ("network", "client", "payment", "email", "creation", "intel")


def _until(until: datetime | None, col: str = "hour", since: datetime | None = None) -> str:
    """SQL for ``since <= col < until`` (either end open when None)."""
    w = f"{col} < TIMESTAMPTZ '{until.isoformat()}'" if until is not None else "true"
    return w if since is None else f"{w} AND {col} >= TIMESTAMPTZ '{since.isoformat()}'"


def build_graph_partials(con: duckdb.DuckDBPyConnection, cfg: GraphConfig,
                         into: Callable[[str], str] = create_as) -> list[str]:
    """inc_h (account, kind, entity, hour, n) and sync_b (account, template, bucket, hour) from ``ex``; ``into``
    and the names returned as ``build_partials``'s."""
    parts = [f"SELECT account_id, '{k}' AS kind, {k} AS entity, hour, count(*) AS n FROM ex "
             f"WHERE {k} IS NOT NULL GROUP BY account_id, {k}, hour"
             for k in EXCHANGE_KINDS if k != "template"]
    parts.append("SELECT account_id, 'template' AS kind, template_key AS entity, hour, count(*) AS n FROM ex "
                 "WHERE template_key IS NOT NULL GROUP BY account_id, template_key, hour")
    parts.append("SELECT account_id, 'task_item' AS kind, task_item_key AS entity, min(hour) AS hour, count(*) AS n "
                 "FROM ex WHERE task_item_key IS NOT NULL GROUP BY account_id, task_item_key")
    con.execute(f"{into('inc_h')} " + " UNION ALL ".join(parts))
    b = int(cfg.sync_bucket_minutes) * 60
    con.execute(f"""{into("sync_b")}
        SELECT account_id, template_key, CAST(floor(epoch(ts) / {b}) AS BIGINT) AS bucket, min(hour) AS hour
        FROM ex WHERE template_key IS NOT NULL GROUP BY 1, 2, 3""")
    return ["inc_h", "sync_b"]


def account_entities_sql(acc: str) -> str:
    """(account_id, kind, entity) of the entities an account's own record gives it, over relation ``acc`` (the
    accounts table's columns): its card, its e-mail domain and its e-mail naming shape (digits → 9, letter runs →
    a). One keying for ``incidence`` and for ``watch``'s light detections (watchlight.py), which match a new
    account's entities against the ones a full detection kept: keyed twice, they could drift apart unseen."""
    return f"""SELECT account_id, 'payment' AS kind, payment_fingerprint AS entity FROM {acc} WHERE payment_fingerprint IS NOT NULL
      UNION ALL SELECT account_id, 'email_domain', lower(email_domain) FROM {acc} WHERE email_domain IS NOT NULL
      UNION ALL SELECT account_id, 'email_pattern',
          regexp_replace(regexp_replace(lower(email_local), '[0-9]', '9', 'g'), '[a-z]+', 'a', 'g') || '@' || lower(coalesce(email_domain, ''))
          FROM {acc} WHERE email_local IS NOT NULL AND length(email_local) > 0"""


def burst_keys_sql(group: str, epoch: str, seconds: float) -> tuple[str, str]:
    """A sign-up burst's two keys (SQL expressions): ``group`` (a pathway, a card) and the cell of ``epoch`` on a
    grid of ``seconds``, and on the grid offset by half a cell — two accounts created within a cell of each other
    share one of the keys whichever side of a cell's edge they fall. Read by ``incidence``'s creation and card
    bursts and by watchlight.py, which must key a new account's bursts as the full detection did."""
    return (f"{group} || '|' || CAST(floor({epoch} / {seconds}) AS BIGINT)",
            f"{group} || '|h' || CAST(floor({epoch} / {seconds} + 0.5) AS BIGINT)")


def incidence(con: duckdb.DuckDBPyConnection, cfg: GraphConfig, suspicion: pa.Table,
              until: datetime | None = None, since: datetime | None = None) -> None:
    """Create table ``inc`` (account_id, kind, entity, w, df) for accounts active before ``until`` (with
    ``since``: active in ``[since, until)``, on that window's traffic; task-set items keep the hour each
    account first sent them, so an item first sent before the window still counts for it)."""
    w = _until(until, since=since)
    # kinds weighted 0 (task-set items by default) never reach ``inc``: not aggregated at all
    live = ", ".join(f"'{k}'" for k in EXCHANGE_KINDS + ("task_item",) if float(cfg.kind_weights.get(k, 0)) > 0) or "''"
    con.register("_susp", suspicion.select(["account_id", "suspicion"]))
    share, mincnt = float(cfg.min_entity_share), int(cfg.min_entity_count)
    bph = 60 // int(cfg.sync_bucket_minutes) if 60 % int(cfg.sync_bucket_minutes) == 0 else 60 / cfg.sync_bucket_minutes
    bpd = int(round(24 * bph))
    tot = f"tot AS (SELECT account_id, sum(n) AS n FROM beh_ah WHERE {w} GROUP BY 1)"
    bands = range(int(cfg.sync_bands))
    bands_pivot = ", ".join(f"min(CASE WHEN j = {j} THEN hr END) AS hr{j}" for j in bands)
    bands_min = ", ".join(f"min(bhp.hr{j}) AS hr{j}" for j in bands)
    bands_case = " ".join(f"WHEN {j} THEN mrp.hr{j}" for j in bands)
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE inc_raw AS
    WITH {tot},
    acc AS (SELECT a.* FROM accounts a JOIN tot USING (account_id)),
    acck AS (SELECT account_id, kind, entity, 1.0 AS strength FROM ({account_entities_sql('acc')})),
    -- synchronised activity (SynchroTrap-style): co-activity on the same template in the same short bucket,
    -- as a lift over what the template's users would produce independently following the overall
    -- hour-of-day rhythm of all traffic (so the ordinary diurnal cycle is not mistaken for synchrony)
    -- Integer ids for the accounts and templates of ``sync_b`` (one small group-by each: ~3% of its rows are
    -- distinct templates): every group-by and join below runs on them, not on the wide strings, so at scale
    -- 1.0 (~26M bucket rows) their hash tables are a fraction of the size; names come back for the entities only
    ida AS (SELECT account_id, CAST(row_number() OVER (ORDER BY account_id) AS INT) AS aid
            FROM (SELECT DISTINCT account_id FROM sync_b WHERE {w})),
    idt AS (SELECT template_key, CAST(row_number() OVER (ORDER BY template_key) AS INT) AS tid
            FROM (SELECT DISTINCT template_key FROM sync_b WHERE {w})),
    sb AS (SELECT ida.aid, idt.tid, s.bucket, CAST(floor((s.bucket % {bpd}) / {bph}) AS INT) AS hod
           FROM sync_b s JOIN ida USING (account_id) JOIN idt USING (template_key) WHERE {_until(until, 's.hour', since)}),
    g AS (SELECT CAST(extract(hour FROM hour) AS INT) AS hod, sum(n) / sum(sum(n)) OVER () AS share
          FROM beh_ah WHERE {w} GROUP BY 1),
    tb AS (SELECT tid, bucket, count(*) AS c FROM sb GROUP BY 1, 2),
    tt AS (SELECT tid, (max(bucket) - min(bucket)) / {bpd} + 1 AS days, count(*) AS tot,
                  count(DISTINCT aid) AS k FROM sb GROUP BY 1),
    -- per account and template first, then its template's totals (one row each): the expected co-activity
    -- is (the template's other rows) × (the account's summed hour-of-day shares) / (the template's buckets).
    -- The co-activity counts other accounts in the account's buckets, so only buckets with two or more
    -- accounts (a small share of them) are joined; the rest add 0
    sa1 AS (SELECT sb.aid, sb.tid, count(*) AS nb_a, {exact_sum('g.share')} AS gs
            FROM sb JOIN g USING (hod) GROUP BY 1, 2),
    sco AS (SELECT sb.aid, sb.tid, sum(tb2.c - 1) AS co
            FROM sb JOIN (SELECT tid, bucket, c FROM tb WHERE c >= 2) tb2 USING (tid, bucket)
            JOIN g USING (hod) GROUP BY 1, 2),
    sa AS (SELECT sa1.aid, sa1.tid, sa1.nb_a, coalesce(sco.co, 0) AS co,
                  (tt.tot - sa1.nb_a) * sa1.gs / (tt.days * {bph}) AS ex, tt.k
           FROM sa1 JOIN tt USING (tid) LEFT JOIN sco USING (aid, tid)),
    -- only account × template pairs synchronised beyond chance become entities: the MinHash below is
    -- computed for those alone
    sp AS (SELECT aid, tid,
                  least(1.0, (co / greatest(ex, 1e-9) - 1) / 3.0) / {int(cfg.sync_bands)} AS strength
           FROM sa WHERE k >= 3 AND nb_a >= 3 AND co / greatest(ex, 1e-9) >= {float(cfg.sync_min_lift)}),
    -- the entity is not the template alone: two operations each synchronised on its own schedule but
    -- sending the same public template are not synchronised with each other. Each account's set of busy
    -- buckets (≥ 3 accounts) on the template is summarised by {int(cfg.sync_bands)} MinHash values, so two
    -- accounts share a sync entity with probability = the Jaccard overlap of their busy buckets
    -- (the hash of a bucket depends on the bucket and the band only: it is computed once per distinct busy
    -- bucket and band, ranked, and each account keeps its smallest rank, the same minimum as the md5 strings';
    -- the bands' ranks are one row per bucket, so the minimum is one pass over the account's buckets)
    hot AS (SELECT tid, bucket FROM tb WHERE c >= 3),
    bh AS (SELECT bucket, j, h, row_number() OVER (PARTITION BY j ORDER BY h, bucket) AS hr FROM (
             SELECT b.bucket, r.j, md5(CAST(b.bucket AS VARCHAR) || '~' || CAST(r.j AS VARCHAR)) AS h
             FROM (SELECT DISTINCT bucket FROM hot) b CROSS JOIN range({int(cfg.sync_bands)}) r(j))),
    bhp AS (SELECT bucket, {bands_pivot} FROM bh GROUP BY bucket),
    mrp AS (SELECT sb.aid, sb.tid, {bands_min}
            FROM sb JOIN sp USING (aid, tid) JOIN hot USING (tid, bucket)
            JOIN bhp USING (bucket) GROUP BY 1, 2),
    mr AS (SELECT mrp.aid, mrp.tid, r.j, CASE r.j {bands_case} END AS hr
           FROM mrp CROSS JOIN range({int(cfg.sync_bands)}) r(j)),
    mh AS (SELECT mr.aid, mr.tid, mr.j, bh.h FROM mr JOIN bh USING (j, hr)),
    syncs AS (
      SELECT ida.account_id, 'sync' AS kind, idt.template_key || '~' || mh.j || '~' || mh.h AS entity, sp.strength
      FROM sp JOIN mh USING (aid, tid) JOIN ida USING (aid) JOIN idt USING (tid))
    SELECT * FROM acck UNION ALL SELECT * FROM syncs
    """)
    # the exchange-level entities: the hourly rows summed per account × entity, in one statement unless
    # incidence_chunk_rows asks for parts split by account (an account's rows are all in one part, so the rows
    # are the same; each part reads every row, so parts cost more CPU than they save memory)
    parts = 1
    if isinstance(con, duckdb.DuckDBPyConnection) and cfg.incidence_chunk_rows:
        n_h = con.execute("SELECT count(*) FROM inc_h").fetchall()[0][0]
        parts = max(1, -(-int(n_h) // int(cfg.incidence_chunk_rows)))
    for p in range(parts):
        part = f"AND hash(i.account_id) % {parts} = {p}" if parts > 1 else ""
        con.execute(f"""
        INSERT INTO inc_raw
        WITH {tot},
        exk AS (
          SELECT i.account_id, i.kind, i.entity, sum(i.n) AS n FROM inc_h i
          WHERE {_until(until, 'i.hour')} AND (i.kind = 'task_item' OR {_until(None, 'i.hour', since)})
            AND i.kind IN ({live}) {part}
          GROUP BY 1, 2, 3)
        SELECT e.account_id, e.kind, e.entity, 1.0 AS strength FROM exk e JOIN tot USING (account_id)
        WHERE e.kind = 'task_item' OR (e.n >= least({mincnt}, tot.n) AND e.n >= {share} * tot.n)
        """)
    # creation bursts: many accounts created on one pathway within minutes, beyond the background rate
    m = int(cfg.creation_burst_minutes)
    creation_keys = burst_keys_sql("p", "c", m * 60)
    # ``burst_members`` keeps, per burst, the share of its holders the pathway's background rate puts in its minutes
    # anyway (λ / count): scoring asks it before reading a burst as a member's own distinctive tie
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE burst_members AS
    WITH tot AS (SELECT DISTINCT account_id FROM beh_ah WHERE {w}),
    acc AS (SELECT a.account_id, coalesce(a.signup_pathway, '?') AS p, epoch(a.created_at) AS c
            FROM accounts a JOIN tot USING (account_id) WHERE a.created_at IS NOT NULL),
    rate AS (SELECT p, count(*) * {m * 60} / greatest(max(c) - min(c), {m * 60}) AS lam FROM acc GROUP BY 1),
    b AS (SELECT account_id, p, {creation_keys[0]} AS e1, {creation_keys[1]} AS e2 FROM acc),
    u AS (SELECT account_id, p, e1 AS entity FROM b UNION ALL SELECT account_id, p, e2 FROM b),
    cnt AS (SELECT entity, p, count(*) AS c FROM u GROUP BY 1, 2)
    SELECT u.account_id, u.entity, rate.lam / cnt.c AS chance FROM u JOIN cnt USING (entity, p) JOIN rate USING (p)
    WHERE cnt.c >= greatest({int(cfg.creation_burst_min)}, rate.lam + 4 * sqrt(rate.lam) + 1)
    """)
    con.execute("INSERT INTO inc_raw SELECT account_id, 'creation_burst', entity, 1.0 FROM burst_members")
    _payment_bursts(con, cfg, w)
    kw = cfg.kind_weights
    kw_values = ", ".join(f"('{k}', {float(v)})" for k, v in kw.items())
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE inc AS
    WITH n AS (SELECT count(DISTINCT account_id) AS n FROM beh_ah WHERE {w}),
    kw(kind, kw) AS (VALUES {kw_values}),
    r AS (SELECT account_id, kind, entity, max(strength) AS strength FROM inc_raw GROUP BY 1, 2, 3),
    e AS (SELECT r.kind, r.entity, count(*) AS df, {exact_sum('coalesce(s.suspicion, 0)')} / count(*) AS susp
          FROM r LEFT JOIN _susp s USING (account_id) GROUP BY 1, 2)
    , q AS (SELECT quantile_cont(suspicion, {float(cfg.common_entity_quantile)}) AS q FROM _susp)
    SELECT r.account_id, r.kind, r.entity, e.df,
           kw.kw * ln((n.n + 1.0) / e.df) / ln(n.n + 1.0)
             * ({cfg.benign_floor} + (1 - {cfg.benign_floor}) * e.susp) * r.strength AS w
    FROM r JOIN e USING (kind, entity) JOIN kw USING (kind) CROSS JOIN n CROSS JOIN q
    -- an entity shared by a large share of all accounts whose members look like everyone else
    -- (a free-mail domain, the default SDK fingerprint, a campus NAT) carries no coordination signal
    -- (content and sync entities are kept: a big campaign's templates are exactly such entities; idf weighs them)
    WHERE e.df >= 2 AND (e.df <= {cfg.max_entity_share} * n.n OR e.susp >= q.q
                         OR r.kind IN ('template', 'system_prompt', 'task_item', 'sync'))
      AND kw.kw > 0
    """)
    con.unregister("_susp")


def _payment_bursts(con: duckdb.DuckDBPyConnection, cfg: GraphConfig, w: str) -> None:
    """Sign-ups on one card: the accounts that hold one payment instrument and were created within
    ``payment_burst_hours`` of each other (two offset grids, as for ``creation_burst``), as entities of kind
    ``payment_burst`` (evidence group *creation*), when the window holds at least
    max(``payment_burst_min``, λ + 4√λ + 1) of the card's holders. λ is what the card's other holders would put in
    one window had they signed up independently at the store's own pace: (holders − 1) × window ÷ the span of the
    store's sign-up times. Why: a hydra buys one card and opens a dozen accounts on it in an afternoon, from
    distinct /24s, pathways and e-mail shapes, so ``creation_burst`` (one pathway, minutes) never sees it and the
    card alone is one evidence group. A family's or a company's card gathers its accounts over months (λ small,
    and their sign-ups spread) — a company that opens several accounts on one card in a day does show here, and
    is then judged on its traffic like any coordinated group (accounts of one verified organisation are one
    party in the edges and the scoring). 0 hours turns it off."""
    h = float(cfg.payment_burst_hours)
    if h <= 0 or float(cfg.kind_weights.get("payment_burst", 0)) <= 0:
        return
    sec = h * 3600
    card_keys = burst_keys_sql("card", "c", sec)
    con.execute(f"""
    INSERT INTO inc_raw
    WITH tot AS (SELECT DISTINCT account_id FROM beh_ah WHERE {w}),
    span AS (SELECT greatest(max(epoch(created_at)) - min(epoch(created_at)), {sec}) AS s FROM accounts),
    allc AS (SELECT payment_fingerprint AS card, count(*) AS n FROM accounts
             WHERE payment_fingerprint IS NOT NULL AND created_at IS NOT NULL GROUP BY 1),
    acc AS (SELECT a.account_id, a.payment_fingerprint AS card, epoch(a.created_at) AS c
            FROM accounts a JOIN tot USING (account_id)
            WHERE a.payment_fingerprint IS NOT NULL AND a.created_at IS NOT NULL),
    b AS (SELECT account_id, card, {card_keys[0]} AS e1, {card_keys[1]} AS e2 FROM acc),
    u AS (SELECT account_id, card, e1 AS entity FROM b UNION ALL SELECT account_id, card, e2 FROM b),
    cnt AS (SELECT entity, card, count(*) AS c FROM u GROUP BY 1, 2),
    lam AS (SELECT card, (allc.n - 1) * {sec} / span.s AS lam FROM allc CROSS JOIN span)
    SELECT u.account_id, 'payment_burst', u.entity, 1.0 FROM u JOIN cnt USING (entity, card) JOIN lam USING (card)
    WHERE cnt.c >= greatest({int(cfg.payment_burst_min)}, lam.lam + 4 * sqrt(lam.lam) + 1)
    """)


def party_key(acc: str, account_id: str, declared_verification: int) -> str:
    """SQL for the party an account acts as: its organisation when that is verified to the declared level
    (a customer's own accounts are one party), else the account itself. ``acc`` is an alias of the
    accounts table (may be NULL from a left join); ``account_id`` the column to fall back to."""
    return (f"CASE WHEN {acc}.org_id IS NOT NULL AND coalesce({acc}.verification_level, 0) >= {int(declared_verification)} "
            f"THEN 'org:' || {acc}.org_id ELSE {account_id} END")


def coordination_edges(con: duckdb.DuckDBPyConnection, cfg: GraphConfig, declared_verification: int = 2) -> pa.Table:
    """Edges (src_account, dst_account, kind, entity, weight) from table ``inc``.

    Pairs inside one organisation verified to ``declared_verification`` are not linked: a
    customer's own declared accounts sharing its card, office NAT and tooling is not hidden
    coordination (and its per-organisation limits already apply)."""
    cap = int(cfg.clique_cap)
    # kinds that are evidence when a cluster is scored but do not shape the communities (graph.score_only_kinds)
    only = ", ".join(f"'{k}'" for k in cfg.score_only_kinds)
    keep = f"WHERE kind NOT IN ({only})" if only else ""
    # rings and sync MinHash order by md5 (not DuckDB's hash): the same ring and the same entities on every
    # engine, so DuckDB and Spark build the same graph (docs/spark.md)
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE edges AS
    WITH ranked AS (
      SELECT account_id, kind, entity, df, w,
             row_number() OVER (PARTITION BY kind, entity ORDER BY md5(account_id || entity)) AS rk
      FROM inc {keep}),
    small AS (
      SELECT a.account_id AS src, b.account_id AS dst, a.kind, a.entity, (a.w + b.w) / 2 / (a.df - 1) AS weight
      FROM ranked a JOIN ranked b ON a.kind = b.kind AND a.entity = b.entity AND a.account_id < b.account_id
      WHERE a.df <= {cap}),
    ring AS (
      SELECT least(a.account_id, b.account_id) AS src, greatest(a.account_id, b.account_id) AS dst,
             a.kind, a.entity, (a.w + b.w) / 4 AS weight
      FROM ranked a JOIN ranked b ON a.kind = b.kind AND a.entity = b.entity AND b.rk = a.rk % a.df + 1
      WHERE a.df > {cap}),
    u AS (SELECT src, dst, kind, entity, weight FROM small UNION ALL SELECT src, dst, kind, entity, weight FROM ring)
    SELECT u.src, u.dst, u.kind, u.entity, CAST(u.weight AS DOUBLE) AS weight FROM u
    LEFT JOIN accounts sa ON sa.account_id = u.src LEFT JOIN accounts da ON da.account_id = u.dst
    WHERE {party_key('sa', 'u.src', declared_verification)} <> {party_key('da', 'u.dst', declared_verification)}
    """)
    return con.sql("SELECT src AS src_account, dst AS dst_account, kind, entity, weight FROM edges").to_arrow_table()


def pair_weights(con: duckdb.DuckDBPyConnection, cfg: GraphConfig, among: str | None = None) -> pa.Table:
    """Summed weight per account pair; each kind saturates so 400 shared task items do not
    outweigh one shared payment instrument. Sums exact (``exact_sum``): Leiden breaks ties on the weights' last
    digits, so they must be the same on every run (``leiden_graph`` fixes the edges' order). ``among``: a registered table with ``account_id``; only the pairs
    with both accounts in it (the harvesters a harvesting sub-cluster is cut from, ``scoring.risk``)."""
    kw_values = ", ".join(f"('{k}', {float(v)})" for k, v in cfg.kind_weights.items())
    only = "" if among is None else (f" WHERE src IN (SELECT account_id FROM {among})"
                                     f" AND dst IN (SELECT account_id FROM {among})")
    return con.sql(f"""
      WITH kw(kind, kw) AS (VALUES {kw_values}),
      pk AS (SELECT src, dst, kind, {exact_sum('weight')} AS w FROM edges{only} GROUP BY 1, 2, 3)
      SELECT src, dst, {exact_sum('least(pk.w, kw.kw * 1.5)')} AS weight
      FROM pk JOIN kw USING (kind) GROUP BY 1, 2 HAVING {exact_sum('least(pk.w, kw.kw * 1.5)')} >= {cfg.min_pair_weight}
    """).to_arrow_table()
