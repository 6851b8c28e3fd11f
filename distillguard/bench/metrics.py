"""Score a detector's results against a world's labels.

Every account in the labels is judged; accounts the detector did not list count as risk 0, not
flagged. An account is a positive when its label carries a campaign_id (attacker, proxy or standby
role). Time-to-detection is measured in exchanges, not hours: the share of a campaign's traffic the
provider had already served when the detector first (and 90%) caught it — what was lost.
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.errors import DistillguardError
from distillguard.store import Store
from distillguard.ui import REPLAY_NOTE

CAMPAIGN_FOUND_SHARE = 0.9


def read_labels(world: str | Path) -> pa.Table:
    from distillguard.sim.world import LABELS_FILE

    f = Path(world) / LABELS_FILE
    if not f.exists():
        raise DistillguardError(f"no {LABELS_FILE}: --world must be a directory written by `distillguard simulate`",
                                source=str(world))
    return pq.read_table(f)


def average_precision(y: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the precision-recall curve as average precision (ties broken as one threshold)."""
    pos = int(y.sum())
    if pos == 0 or len(y) == 0:
        return None
    order = np.argsort(-score, kind="stable")
    s, yy = score[order], y[order]
    tp = np.cumsum(yy)
    fp = np.cumsum(1 - yy)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct score
    tp, fp = tp[last], fp[last]
    precision = tp / (tp + fp)
    recall = tp / pos
    prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - prev) * precision))


