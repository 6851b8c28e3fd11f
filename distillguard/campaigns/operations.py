"""One record per operation: flagged records that share hidden infrastructure beyond chance are merged.

A quiet operation (residential IPs in its accounts' own countries, human timing, a card reused now and
then, a few sign-up bursts) is found as several harvesting sub-clusters, one per community its accounts
landed in. No entity is owned by two such pieces together (what ``build.merge_clusters`` asks for), but
they hold far more of the *same* entities than two unrelated groups would: a sign-up burst here, a reused
card there, a custom client string, a proxy /24. This module asks exactly that, per evidence group and
calibrated to the store at hand:

* Null model: a record is a random draw from the store that holds as many distinct entities of the group
  as the real record does. Entity e (``df`` holders) is in it with probability 1 − (1 − f_X)^df, f_X solved
  so that the expected count of distinct entities equals the record's (``_reach``): popular entities are
  the likeliest to be held, and a record whose accounts hold many /24s (a community is cut out of the
  graph *because* its accounts hold many entities) is compared with random records holding as many.
* For records A and B, O_g = the entities of group g both hold (synchronised-schedule entities counted
  once per template: its MinHash bands are one fact), and p_g = the chance that two null records would
  both hold at least O_g entities of g (exact: a sum of one Bernoulli per entity of g in the store, with
  P(A holds it) × P(B holds it)). A popular tool's system prompt, a campus
  NAT or a free-mail naming shape is held by both almost surely under the null and adds nothing; an
  operation's own sign-up burst (three holders in a store of thousands) almost never is.
* Two records are one operation when Fisher's combination of their groups' p-values is at most
  ``operation_alpha`` divided by the number of record pairs tested (Bonferroni: the family-wise chance that
  any two unrelated records merge) *and* at least ``operation_min_groups`` groups each reach
  ``operation_group_p`` with one of them hidden infrastructure an operator controls (payment, creation,
  network, client, e-mail naming, timing, intel): shared content alone never merges — two unrelated
  operations may send the same public attack template — and no single coincidence carries a merge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb
import numpy as np
from scipy.stats import binom

from distillguard.graph.edges import KIND_GROUP
from distillguard.scan.config import CampaignConfig

#: Kinds whose sharing across records can show one operation. Not ASNs and e-mail domains (held by so many
#: that they never pass the test, and cost the most to count); task items weigh nothing in the graph.
OPERATION_KINDS = ("ip24", "ja4", "header_fp", "user_agent", "payment", "email_pattern", "creation_burst",
                   "template", "system_prompt", "sync", "intel")
#: Groups that are infrastructure an operator controls (everything but content).
OPERATION_HIDDEN = ("payment", "creation", "network", "client", "email", "timing", "intel")


@dataclass
class OperationLink:
    a: str
    b: str
    groups: dict[str, float]   # evidence group -> p-value of the sharing seen (both directions' weaker)

    def words(self) -> str:
        gs = sorted(self.groups.items(), key=lambda kv: kv[1])
        return ", ".join(f"{g} (chance {p:.0e})" for g, p in gs)


def shared_tail(o: int, hist: dict[int, int], fa: float, fb: float) -> float:
    """P(X ≥ o), X the number of entities two null records both hold: a sum of independent Bernoullis, one
    per entity of the store, with P = (1 − (1 − fa)^df)(1 − (1 − fb)^df) — entities of one df are a
    Binomial, so the exact distribution is their convolution, truncated at o (a Poisson approximation
    would call two shared entities unremarkable where one of them is a near-certain popular one)."""
    if o <= 0:
        return 1.0
    dist = np.zeros(o)
    dist[0] = 1.0
    for df, cnt in hist.items():
        p = (1 - (1 - fa) ** df) * (1 - (1 - fb) ** df)
        if p <= 0:
            continue
        pmf = binom.pmf(np.arange(o), cnt, min(p, 1.0))
        dist = np.convolve(dist, pmf)[:o]
    return float(min(1.0, max(0.0, 1.0 - dist.sum())))


def fisher(ps: list[float]) -> float:
    """Fisher's combination of independent p-values: P(χ²_2k ≥ −2 Σ ln p)."""
    if not ps:
        return 1.0
    x = -sum(math.log(max(p, 1e-300)) for p in ps)   # chi2/2
    term, acc = 1.0, 1.0
    for i in range(1, len(ps)):
        term *= x / i
        acc += term
    return min(1.0, math.exp(-x) * acc)


