"""`distillguard scan`: find the campaigns in a store and write the results contract + report."""

from __future__ import annotations

import re
import sys
import time
from datetime import timedelta
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from distillguard.errors import ConfigError
from distillguard.ui import REPLAY_HINT, REPLAY_NOTE, make_console, sentences

console = make_console(stderr=True)
out = make_console()

_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(s: str, key: str = "--step") -> timedelta:
    m = _DUR.match(s or "")
    if not m:
        raise ConfigError(f"{key}: {s!r} is not a duration like 30m, 1h or 1d")
    v, u = float(m.group(1)), m.group(2)
    td = timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[u]: v})
    if td <= timedelta(0):
        raise ConfigError(f"{key}: must be positive")
    return td


def _jsonable(c: dict, replay: bool = True) -> dict:
    d = dict(c)
    if not replay and d.get("first_flagged_at") is None:
        d["first_flagged_at_note"] = REPLAY_NOTE
    for k in ("capability_mix", "infrastructure"):
        d[k] = orjson.loads(d[k]) if isinstance(d[k], str) else d[k]
    return d


def spark_unsupported(replay: bool, resume: bool | None) -> None:
    """--replay and --resume are the DuckDB engine's only: say so instead of running something else.

    Replay re-runs the detect step tens to hundreds of times (coarse steps, then bisection); on Spark each run
    pays ~45 statements of planning, scheduling and checkpointing, so a replayed month would take hours of
    fixed cost and the path has never been checked against DuckDB's first-flag times. Resume checkpoints are
    DuckDB tables written to local disk; a Spark scan's intermediate tables live on the cluster."""
    if replay:
        raise ConfigError("--replay runs on the DuckDB engine only (docs/spark.md): drop --engine spark, or run "
                          "the replay on DuckDB over the same store")
    if resume:
        raise ConfigError("--resume runs on the DuckDB engine only (docs/spark.md): a Spark scan starts from the "
                          "store each time; drop --resume, or pass --no-resume")


