"""First flag per campaign on kept worlds: replay each with the default scan and report, per true campaign, the
share of its exchanges served before its first flag (issue 11's "first flag before 2%" target).

    PYTHONPATH=. python bench/first_flag.py OUT [--coarse 12h] [--exact] WORLD [WORLD ...]

WORLD is a kept family world (``NN-name`` with ``world/``, as ``bench --family --keep`` writes; its one-shot
``results/`` are compared with the replay's final flags) or a bare store written by ``distillguard simulate``.
Families are usually generated with ``--no-replay`` (a replay costs several scans), so their first flags are
unknown; this replays chosen worlds afterwards. Each store is copied with hard links (exchanges, accounts and
labels shared; the rest, signals included, copied so the scan writes only its own files) to ``OUT/<name>/world``
and scanned by ``bench.family.scan_world`` (``distillguard scan --replay --coarse C [--exact]`` in a child
process), then scored by ``bench.metrics.score``. Labels are read here only, to score.

Why a fine grid and ``--exact``: the replay evaluates every ``--coarse`` interval and bisects to the 1 h step only
for accounts that open a detector campaign; flags are not monotone in time (a cluster's coordination can fall as
its ties become common), so the bisection can land late, and a true campaign whose first flagged account joins a
cluster already flagged (another campaign's, on a shared card) gets the end of its coarse interval. On worlds of
one to three weeks a 72 h interval is 10–30% of a campaign's life, so the bench's 72 h default cannot judge a 2%
target; 12 h with ``--exact`` can (docs/benchmarks.md, branch ff27).

Prints one line per world and a markdown table (world, campaign, accounts, exchanges, first exchange, first flag,
hours, share before the first flag, share before 90% of its accounts were flagged); writes OUT/first_flag.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from distillguard.bench.family import scan_world
from distillguard.bench.metrics import score
from distillguard.bench.results import read_results
from distillguard.store import Store

SHARED = ("exchanges", "accounts", "labels")


def copy_world(src: Path, dst: Path) -> None:
    """Hard-link copy; every file but the exchanges, accounts and labels unshared (the scan rewrites them)."""
    subprocess.run(["cp", "-al", str(src), str(dst)], check=True)
    for p in dst.rglob("*"):
        if p.is_file() and not any(k in p.parts or p.name.startswith(k) for k in SHARED):
            tmp = p.with_name(p.name + ".cp")
            shutil.copy2(p, tmp)
            os.replace(tmp, p)


def flagged(results: Path) -> set[str]:
    t = pq.read_table(results / "accounts.parquet", columns=["account_id", "flagged"]).to_pylist()
    return {r["account_id"] for r in t if r["flagged"]}


def campaign_rows(world: Path, results: Path, metrics: dict) -> list[dict]:
    """Per true campaign: accounts, exchanges, first exchange, first flag and the shares (labels: scoring only)."""
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    Store(world).register_views(con)
    lab, res = str(world / "labels.parquet"), str(results / "accounts.parquet")
    first_ex = {c: (t, n, a) for c, t, n, a in con.execute(
        "SELECT l.campaign_id, min(e.ts), count(*), count(DISTINCT l.account_id) FROM exchanges e "
        "JOIN read_parquet(?) l USING (account_id) WHERE l.campaign_id IS NOT NULL GROUP BY 1", [lab]).fetchall()}
    first_flag = dict(con.execute(
        "SELECT l.campaign_id, min(r.first_flagged_at) FROM read_parquet(?) l JOIN read_parquet(?) r "
        "USING (account_id) WHERE l.campaign_id IS NOT NULL AND r.flagged GROUP BY 1", [lab, res]).fetchall())
    rows = []
    for c, v in sorted(metrics["exchanges_before_flag"].items()):
        t0, n, a = first_ex.get(c, (None, v.get("exchanges"), None))
        ff = first_flag.get(c)
        rows.append({"campaign": c, "accounts": a, "exchanges": n, "first_exchange": t0, "first_flag": ff,
                     "hours": (ff - t0).total_seconds() / 3600 if ff and t0 else None,
                     "first": v.get("first"), "p90": v.get("p90")})
    return rows


def markdown(worlds: list[dict]) -> str:
    out = ["| world | campaign | accounts | exchanges | first exchange | first flag | hours | before first flag "
           "| before 90% flagged |", "|---|---|---:|---:|---|---|---:|---:|---:|"]
    for w in worlds:
        for r in w["campaigns"]:
            fe = r["first_exchange"].strftime("%m-%d %H:%M") if r["first_exchange"] else "—"
            ff = r["first_flag"].strftime("%m-%d %H:%M") if r["first_flag"] else "never"
            h = "—" if r["hours"] is None else f"{r['hours']:.1f}"
            pct = lambda v: "—" if v is None else f"{100 * v:.2f}%"  # noqa: E731
            out.append(f"| {w['world']} | {r['campaign']} | {r['accounts']} | {r['exchanges']:,} | {fe} | {ff} | {h} "
                       f"| {pct(r['first'])} | {pct(r['p90'])} |")
    return "\n".join(out)


def summary(worlds: list[dict], target: float = 0.02) -> dict:
    shares = [r["first"] for w in worlds for r in w["campaigns"] if r["first"] is not None]
    return {"campaigns": len(shares), "worst": max(shares, default=None),
            "median": statistics.median(shares) if shares else None,
            "under_target": sum(s < target for s in shares), "target": target}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("worlds", type=Path, nargs="+")
    ap.add_argument("--coarse", default="12h", help="replay evaluation interval (default 12h)")
    ap.add_argument("--exact", action="store_true", help="bisect every newly flagged account (scan --exact)")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    done = []
    for wd in a.worlds:
        src, oneshot = (wd / "world", wd / "results") if (wd / "world").is_dir() else (wd, None)
        od = a.out / wd.name
        shutil.rmtree(od, ignore_errors=True)
        od.mkdir(parents=True)
        copy_world(src, od / "world")
        c0 = _cpu()
        sc = scan_world(od / "world", od / "results", True, a.coarse, a.exact)
        res, _ = read_results(od / "results")
        m = score(od / "world", res)
        (od / "metrics.json").write_text(json.dumps(m, indent=2, default=str) + "\n")
        same = None
        if oneshot is not None and (oneshot / "accounts.parquet").exists():
            same = flagged(oneshot) == flagged(od / "results")
        w = {"world": wd.name, "coarse": a.coarse, "exact": a.exact, "cpu_seconds": round(_cpu() - c0, 1),
             "evaluations": sc.get("replay_evaluations"), "final_flags_equal_one_shot": same,
             "campaigns": campaign_rows(od / "world", od / "results", m)}
        done.append(w)
        shutil.rmtree(od / "world" / "tmp", ignore_errors=True)
        shares = {r["campaign"]: None if r["first"] is None else round(100 * r["first"], 2) for r in w["campaigns"]}
        print(f"{wd.name}: {w['cpu_seconds']:.0f} CPU-s, {w['evaluations']} evaluations, final flags = one-shot: "
              f"{same}; first flag (% of exchanges) {shares}", flush=True)
    doc = {"summary": summary(done), "worlds": done}
    (a.out / "first_flag.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(markdown(done))
    print(json.dumps(doc["summary"]))
    return doc


if __name__ == "__main__":
    main()
