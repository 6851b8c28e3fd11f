"""How much of each campaign is served before `watch` flags it and before enforcement applies, on a simulated clock.

    python bench/loop_replay.py --world WORLD_DIR [--step-hours 12] [--work /tmp/loop-replay]

The world's exchanges arrive in a fresh store one window of ``--step-hours`` at a time, in time
order (the simulated clock; replaying through the gateway would stamp them with the wall clock).
After each window one `watch` tick runs: signals for the new part only, detection, recommendations
and the enforcement the default policy applies by itself. Per campaign (simulator labels, used
here only to measure): the share of its exchanges sent before the first tick that flagged any of
its accounts, and before its accounts came under an applied decision; and every benign account
that was ever under one. A gateway applies a published decision within ``reload_seconds``
(bench/loop_bench.py), negligible next to the window.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from datetime import timedelta
from pathlib import Path

import orjson


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", required=True)
    ap.add_argument("--work", default="/tmp/loop-replay")
    ap.add_argument("--step-hours", type=float, default=12.0)
    a = ap.parse_args()
    from distillguard.scan.config import ScanConfig
    from distillguard.store import Store
    from distillguard.watch import WatchOptions, load_state, tick

    src = Store(a.world)
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    dst = Store(work / "store", create=True)
    dst.write_accounts(src.accounts().to_arrow_table())
    scon = src.connect(threads=2)
    t0, t1 = scon.execute("SELECT min(ts), max(ts) FROM exchanges").fetchall()[0]
    step = timedelta(hours=a.step_hours)
    opts, cfg, state = WatchOptions(interval_seconds=0), ScanConfig(), load_state(dst)
    flagged_at: dict[str, object] = {}   # account -> end of the window after which it was first flagged
    enforced_at: dict[str, object] = {}  # account -> end of the window after which a decision applied to it
    ticks, wall = [], time.perf_counter()
    t = t0
    i = 0
    while t <= t1:
        end = t + step
        part = scon.execute("SELECT * FROM exchanges WHERE ts >= ? AND ts < ? ORDER BY ts", [t, end]).to_arrow_table()
        if part.num_rows:
            dst.write_exchanges(part, key=f"w{i:04d}")
            s = time.perf_counter()
            rep = tick(dst, opts, state, cfg, force_detect=True)
            ticks.append({"window_end": str(end), "exchanges": part.num_rows, "seconds": round(time.perf_counter() - s, 1),
                          "campaigns": rep.campaigns})
            con = dst.connect(threads=2)
            for (acct,) in con.execute("SELECT account_id FROM account_risk WHERE flagged").fetchall():
                flagged_at.setdefault(acct, end)
            if dst.has_table("enforcement"):
                for (acct,) in con.execute("""
                        WITH cur AS (SELECT * FROM enforcement WHERE source = 'scan' AND action <> 'allow'
                                     AND (expires_at IS NULL OR expires_at > ?))
                        SELECT subject_id FROM cur WHERE subject_type = 'account'
                        UNION SELECT ac.account_id FROM cur JOIN account_clusters ac
                              ON cur.subject_type = 'cluster' AND ac.cluster_id = cur.subject_id""", [end]).fetchall():
                    enforced_at.setdefault(acct, end)
            con.close()
        t, i = end, i + 1
    scon.execute(f"CREATE VIEW labels AS SELECT * FROM read_parquet('{Path(a.world) / 'labels.parquet'}')")
    ex = scon.execute("""SELECT l.campaign_id, e.account_id, e.ts FROM exchanges e JOIN labels l USING (account_id)
                         WHERE l.campaign_id IS NOT NULL""").fetchall()
    per: dict[str, dict] = {}
    first_flag: dict[str, object] = {}
    for cid, acct, _ in ex:
        if acct in flagged_at:
            first_flag[cid] = min(first_flag.get(cid, flagged_at[acct]), flagged_at[acct])
    for cid, acct, ts in ex:
        p = per.setdefault(cid, {"exchanges": 0, "before_first_flag": 0, "before_enforcement": 0, "accounts": set()})
        p["exchanges"] += 1
        p["accounts"].add(acct)
        if cid not in first_flag or ts < first_flag[cid]:
            p["before_first_flag"] += 1
        if acct not in enforced_at or ts < enforced_at[acct]:
            p["before_enforcement"] += 1
    out = {"world": a.world, "step_hours": a.step_hours, "ticks": len(ticks), "wall_seconds": round(time.perf_counter() - wall),
           "campaigns": {}, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "load": os.getloadavg()}
    for cid, p in sorted(per.items()):
        accts = p.pop("accounts")
        out["campaigns"][cid] = {**p, "share_before_first_flag": round(p["before_first_flag"] / p["exchanges"], 4),
                                 "share_before_enforcement": round(p["before_enforcement"] / p["exchanges"], 4),
                                 "accounts": len(accts), "accounts_enforced": len(accts & set(enforced_at)),
                                 "first_flag": str(first_flag.get(cid))}
    benign = {r[0]: r[1] for r in scon.execute("SELECT account_id, persona FROM labels WHERE campaign_id IS NULL").fetchall()}
    hit = sorted(a for a in enforced_at if a in benign)
    out["benign_ever_enforced"] = {"n": len(hit), "personas": sorted({benign[a] for a in hit})}
    out["tick_seconds"] = [x["seconds"] for x in ticks]
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2, default=str).decode())


if __name__ == "__main__":
    main()
