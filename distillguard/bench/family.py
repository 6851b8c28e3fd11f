"""Bench over a family of sampled worlds: sample K worlds, simulate, scan each with default settings, score.

One world can be tuned to; a family cannot. The summary is the worst case and the median over worlds,
the worst benign persona anywhere, campaign records against true campaigns, and how much of each
campaign was served before its first flag. Scanning goes through the `distillguard scan` command in a
child process — the exact entry point and defaults a user gets, with memory returned after each world.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from distillguard.bench.metrics import score
from distillguard.bench.results import read_results
from distillguard.errors import DistillguardError
from distillguard.sim.config import WORLDS_DIR, parse_world
from distillguard.sim.run import simulate
from distillguard.sim.sampler import sample_world


def scan_world(world: Path, results: Path, replay: bool, coarse: str = "72h", exact: bool = False) -> dict:
    """`distillguard scan` with default settings on one world (a child process); its JSON summary.

    With ``replay`` the scan runs incrementally (``--replay --coarse COARSE``) so first-flag times exist;
    the detection settings stay the defaults, only the evaluation grid is coarser than the scan's own.
    ``exact`` adds ``--exact``: every newly flagged account is bisected to the 1 h step, not only the accounts
    that open a detector campaign. Why: a true campaign whose first flagged account lands in a cluster that
    already holds a flagged account (another campaign's, on a shared card or kit) is not an opener, and without
    it its first flag is the end of the coarse interval — an upper bound as coarse as the grid (docs/benchmarks.md,
    branch ff27: default seed 7's reasoning campaign, first flagged between 14 h and 18 h, reported at 24 h).
    """
    cmd = [sys.executable, "-P", "-m", "distillguard", "scan", "--store", str(world), "--out", str(results),
           "--no-report", "--json"] + (["--replay", "--coarse", coarse] + (["--exact"] if exact else [])
                                       if replay else [])
    p = subprocess.run(cmd, capture_output=True, text=True, check=False, env=_same_code_env())
    if p.returncode != 0:
        raise DistillguardError(f"scan failed (exit {p.returncode}): {p.stderr.strip()[-800:]}", source=str(world))
    return json.loads(p.stdout)


def _same_code_env() -> dict:
    """The child scans with the code that runs the bench: ``python -m`` puts the working directory ahead of
    ``PYTHONPATH``, so a bench started inside another checkout measured that checkout's scan. ``-P`` drops it, and
    this package's own root goes first."""
    import distillguard

    root = str(Path(distillguard.__file__).resolve().parents[1])
    rest = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, rest]) if rest else root}


def world_row(name: str, family: str, seed: int, scale: float, m: dict, sim: dict, scan: dict) -> dict:
    """The per-world line of the family report."""
    fpr = m["fpr_by_persona"]
    worst = max(fpr.items(), key=lambda kv: kv[1]) if fpr else (None, None)
    firsts = {c: v.get("first") for c, v in m["exchanges_before_flag"].items()}
    rec = m["records"]
    return {
        "world": name, "family": family, "seed": seed, "scale": scale, "exchanges": sim["exchanges"],
        "accounts": sim["accounts"], "attack_accounts": m["counts"]["attack_accounts"],
        "true_campaigns": len(m["campaigns"]), "account_precision": m["account_precision"],
        "account_recall": m["account_recall"], "benign_account_fpr": m["benign_account_fpr"],
        "campaign_purity": m["campaign_purity"], "worst_persona": worst[0], "worst_persona_fpr": worst[1],
        "fpr_by_persona": fpr, "records": rec["count"], "false_records": rec["false_records"],
        "records_per_campaign": rec["records_per_campaign"], "max_records_per_campaign": rec["max_records_per_campaign"],
        "campaigns_per_record": rec["campaigns_per_record"], "max_campaigns_per_record": rec["max_campaigns_per_record"],
        "first_flag_share": firsts, "worst_first_flag_share": max((v for v in firsts.values() if v is not None),
                                                                   default=None),
        "campaign_recall": m["campaign_recall"], "simulate_seconds": sim["seconds"], "scan_seconds": scan["seconds"],
    }


