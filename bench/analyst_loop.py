"""Learning from analysts, measured: scan, let a simulated analyst judge every reported campaign, scan again.

    python bench/analyst_loop.py --world WORLD_DIR [--config scan.yaml] [--rounds 2]

The analyst is stood in for by the world's labels *only at the console*: each reported campaign is confirmed when
most of its members belong to a true campaign and dismissed otherwise, written exactly as the console writes it
(one ``analyst_labels`` row per member, one ``campaign_decisions`` row). Detection never reads the labels; the
next scan re-fits the account model from the verdicts (distillguard/scoring/learn.py). Prints one line per round:
precision, recall, benign FPR, records (false), and what learning did.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow.parquet as pq  # noqa: E402

from distillguard.bench.metrics import score  # noqa: E402
from distillguard.campaigns.enforcement import record_decision  # noqa: E402
from distillguard.console.tables import label_rows  # noqa: E402
from distillguard.scan.config import ScanConfig, load_config  # noqa: E402
from distillguard.scan.run import close_scan, results_accounts, run_scan, write_tables  # noqa: E402
from distillguard.store import Store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", required=True)
    ap.add_argument("--config")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    st = Store(a.world)
    cfg = load_config(a.config) if a.config else ScanConfig()
    truth = {r["account_id"]: r["campaign_id"] for r in pq.read_table(Path(a.world) / "labels.parquet").to_pylist()}
    for rnd in range(a.rounds):
        now = datetime.now(UTC)
        res = run_scan(st, cfg, signals="auto")
        risk = write_tables(st, res, cfg, now)
        m = score(a.world, results_accounts(res, risk))
        up = res.model_update
        by: dict[str, list[str]] = {}
        for acct, cid in res.campaign_members.items():
            by.setdefault(cid, []).append(acct)
        false = sum(1 for ms in by.values() if sum(truth.get(x) is not None for x in ms) * 2 <= len(ms))
        print(f"round {rnd}: precision {m['account_precision']:.3f} recall {m['account_recall']:.3f} "
              f"FPR {m['benign_account_fpr']:.4f} records {len(res.campaigns)} ({false} false) · "
              f"{up.summary() if up else 'no learning'}", flush=True)
        close_scan(res, st)
        labels = []
        for c in res.campaigns:
            ms = by.get(c["campaign_id"], [])
            attack = sum(truth.get(x) is not None for x in ms) * 2 > len(ms)
            status = "confirmed" if attack else "dismissed"
            record_decision(st, c["campaign_id"], status, "block" if attack else "allow", now, "bench-analyst",
                            "analyst_loop")
            labels += [dict(account_id=x, label="attack" if attack else "benign", campaign_id=c["campaign_id"],
                            at=now, actor="bench-analyst", reason="analyst_loop") for x in ms]
        if labels:
            st.append_table("analyst_labels", label_rows(labels))


if __name__ == "__main__":
    main()
