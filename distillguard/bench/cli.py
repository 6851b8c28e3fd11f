"""`distillguard bench` (score results against a world) and `distillguard baseline` (the volume threshold)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from distillguard.ui import make_console

console = make_console(stderr=True)
out = make_console()

HEADLINE = ("account_precision", "account_recall", "account_f1", "auc_pr", "campaign_recall", "campaign_purity",
            "benign_account_fpr")


def _fmt(v) -> str:
    if v is None:
        return "—"
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
            row += [_fmt(ci.get("recall")), f"{_fmt(e.get('first'))} / {_fmt(e.get('p90'))}"]
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


def register(app: typer.Typer) -> None:
    @app.command()
    def bench(
        world: Path = typer.Option(..., "--world", "-w", help="World directory written by `distillguard simulate`."),
        results: Path = typer.Option(..., "--results", "-r", help="Detector results directory (accounts.parquet)."),
        baseline: Path = typer.Option(None, "--baseline", "-b", help="Results to show beside the detector "
                                      "(default: the volume-threshold baseline computed on the fly)."),
        no_baseline: bool = typer.Option(False, "--no-baseline", help="Do not compute or show a baseline."),
        daily_threshold: int = typer.Option(None, "--daily-threshold",
                                            help="Threshold of the on-the-fly baseline (requests/account/day)."),
        metrics_out: Path = typer.Option(None, "--out", "-o", help="Where to write metrics.json "
                                         "(default RESULTS/metrics.json)."),
        as_json: bool = typer.Option(False, "--json", help="Print metrics as JSON instead of tables."),
    ) -> None:
        """Score a detector's results against a labelled world; writes metrics.json."""
        from distillguard.bench.baseline import baseline_results
        from distillguard.bench.metrics import score
        from distillguard.bench.results import read_results
        from distillguard.store import Store

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
