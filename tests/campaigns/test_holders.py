"""The campaign stage reads each flagged cluster's holders of each entity once (``attribution.cluster_holders``) and
its pairwise tests start from that table. These tests hold the tests' answers to what they were when each joined the
incidence table itself: the statements below are the ones they ran before (branch ``rec23``), over random stores
whose entities are held inside and outside the clusters, at bars that land on exact products (0.5 × 4 holders)."""

from __future__ import annotations

import random

import duckdb
import pyarrow as pa
import pytest

from distillguard.campaigns.attribution import ORG_KINDS, cluster_holders, exclusive_links
from distillguard.campaigns.build import HOLDER_KINDS, MERGE_KINDS, _workloads
from distillguard.campaigns.owned import OWN_TIE_KINDS, own_ties
from distillguard.graph.edges import KIND_GROUP
from distillguard.scan.base import temp_strings
from distillguard.scan.config import CampaignConfig

KINDS = ("ip24", "ja4", "header_fp", "user_agent", "payment", "payment_burst", "creation_burst", "email_pattern",
         "template", "system_prompt", "sync", "asn")


def _world(seed: int) -> tuple[duckdb.DuckDBPyConnection, dict[str, list[str]]]:
    """A store of 160 accounts, 6 flagged clusters of 2 to 30 of them, entities of every kind held by a few or
    many, inside the clusters and out (so some are the clusters' own and some are not, at every bar)."""
    rnd = random.Random(seed)
    accts = [f"a{i:03d}" for i in range(160)]
    sizes = [rnd.randint(2, 30) for _ in range(6)]
    pool = rnd.sample(accts, sum(sizes))
    groups, at = {}, 0
    for j, n in enumerate(sizes):
        groups[f"cl{j % 2}-{j:04d}"] = pool[at:at + n]
        at += n
    rows = set()
    for k in KINDS:
        for e in range(rnd.randint(3, 12)):
            home = rnd.choice(list(groups.values()))
            other = rnd.choice(list(groups.values()))
            holders = rnd.sample(home, rnd.randint(1, len(home))) + rnd.sample(other, rnd.randint(0, len(other)))
            holders += rnd.sample(accts, rnd.choice([0, 0, 1, 2, 5, 20]))
            rows |= {(a, k, f"{k}-{e}") for a in holders}
    rows = sorted(rows)
    df: dict = {}
    for _, k, e in rows:
        df[(k, e)] = df.get((k, e), 0) + 1
    con = duckdb.connect()
    con.register("_i", pa.table({"account_id": [r[0] for r in rows], "kind": [r[1] for r in rows],
                                 "entity": [r[2] for r in rows], "df": [df[(r[1], r[2])] for r in rows]}))
    con.execute("CREATE TABLE inc AS SELECT * FROM _i")
    return con, groups


def _links_before(con, groups, kinds, exclusive):
    temp_strings(con, "_fm", {"account_id": [a for ms in groups.values() for a in ms],
                              "cl": [c for c, ms in groups.items() for _ in ms]})
    kl = ", ".join(f"'{k}'" for k in kinds)
    return sorted(tuple(r) for r in con.execute(f"""
        WITH ce AS (SELECT fm.cl, i.account_id, i.kind, i.entity, i.df FROM inc i JOIN _fm fm USING (account_id)
                    WHERE i.kind IN ({kl})),
        ch AS (SELECT cl, kind, entity, any_value(df) AS df, count(DISTINCT account_id) AS h FROM ce GROUP BY 1, 2, 3),
        pair AS (SELECT a.cl AS c1, b.cl AS c2, a.kind, a.entity, a.df, a.h AS h1, b.h AS h2
                 FROM ch a JOIN ch b ON a.kind = b.kind AND a.entity = b.entity AND a.cl < b.cl),
        ex AS (SELECT * FROM pair WHERE h1 + h2 >= {float(exclusive)} * df)
        SELECT ex.c1, ex.c2, ex.kind, count(DISTINCT a.account_id) FILTER (WHERE a.cl = ex.c1),
               count(DISTINCT a.account_id) FILTER (WHERE a.cl = ex.c2)
        FROM ex JOIN ce a ON a.kind = ex.kind AND a.entity = ex.entity AND a.cl IN (ex.c1, ex.c2)
        GROUP BY 1, 2, 3""").fetchall())


def _workloads_before(con, groups, cfg):
    temp_strings(con, "_fm", {"account_id": [a for ms in groups.values() for a in ms],
                              "cl": [c for c, ms in groups.items() for _ in ms]})
    return sorted(tuple(r) for r in con.execute(f"""
        WITH ce AS (SELECT fm.cl, i.account_id, i.kind || ':' || i.entity AS e, i.df
                    FROM inc i JOIN _fm fm USING (account_id) WHERE i.kind IN ('template', 'system_prompt')),
        fl AS (SELECT e, count(DISTINCT account_id) AS f, any_value(df) AS df FROM ce GROUP BY 1),
        sz AS (SELECT cl, count(DISTINCT account_id) AS n FROM _fm GROUP BY 1)
        SELECT ce.cl, ce.e, count(DISTINCT ce.account_id) >= {float(cfg.merge_min_cover)} * any_value(sz.n)
        FROM ce JOIN fl USING (e) JOIN sz USING (cl)
        WHERE fl.f >= {float(cfg.merge_exclusive)} * fl.df GROUP BY 1, 2
        HAVING count(DISTINCT ce.account_id) >= {float(cfg.merge_send_min_share)} * any_value(sz.n)""").fetchall())


