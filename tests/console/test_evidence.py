"""console/evidence.py: one way of counting shared evidence, used by the board, the account page and the report."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from distillguard.console import evidence as ev
from distillguard.console.tables import enforcement_rows
from distillguard.store import Store

T = datetime(2026, 3, 1, tzinfo=UTC)


def _store(tmp_path, edges, members) -> Store:
    st = Store(tmp_path / "s", create=True)
    st.write_table("coordination_edges", pa.Table.from_pylist(
        [{"src_account": s, "dst_account": d, "kind": k, "entity": e, "weight": 1.0} for s, d, k, e in edges]))
    st.write_table("campaign_members", pa.Table.from_pylist(
        [{"campaign_id": c, "account_id": a} for c, accts in members.items() for a in accts]))
    return st


@pytest.fixture
def star(tmp_path):
    """Ten accounts on one /24 (a star of edges, as the graph stage writes it), two pairs on payment cards,
    one outsider on the same /24; the campaign is the ten."""
    a = [f"a{i}" for i in range(10)]
    edges = [("a0", x, "ip24", "10.0.0.0/24") for x in a[1:]] + [("a0", "zz", "ip24", "10.0.0.0/24")]
    edges += [("a1", "a2", "payment", "pf1"), ("a3", "a4", "payment", "pf2"), ("a1", "a2", "ja4", "t13")]
    return _store(tmp_path, edges, {"c1": a}), a


def test_counts_are_distinct_accounts_not_edges(star):
    st, a = star
    b = ev.campaign_evidence(st.connect(), "c1")
    assert b["n_members"] == 10 and b["n_linked"] == 10 and b["n_alone"] == 0
    kinds = {k["kind"]: k for k in b["kinds"]}
    # A star of 9 edges is still 10 accounts sharing one /24 (the outsider is not a member).
    assert kinds["ip24"]["n_accounts"] == 10 and kinds["ip24"]["line"] == "all 10 of the campaign's accounts share one IP /24"
    assert kinds["payment"]["n_accounts"] == 4 and kinds["payment"]["n_entities"] == 2
    assert kinds["payment"]["line"] == ("4 of the campaign's 10 accounts share 2 payment fingerprints "
                                                "(the most widely shared one: 2 accounts)")
    assert [k["kind"] for k in b["kinds"]] == ["payment", "ja4", "ip24"]  # rarest first


def test_graph_bundles_accounts_by_rare_evidence(star):
    st, a = star
    b = ev.campaign_evidence(st.connect(), "c1")
    sizes = sorted(g["n"] for g in b["groups"])
    # {pf1, t13}: a1 a2; {pf2}: a3 a4; nothing rare: the other six, one node.
    assert sizes == [2, 2, 6] and sum(sizes) == 10
    six = next(g for g in b["groups"] if g["n"] == 6)
    ip = next(e["i"] for e in b["entities"] if e["kind"] == "ip24")
    assert six["key"] == [] and [ip, 6] in six["links"]


def test_account_page_counts_match_the_board(star):
    st, a = star
    con = st.connect()
    b = ev.campaign_evidence(con, "c1")
    board = {(e["kind"], e["entity"]): e["n_accounts"] for e in b["entities"]}
    for acct in a:
        for row in ev.account_partners(con, acct, ["c1"]):
            # All accounts on the entity include the outsider; inside the campaign the board's number.
            assert row["n_in_campaign"] == board[(row["kind"], row["entity"])], (acct, row)
    rows = {r["kind"]: r for r in ev.account_partners(con, "a5", ["c1"])}
    assert rows["ip24"]["n_accounts"] == 11 and rows["ip24"]["n_partners"] == 10  # a5 has one edge, 10 partners


def test_harvest_markers_come_from_the_tables(star):
    st, a = star
    st.write_table("account_risk", pa.Table.from_pylist(
        [{"account_id": x, "risk": 0.9, "flagged": True,
          "first_flagged_at": datetime(2026, 3, 2, 5, tzinfo=UTC) if x == "a3" else None} for x in a],
        schema=pa.schema([("account_id", pa.string()), ("risk", pa.float64()), ("flagged", pa.bool_()),
                          ("first_flagged_at", pa.timestamp("ms", tz="UTC"))])))
    rows = [{"subject_type": "account", "subject_id": "a4", "action": "allow", "reason": "r", "source": "analyst",
             "created_at": datetime(2026, 3, 1, 1, tzinfo=UTC), "expires_at": None, "campaign_id": None, "actor": "x"},
            {"subject_type": "account", "subject_id": "a7", "action": "block", "reason": "r", "source": "scan",
             "created_at": datetime(2026, 3, 3, 1, tzinfo=UTC), "expires_at": None, "campaign_id": None, "actor": None},
            {"subject_type": "account", "subject_id": "zz", "action": "block", "reason": "r", "source": "scan",
             "created_at": T, "expires_at": None, "campaign_id": None, "actor": None}]
    st.append_table("enforcement", enforcement_rows(rows))
    h = ev.harvest(st.connect(), a, "c1", prefer_console=False)
    assert h["first_flag"] == datetime(2026, 3, 2, 5, tzinfo=UTC)
    # An allow is not enforcement, and a block on a non-member does not count.
    assert h["enforced"] == datetime(2026, 3, 3, 1, tzinfo=UTC) and h["enforced_action"] == "block"


def test_no_tables_no_evidence(tmp_path):
    st = Store(tmp_path / "e", create=True)
    con = st.connect()
    assert ev.campaign_evidence(con, "c")["kinds"] == [] and ev.account_partners(con, "a") == []
    assert ev.signal_shares(con, ["a"]) == [] and ev.harvest(con, ["a"])["hourly"] == []
