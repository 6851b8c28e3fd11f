"""Light detections between full ones: `watch` re-judges the whole window every ``watch_full_every`` detections and
in between only asks whether accounts new since the last full detection joined one of the campaigns it found.

Why: a windowed detection costs about a scan's detection at every tick, whatever changed — past the merge its cost
follows the window's accounts, and a week's window holds nearly every account (docs/benchmarks.md, rep20: at
scale 0.1 the daily ticks' detections are ~2.9 scans by themselves). No exact incremental detection exists: the
edge weights carry the entity's idf over the window's accounts, so a day in or out changes every weight (rep18).
What is cheap is the question a campaign's growth asks between two full judgments: does a *new* account hold the
campaign's own infrastructure? A hydra replaces banned accounts with fresh ones on the same proxies, cards, sign-up
bursts and templates — and of those, the card and the sign-up bursts are what ordinary users do not share with it
by chance (``watch_join_signup_kinds``: rep24 found 11 of the 12 benign joiners at scale 0.1 on a /24, a template
or a free-mail shape only).

So a full detection also keeps, per campaign it found, its **own entities** (``watch_reference``): the entities of
the window's incidence (``inc``: /24s, fingerprints, cards, e-mail shapes, sign-up bursts, templates, task items)
held by at most ``watch_join_max_holders`` accounts, at least ``watch_join_entity_share`` of them that campaign's
members. (Without the cap, rep23's first run at scale 0.1 let 157 chat users and developers join a hydra through
a stock browser client string and a residential /24 the hydra's proxies also used: an entity hundreds of accounts
hold is no campaign's own, whatever share of them the campaign is.) A light detection reads the
partials of the batches folded since the last full detection, takes the accounts with traffic in them that no
detection has judged (not in ``account_risk``), derives their entities the way ``graph.edges.incidence`` does (the
same keys; bursts and cards from the accounts table), and an account holding one campaign's own entities in at
least ``watch_join_min_groups`` evidence groups, one of them of a kind in ``watch_join_signup_kinds``, joins that
campaign: flagged, a member, mapped to its flagged
cluster, and under the campaign's account-level enforcement rows. Nothing else changes: accounts a full detection
judged keep its verdict (flag or not) until the next full one, no campaign is released and none is new.

What it loses (measured, docs/benchmarks.md "Issue 13: light detections between full ones"): a new campaign made
of accounts no campaign holds, or an account whose evidence grows, waits up to ``watch_full_every`` − 1
detections for the next full one; a false flag a full detection would release stays as long.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa

REFERENCE = "watch_reference"
JOINS = "watch_light_joins"


def light_due(store, state: dict, cfg) -> bool:
    """A light detection now: the schedule says so and a full detection left its reference."""
    every = int(cfg.watch_full_every)
    if every <= 1 or state.get("light_count") is None or not store.has_table(REFERENCE):
        return False
    return int(state["light_count"]) + 1 < every


def save_reference(con, store, members: dict[str, str], cfg) -> int:
    """After a full detection (``con`` still holds its ``inc``): each campaign's own entities; returns the rows."""
    share = float(cfg.watch_join_entity_share)
    con.register("_refm", pa.table({"account_id": pa.array(list(members), pa.string()),
                                    "campaign_id": pa.array(list(members.values()), pa.string())}))
    try:
        t = con.sql(f"""
            SELECT m.campaign_id, i.kind, i.entity, i.df FROM inc i JOIN _refm m USING (account_id)
            GROUP BY 1, 2, 3, i.df HAVING count(*) >= {share} * i.df AND i.df <= {int(cfg.watch_join_max_holders)}
            ORDER BY 1, 2, 3""").to_arrow_table()
    finally:
        con.unregister("_refm")
    store.write_table(REFERENCE, t)
    return t.num_rows


def full_done(state: dict) -> None:
    """A full detection ran: light detections count from it and read the batches folded after it."""
    state["light_count"] = 0
    state["full_batches"] = sorted(set((state.get("batch") or {}).values()))