def _own_rows_before(con, chosen, sides, cfg):
    used = sorted({c for p in sides for c in p})
    temp_strings(con, "_ot_m", {"account_id": [a for c in used for a in chosen[c]],
                                "cl": [c for c in used for _ in chosen[c]]})
    temp_strings(con, "_ot_p", {"piece": [p for p, _ in sides], "rec": [r for _, r in sides]})
    kl = ", ".join(f"'{k}'" for k in OWN_TIE_KINDS)
    return con.execute(f"""
        WITH ce AS (SELECT m.cl, i.account_id, i.kind, i.entity, i.df FROM inc i JOIN _ot_m m USING (account_id)
                    WHERE i.kind IN ({kl})),
        ch AS (SELECT cl, kind, entity, any_value(df) AS df, count(DISTINCT account_id) AS h FROM ce GROUP BY 1, 2, 3)
        SELECT p.piece, p.rec, x.account_id, x.kind
        FROM _ot_p p JOIN ce x ON x.cl = p.piece
          JOIN ch r ON r.cl = p.rec AND r.kind = x.kind AND r.entity = x.entity
          JOIN ch xh ON xh.cl = p.piece AND xh.kind = x.kind AND xh.entity = x.entity
        WHERE r.h >= {int(cfg.own_tie_min_holders)} AND xh.h + r.h >= {float(cfg.merge_exclusive)} * r.df""").fetchall()


CONFIGS = [CampaignConfig(), CampaignConfig(merge_exclusive=0.5, merge_min_cover=0.5, merge_send_min_share=0.25,
                                            own_tie_min_holders=1, own_tie_min_cover=0.2, own_tie_min_accounts=1,
                                            own_tie_lone_groups=1)]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "low-bars"])
def test_the_shared_holders_table_answers_as_each_tests_own_join_did(seed, cfg):
    con, groups = _world(seed)
    holders = cluster_holders(con, groups, HOLDER_KINDS)
    assert sorted(exclusive_links(con, holders, MERGE_KINDS, cfg.merge_exclusive)) == \
        _links_before(con, groups, MERGE_KINDS, cfg.merge_exclusive)
    # the organisations' call reads its own holders (every member of the flagged clusters, its kinds)
    assert sorted(exclusive_links(con, cluster_holders(con, groups, ORG_KINDS), ORG_KINDS, cfg.merge_exclusive)) == \
        _links_before(con, groups, ORG_KINDS, cfg.merge_exclusive)
    core, sends = _workloads(con, holders, groups, cfg)
    got = sorted((c, e, e in core[c]) for c in groups for e in sends[c])
    assert got == _workloads_before(con, groups, cfg)
    pairs = [(a, b) for a in sorted(groups) for b in sorted(groups) if a < b]
    sides = [(a, b) if (len(groups[a]), a) < (len(groups[b]), b) else (b, a) for a, b in pairs]
    held: dict = {}
    kinds: dict = {}
    for piece, rec, acct, kind in _own_rows_before(con, groups, sides, cfg):
        held.setdefault((piece, rec), set()).add(acct)
        kinds.setdefault((piece, rec), set()).add(KIND_GROUP.get(kind, kind))
    ties = own_ties(con, holders, groups, pairs, cfg)
    for t in ties:
        assert (t.holders, t.groups) == (len(held[(t.piece, t.record)]), tuple(sorted(kinds[(t.piece, t.record)])))
    # every pair the statement before found and the cover admits is a tie, and no other
    want = {p for p, accts in held.items() if len(accts) >= cfg.own_tie_min_cover * len(groups[p[0]])
            and len(accts) >= min(cfg.own_tie_min_accounts, len(groups[p[0]])) and len(groups[p[0]]) > 1}
    assert {(t.piece, t.record) for t in ties if len(groups[t.piece]) > 1} == want
    # temporary tables and views of the shared statements are gone
    names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() UNION ALL "
                                       "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert not names & {"_ch_m", "_xl_h", "_ot_h", "_ot_p", "_wl_h", "_wl_n"}


def test_the_random_stores_exercise_every_answer():
    """The comparison above means something only if the stores give links, workloads and ties at all."""
    con, groups = _world(3)
    cfg = CONFIGS[1]
    holders = cluster_holders(con, groups, HOLDER_KINDS)
    assert exclusive_links(con, holders, MERGE_KINDS, cfg.merge_exclusive)
    core, sends = _workloads(con, holders, groups, cfg)
    assert any(core.values()) and any(sends[c] - core[c] for c in groups)
    assert own_ties(con, holders, groups, [(a, b) for a in sorted(groups) for b in sorted(groups) if a < b], cfg)