def _ratio(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


def score(world: str | Path, results: pa.Table) -> dict:
    """The metrics dict (keys as in docs/simulator.md) for one results table."""
    labels = read_labels(world)
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone='UTC'")
    con.register("labels", labels)
    con.register("results", results)
    j = con.sql("""SELECT l.account_id, l.campaign_id, l.persona, l.role,
                          coalesce(r.risk, 0.0) AS risk, coalesce(r.flagged, false) AS flagged,
                          r.first_flagged_at, r.campaign_id AS det_campaign
                   FROM labels l LEFT JOIN results r USING (account_id)""").to_arrow_table()
    con.register("j", j)
    y = np.asarray(j["campaign_id"].is_valid(), dtype=np.int64)
    flagged = np.asarray(j["flagged"].to_numpy(zero_copy_only=False), dtype=bool)
    risk = np.asarray(j["risk"].to_numpy(zero_copy_only=False), dtype=float)
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    fn = int((~flagged & (y == 1)).sum())
    neg = int((y == 0).sum())
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = (2 * precision * recall / (precision + recall)) if precision and recall else (0.0 if recall is not None else None)
    fpr_persona = {p: float(r) for p, r in con.sql(
        "SELECT persona, avg(flagged::INT) FROM j WHERE campaign_id IS NULL GROUP BY 1 ORDER BY 1").fetchall()}
    recall_role = {p: float(r) for p, r in con.sql(
        "SELECT role, avg(flagged::INT) FROM j WHERE campaign_id IS NOT NULL GROUP BY 1 ORDER BY 1").fetchall()}
    camp = con.sql("""SELECT campaign_id, count(*) AS n, sum(flagged::INT) AS k FROM j
                      WHERE campaign_id IS NOT NULL GROUP BY 1 ORDER BY 1""").fetchall()
    per_campaign = {c: {"accounts": int(n), "flagged": int(k), "recall": k / n,
                        "found": k >= math.ceil(CAMPAIGN_FOUND_SHARE * n - 1e-9)} for c, n, k in camp}
    campaign_recall = _ratio(sum(1 for v in per_campaign.values() if v["found"]), len(per_campaign))
    # Purity: each record's largest TRUE campaign over its size. Ordinary customers are never a record's
    # majority label, so a record made only of them has purity 0, not 1.
    purity_rows = con.sql("""WITH m AS (SELECT det_campaign, campaign_id AS truth, count(*) AS n
                                        FROM j WHERE det_campaign IS NOT NULL GROUP BY ALL)
                             SELECT sum(mx), sum(tot) FROM (SELECT det_campaign, coalesce(max(n) FILTER (WHERE truth
                                                                   IS NOT NULL), 0) AS mx, sum(n) AS tot
                                                            FROM m GROUP BY 1)""").fetchall()[0]
    campaign_purity = _ratio(purity_rows[0], purity_rows[1]) if purity_rows[1] else None
    ebf = _exchanges_before_flag(con, world, per_campaign)
    return {
        "account_precision": precision, "account_recall": recall, "account_f1": f1,
        "campaign_recall": campaign_recall, "campaign_purity": campaign_purity,
        "records": record_metrics(con, list(per_campaign)),
        "benign_account_fpr": _ratio(fp, neg), "fpr_by_persona": fpr_persona,
        "exchanges_before_flag": ebf, "auc_pr": average_precision(y, risk),
        "recall_by_role": recall_role, "campaigns": per_campaign,
        "counts": {"accounts": len(y), "attack_accounts": int(y.sum()), "benign_accounts": neg,
                   "flagged": int(flagged.sum()), "true_positives": tp, "false_positives": fp},
    }


def record_metrics(con: duckdb.DuckDBPyConnection, true_campaigns: list[str]) -> dict:
    """How detector campaign records map onto true campaigns (one record per operation is the goal).

    A record counts toward a true campaign when it holds at least one of its accounts. ``false_records``
    hold no attack account at all; on a world without attackers every record is false.
    """
    rows = con.sql("""SELECT det_campaign, count(*) AS n, count(campaign_id) AS attack,
                             list(DISTINCT campaign_id) FILTER (WHERE campaign_id IS NOT NULL) AS truths
                      FROM j WHERE det_campaign IS NOT NULL GROUP BY 1 ORDER BY 1""").fetchall()
    per_record = {r: {"accounts": int(n), "attack_accounts": int(a), "true_campaigns": sorted(t or [])}
                  for r, n, a, t in rows}
    per_campaign = {c: sorted(r for r, v in per_record.items() if c in v["true_campaigns"]) for c in true_campaigns}
    found = [len(v) for v in per_campaign.values() if v]
    true_recs = [len(v["true_campaigns"]) for v in per_record.values() if v["true_campaigns"]]
    return {
        "count": len(per_record),
        "false_records": sum(1 for v in per_record.values() if not v["true_campaigns"]),
        "records_per_campaign": _ratio(sum(found), len(found)) if found else None,
        "max_records_per_campaign": max(found) if found else None,
        "campaigns_per_record": _ratio(sum(true_recs), len(true_recs)) if true_recs else None,
        "max_campaigns_per_record": max(true_recs) if true_recs else None,
        "by_campaign": per_campaign, "by_record": per_record,
    }


def _exchanges_before_flag(con: duckdb.DuckDBPyConnection, world: str | Path, per_campaign: dict) -> dict:
    """Per campaign: share of its exchanges served before its first flag, and before 90% were flagged.

    null, with a ``note`` saying why, when the detector flagged accounts but gave no first_flagged_at (not a
    replay run); 1.0 when it never reached the mark.
    """
    out: dict[str, dict] = {}
    marks = {}
    for c, info in per_campaign.items():
        n = info["accounts"]
        times = [r[0] for r in con.execute(
            "SELECT first_flagged_at FROM j WHERE campaign_id = ? AND flagged ORDER BY first_flagged_at NULLS LAST",
            [c]).fetchall()]
        known = [t for t in times if t is not None]
        if times and not known:
            marks[c] = (None, None, "unknown")
            continue
        first = known[0] if known else None
        need = math.ceil(CAMPAIGN_FOUND_SHARE * n - 1e-9)
        p90 = known[need - 1] if len(known) >= need else None
        marks[c] = (first, p90, "ok")
    if not marks:
        return out
    store = Store(world)
    store.register_views(con)
    for c, (first, p90, state) in marks.items():
        if state == "unknown":
            out[c] = {"first": None, "p90": None, "note": REPLAY_NOTE}
            continue
        row = con.execute("""SELECT count(*),
                                    count(*) FILTER (WHERE ? IS NULL OR e.ts < ?),
                                    count(*) FILTER (WHERE ? IS NULL OR e.ts < ?)
                             FROM exchanges e JOIN j ON e.account_id = j.account_id
                             WHERE j.campaign_id = ?""", [first, first, p90, p90, c]).fetchall()[0]
        total = row[0]
        out[c] = {"first": _ratio(row[1], total) if total else None, "p90": _ratio(row[2], total) if total else None,
                  "exchanges": int(total)}
    return out
