"""What each campaign looks like to detection at given moments of a replay (issue 14's diagnosis).

    python bench/loop_probe.py --store REPLAY_STORE --world WORLD --at 3 5 8 [--work /tmp/probe] [--config C]

``REPLAY_STORE``: what the gateways recorded in a ``bench/loop_replay.py --through-gateway`` run (``--work``/store;
kept when the run ends) or a world itself. For each ``--at`` hour (from the first exchange) the exchanges before it
are copied into a fresh store with the accounts and scanned (signals included, the default config or ``--config``),
and per campaign it prints — from the simulator's labels, which are used only here, to read the result — the
share of the campaign's whole volume sent by then, its active accounts and their request counts, its accounts'
risk, and every cluster holding one of them: size, campaign members, coordination, suspicion, risk, and what the
core shares. Benign accounts flagged at that moment are listed too. Detection never sees the labels.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import orjson


def probe(store_dir: str, world: str, hours: float, work: Path, config: str | None) -> dict:
    from distillguard.store import Store

    src = Store(store_dir)
    scon = src.connect(threads=1)
    t0, = scon.execute("SELECT min(ts) FROM exchanges").fetchone()
    cut = t0 + timedelta(hours=hours)
    part = scon.execute("SELECT * FROM exchanges WHERE ts < ? ORDER BY ts", [cut]).to_arrow_table()
    scon.close()
    d = work / f"h{hours:g}"
    shutil.rmtree(d, ignore_errors=True)
    st = Store(d, create=True)
    st.write_accounts(src.accounts().to_arrow_table())
    st.write_exchanges(part, key="probe")
    cmd = [sys.executable, "-m", "distillguard", "scan", "--store", str(d), "--out", str(d / "results"), "--no-report",
           "--json"]
    if config:
        cmd += ["--config", config]
    subprocess.run(cmd, check=True, capture_output=True)
    con = st.connect(threads=1)
    lab = f"read_parquet('{Path(world) / 'labels.parquet'}')"
    wx = f"read_parquet('{Path(world) / 'exchanges'}/**/*.parquet', hive_partitioning=false)"
    totals = dict(con.execute(f"SELECT l.campaign_id, count(*) FROM {wx} e JOIN {lab} l USING (account_id) "
                              "WHERE l.campaign_id IS NOT NULL GROUP BY 1").fetchall())
    out: dict = {"hours": hours, "exchanges": part.num_rows, "campaigns": {}}
    n_by_acct = dict(con.execute("SELECT account_id, count(*) FROM exchanges GROUP BY 1").fetchall())
    risk = {r[0]: r[1:] for r in con.execute(
        "SELECT r.account_id, r.risk, r.flagged, r.cluster_id, f.suspicion FROM account_risk r "
        "LEFT JOIN account_features f USING (account_id)").fetchall()}
    clusters = {r[0]: r[1:] for r in con.execute(
        "SELECT cluster_id, n_accounts, coordination, suspicion, risk, reasons FROM clusters").fetchall()}
    members: dict[str, list[str]] = {}
    for c, a in con.execute("SELECT cluster_id, account_id FROM cluster_members").fetchall():
        members.setdefault(c, []).append(a)
    labels = {a: (c, p) for a, c, p in con.execute(f"SELECT account_id, campaign_id, persona FROM {lab}").fetchall()}
    for cid in sorted(totals):
        accts = [a for a, (c, _) in labels.items() if c == cid]
        active = sorted((n_by_acct[a] for a in accts if a in n_by_acct), reverse=True)
        sent = sum(active)
        cl_ids = sorted({risk[a][2] for a in accts if a in risk and risk[a][2]})
        cls = []
        for c in cl_ids:
            n, coord, susp, rk, reasons = clusters.get(c, (None,) * 5)
            ms = members.get(c, [])
            cls.append({"cluster": c, "size": n, "campaign_members": sum(1 for a in ms if labels.get(a, (None,))[0] == cid),
                        "requests_per_member": statistics.median([n_by_acct.get(a, 0) for a in ms]) if ms else 0,
                        "coordination": round(coord or 0, 3), "suspicion": round(susp or 0, 3),
                        "risk": round(rk or 0, 3), "why": (reasons or [])[:2]})
        rs = [risk[a][0] for a in accts if a in risk and a in n_by_acct]
        out["campaigns"][cid] = {
            "share_sent": round(sent / max(totals[cid], 1), 4), "sent": sent, "active_accounts": len(active),
            "requests_per_account": {"median": statistics.median(active) if active else 0,
                                     "max": active[0] if active else 0, "min": active[-1] if active else 0},
            "flagged": sum(1 for a in accts if a in risk and risk[a][1]),
            "risk_max": round(max(rs), 3) if rs else None,
            "suspicion_median": round(statistics.median([risk[a][3] or 0 for a in accts if a in risk and a in n_by_acct]), 3)
            if rs else None,
            "unclustered_active": sum(1 for a in accts if a in n_by_acct and not (risk.get(a) or (0, 0, None))[2]),
            "clusters": sorted(cls, key=lambda x: -x["risk"])[:6]}
    out["benign_flagged"] = sorted(labels[a][1] for a, v in risk.items() if v[1] and labels.get(a, (None,))[0] is None)
    con.close()
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--world", required=True)
    ap.add_argument("--at", type=float, nargs="+", required=True, help="Hours from the first exchange.")
    ap.add_argument("--work", default="/tmp/loop-probe")
    ap.add_argument("--config", default=None)
    ap.add_argument("--keep", action="store_true", help="Keep the probe stores.")
    a = ap.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    res = []
    for h in a.at:
        res.append(probe(a.store, a.world, h, work, a.config))
        print(orjson.dumps(res[-1], option=orjson.OPT_INDENT_2).decode(), flush=True)
        if not a.keep:
            shutil.rmtree(work / f"h{h:g}", ignore_errors=True)
    duckdb.connect().close()


if __name__ == "__main__":
    main()
