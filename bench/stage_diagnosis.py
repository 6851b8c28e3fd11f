"""Which stage drops each campaign account of a scanned labelled world, and how well the scores rank them.

    PYTHONPATH=. python bench/stage_diagnosis.py [--by-campaign] [--by-role] WORLD [WORLD ...]

WORLD is a store written by ``distillguard simulate`` (``labels.parquet`` beside it) and scanned by
``distillguard scan`` at default settings (its ``tables/`` hold ``account_risk``, ``clusters``, ``cluster_members``,
``account_features``). Labels are read here only, to score: nothing of this runs in a scan.

Per attack account, the first stage that stops it, looking at every cluster it is a member of (communities at
each resolution and the sub-clusters scored beside them) and taking the highest:

- ``no cluster``: in no scored cluster (cluster formation: it shares nothing with anyone the graph keeps);
- ``coordination 0``: its clusters' evidence groups are all at or below chance;
- ``weak cap (...)``: every cluster it is in is capped at ``scoring.weak_coordination_cap`` — fewer than
  ``min_evidence_groups`` groups shared beyond chance by half the core, or one of the named rules (software
  users, the suspicion-percentile gate, the output-demand cap, public artefacts);
- ``cluster risk < threshold``: strongly coordinated, but coordination^0.4 × suspicion^0.6 stays under
  ``flag_threshold``;
- ``member factor / no campaign``: its cluster clears the threshold but the member rules (fit, strength,
  bystander fall-offs) or "a flag needs a campaign" keep this account under it;
- ``flagged``.

Missed attack accounts are also counted by how much traffic they sent (``missed, exchanges`` rows: 0, 1–4, 5–19,
≥ 20 exchanges in the store): an account with a handful of requests carries almost no evidence of its own, so
on a small store those rows bound what any rule on the account's own traffic can recover. And by whether their
own harvest shape or suspicion is above every benign account's in the store (``missed, above every benign``
rows): such an account is lost neither to thin traffic nor to evidence in the benign range, but to "a lone
account is not flagged on content alone" with no cluster or workload group to carry it.

With ``--by-campaign`` the attack and missed rows are kept apart per labelled campaign (``attack <campaign id>``):
a world's recall can hide that one whole campaign is lost while another is found (dev3 quiet_hydra-706: R 0.083 is
the agentic pool's 3 of 3 and the quiet hydra's 0 of 33). With ``--by-role`` they are also kept apart by the
label's role inside the campaign (``attack <campaign id> proxy``): an operation's own accounts, the ordinary
customers' accounts its relay runs through (``proxy``) and the standby accounts of a ban rotation (``standby``) are
lost for different reasons — dev4 standard-901 is all 19 operator accounts found and 23 of its 24 relay accounts
missed; standard-918's five missed accounts are standby accounts that never sent a request.

False flags are listed by persona. Then, per world, how well each score ranks attack above benign accounts over
the whole store: ROC AUC and the largest recall at which some cut still has precision ≥ 0.99 (the best any
threshold, absolute or relative to the store, could do with that score alone).
"""
import collections
import sys

import duckdb
import numpy as np