def _stats(vals: list, worst: str) -> dict:
    v = [x for x in vals if x is not None]
    if not v:
        return {"worst": None, "median": None, "worlds": 0}
    return {"worst": (min if worst == "min" else max)(v), "median": statistics.median(v), "worlds": len(v)}


def summarise(rows: list[dict]) -> dict:
    """Worst case and median over worlds, the worst persona anywhere, and no-attacker worlds' false campaigns."""
    persona_worst: dict[str, tuple[float, str]] = {}
    for r in rows:
        for p, v in r["fpr_by_persona"].items():
            if p not in persona_worst or v > persona_worst[p][0]:
                persona_worst[p] = (v, r["world"])
    worst_p = max(persona_worst.items(), key=lambda kv: kv[1][0]) if persona_worst else None
    no_att = [r for r in rows if r["true_campaigns"] == 0]
    return {
        "worlds": len(rows),
        "account_precision": _stats([r["account_precision"] for r in rows if r["true_campaigns"]], "min"),
        "account_recall": _stats([r["account_recall"] for r in rows], "min"),
        "benign_account_fpr": _stats([r["benign_account_fpr"] for r in rows], "max"),
        "campaign_purity": _stats([r["campaign_purity"] for r in rows], "min"),
        "records_per_campaign": _stats([r["max_records_per_campaign"] for r in rows], "max"),
        "campaigns_per_record": _stats([r["max_campaigns_per_record"] for r in rows], "max"),
        "first_flag_share": _stats([r["worst_first_flag_share"] for r in rows], "max"),
        "worst_persona": {"persona": worst_p[0], "fpr": worst_p[1][0], "world": worst_p[1][1]} if worst_p else None,
        "persona_worst_fpr": {p: v for p, (v, _) in sorted(persona_worst.items())},
        "no_attacker_worlds": len(no_att),
        "no_attacker_false_campaigns": {r["world"]: r["records"] for r in no_att},
        "seconds": round(sum(r["simulate_seconds"] + r["scan_seconds"] for r in rows), 1),
    }


def run_family(k: int, out: Path, family: str = "mixed", seed: int = 0, replay: bool = True, keep: bool = False,
               workers: int | None = None, on_world: Callable[[dict], None] | None = None,
               coarse: str = "72h", exact: bool = False) -> dict:
    """Sample, simulate, scan and score K worlds (seeds seed … seed+K-1); writes OUT/family.json.

    Worlds without attackers are scanned once without replay: there is no first flag to time.
    """
    if k < 1:
        raise DistillguardError("--family: K must be >= 1")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows: list[dict] = []
    failed: list[dict] = []
    for i in range(k):
        s = seed + i
        raw, scale = sample_world(s, family)
        wdir = out / f"{i:02d}-{raw['name']}"
        if wdir.exists():
            shutil.rmtree(wdir)
        spec = parse_world(raw, f"sampled world {raw['name']}")
        sim = simulate(spec, WORLDS_DIR, wdir / "world", scale=scale, workers=workers)
        (wdir / "sampled_world.yaml").write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
        try:
            scan = scan_world(wdir / "world", wdir / "results", replay and bool(spec.campaigns), coarse, exact)
        except DistillguardError as e:  # one world the scan cannot handle is a finding, not the end of the run
            failed.append({"world": raw["name"], "seed": s, "error": e.message})
            if on_world:
                on_world(failed[-1])
            continue
        res, _ = read_results(wdir / "results")
        m = score(wdir / "world", res)
        (wdir / "metrics.json").write_text(json.dumps(m, indent=2, default=str) + "\n")
        row = world_row(raw["name"], raw["name"].rsplit("-", 1)[0], s, scale, m, sim, scan)
        rows.append(row)
        if on_world:
            on_world(row)
        if not keep:
            shutil.rmtree(wdir / "world")
    summary = summarise(rows)
    summary["failed_worlds"] = failed
    summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
    doc = {"family": family, "seed": seed, "k": k, "replay": replay, "coarse": coarse if replay else None,
           "exact": exact if replay else None,
           "summary": summary, "worlds": rows}
    (out / "family.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return doc
