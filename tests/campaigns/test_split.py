"""A flagged cluster holding two operations that share nothing private is split before the merge rules
(``campaigns/split.py``, ``campaigns.split_min_accounts``)."""

import pyarrow as pa


def _inc_con(rows):
    import duckdb

    con = duckdb.connect()
    df: dict = {}
    for _, k, e in rows:
        df[(k, e)] = df.get((k, e), 0) + 1
    con.register("_i", pa.table({"account_id": [r[0] for r in rows], "kind": [r[1] for r in rows],
                                 "entity": [r[2] for r in rows], "w": [0.5] * len(rows),
                                 "df": [df[(r[1], r[2])] for r in rows]}))
    con.execute("CREATE TABLE inc AS SELECT * FROM _i")
    return con


def _world():
    """dev standard-117 in small: a workload group ``clw-0000`` flags a reasoning pool's 13 accounts (one card, eight
    /24s) and two standby accounts of a ban rotation (its 23 private templates, which the rotation's two active
    accounts, a record ``cl1-0033`` of their own, also send). Both halves use a stock SDK build that 40 ordinary
    users use too."""
    pool = [f"r{i}" for i in range(13)]
    standby = ["s0", "s1"]
    active = ["a0", "a1"]
    users = [f"u{i}" for i in range(40)]
    rows = [(a, "payment", "card-pool") for a in pool[:11]]
    rows += [(a, "ip24", f"net-{j}") for a in pool for j in range(8)]
    rows += [(a, "template", f"tpl-pool-{j}") for a in pool[:5] for j in range(3)]
    rows += [(a, "template", f"tpl-rot-{j}") for a in standby + active for j in range(23)]
    rows += [(a, "payment", "card-rot") for a in active]
    rows += [(a, "user_agent", "stock-sdk") for a in users + pool[:3] + standby]
    return rows, {"clw-0000": pool + standby, "cl1-0033": active}


def _parts(rows, chosen, min_accounts=2):
    from distillguard.campaigns.attribution import cluster_holders
    from distillguard.campaigns.build import HOLDER_KINDS
    from distillguard.campaigns.split import disjoint_parts

    con = _inc_con(rows)
    return disjoint_parts(con, cluster_holders(con, chosen, HOLDER_KINDS), chosen, min_accounts, 0.8)


def test_a_cluster_of_two_operations_sharing_nothing_private_is_split_and_its_pieces_placed():
    """The workload group's two halves share nothing private (the stock SDK build is held mostly by ordinary users):
    two parts; the standby part then joins the rotation's record by one workload (the merge rules, unchanged), and
    the pool stays a record of its own. Without the split (``split_min_accounts: 0``) the group is one record of two
    operations."""
    from distillguard.campaigns.build import merge_clusters
    from distillguard.campaigns.split import part_of, split_chosen
    from distillguard.scan.config import CampaignConfig

    assert CampaignConfig().split_min_accounts == 2
    rows, chosen = _world()
    parts = _parts(rows, chosen)
    assert list(parts) == ["clw-0000"]
    assert [len(p) for p in parts["clw-0000"]] == [13, 2]
    split = split_chosen(chosen, parts)
    assert sorted(split) == ["cl1-0033", "clw-0000", "clw-0000.1"]
    assert sorted(split["clw-0000.1"]) == ["s0", "s1"] and part_of("clw-0000.1") == "clw-0000"
    rep = merge_clusters(_inc_con(rows), split, CampaignConfig(), operations=True)
    assert rep["clw-0000.1"] == rep["cl1-0033"] != rep["clw-0000"]
    assert _parts(rows, chosen, min_accounts=0) == {}


def test_a_split_needs_every_account_in_a_tied_part():
    """Conservative: two operations sharing a kit's private content are one part (the kit crosses); an account tied to
    no other flagged account of its cluster leaves the cluster whole (it would be a record of one); a part smaller
    than ``split_min_accounts`` leaves it whole."""
    rows, chosen = _world()
    kit = rows + [(a, "system_prompt", "sp-kit") for a in chosen["clw-0000"] + chosen["cl1-0033"]]
    assert _parts(kit, chosen) == {}
    lone = dict(chosen, **{"clw-0000": chosen["clw-0000"] + ["x0"]})
    assert _parts(rows + [("x0", "user_agent", "stock-sdk")], lone) == {}
    assert _parts(rows, chosen, min_accounts=3) == {}
    # a card the two halves share, held by no one else, is private: one part
    card = rows + [(a, "payment", "card-both") for a in ("r0", "s0")]
    assert _parts(card, chosen) == {}