def _reach(hist: dict[int, int], n_units: int) -> float:
    """The share f of the store a random record must cover to hold ``n_units`` distinct entities of a group
    in expectation (Σ_df count(df) · (1 − (1 − f)^df) = n_units; bisection): the null record holds as many
    distinct entities as the real one, however its accounts concentrate on them."""
    total = sum(hist.values())
    if n_units >= total:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if sum(c * (1 - (1 - mid) ** d) for d, c in hist.items()) < n_units:
            lo = mid
        else:
            hi = mid
    return hi


def _unit(kind: str, entity: str) -> str:
    """The fact an entity stands for: a sync entity's MinHash bands are one schedule on one template."""
    return kind + ":" + (entity.split("~", 1)[0] if kind == "sync" else entity)


def operation_links(con: duckdb.DuckDBPyConnection, groups: dict[str, list[str]], n_accounts: int,
                    cfg: CampaignConfig) -> list[OperationLink]:
    """Record pairs whose shared infrastructure is beyond chance (module docstring); ``n_accounts`` is the
    number of accounts active in the scanned window (the population chance draws from)."""
    if len(groups) < 2 or cfg.operation_alpha <= 0:
        return []
    kl = ", ".join(f"'{k}'" for k in OPERATION_KINDS)
    # the store: per group, the df of every unit and each group's total incidence (accounts × units)
    store = con.execute(f"""
        SELECT kind, CASE WHEN kind = 'sync' THEN split_part(entity, '~', 1) ELSE entity END AS u,
               max(df) AS df FROM inc WHERE kind IN ({kl}) GROUP BY 1, 2""").fetchall()
    hist: dict[str, dict[int, int]] = {}
    for k, _u, df in store:
        h = hist.setdefault(KIND_GROUP.get(k, k), {})
        h[int(df)] = h.get(int(df), 0) + 1
    rows = [(a, c) for c, ms in groups.items() for a in ms]
    con.execute("CREATE OR REPLACE TEMP TABLE _om(account_id VARCHAR, cl VARCHAR)")
    con.executemany("INSERT INTO _om VALUES (?, ?)", rows)
    held = con.execute(f"""
        SELECT DISTINCT om.cl, om.account_id, i.kind,
               CASE WHEN i.kind = 'sync' THEN split_part(i.entity, '~', 1) ELSE i.entity END
        FROM inc i JOIN _om om USING (account_id) WHERE i.kind IN ({kl})""").fetchall()
    con.execute("DROP TABLE _om")
    units: dict[str, dict[str, set[str]]] = {}    # record -> group -> units held
    for c, _a, k, e in held:
        units.setdefault(c, {}).setdefault(KIND_GROUP.get(k, k), set()).add(_unit(k, e))
    reach: dict[tuple[str, str], float] = {}
    recs = sorted(units)
    n_pairs = len(groups) * (len(groups) - 1) // 2
    alpha = cfg.operation_alpha / max(n_pairs, 1)
    out: list[OperationLink] = []
    for i, ra in enumerate(recs):
        for rb in recs[i + 1:]:
            ps: dict[str, float] = {}
            for g in units[ra].keys() & units[rb].keys():
                o = len(units[ra][g] & units[rb][g])
                if not o:
                    continue
                h = hist.get(g, {})
                fa = reach.get((ra, g)) or reach.setdefault((ra, g), _reach(h, len(units[ra][g])))
                fb = reach.get((rb, g)) or reach.setdefault((rb, g), _reach(h, len(units[rb][g])))
                ps[g] = shared_tail(o, h, fa, fb)
            strong = {g for g, p in ps.items() if p <= cfg.operation_group_p}
            if (len(strong) >= cfg.operation_min_groups and strong & set(OPERATION_HIDDEN)
                    and fisher(list(ps.values())) <= alpha):
                out.append(OperationLink(ra, rb, {g: ps[g] for g in strong}))
    return out