def register(app: typer.Typer) -> None:
    @app.command()
    def scan(
        store: str = typer.Option(..., "--store", "-s", help="Store directory or s3:// gs:// abfs:// URL (created by ingest/simulate)."),
        out_dir: Path = typer.Option(..., "--out", "-o", help="Results directory: accounts.parquet, campaigns.json, report.html."),
        replay: bool = typer.Option(False, "--replay", help="Run incrementally over time and record first_flagged_at."),
        step: str = typer.Option("1h", "--step", help="Replay resolution (first-flag times are on this grid)."),
        coarse: str = typer.Option("24h", "--coarse", help="Replay evaluation interval; bisected down to --step where a new campaign appears."),
        exact: bool = typer.Option(False, "--exact", help="Replay: bisect every newly flagged account, not only campaign openers."),
        config: Path = typer.Option(None, "--config", "-c", help="Scan config YAML (see docs/detection.md)."),
        signals: str = typer.Option("auto", "--signals", help="auto (run when missing, older than the exchanges or scored by another signal model), always, never."),
        report: bool = typer.Option(True, "--report/--no-report", help="Write report.html."),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
        resume: bool = typer.Option(None, "--resume/--no-resume",
                                    help="Keep stage checkpoints and start from the newest one whose inputs and "
                                         "config match (a scan that died at a late stage skips the early ones). "
                                         "Default: on with the DuckDB engine; not available with --engine spark."),
        engine: str = typer.Option("duckdb", "--engine", help="duckdb (embedded) or spark (same stages on "
                                   "Spark SQL; needs the 'spark' extra and Java 17). See docs/spark.md."),
        master: str = typer.Option(None, "--master", help="Spark master URL (local[2], spark://host:7077, yarn); "
                                   "default: engine.spark.master, else spark-submit's."),
    ) -> None:
        """Find distillation campaigns: signals → behaviour → coordination graph → risk → campaigns."""
        from distillguard.scan.config import load_config
        from distillguard.scan.report import render_report
        from distillguard.scan.resources import stage_guard
        from distillguard.scan.run import MISSING_NEVER, close_scan, results_accounts, run_scan, write_tables
        from distillguard.store import Store

        if signals not in ("auto", "always", "never"):
            raise ConfigError(f"--signals: {signals!r} is not one of auto, always, never")
        if engine not in ("duckdb", "spark"):
            raise ConfigError(f"--engine: {engine!r} is not one of duckdb, spark")
        if master and engine != "spark":
            raise ConfigError("--master applies to --engine spark only")
        if engine == "spark":
            spark_unsupported(replay, resume)
            import importlib.util

            if importlib.util.find_spec("pyspark") is None:
                raise ConfigError("--engine spark needs pyspark: pip install 'distillguard[spark]' "
                                  "(and Java 17 or newer on the PATH)")
        cfg = load_config(config)
        st = Store(store)
        t0 = time.perf_counter()
        # a live bar only on a terminal; piped, one line per stage on stderr (scripts and logs stay readable)
        live = console.is_terminal and not as_json
        with Progress(TextColumn("[bold]scan[/] {task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=console, transient=True, disable=not live) as prog:
            task = prog.add_task("starting", total=1.0)
            seen: set[str] = set()

            def show(desc: str, frac: float) -> None:
                prog.update(task, description=desc, completed=frac)
                stage = desc.split(":", 1)[0]
                if not live and not as_json and stage not in seen:
                    seen.add(stage)
                    console.print(f"scan: {desc}", markup=False, highlight=False)

            res = run_scan(st, cfg, replay_step=parse_duration(step) if replay else None,
                           coarse=parse_duration(coarse, "--coarse"), signals=signals, replay_exact=exact,
                           progress=show, resume=engine == "duckdb" and resume is not False, engine=engine, master=master)
            try:
                prog.update(task, description="writing tables and report", completed=1.0)
                with stage_guard("write", res.space, cfg.memory_limit):
                    final_risk = write_tables(st, res, cfg)
                from distillguard.alerts import alert_store

                alert_store(st, cfg.alerts)
                out_dir.mkdir(parents=True, exist_ok=True)
                _write_atomic(out_dir / "accounts.parquet",
                              lambda p: pq.write_table(results_accounts(res, final_risk), p))
                _write_atomic(out_dir / "campaigns.json", lambda p: p.write_bytes(orjson.dumps(
                    [_jsonable(c, replay) for c in res.campaigns], option=orjson.OPT_INDENT_2, default=str)))
                _write_atomic(out_dir / "meta.json", lambda p: p.write_bytes(orjson.dumps({
                    "detector": "distillguard-scan", "version": "1", "params": cfg.model_dump(),
                    "replay": replay, "step": step if replay else None, "coarse": coarse if replay else None,
                    **({} if replay else {"notes": {"first_flagged_at": REPLAY_NOTE}})},
                    option=orjson.OPT_INDENT_2)))
                if report:
                    con = res_con(st, res)
                    html = render_report(st, con, res)
                    _write_atomic(out_dir / "report.html", lambda p: p.write_text(html, encoding="utf-8"))
            except BaseException:
                close_scan(res, st, finished=False)  # keep the checkpoints: a rerun resumes after detect
                raise
            close_scan(res, st)
        elapsed = time.perf_counter() - t0
        flagged = int(sum(res.account_risk["flagged"].to_pylist()))
        summary = {"exchanges": res.n_exchanges, "accounts": res.account_risk.num_rows, "flagged_accounts": flagged,
                   "campaigns": len(res.campaigns), "seconds": round(elapsed, 2),
                   "exchanges_per_second": round(res.n_exchanges / max(elapsed, 1e-9)),
                   "timings": res.timings, "replay_evaluations": res.replay_steps,
                   "report": str(out_dir / "report.html") if report else None,
                   "account_model": _model_summary(res)}
        if not replay:  # first_flagged_at is null in every results file: say why, beside the nulls
            summary["notes"] = {"first_flagged_at": REPLAY_NOTE}
        if res.timings.get("signals_state") == MISSING_NEVER:  # on stderr too: a JSON consumer may not read notes
            summary["warnings"] = [f"signals: {MISSING_NEVER}"]
            console.print(f"warning: signals {MISSING_NEVER}", markup=False, highlight=False)
        if as_json:
            sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
            return
        tab = Table(title=f"{len(res.campaigns)} campaigns · {flagged:,} accounts flagged of {res.account_risk.num_rows:,}",
                    title_justify="left")
        for col, j in (("campaign", "left"), ("title", "left"), ("accounts", "right"), ("exchanges", "right"),
                       ("first flagged", "left"), ("recommended", "left"), ("confidence", "right")):
            tab.add_column(col, justify=j)
        for c in res.campaigns:
            ff = c.get("first_flagged_at")
            tab.add_row(c["campaign_id"], c["title"], f"{c['n_accounts']:,}", f"{c['n_exchanges']:,}",
                        ff.strftime("%Y-%m-%d %H:%M") if ff else ("—" if replay else REPLAY_HINT),
                        c["recommended_action"], f"{c['confidence']:.0%}")
        out.print(tab)
        for c in res.campaigns[:5]:
            # evidence quotes what accounts sent (user agents, template text): escaped, never read as markup
            out.print(f"[bold]{c['campaign_id']}[/] " + escape(sentences(c["evidence"][:3])), markup=True,
                      highlight=False)
        if res.model_update is not None and (res.model_update.n_attack or res.model_update.n_benign):
            out.print(res.model_update.summary(), markup=False, highlight=False)
        out.print(f"{res.n_exchanges:,} exchanges in {elapsed:.1f}s ({summary['exchanges_per_second']:,}/s) · "
                  f"results in {out_dir}" + (f" · report {out_dir / 'report.html'}" if report else ""))


def _model_summary(res) -> dict | None:
    """What learning from analysts did this scan (``--json``)."""
    up = res.model_update
    if up is None:
        return None
    return {"applied": up.applied, "why": up.why, "n_attack": up.n_attack, "n_benign": up.n_benign,
            "n_campaigns": up.n_campaigns, "heldout_loss_before": up.heldout_before,
            "heldout_loss_after": up.heldout_after, "changes": up.changes(), "summary": up.summary()}


def _write_atomic(dest: Path, write) -> None:
    """Write next to ``dest`` and rename: a scan that fails half way leaves the old file or none, never half."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        write(tmp)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def res_con(store, res):
    """The scan's DuckDB connection (kept by the engine) for the report's timeline queries; after a Spark scan,
    a DuckDB connection over the store (the report reads the exchanges of a few campaign accounts only)."""
    import duckdb

    return res.con if isinstance(res.con, duckdb.DuckDBPyConnection) else store.connect()
