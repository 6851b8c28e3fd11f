"""campaigns/describe.py: one count of shared evidence and one way of naming campaigns, for titles, evidence
sentences, cluster summaries, the console and the report."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from distillguard.campaigns import describe as d


def _con(edges) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    rows = pa.Table.from_pylist([{"src_account": s, "dst_account": t, "kind": k, "entity": e, "weight": 1.0}
                                 for s, t, k, e in edges])
    con.register("_rows", rows)
    con.execute("CREATE TABLE coordination_edges AS SELECT * FROM _rows")
    con.unregister("_rows")
    return con


def _ring(accts, kind, entity):
    """How the graph stage links an entity held by more accounts than its clique cap: a ring."""
    return [(accts[i], accts[(i + 1) % len(accts)], kind, entity) for i in range(len(accts))]


def test_every_member_holding_a_ring_linked_entity_counts():
    """25 campaign accounts among 30 on one /24: the ring links some members only to outsiders, yet all 25
    hold the /24 (counting edges *between* members said fewer)."""
    camp = [f"a{i:02d}" for i in range(25)]
    outsiders = [f"z{i}" for i in range(5)]
    holders = [x for pair in zip(camp[:5], outsiders, strict=True) for x in pair] + camp[5:]
    edges = _ring(holders, "ip24", "10.0.0.0/24") + [("a01", "a02", "payment", "pf1"), ("a01", "a03", "payment", "pf1"),
                                                     ("z0", "a04", "payment", "pf2")]
    sh = d.shared(_con(edges), {"c": camp})["c"]
    kinds = {k.kind: k for k in sh.kinds}
    assert kinds["ip24"].n_accounts == 25 and kinds["ip24"].n_entities == 1
    # pf2: one member and an outsider is not shared by the campaign
    assert kinds["payment"].n_accounts == 3 and kinds["payment"].n_entities == 1 and kinds["payment"].top_accounts == 3
    assert [k.kind for k in sh.kinds] == ["payment", "ip24"]       # rarest first
    assert sh.groups == {"payment": 3, "network": 25}
    rows = d.holdings(_con(edges), camp)
    assert len({a for k, _, a in rows if k == "ip24"}) == 25


def test_many_groups_at_once_count_as_one_group_at_a_time():
    edges = _ring([f"a{i}" for i in range(8)], "template", "t1") + [("b0", "b1", "ja4", "j"), ("b1", "a0", "ja4", "j")]
    con = _con(edges)
    groups = {"x": [f"a{i}" for i in range(5)], "y": ["b0", "b1", "a7"]}
    con.execute("CREATE TABLE mem AS SELECT * FROM (VALUES " + ", ".join(
        f"('{g}', '{a}')" for g, accts in groups.items() for a in accts) + ") v(grp, account_id)")
    many = d.shared(con, {}, members_sql="SELECT grp, account_id FROM mem")
    for g, accts in groups.items():
        one = d.shared(con, {g: accts})[g]
        assert many[g].n_members == one.n_members and many[g].kinds == one.kinds and many[g].top == one.top


def test_sentences_say_whose_accounts_and_never_count_more_than_it_has():
    sh = d.Shared(25, [d.KindCount("payment", 2, 12, "pf1", 9), d.KindCount("ip24", 30, 25, "10.0.0.0/24", 25),
                       d.KindCount("creation_burst", 4, 20, "web|1", 14), d.KindCount("sync", 9, 18, "s", 6)])
    s = d.shared_sentence(sh)
    assert s == "Of the campaign's 25 accounts, 12 share 2 payment fingerprints and all 25 share 30 IP /24s"
    assert d.shared_sentence(sh, "cluster cl-0001's").startswith("Of cluster cl-0001's 25 accounts, 12 share")
    assert d.burst_sentence(sh, ["web"]).startswith("20 of the campaign's 25 accounts were created in sign-up bursts")
    assert d.sync_sentence(sh) == "18 of the campaign's 25 accounts are busy in the same short windows on the same template"
    assert d.kind_line(sh.kinds[0], 25) == ("12 of the campaign's 25 accounts share 2 payment fingerprints "
                                            "(the most widely shared one: 9 accounts)")
    assert d.kind_line(sh.kinds[1], 25).startswith("all 25 of the campaign's accounts share 30 IP /24s")
    for line in (s, d.burst_sentence(sh, ["web"]), d.sync_sentence(sh)):
        for a, b in re.findall(r"(\d+) of [\w' -]+?'s (\d+) accounts", line):
            assert int(a) <= int(b)


def _facts(core, n, model, day, kind=None, n_ex=1000):
    return d.TitleFacts(core, n, n_ex, [model], datetime(2026, 3, day, tzinfo=UTC),
                        d.KindCount(kind, 1, n, "e", n) if kind else None)


def test_titles_are_distinct_and_told_apart_by_what_differs():
    core = "Coding + task-set harvesting"
    facts = [_facts(core, 25, "model-a", 1), _facts(core, 25, "model-b", 1), _facts(core, 30, "model-a", 4),
             _facts(core, 8, "model-b", 9), _facts(core, 12, "model-c", 2), _facts("Vision harvesting", 9, "model-a", 1)]
    t = d.titles(facts)
    assert len(set(t)) == len(t)
    assert t[-1] == "Vision harvesting — 9 accounts"            # alone with its capability: nothing to add
    for title, f in zip(t[:5], facts[:5], strict=True):
        assert title.startswith(core + " on ") and title.endswith(f"— {f.n_accounts} accounts")
    # without the account counts every title still differs: the trait, not the size, names it
    assert len({x.rsplit(" — ", 1)[0] for x in t}) == len(t)
    assert t[0] == "Coding + task-set harvesting on model-a, from 01 Mar — 25 accounts"


def test_titles_identical_in_every_trait_are_numbered():
    f = _facts("Coding harvesting", 5, "m", 1, "payment")
    t = d.titles([f, f])
    assert t[0] != t[1] and t[1].endswith("(#2)")


def test_title_names_the_over_represented_capability_it_sends_most():
    base = {"cap_coding": 0.5, "cap_agentic": 0.05, "cap_vision": 0.01, "cot_elicitation": 0.02}
    # coding is 60% of it but 50% of everyone's traffic: agentic tool use is what sets it apart
    assert d.title_core({"cap_coding": 0.6, "cap_agentic": 0.3, "cot_elicitation": 0.02}, base) == "Agentic tool use harvesting"
    # both over-represented: the one it sends most (what its evidence lines name first)
    assert d.title_core({"cap_agentic": 0.5, "cap_vision": 0.2, "cot_elicitation": 0.3}, base) == \
        "Agentic tool use + reasoning extraction"
    assert d.title_core({"cot_elicitation": 0.9}, base) == "General chat + reasoning extraction"
