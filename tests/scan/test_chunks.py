"""prepare in slices of days builds exactly the partial tables one pass over every exchange builds."""

import duckdb
import pytest

from distillguard.scan.chunks import FOLDS, fold_slices, time_slices
from distillguard.scan.config import ScanConfig
from distillguard.scan.engine import open_connection, prepare
from distillguard.store import Store
from distillguard.testing.worlds import build_tiny_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    st = Store(tmp_path_factory.mktemp("chunks") / "store", create=True)
    build_tiny_world(st, seed=5, days=5)
    return st


def _tables(con) -> dict[str, list[tuple]]:
    out = {}
    for t in FOLDS:
        cols = [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()]
        out[t] = (cols, sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr))
    return out


def test_slices_cover_every_exchange_once(world):
    con = open_connection(world, ScanConfig(threads=1))
    total = con.execute("SELECT count(*) FROM exchanges").fetchall()[0][0]
    per_day = con.execute("SELECT max(c) FROM (SELECT count(*) AS c FROM exchanges GROUP BY date_trunc('day', ts))"
                          ).fetchall()[0][0]
    sl = time_slices(con, world.exchanges_sql(["ts"]), per_day)
    assert len(sl) >= 3 and sum(n for _, n in sl) == total
    got = [con.execute(f"SELECT count(*) FROM exchanges WHERE {p.replace('{c}', 'ts')}").fetchall()[0][0] for p, _ in sl]
    assert got == [n for _, n in sl]
    assert time_slices(con, world.exchanges_sql(["ts"]), 10**9)[0][0] == "true"


@pytest.mark.parametrize("bucket_minutes", [10, 7])
def test_sliced_prepare_builds_the_same_partials(world, bucket_minutes):
    """7-minute sync buckets straddle midnight (10-minute ones never do): their rows in two slices fold into
    the one row a single pass builds, though only rows at hours 23 and 0 are folded again."""
    g = ScanConfig().graph.model_copy(update={"sync_bucket_minutes": bucket_minutes})
    whole, sigs = prepare(world, ScanConfig(threads=1, graph=g))
    seen = []
    sliced, sigs2 = prepare(world, ScanConfig(threads=1, prepare_chunk_rows=1, graph=g),
                            done=lambda r, t, c: seen.append((r, t, c)))
    assert sigs == sigs2 and sigs
    assert len(seen) >= 5 and seen[0][0] == 0 and seen[-1][:2] == (seen[-1][1], seen[-1][1])
    assert [r for r, _, _ in seen] == sorted(r for r, _, _ in seen)
    assert all(a[0] + a[2] == b[0] for a, b in zip(seen, seen[1:], strict=False))  # each slice's rows, then done
    a, b = _tables(whole), _tables(sliced)
    if bucket_minutes == 7:  # the world has buckets across midnight, so the fold was exercised
        assert whole.execute("SELECT count(*) FROM sync_b WHERE (bucket * 420) % 86400 > 86400 - 420").fetchall()[0][0]
    for t in FOLDS:
        assert a[t][0] == b[t][0], t
        assert a[t][1] == b[t][1], t


def test_keys_without_a_time_fold_across_slices():
    con = duckdb.connect()
    rows = iter([("2026-01-01 05:00", 3), ("2026-01-02 07:00", 4)])

    def build(where, into):
        hour, n = next(rows)
        con.execute(f"{into('beh_pd')} SELECT 'a' AS account_id, 1::UBIGINT AS prompt_h, "
                    f"TIMESTAMPTZ '{hour}+00' AS hour")
        con.execute(f"{into('inc_h')} SELECT 'a' AS account_id, kind, 'e' AS entity, "
                    f"TIMESTAMPTZ '{hour}+00' AS hour, {n}::BIGINT AS n FROM (VALUES ('task_item'), ('ip24')) k(kind)")
        return ["sig_x"], ["beh_pd", "inc_h"]

    assert fold_slices(con, [("true", 1), ("true", 1)], build) == ["sig_x"]
    assert con.execute("SELECT count(*), min(hour) FROM beh_pd").fetchall()[0][0] == 1
    inc = sorted(con.execute("SELECT kind, hour::VARCHAR, n FROM inc_h").fetchall())
    assert [(k, n) for k, _, n in inc] == [("ip24", 3), ("ip24", 4), ("task_item", 7)]
    assert inc[2][1].startswith("2026-01-01 05:00")
    assert con.execute("SELECT typeof(n) FROM inc_h LIMIT 1").fetchall()[0][0] == "BIGINT"


class _NoCatalog:
    """A connection that runs SQL but has no ``duckdb_tables()``, as the Spark engine (engine/spark.py)."""

    def __init__(self, con):
        self.con = con

    def execute(self, sql, *args):
        assert "duckdb_tables" not in sql and "duckdb_views" not in sql, sql
        return self.con.execute(sql, *args)


@pytest.mark.parametrize("n_slices", [1, 2])
def test_folding_never_lists_the_catalog(n_slices):
    """fold_slices folds the tables ``build`` says it made: an engine without DuckDB's catalog functions
    (Spark) runs it, in one slice or several."""
    con = _NoCatalog(duckdb.connect())

    def build(where, into):
        con.execute(f"{into('beh_am')} SELECT 'a' AS account_id, 'm' AS model, "
                    "TIMESTAMPTZ '2026-01-01 05:00+00' AS hour, 2::BIGINT AS n")
        return ["sig_x"], ["beh_am"]

    assert fold_slices(con, [("true", 1)] * n_slices, build) == ["sig_x"]
    assert con.execute("SELECT sum(n) FROM beh_am").fetchall()[0][0] == 2 * n_slices


