"""One record per operation: flagged records that share hidden infrastructure beyond chance are merged.

A quiet operation (residential IPs in its accounts' own countries, human timing, a card reused now and
then, a few sign-up bursts) is found as several harvesting sub-clusters, one per community its accounts
landed in. No entity is owned by two such pieces together (what ``build.merge_clusters`` asks for), but
they hold far more of the *same* entities than two unrelated groups would: a sign-up burst here, a reused
card there, a custom client string, a proxy /24. This module asks exactly that, per evidence group and
calibrated to the store at hand:

* Null model: the *background* is every active account outside all flagged records. For records A and B
  and group g, B is replaced by a random background group that holds as many distinct entities of g as B
  does: entity e (d_e background holders, + 1 so that nothing is rarer than one holder) is in it with
  probability 1 − (1 − f_B)^d_e, f_B solved so that the expected count of distinct entities matches
  B's. Popular entities are the likeliest to be held by chance, and a record whose accounts hold many /24s
  (a community is cut out of the graph *because* its accounts hold many entities) is compared with random
  groups holding as many. Counting holders in the background only matters: an operation split into
  sixteen records sends its templates and uses its bursts in all of them, so the whole store's count
  would call its own entities common.
* O_g = the entities of g both records hold, and p_g = P(X ≥ O_g) for X the number of A's entities the null
  group holds (exact sum of Bernoullis); the same the other way round, and the weaker of the two is the
  pair's p_g. A popular tool's system prompt, a campus NAT or a free-mail naming shape has many background
  holders and adds nothing; an operation's own sign-up burst or card has none.
* Timing (``sync`` entities) is not tested: a sync entity is an account's busy buckets *on a template*, so
  two records synchronised on one template both send it — the shared content again, only at a lower bar (an
  account is synchronised on a template it sends too rarely to hold it as a ``template`` entity). Two
  operations running one attack kit's templates round the clock are busy in the same buckets on them by
  construction, and the background (which never sends a private kit template) cannot price that: it passed
  for beyond chance and joined two operations on the kit alone. A schedule is how the tooling is run, not
  infrastructure an operator owns; shared busy buckets still join pieces in ``build.merge_clusters``,
  where they must be the pair's own and beside a second evidence group.
* Two records are one operation when Fisher's combination of their groups' p-values is at most
  ``operation_alpha`` divided by the number of record pairs tested (Bonferroni: the family-wise chance that
  any two unrelated records merge) *and* at least ``operation_min_groups`` groups each reach
  ``operation_group_p`` with one of them hidden infrastructure an operator controls (payment, creation,
  network, client, e-mail naming, intel): shared content alone never merges — two unrelated operations may
  send the same public attack kit — and no single coincidence carries a merge. Pieces of one operation that
  share nothing hidden are joined by ``build.merge_clusters`` when they send one workload (each (nearly) all
  of the other's own private templates), not here: two operations with one kit each send templates of their
  own beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb
import numpy as np

from distillguard.graph.edges import KIND_GROUP
from distillguard.scan.base import temp_strings
from distillguard.scan.config import CampaignConfig

#: Kinds whose sharing across records can show one operation. Not ASNs and e-mail domains (held by so many
#: that they never pass the test, and cost the most to count); task items weigh nothing in the graph; not
#: sync entities (a schedule on a template both records send: the content again, module docstring).
OPERATION_KINDS = ("ip24", "ja4", "header_fp", "user_agent", "payment", "email_pattern", "creation_burst",
                   "template", "system_prompt", "intel")
#: Groups that are infrastructure an operator controls (everything but content).
OPERATION_HIDDEN = ("payment", "creation", "network", "client", "email", "intel")


@dataclass
class OperationLink:
    a: str
    b: str
    groups: dict[str, float]   # evidence group -> p-value of the sharing seen (both directions' weaker)

    def words(self) -> str:
        gs = sorted(self.groups.items(), key=lambda kv: kv[1])
        return ", ".join(f"{g} (chance {p:.0e})" for g, p in gs)


#: Above this many shared entities the tail is summed with numpy arrays (one vector step per probability);
#: at or below it with Python floats: the same products and sums in the same order (the same bits), without
#: numpy's per-call cost on arrays of a few numbers — almost every call has o of 1 to 3 and hundreds of
#: probabilities (the replay's ticks spent ~2 CPU-s a tick here, docs/benchmarks.md).
_TAIL_SCALAR_MAX = 32


def shared_tail(o: int, probs) -> float:
    """P(X ≥ o), X a sum of independent Bernoullis with these probabilities (exact, truncated at o: a
    Poisson approximation would call two shared entities unremarkable where one is a near-certain one)."""
    if o <= 0:
        return 1.0
    if o > _TAIL_SCALAR_MAX:
        return _shared_tail_arrays(o, probs)
    dist = [0.0] * o
    dist[0] = 1.0
    top = range(o - 1, 0, -1)
    for p in (probs.tolist() if isinstance(probs, np.ndarray) else probs):
        if p <= 0:
            continue
        q = 1 - p
        # each entry from the old ones below it (j - 1) before they change: the arrays' nxt = dist * q;
        # nxt[1:] += dist[:-1] * p, term by term
        for j in top:
            dist[j] = dist[j] * q + dist[j - 1] * p
        dist[0] = dist[0] * q
    return float(min(1.0, max(0.0, 1.0 - np.array(dist).sum())))


def _shared_tail_arrays(o: int, probs) -> float:
    """``shared_tail`` with one numpy step per probability (cheaper than Python floats for large o)."""
    dist = np.zeros(o)
    dist[0] = 1.0
    for p in probs:
        if p <= 0:
            continue
        nxt = dist * (1 - p)
        nxt[1:] += dist[:-1] * p
        dist = nxt
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
    """The share f of the background a random group must cover to hold ``n_units`` distinct entities of a
    group in expectation (Σ_d count(d) · (1 − (1 − f)^d) = n_units, d = background holders + 1; bisection):
    the null group holds as many distinct entities as the real record, however its accounts concentrate."""
    total = sum(hist.values())
    if n_units >= total:
        return 1.0
    ds = np.array(list(hist), dtype=float)
    cs = np.array(list(hist.values()), dtype=float)
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if float((cs * (1 - (1 - mid) ** ds)).sum()) < n_units:
            lo = mid
        else:
            hi = mid
    return hi


def _unit(kind: str, entity: str) -> str:
    return kind + ":" + entity


def operation_links(con: duckdb.DuckDBPyConnection, groups: dict[str, list[str]],
                    cfg: CampaignConfig) -> list[OperationLink]:
    """Record pairs whose shared infrastructure is beyond chance (module docstring). ``groups``: every
    flagged record of the scan (record → accounts); the background is every other active account."""
    if len(groups) < 2 or cfg.operation_alpha <= 0:
        return []
    kl = ", ".join(f"'{k}'" for k in OPERATION_KINDS)
    temp_strings(con, "_om", {"account_id": [a for ms in groups.values() for a in ms],
                              "cl": [c for c, ms in groups.items() for _ in ms]})
    # every unit of the store with its holders outside all flagged records (the background)
    bg = con.execute(f"""
        SELECT i.kind, i.entity AS u, count(DISTINCT i.account_id) FILTER (WHERE om.cl IS NULL) AS d
        FROM inc i LEFT JOIN _om om USING (account_id) WHERE i.kind IN ({kl}) GROUP BY 1, 2""").fetchall()
    held = con.execute(f"""
        SELECT DISTINCT om.cl, i.kind, i.entity
        FROM inc i JOIN _om om USING (account_id) WHERE i.kind IN ({kl})""").fetchall()
    con.execute("DROP TABLE _om")
    hist: dict[str, dict[int, int]] = {}
    d_of: dict[str, int] = {}
    for k, u, d in bg:
        g = KIND_GROUP.get(k, k)
        d_of[_unit(k, u)] = int(d) + 1   # + 1: no entity is rarer in the background than one holder
        h = hist.setdefault(g, {})
        h[int(d) + 1] = h.get(int(d) + 1, 0) + 1
    units: dict[str, dict[str, set[str]]] = {}    # record -> group -> units held
    for c, k, e in held:
        units.setdefault(c, {}).setdefault(KIND_GROUP.get(k, k), set()).add(_unit(k, e))
    reach: dict[tuple[str, str], float] = {}

    def f_of(r: str, g: str) -> float:
        if (r, g) not in reach:
            reach[(r, g)] = _reach(hist.get(g, {}), len(units[r][g]))
        return reach[(r, g)]

    holders_of: dict[tuple[str, str], np.ndarray] = {}   # (record, group) -> its units' background holders

    def direction(src: str, dst: str, g: str, o: int) -> float:
        # dst a random background group holding as many distinct units of g as it does: how likely it
        # would hold o or more of src's units
        d = holders_of.get((src, g))
        if d is None:   # a record meets every other record: its holders are counted once, in the set's order
            d = holders_of[(src, g)] = np.array([d_of[u] for u in units[src][g]], dtype=float)
        return shared_tail(o, 1 - (1 - f_of(dst, g)) ** d)

    recs = sorted(units)
    n_pairs = len(groups) * (len(groups) - 1) // 2
    alpha = cfg.operation_alpha / max(n_pairs, 1)
    hidden, gp = set(OPERATION_HIDDEN), cfg.operation_group_p
    out: list[OperationLink] = []
    for i, ra in enumerate(recs):
        for rb in recs[i + 1:]:
            both = [(g, o) for g in units[ra].keys() & units[rb].keys() if (o := len(units[ra][g] & units[rb][g]))]
            # A pair that cannot pass is not priced in full: it needs operation_min_groups groups whose p (the
            # weaker direction) reaches gp, one of them hidden, so fewer shared groups, no hidden one, or too
            # few groups whose first direction alone reaches gp rule it out. A pair that passes gets every
            # p-value as before (the same calls, in the same order): the links are the same. Most record pairs
            # of a tick stop here (the campaigns step's largest cost on the replay, docs/benchmarks.md).
            if len(both) < cfg.operation_min_groups or not any(g in hidden for g, _ in both):
                continue
            first = {g: direction(ra, rb, g, o) for g, o in both}
            cand = {g for g, p in first.items() if p <= gp}
            if len(cand) < cfg.operation_min_groups or not cand & hidden:
                continue
            ps: dict[str, float] = {g: max(first[g], direction(rb, ra, g, o)) for g, o in both}
            strong = {g for g, p in ps.items() if p <= cfg.operation_group_p}
            if (len(strong) >= cfg.operation_min_groups and strong & set(OPERATION_HIDDEN)
                    and fisher(list(ps.values())) <= alpha):
                out.append(OperationLink(ra, rb, {g: ps[g] for g in strong}))
    return out