from distillguard.scan.config import ScoringConfig


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC from ranks (ties averaged): the chance a random attack account outscores a random benign one."""
    from scipy.stats import rankdata
    r = rankdata(s)
    n1, n0 = int(y.sum()), int((~y).sum())
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / max(n1 * n0, 1))


def _recall_at_precision(y: np.ndarray, s: np.ndarray, p: float = 0.99) -> float:
    o = np.argsort(-s, kind="stable")
    tp = np.cumsum(y[o])
    prec = tp / np.arange(1, len(o) + 1)
    ok = np.where(prec >= p)[0]
    return float(tp[ok].max() / max(y.sum(), 1)) if len(ok) else 0.0


def stages(world: str, scoring: ScoringConfig, by_campaign: bool = False, by_role: bool = False) -> collections.Counter:
    t = lambda name: f"read_parquet('{world}/tables/{name}/*.parquet')"  # noqa: E731
    con = duckdb.connect()
    rows = con.sql(f"""
        WITH l AS (SELECT * FROM read_parquet('{world}/labels.parquet')),
        ac AS (SELECT m.account_id, max(c.risk) AS crisk, max(c.coordination) AS ccoord,
                      max(CASE WHEN array_to_string(c.reasons, ' ') LIKE '%one client and share no hidden%' THEN 1 ELSE 0 END) AS soft,
                      max(CASE WHEN array_to_string(c.reasons, ' ') LIKE '%no more suspicious than%' THEN 1 ELSE 0 END) AS pct,
                      max(CASE WHEN array_to_string(c.reasons, ' ') LIKE '%no longer answers than the store''s typical%' THEN 1 ELSE 0 END) AS outp,
                      max(CASE WHEN array_to_string(c.reasons, ' ') LIKE '%a product''s users, not a harvest%' THEN 1 ELSE 0 END) AS art
               FROM {t('cluster_members')} m JOIN {t('clusters')} c USING (cluster_id) GROUP BY 1)
        SELECT CASE WHEN l.campaign_id IS NOT NULL THEN 'attacker' ELSE l.role END, l.campaign_id, l.role, l.persona, coalesce(r.flagged, false), ac.crisk, ac.ccoord, ac.soft, ac.pct, ac.outp, ac.art,
               coalesce(f.n_exchanges, 0), f.c_harvest_shape, f.suspicion
        FROM l LEFT JOIN {t('account_risk')} r USING (account_id) LEFT JOIN ac USING (account_id)
               LEFT JOIN {t('account_features')} f USING (account_id)""").fetchall()
    out: collections.Counter = collections.Counter()
    cap, thr = scoring.weak_coordination_cap, scoring.flag_threshold
    top = {c: max((r[12 + i] for r in rows if r[0] != "attacker" and r[12 + i] is not None), default=None)
           for i, c in enumerate(("harvest shape", "suspicion"))}
    for role, camp, camp_role, persona, flagged, crisk, ccoord, soft, pct, outp, art, n_ex, hs, sus in rows:
        if role != "attacker":
            if flagged:
                out[(f"false: {persona}", "flagged")] += 1
            continue
        if flagged:
            st = "flagged"
        elif crisk is None:
            st = "no cluster"
        elif ccoord == 0:
            st = "coordination 0"
        elif ccoord <= cap + 1e-9:
            why = [n for n, v in (("software users", soft), ("percentile gate", pct), ("no output", outp),
                                          ("public artefacts", art)) if v]
            st = "weak cap" + (f" ({', '.join(why)})" if why else " (evidence groups)")
        elif crisk < thr:
            st = "cluster risk < threshold"
        else:
            st = "member factor / no campaign"
        tag = (f" {camp}" if by_campaign else "") + (f" {camp_role}" if by_role else "")
        out[("attack" + tag, st)] += 1
        if not flagged:
            out[("missed, exchanges" + tag, traffic_bucket(int(n_ex)))] += 1
            for c, v in (("harvest shape", hs), ("suspicion", sus)):
                if v is not None and top[c] is not None and v > top[c]:
                    out[("missed, above every benign" + tag, c)] += 1
    return out


def traffic_bucket(n: int) -> str:
    """The exchange-count bucket a missed account is counted in: 0, 1–4, 5–19 or ≥ 20."""
    return "0" if n <= 0 else "1-4" if n < 5 else "5-19" if n < 20 else ">=20"


def ranking(world: str) -> dict:
    con = duckdb.connect()
    d = con.sql(f"""SELECT l.campaign_id IS NOT NULL AS y, r.risk, f.suspicion, f.c_harvest_shape
        FROM read_parquet('{world}/labels.parquet') l
        JOIN read_parquet('{world}/tables/account_risk/*.parquet') r USING (account_id)
        JOIN read_parquet('{world}/tables/account_features/*.parquet') f USING (account_id)""").fetchnumpy()
    y = np.asarray(d["y"], dtype=bool)
    return {c: (_auc(y, np.nan_to_num(np.asarray(d[c], float))), _recall_at_precision(y, np.nan_to_num(np.asarray(d[c], float))))
            for c in ("risk", "suspicion", "c_harvest_shape")}


def main(worlds: list[str], by_campaign: bool = False, by_role: bool = False) -> None:
    total: collections.Counter = collections.Counter()
    for w in worlds:
        s = stages(w, ScoringConfig(), by_campaign, by_role)
        total.update(s)
        rk = ranking(w)
        print(w, "  ".join(f"{k}: AUC {a:.2f} R@P≥0.99 {r:.2f}" for k, (a, r) in rk.items()))
    for k, v in sorted(total.items()):
        print(f"{k[0]:>40} | {k[1]:<45} {v}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or "-h" in args or "--help" in args:
        print(__doc__)
        sys.exit(0)
    main([a for a in args if not a.startswith("--")], "--by-campaign" in args, "--by-role" in args)