@pytest.mark.parametrize("chunk_rows", [1, 10**9])
def test_prepare_leaves_exactly_the_folded_tables(world, chunk_rows):
    """Every table prepare makes is one ``build`` named (a table it made but did not name would stay a
    ``__slices`` table here, or be missing), none TEMP (the slice's ``ex`` is dropped)."""
    con, _ = prepare(world, ScanConfig(threads=1, prepare_chunk_rows=chunk_rows))
    rows = con.execute("SELECT database_name, table_name, temporary FROM duckdb_tables()").fetchall()
    assert not [r for r in rows if r[2]], rows
    db = con.execute("SELECT current_database()").fetchall()[0][0]
    assert sorted(t for d, t, _ in rows if d == db) == sorted(FOLDS), rows


def test_an_undeclared_partial_table_is_refused(world):
    con = open_connection(world, ScanConfig(threads=1))

    def build(where, into):
        con.execute(f"{into('beh_new')} SELECT 1 AS x WHERE {'true' if where is None else 'true'}")
        return [], ["beh_new"]

    with pytest.raises(RuntimeError, match="beh_new"):
        fold_slices(con, [("true", 1), ("true", 1)], build)


def test_incidence_in_parts_equals_one_statement(world):
    """The hourly incidence summed in one statement (the default: every part would read all of ``inc_h``)
    or in parts split by account gives the same ``inc`` rows."""
    from distillguard.behavior import account_features
    from distillguard.graph import incidence
    from distillguard.scoring import account_suspicion

    cfg = ScanConfig(threads=1)
    assert cfg.graph.incidence_chunk_rows is None
    got = []
    for chunk in (None, 50):
        c = cfg.model_copy(update={"graph": cfg.graph.model_copy(update={"incidence_chunk_rows": chunk})})
        con, sigs = prepare(world, c)
        feats = account_suspicion(account_features(con, sigs, c.behavior, None),
                                  tuple(c.behavior.non_intent_signals), c.scoring.account_model)
        incidence(con, c.graph, feats)
        got.append(sorted((r[0], r[1], r[2], r[3], round(r[4], 12)) for r in
                          con.execute("SELECT account_id, kind, entity, df, w FROM inc").fetchall()))
        con.close()
    assert got[0] and got[0] == got[1]


def test_sync_entities_match_a_plain_reference(world):
    """The synchronised-activity entities (lift over the diurnal expectation, MinHash of busy buckets) as the
    incidence's SQL computes them — the lift joined on shared buckets only, the MinHash for synchronised pairs
    only — equal a direct computation from ``sync_b`` and ``beh_ah``."""
    import hashlib
    from collections import Counter, defaultdict

    from distillguard.behavior import account_features
    from distillguard.graph import incidence
    from distillguard.scoring import account_suspicion

    cfg = ScanConfig(threads=1)
    g = cfg.graph.model_copy(update={"sync_min_lift": 1.5})  # more pairs pass on the tiny world
    con, sigs = prepare(world, cfg)
    feats = account_suspicion(account_features(con, sigs, cfg.behavior, None),
                              tuple(cfg.behavior.non_intent_signals), cfg.scoring.account_model)
    incidence(con, g, feats)
    got = sorted((a, e, round(s, 9)) for a, e, s in
                 con.execute("SELECT account_id, entity, strength FROM inc_raw WHERE kind = 'sync'").fetchall())
    bph = 60 // g.sync_bucket_minutes
    bpd = 24 * bph
    hours = dict(con.execute("SELECT CAST(extract(hour FROM hour) AS INT), sum(n) FROM beh_ah GROUP BY 1").fetchall())
    share = {h: n / sum(hours.values()) for h, n in hours.items()}
    sb = con.execute("SELECT account_id, template_key, bucket FROM sync_b").fetchall()
    c = Counter((t, b) for _, t, b in sb)
    per = defaultdict(list)
    for a, t, b in sb:
        per[(a, t)].append(b)
    by_t = defaultdict(list)
    for (a, t), bs in per.items():
        by_t[t].append((a, bs))
    want = []
    for t, rows in by_t.items():
        allb = [b for _, bs in rows for b in bs]
        days, tot, k = (max(allb) - min(allb)) / bpd + 1, len(allb), len(rows)  # SQL "/" divides as floats
        for a, bs in rows:
            co = sum(c[(t, b)] - 1 for b in bs)
            ex = (tot - len(bs)) * sum(share[(b % bpd) // bph] for b in bs) / (days * bph)
            lift = co / max(ex, 1e-9)
            if k < 3 or len(bs) < 3 or lift < g.sync_min_lift:
                continue
            hot = [b for b in bs if c[(t, b)] >= 3]
            for j in range(g.sync_bands):
                if hot:
                    h = min(hashlib.md5(f"{b}~{j}".encode()).hexdigest() for b in hot)
                    want.append((a, f"{t}~{j}~{h}", round(min(1.0, (lift - 1) / 3.0) / g.sync_bands, 9)))
    assert want, "the tiny world should have synchronised pairs at this lift"
    # the SQL sums the hour-of-day shares exactly at 1e-9 each (scan.base.exact_sum), the reference in floats
    want = sorted(want)
    assert [(a, e) for a, e, _ in got] == [(a, e) for a, e, _ in want]
    assert [s for _, _, s in got] == pytest.approx([s for _, _, s in want], abs=1e-7)