def joiners(store, state: dict, cfg) -> dict[str, tuple[str, list[str], list[str]]]:
    """Accounts new since the last full detection that hold one campaign's own entities in at least
    ``watch_join_min_groups`` evidence groups: account -> (campaign, the groups, the entities as ``kind=entity``)."""
    import duckdb

    from distillguard.graph.edges import EXCHANGE_KINDS, KIND_GROUP, account_entities_sql, burst_keys_sql
    from distillguard.store.sqltext import sql_string

    old = set(state.get("full_batches") or ())
    new = sorted(set((state.get("batch") or {}).values()) - old)
    tables = store.path / "tables"

    def files(t: str) -> list[Path]:
        return [p for k in new if (p := tables / f"watch_partial_{t}" / f"part-{k}.parquet").exists()]

    ah, ih = files("beh_ah"), files("inc_h")
    if not ah or not store.has_table("account_risk"):
        return {}
    g = cfg.graph
    known = store.read_table("account_risk").select(["account_id"])
    ref = store.read_table(REFERENCE)
    groups = ", ".join(f"('{k}', '{v}')" for k, v in KIND_GROUP.items())
    kinds = ", ".join(f"'{k}'" for k in EXCHANGE_KINDS + ("task_item",))
    m, sec = int(g.creation_burst_minutes) * 60, float(g.payment_burst_hours) * 3600
    ck = burst_keys_sql("coalesce(signup_pathway, '?')", "epoch(created_at)", m)
    pk = burst_keys_sql("payment_fingerprint", "epoch(created_at)", sec) if sec > 0 else ("NULL", "NULL")
    sk = list(cfg.watch_join_signup_kinds)
    # at least one of the campaign's own entities is what an account takes on at sign-up (none asked: any)
    signup = f"e.kind IN ({', '.join(sql_string(k) for k in sk)})" if sk else "true"
    lst = lambda fs: "[" + ", ".join(sql_string(str(f)) for f in fs) + "]"  # noqa: E731
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET threads=1")
        con.execute("SET TimeZone='UTC'")
        con.register("_known", known)
        con.register("_ref", ref)
        con.execute(f"""CREATE TEMP TABLE cand AS SELECT account_id, sum(n) AS n FROM read_parquet({lst(ah)})
                        WHERE account_id NOT IN (SELECT account_id FROM _known) GROUP BY 1""")
        # the exchange entities as ``incidence`` keeps them: an entity of at least min(min_entity_count, the
        # account's requests) of them and min_entity_share of its requests (task items always)
        exk = (f"""SELECT i.account_id, i.kind, i.entity FROM read_parquet({lst(ih)}) i JOIN cand USING (account_id)
                   WHERE i.kind IN ({kinds}) GROUP BY i.account_id, i.kind, i.entity, cand.n
                   HAVING i.kind = 'task_item' OR (sum(i.n) >= least({int(g.min_entity_count)}, cand.n)
                                                    AND sum(i.n) >= {float(g.min_entity_share)} * cand.n)"""
               if ih else "SELECT NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR WHERE false")
        # the account entities, keyed as ``incidence`` and its bursts key them (a burst's count was checked by the
        # full detection that found the campaign holding it)
        acc = f"SELECT a.* FROM ({store.accounts_sql()}) a JOIN cand USING (account_id)"
        rows = con.execute(f"""
            WITH acc AS ({acc}),
            ent(account_id, kind, entity) AS (
              {exk}
              UNION ALL SELECT account_id, kind, entity FROM ({account_entities_sql('acc')})
              UNION ALL SELECT account_id, 'creation_burst', {ck[0]} FROM acc WHERE created_at IS NOT NULL
              UNION ALL SELECT account_id, 'creation_burst', {ck[1]} FROM acc WHERE created_at IS NOT NULL
              UNION ALL SELECT account_id, 'payment_burst', {pk[0]} FROM acc
                  WHERE payment_fingerprint IS NOT NULL AND created_at IS NOT NULL AND {sec} > 0
              UNION ALL SELECT account_id, 'payment_burst', {pk[1]} FROM acc
                  WHERE payment_fingerprint IS NOT NULL AND created_at IS NOT NULL AND {sec} > 0),
            kg(kind, grp) AS (VALUES {groups}),
            hit AS (SELECT e.account_id, r.campaign_id, count(DISTINCT kg.grp) AS ng, list(DISTINCT kg.grp) AS grps,
                           list(DISTINCT e.kind || '=' || e.entity ORDER BY e.kind || '=' || e.entity) AS ents,
                           count(*) FILTER (WHERE {signup}) AS nsign
                    FROM ent e JOIN _ref r USING (kind, entity) JOIN kg USING (kind) GROUP BY 1, 2)
            SELECT account_id, campaign_id, grps, ents FROM hit WHERE ng >= {int(cfg.watch_join_min_groups)}
              AND nsign > 0
            ORDER BY account_id, ng DESC, campaign_id""").fetchall()
    finally:
        con.close()
    out: dict[str, tuple[str, list[str], list[str]]] = {}
    for a, cid, grps, ents in rows:
        out.setdefault(a, (cid, sorted(grps), list(ents)))  # the campaign it shares most groups with
    return out


