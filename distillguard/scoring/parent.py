"""A harvesting sub-cluster judged against the community it was found in: how much of each member's coordination
weight points into that community, and the chance the sub-cluster's members would share an entity if drawn from
the rest of it (``scoring.harvest_parent_fit``, ``scoring.harvest_parent_chance``). Moved out of ``risk.py``,
which keeps the scorer itself."""

from __future__ import annotations

import math

import duckdb
import pyarrow as pa

from distillguard.scan.base import exact_sum


def _num(v, default=0.0) -> float:
    return default if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def parent_fit(con: duckdb.DuckDBPyConnection, membership: dict[str, int], parent: dict[str, int]) -> dict[str, float]:
    """Each sub-cluster member's share of its coordination weight that points into the community the
    sub-cluster was cut from. A harvesting sub-cluster is, by construction, a small part of that community:
    its members' links point mostly at the rest of it (the tool's users or the home-ISP neighbours it was
    found among), so their fit measured against the sub-cluster alone is the sub-cluster's share of the
    community (0.18–0.27 measured on quiet hydras), not how loosely the account hangs in the graph. The
    fit rule exists to keep out an account that merely touched the group's items; whether the account
    belongs to the community it was found in is what answers that."""
    con.register("_pmem", pa.table({"account_id": list(membership),
                                    "pcl": [parent.get(a, -1) for a in membership]}))
    con.register("_par", pa.table({"account_id": list(parent), "pcl": list(parent.values())}))
    rows = con.execute(f"""
        WITH ends AS (SELECT src AS a, dst AS b, weight FROM edges UNION ALL SELECT dst, src, weight FROM edges),
        e AS MATERIALIZED (SELECT ends.*, m.pcl FROM ends JOIN _pmem m ON m.account_id = ends.a)
        SELECT e.a, {exact_sum('e.weight')} AS tot, {exact_sum('CASE WHEN p.pcl = e.pcl THEN e.weight ELSE 0 END')} AS inside
        FROM e LEFT JOIN _par p ON p.account_id = e.b GROUP BY 1""").fetchall()
    con.unregister("_pmem")
    con.unregister("_par")
    return {a: _num(inside) / tot for a, tot, inside in rows if tot}


def parent_chance(con: duckdb.DuckDBPyConnection, parent: dict[str, int], membership: dict[str, int]) -> dict[tuple[str, str], float]:
    """For each harvesting sub-cluster member and evidence group: the chance that the sub-cluster's other members,
    drawn at random from the rest of its *parent community*, would share one of the member's entities of that
    group anyway — ``1 − exp(−(k−1) · Σ_e (p_e − m_e)/(P − k))`` with P the community's size, p_e the entity's
    holders in it, k and m_e the same in the sub-cluster (its parent: its members' community; a community's
    harvesters cut into several operations give several sub-clusters of one parent). A course lab's
    busiest students share the campus NAT, the sign-up burst and the lab windows with every classmate: that is the
    community's tie, not theirs (chance ≈ 1). A quiet pool inside a popular tool's community shares its card or
    proxy /24 with no tool user (chance ≈ 0)."""
    of = {c: parent[a] for a, c in membership.items() if a in parent}
    pcls = set(of.values())
    con.register("_par", pa.table({"account_id": [a for a, c in parent.items() if c in pcls],
                                   "pcl": [c for c in parent.values() if c in pcls]}))
    con.register("_sp", pa.table({"cl": list(of), "pcl": list(of.values())}))
    rows = con.execute("""
        WITH pm AS (SELECT i.account_id AS a, i.kind, i.entity, p.pcl FROM inc i JOIN _par p USING (account_id)),
        ph AS (SELECT pcl, kind, entity, count(DISTINCT a) AS pe FROM pm GROUP BY 1, 2, 3),
        psz AS (SELECT pcl, count(*) AS np FROM _par GROUP BY 1),
        sm AS (SELECT i.account_id AS a, i.kind, i.entity, m.cl, sp.pcl
               FROM inc i JOIN _mem m USING (account_id) JOIN _sp sp ON sp.cl = m.cl),
        sh AS (SELECT cl, kind, entity, count(DISTINCT a) AS me FROM sm GROUP BY 1, 2, 3),
        ksz AS (SELECT cl, count(*) AS k FROM _mem GROUP BY 1)
        SELECT sm.a, g.grp, 1 - exp(-(ksz.k - 1) * sum(greatest(ph.pe - sh.me, 0)) / greatest(psz.np - ksz.k, 1))
        FROM sm JOIN sh USING (cl, kind, entity) JOIN ph ON ph.pcl = sm.pcl AND ph.kind = sm.kind AND ph.entity = sm.entity
        JOIN psz ON psz.pcl = sm.pcl JOIN ksz ON ksz.cl = sm.cl JOIN _kg g ON g.kind = sm.kind
        GROUP BY sm.a, g.grp, ksz.k, psz.np""").fetchall()
    con.unregister("_par")
    con.unregister("_sp")
    return {(a, g): float(ch) for a, g, ch in rows}
