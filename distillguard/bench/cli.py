"""`distillguard bench` (score results against a world) and `distillguard baseline` (the volume threshold)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from distillguard.ui import REPLAY_HINT, make_console

console = make_console(stderr=True)
out = make_console()

HEADLINE = ("account_precision", "account_recall", "account_f1", "auc_pr", "campaign_recall", "campaign_purity",
            "benign_account_fpr")


def _fmt(v, why: str = "—") -> str:
    if v is None:
        return why
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def render(m: dict, base: dict | None, name: str, base_name: str | None) -> None:
    t = Table(title="detection scorecard", title_justify="left")
    t.add_column("metric")
    t.add_column(name, justify="right")
    if base is not None:
        t.add_column(base_name or "baseline", justify="right")
    for k in HEADLINE:
        t.add_row(k, _fmt(m.get(k)), *([_fmt(base.get(k))] if base is not None else []))
    out.print(t)
    c = Table(title="campaigns: recall, and share of exchanges served before the first / 90% of accounts were flagged",
              title_justify="left")
    c.add_column("campaign")
    c.add_column("accounts", justify="right")
    labels = ["detector"] + (["baseline"] if base is not None else [])
    for who in labels:
        c.add_column(f"{who} recall", justify="right")
        c.add_column(f"{who} served", justify="right")
    for cid, info in m["campaigns"].items():
        row = [cid, f"{info['accounts']:,}"]
        for mm in [m] + ([base] if base is not None else []):
            ci = mm["campaigns"].get(cid, {})
            e = mm["exchanges_before_flag"].get(cid, {})
            hint = REPLAY_HINT if "note" in e else "—"  # detected, but the results have no first-flag times
            row += [_fmt(ci.get("recall")), f"{_fmt(e.get('first'), hint)} / {_fmt(e.get('p90'), hint)}"]
        c.add_row(*row)
    out.print(c)
    p = Table(title="false-positive rate by benign persona", title_justify="left")
    p.add_column("persona")
    p.add_column(name, justify="right")
    if base is not None:
        p.add_column(base_name or "baseline", justify="right")
    for persona, v in m["fpr_by_persona"].items():
        p.add_row(persona, _fmt(v), *([_fmt(base["fpr_by_persona"].get(persona))] if base is not None else []))
    out.print(p)
    r = m["records"]
    out.print(f"campaign records: {r['count']} ({r['false_records']} hold no attack account); records per true "
              f"campaign {_fmt(r['records_per_campaign'])} (max {_fmt(r['max_records_per_campaign'])}); true "
              f"campaigns per record {_fmt(r['campaigns_per_record'])} (max {_fmt(r['max_campaigns_per_record'])})",
              highlight=False)


def _print_world(r: dict) -> None:
    if "error" in r:
        out.print(f"{r['world']}: scan failed: {r['error']}", highlight=False)
        return
    out.print(f"{r['world']}: {r['exchanges']:,} exchanges, {r['true_campaigns']} campaigns · precision "
              f"{_fmt(r['account_precision'])} recall {_fmt(r['account_recall'])} FPR {_fmt(r['benign_account_fpr'])} · "
              f"{r['records']} records ({r['false_records']} false) · worst persona {r['worst_persona']} "
              f"{_fmt(r['worst_persona_fpr'])} · {r['simulate_seconds'] + r['scan_seconds']:.0f}s", highlight=False)


def render_family(doc: dict) -> None:
    """The summary over worlds (each world's line was printed as it finished; all of it is in family.json)."""
    s = doc["summary"]
    st = Table(title=f"family {doc['family']} · K={doc['k']} · seeds {doc['seed']}…{doc['seed'] + doc['k'] - 1} · "
                     "worst = min for precision/recall/purity, max otherwise", title_justify="left")
    for c in ("metric", "worst", "median", "worlds"):
        st.add_column(c, justify="left" if c == "metric" else "right")
    for k in ("account_precision", "account_recall", "benign_account_fpr", "campaign_purity", "records_per_campaign",
              "campaigns_per_record", "first_flag_share"):
        st.add_row(k, _fmt(s[k]["worst"]), _fmt(s[k]["median"]), str(s[k]["worlds"]))
    out.print(st)
    if not doc["replay"]:
        out.print("first_flag_share without --replay: known only for campaigns never flagged (1.0)")
    wp = s["worst_persona"]
    if wp:
        out.print(f"worst persona: {wp['persona']} (FPR {wp['fpr']:.3f} in {wp['world']})")
    out.print(f"no-attacker worlds: {s['no_attacker_worlds']}; campaigns reported on them (expected 0): "
              f"{s['no_attacker_false_campaigns']}")
    for f in s["failed_worlds"]:
        out.print(f"[red]scan failed[/] on {f['world']}: {f['error']}")
    out.print(f"{s['worlds']} worlds in {s['wall_seconds']}s (simulate + scan {s['seconds']}s)")


def register(app: typer.Typer) -> None:
    @app.command()
    def bench(
        world: Path = typer.Option(None, "--world", "-w", help="World directory written by `distillguard simulate`."),
        results: Path = typer.Option(None, "--results", "-r", help="Detector results directory (accounts.parquet)."),
        family: int = typer.Option(None, "--family", help="Instead: sample K worlds, simulate, scan each with "
                                   "default settings and report worst case / median (writes OUT/family.json)."),
        family_name: str = typer.Option("mixed", "--family-name", help="--family: which family of worlds "
                                        "(standard, quiet_hydra, small_provider, no_attackers, mixed)."),
        seed: int = typer.Option(0, "--seed", help="--family: first world seed (worlds use seed … seed+K-1)."),
        replay: bool = typer.Option(True, "--replay/--no-replay", help="--family: scan with --replay so "
                                    "time-to-first-flag is measured (slower)."),
        coarse: str = typer.Option("72h", "--coarse", help="--family with replay: the scan's replay evaluation "
                                   "interval (bisected down to its 1h step where a campaign appears)."),
        exact: bool = typer.Option(False, "--exact/--no-exact", help="--family with replay: bisect every newly "
                                   "flagged account to the 1h step (scan --exact), so a campaign first flagged "
                                   "inside another's cluster gets its own first-flag hour, not the end of its "
                                   "coarse interval (slower)."),
        keep: bool = typer.Option(False, "--keep", help="--family: keep each world's store (default: only "
                                  "results, metrics and the sampled config are kept)."),
        baseline: Path = typer.Option(None, "--baseline", "-b", help="Results to show beside the detector "
                                      "(default: the volume-threshold baseline computed on the fly)."),
        no_baseline: bool = typer.Option(False, "--no-baseline", help="Do not compute or show a baseline."),
        daily_threshold: int = typer.Option(None, "--daily-threshold",
                                            help="Threshold of the on-the-fly baseline (requests/account/day)."),
        metrics_out: Path = typer.Option(None, "--out", "-o", help="Where to write metrics.json "
                                         "(default RESULTS/metrics.json); with --family the output directory."),
        as_json: bool = typer.Option(False, "--json", help="Print metrics as JSON instead of tables."),
    ) -> None:
        """Score a detector's results against a labelled world; writes metrics.json."""
        from distillguard.bench.baseline import baseline_results
        from distillguard.bench.metrics import score
        from distillguard.bench.results import read_results
        from distillguard.errors import ConfigError
        from distillguard.store import Store

        if family is not None:
            if metrics_out is None:
                raise ConfigError("--family needs --out DIR (where worlds, results and family.json go)")
            from distillguard.bench.family import run_family

            doc = run_family(family, metrics_out, family_name, seed, replay=replay, keep=keep,
                             on_world=None if as_json else _print_world, coarse=coarse, exact=exact)
            if as_json:
                sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
            else:
                render_family(doc)
                out.print(f"family report written to {metrics_out / 'family.json'}")
            return
        if world is None or results is None:
            raise ConfigError("give --world and --results (or --family K --out DIR)")
        res, meta = read_results(results)
        m = score(world, res)
        m["detector"] = meta.get("detector", results.name)
        base = None
        base_name = None
        if baseline is not None:
            bres, bmeta = read_results(baseline)
            base = score(world, bres)
            base_name = bmeta.get("detector", baseline.name)
        elif not no_baseline:
            bt = baseline_results(Store(world), daily_threshold)
            base = score(world, bt)
            base_name = f"baseline (>= {int(bt.schema.metadata[b'daily_threshold'])}/day)"
        if base is not None:
            base["detector"] = base_name
            m["baseline"] = base
        dest = metrics_out or ((results if results.is_dir() else results.parent) / "metrics.json")
        dest.write_text(json.dumps(m, indent=2, default=str) + "\n")
        if as_json:
            sys.stdout.write(json.dumps(m, indent=2, default=str) + "\n")
            return
        render(m, base, m["detector"], base_name)
        out.print(f"metrics written to {dest}")

    @app.command("baseline")
    def baseline_cmd(
        store: Path = typer.Option(..., "--store", "-s", help="Store to run the baseline on."),
        out_dir: Path = typer.Option(..., "--out", "-o", help="Results directory to write."),
        daily_threshold: int = typer.Option(None, "--daily-threshold",
                                            help="Flag an account on the day it reaches this many requests "
                                                 "(default: the busiest 1% of accounts' peak day)."),
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON on stdout."),
    ) -> None:
        """The detector a provider without distillguard has: a per-account daily volume threshold."""
        from distillguard.bench.baseline import baseline_meta, baseline_results
        from distillguard.bench.results import write_results
        from distillguard.store import Store

        t = baseline_results(Store(store), daily_threshold)
        th = int(t.schema.metadata[b"daily_threshold"])
        write_results(out_dir, t, baseline_meta(th))
        n = sum(1 for v in t["flagged"].to_pylist() if v)
        if as_json:
            from distillguard.ui import print_json

            print_json({"flagged_accounts": n, "accounts": t.num_rows, "daily_threshold": th, "out": str(out_dir)})
            return
        out.print(f"baseline flagged {n:,} of {t.num_rows:,} accounts (>= {th:,} requests/day); "
                  f"results in {out_dir}")
