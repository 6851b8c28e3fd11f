"""Communities joined into operations: pieces of one operation that community detection cut apart.

Community detection cuts a big operation into pieces: a 20,000-account hydra is a loose web of sign-up
bursts, reused cards and shared templates, and modularity prefers many pieces of it to one. Each piece is
then judged against the rest of the store, and the rest of the store holds the other pieces: the
operation's own templates, schedules and sign-up bursts are held by thousands of accounts outside the
piece, so the chance model (``scoring.risk``) calls them what any random group of that size would share,
and the piece is weakly coordinated. The bigger the operation (the more pieces), the more of it is lost:
a scan's quality would depend on the absolute size of what it looks for.

So the level-0 communities are also joined into operations, and each operation of two or more communities
is scored as one more cluster level (``clop-NNNN``; every account takes the level where its risk is
highest, as for the resolution levels). Two communities are joined when they hold more of the same
*hidden* account-level entities (``graph.join_kinds``: by default payment fingerprints, sign-up bursts and
partner indicators — what strangers do not share, and what community detection does not keep together
when an operation reuses each card or burst across only a few of its accounts) than two random groups of
their sizes would:

* for communities A and B, each entity e that A holds has d_e holders outside A; a random group of |B|
  accounts from the N − |A| outside A holds one of them with probability 1 − (1 − |B|/(N − |A|))^d_e, so
  the number of A's entities a random group holds is a sum of Bernoullis, and p_{A→B} = P(X ≥ o) for o the
  entities A and B both hold (exact tail, ``campaigns.operations.shared_tail``); the weaker of the two
  directions is the pair's p;
* a pair is joined when p ≤ ``graph.join_alpha`` divided by the number of community pairs (Bonferroni: the
  family-wise chance that two unrelated communities are joined), and operations are the connected
  components of the joined pairs.

Calibrated to the store at hand: counts of holders, sizes of groups, the number of communities. A
university's students in two communities share its sign-up bursts too and are joined — the joined
cluster is judged like any other (its accounts' own traffic, the evidence groups beyond chance), it is not
a verdict.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from distillguard.campaigns.operations import shared_tail
from distillguard.graph.communities import UnionFind
from distillguard.scan.config import GraphConfig


def operation_groups(con: duckdb.DuckDBPyConnection, membership: dict[str, int], n_accounts: int,
                     cfg: GraphConfig) -> dict[str, int]:
    """account → operation index for the accounts of communities joined with at least one other community
    (module docstring); ``membership``: account → community (level 0); ``n_accounts``: accounts active in the
    window. Empty when nothing is joined or ``join_alpha`` is 0."""
    comms = set(membership.values())
    if cfg.join_alpha <= 0 or len(comms) < 2 or not cfg.join_kinds:
        return {}
    con.register("_jm", pa.table({"account_id": list(membership), "cl": list(membership.values())}))
    kl = ", ".join(f"'{k}'" for k in cfg.join_kinds)
    rows = con.execute(f"""
        SELECT m.cl, i.kind || ':' || i.entity AS u, any_value(i.df) AS df, count(*) AS mc
        FROM inc i JOIN _jm m USING (account_id) WHERE i.kind IN ({kl}) GROUP BY 1, 2""").fetchall()
    size: dict[int, int] = {}
    for c in membership.values():
        size[c] = size.get(c, 0) + 1
    outside: dict[int, dict[str, int]] = {}   # community -> unit -> holders outside it
    inside: dict[tuple[int, str], int] = {}   # (community, unit) -> holders inside it
    df_of: dict[str, int] = {}
    holders: dict[str, list[int]] = {}        # unit -> communities holding it
    for c, u, df, mc in rows:
        outside.setdefault(c, {})[u] = int(df) - int(mc)
        inside[(c, u)] = int(mc)
        df_of[u] = int(df)
        holders.setdefault(u, []).append(c)
    shared: dict[tuple[int, int], int] = {}
    for cs in holders.values():
        if len(cs) < 2:
            continue
        cs = sorted(cs)
        for i, a in enumerate(cs):
            for b in cs[i + 1:]:
                shared[(a, b)] = shared.get((a, b), 0) + 1
    k = len(comms)
    alpha = cfg.join_alpha / max(k * (k - 1) / 2, 1)
    n = max(int(n_accounts), 2)

    outside_d: dict[int, np.ndarray] = {}   # community -> its units' holders outside it, read once

    def p_dir(a: int, b: int, o: int) -> float:
        d = outside_d.get(a)
        if d is None:
            d = outside_d[a] = np.fromiter(outside[a].values(), dtype=float)
        f = min(1.0, size[b] / max(n - size[a], 1))
        return shared_tail(o, 1 - (1 - f) ** d)

    tie = TieShares(con, holders, inside, df_of) if cfg.join_min_share > 0 else None
    con.unregister("_jm")
    uf = UnionFind(comms)
    for (a, b), o in shared.items():
        # the weaker direction decides: when the first is above alpha the second is not priced
        if uf.find(a) == uf.find(b) or p_dir(a, b, o) > alpha or p_dir(b, a, o) > alpha:
            continue
        # an effect size besides the test: the smaller community's accounts tied into the other, as a share of it
        small, big = (a, b) if (size[a], a) < (size[b], b) else (b, a)
        if tie is None or tie.share(small, big) / size[small] >= cfg.join_min_share:
            uf.union(a, b)
    joined = sorted((g for g in uf.groups().values() if len(g) >= 2), key=lambda g: (-sum(size[c] for c in g), min(g)))
    op_of = {c: i for i, g in enumerate(joined) for c in g}
    return {a: op_of[c] for a, c in membership.items() if c in op_of}


class TieShares:
    """How much of community A is tied into community B: Σ over A's accounts of the largest share of the other
    holders of one of the account's entities that sit in B (max over its entities e held by B of h_B(e) /
    (d_e − 1)). An effect size, not a test: it does not grow with the communities' sizes, so the same world at
    scale 0.1 and 1.0 gives the same shares up to sampling. Pieces of one operation hold each other's cards and
    sign-up bursts (about a third of an account's co-holders sit in the other piece); two campaigns whose
    cards or bursts overlap now and then, or an operation's burst a few ordinary users signed up in, tie a
    handful of co-holders out of hundreds (≈ 0). Reads the holders (``_jm``) of the entities held by two or
    more communities, once."""

    def __init__(self, con: duckdb.DuckDBPyConnection, holders: dict[str, list[int]],
                 inside: dict[tuple[int, str], int], df_of: dict[str, int]):
        self.inside, self.df_of = inside, df_of
        multi = sorted(u for u, cs in holders.items() if len(cs) >= 2)
        self.units: dict[int, dict[str, list[str]]] = {}   # community -> shared unit -> its holders there
        if not multi:
            return
        con.register("_ju", pa.table({"u": multi}))
        for c, u, acc in con.execute("""
                SELECT m.cl, i.kind || ':' || i.entity AS u, m.account_id FROM inc i JOIN _jm m USING (account_id)
                WHERE i.kind || ':' || i.entity IN (SELECT u FROM _ju)""").fetchall():
            self.units.setdefault(c, {}).setdefault(u, []).append(acc)
        con.unregister("_ju")

    def share(self, x: int, y: int) -> float:
        best: dict[str, float] = {}
        for u, accs in self.units.get(x, {}).items():
            h = self.inside.get((y, u), 0)
            if h == 0:
                continue
            t = h / max(self.df_of[u] - 1, 1)
            for acc in accs:
                if t > best.get(acc, 0.0):
                    best[acc] = t
        return sum(best.values())


def joining_holders(con: duckdb.DuckDBPyConnection, ops: dict[str, int], membership: dict[str, int],
                    cfg: GraphConfig) -> set[str]:
    """The accounts of the operations (``ops``: account → operation) holding a *joining* entity: one of
    ``join_kinds`` held by accounts of two or more level-0 communities (``membership``) of the same operation —
    what the operation was joined on. A student holding the sign-up burst of her own university's intake, or a
    card only her own community holds, is not tied to the operation by it."""
    if not ops or not cfg.join_kinds:
        return set()
    con.register("_jh", pa.table({"account_id": list(ops), "op": list(ops.values()),
                                  "cl": [membership[a] for a in ops]}))
    kl = ", ".join(f"'{k}'" for k in cfg.join_kinds)
    rows = con.execute(f"""
        WITH h AS (SELECT j.account_id, j.op, j.cl, i.kind, i.entity FROM inc i JOIN _jh j USING (account_id)
                   WHERE i.kind IN ({kl})),
        jn AS (SELECT op, kind, entity FROM h GROUP BY 1, 2, 3 HAVING count(DISTINCT cl) >= 2)
        SELECT DISTINCT h.account_id FROM h JOIN jn USING (op, kind, entity)""").fetchall()
    con.unregister("_jh")
    return {a for (a,) in rows}