def light_detect(store, state: dict, cfg, now: datetime) -> tuple[int, list[str]]:
    """A light detection: new accounts holding a campaign's own entities join it (``joiners``); returns (campaigns in
    the tables, the accounts that joined)."""
    from distillguard.scan.run import ACCOUNT_RISK_SCHEMA, _aware, _defer_to_analysts

    join = joiners(store, state, cfg)
    state["light_count"] = int(state.get("light_count") or 0) + 1
    n_camps = store.read_table("campaigns").num_rows if store.has_table("campaigns") else 0
    if not join:
        return n_camps, []
    risk = store.read_table("account_risk")
    rows = risk.to_pylist()
    # each campaign's least risky flagged member and its most common cluster: what a joiner takes
    lowest: dict[str, float] = {}
    clusters: dict[str, dict[str, int]] = {}
    for r in rows:
        c = r["campaign_id"]
        if r["flagged"] and c:
            lowest[c] = min(lowest.get(c, 1.0), r["risk"] or 0.0)
            if r["cluster_id"]:
                cnt = clusters.setdefault(c, {})
                cnt[r["cluster_id"]] = cnt.get(r["cluster_id"], 0) + 1
    cluster_of = {c: max(sorted(cnt), key=lambda k: cnt[k]) for c, cnt in clusters.items()}
    join = {a: v for a, v in join.items() if v[0] in lowest}  # a campaign still flagged in the tables
    for a, (cid, grps, _) in sorted(join.items()):
        rows.append({"account_id": a, "risk": lowest[cid], "flagged": True, "first_flagged_at": now,
                     "cluster_id": cluster_of.get(cid), "campaign_id": cid,
                     "reasons": [f"new account holding campaign {cid}'s own {', '.join(grps)} entities "
                                 f"(light detection between full ones)"]})
    if not join:
        return n_camps, []
    store.write_table("account_risk", pa.Table.from_pylist(rows, schema=ACCOUNT_RISK_SCHEMA))

    def append(name: str, new: pa.Table) -> None:
        if new.num_rows == 0:
            return
        if store.has_table(name):
            cur = store.read_table(name)
            new = pa.concat_tables([cur, new.select(cur.column_names).cast(cur.schema)])
        store.write_table(name, new)

    acc = sorted(join)
    # what each join matched, for the analyst who reviews it (a full detection rewrites the reasons)
    append(JOINS, pa.table({"account_id": pa.array(acc, pa.string()),
                            "campaign_id": pa.array([join[a][0] for a in acc], pa.string()),
                            "joined_at": pa.array([now] * len(acc), pa.timestamp("us", tz="UTC")),
                            "entities": pa.array([join[a][2] for a in acc], pa.list_(pa.string()))}))
    append("campaign_members", pa.table({"campaign_id": pa.array([join[a][0] for a in acc], pa.string()),
                                         "account_id": pa.array(acc, pa.string())}))
    if store.has_table("account_clusters"):
        flagged_cl = set(store.read_table("account_clusters")["cluster_id"].to_pylist())
        mapped = [a for a in acc if cluster_of.get(join[a][0]) in flagged_cl]
        append("account_clusters", pa.table({"account_id": pa.array(mapped, pa.string()),
                                             "cluster_id": pa.array([cluster_of[join[a][0]] for a in mapped],
                                                                    pa.string())}))
    if store.has_table("enforcement"):
        cur = store.read_table("enforcement")
        # the campaign's account-level rows (one per action and source), now for the joiner too
        proto: dict[tuple, dict] = {}
        for r in cur.to_pylist():
            if (r["subject_type"] == "account" and r.get("source") in ("scan", "scan:shadow") and r["campaign_id"]
                    and (r["expires_at"] is None or _aware(r["expires_at"]) > now)):
                proto.setdefault((r["campaign_id"], r["action"], r["source"]), r)
        new = [{**r, "subject_id": a, "created_at": now} for a in acc for (c, _, _), r in sorted(proto.items())
               if c == join[a][0]]
        if new:
            t = _defer_to_analysts(cur, pa.Table.from_pylist(new, schema=cur.schema), now)
            append("enforcement", t)
    if store.has_table("campaigns"):
        c = store.read_table("campaigns")
        add: dict[str, int] = {}
        for a in acc:
            add[join[a][0]] = add.get(join[a][0], 0) + 1
        n = [int(x or 0) + add.get(cid, 0) for cid, x in zip(c["campaign_id"].to_pylist(),
                                                             c["n_accounts"].to_pylist(), strict=True)]
        i = c.schema.get_field_index("n_accounts")
        store.write_table("campaigns", c.set_column(i, c.schema.field(i), pa.array(n, c.schema.field(i).type)))
    return n_camps, acc
