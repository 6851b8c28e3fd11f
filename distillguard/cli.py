"""The `distillguard` command line. Each stage adds its commands from its own `cli` module."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import orjson
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from distillguard import __version__
from distillguard.errors import DistillguardError
from distillguard.ui import make_console, plain

app = typer.Typer(name="distillguard", help="Detect and stop distillation attacks on model APIs.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = make_console(stderr=True)
out = make_console()

#: Exit codes (docs/configuration.md "Exit codes"): 0 done; 1 internal error (a bug: rerun with --debug for the
#: traceback); 2 bad input or configuration, with a message naming it; 3 done but some input was quarantined.
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_QUARANTINED = 3

#: Which optional extra each stage's commands need, to name it when the stage cannot be imported.
STAGE_EXTRAS = {
    "distillguard.sim.cli": ("detect", ["simulate", "world-schema"]),
    "distillguard.bench.cli": ("detect", ["bench", "baseline"]),
    "distillguard.signals.cli": ("detect", ["classify", "signals"]),
    "distillguard.scan.cli": ("detect", ["scan"]),
    "distillguard.gateway.cli": ("gateway", ["gateway", "mock-upstream", "gateway-demo", "gateway-keys",
                                             "gateway-compact", "gateway-writer", "gateway-check"]),
    "distillguard.watch": ("detect", ["watch"]),
    "distillguard.console.cli": ("console", ["console", "console-hash"]),
    "distillguard.intel.cli": ("intel", ["intel"]),
}
_missing_stages: dict[str, tuple[str, str]] = {}

StoreOpt = typer.Option(..., "--store", "-s", help="Store directory, or s3:// gs:// abfs:// URL (created by ingest/simulate).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON on stdout instead of tables.")


def _print_json(obj) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"distillguard {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback when a command fails."),
) -> None:
    """Detect and stop distillation attacks on model APIs."""


@app.command()
def ingest(
    paths: list[str] = typer.Argument(..., help="Log files or directories (JSONL, JSON, .gz, Parquet), or "
                                      "s3:// gs:// abfs:// objects or prefixes."),
    store: str = StoreOpt,
    fmt: str = typer.Option("auto", "--format", "-f",
                            help="auto, native, accounts, openai, anthropic, litellm, otel or quarantine (auto sniffs each file)."),
    map_file: Path | None = typer.Option(None, "--map", help="A YAML mapping file for your own log format "
                                         "(JSONL, JSON, CSV or Parquet); see docs/ingest.md."),
    as_json: bool = JsonOpt,
) -> None:
    """Read provider logs into the store; bad records go to quarantine with line numbers and reasons.

    Exits 0 when everything was ingested, 3 when some records were quarantined.
    """
    from distillguard.ingest import ingest_paths
    from distillguard.ingest.registry import all_readers
    from distillguard.store import Store

    if map_file is not None:
        from distillguard.ingest.mapping import load_mapping

        if fmt != "auto":
            raise DistillguardError("pass either --map FILE or --format, not both (a mapping is its own format)")
        fmt = load_mapping(map_file).name
    if fmt != "auto" and fmt not in all_readers():
        raise DistillguardError(f"unknown --format {fmt!r}; choose from auto, {', '.join(sorted(all_readers()))}")
    st = Store(store, create=True)
    from distillguard.ingest.run import RemoteInput, expand_inputs

    files = expand_inputs(paths)
    total = sum(p.size if isinstance(p, RemoteInput) else p.stat().st_size for p in files)
    with Progress(TextColumn("[bold]ingest[/] {task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=True,
                  disable=as_json or total < (8 << 20)) as prog:
        task = prog.add_task("", total=total)
        result = ingest_paths(st, files, fmt=fmt, on_progress=lambda n: prog.advance(task, n),
                              on_file=lambda p, _s: prog.update(task, description=p.name))
    if as_json:
        _print_json(result.to_dict())
    else:
        for f in result.files:
            if f.skipped:
                console.print(f"[dim]{f.path}: skipped ({f.skipped})[/]")
            elif f.format is None:
                console.print(f"[yellow]{f.path}: format not recognised[/]")
        for f in result.files:
            if f.held_bytes:
                console.print(f"[dim]{f.path}: last line unfinished ({f.held_bytes:,} bytes), left for the next run[/]")
        msg = f"ingested {result.records:,}"
        if result.accounts:
            msg += f" · accounts {result.accounts:,}"
        if result.duplicates:
            msg += f" · already stored {result.duplicates:,}"
        msg += f" · quarantined {result.quarantined:,}"
        if result.quarantined:
            qfiles = [f.quarantine_file for f in result.files if f.quarantine_file]
            msg += f" (see {qfiles[0]}" + (f" and {len(qfiles) - 1} more" if len(qfiles) > 1 else "") + ")"
        out.print(msg)
    if result.quarantined:
        raise typer.Exit(EXIT_QUARANTINED)


@app.command()
def stats(store: str = StoreOpt, as_json: bool = JsonOpt,
          top: int = typer.Option(20, help="How many models to list.")) -> None:
    """Counts per day, model, endpoint and accounts."""
    from distillguard.store import Store
    from distillguard.store.stats import store_stats

    s = store_stats(Store(store), top=top)
    if as_json:
        _print_json(s)
        return
    t = s["totals"]
    out.print(f"[bold]{t['exchanges']:,}[/] exchanges · [bold]{t['accounts']:,}[/] accounts · "
              f"{t['orgs']:,} orgs · {t['first_ts']} → {t['last_ts']}")
    for title, key, cols in (("per day", "by_day", ("day", "exchanges", "accounts")),
                             ("per model", "by_model", ("model", "exchanges", "accounts")),
                             ("per endpoint", "by_endpoint", ("endpoint", "exchanges")),
                             ("per source format", "by_source_format", ("source_format", "exchanges")),
                             ("accounts by sign-up pathway", "by_signup_pathway", ("signup_pathway", "accounts"))):
        if not s[key]:
            continue
        tab = Table(title=title, title_justify="left")
        for c in cols:
            tab.add_column(c, justify="right" if c in ("exchanges", "accounts") else "left")
        for r in s[key]:
            tab.add_row(*[f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]) for c in cols])
        out.print(tab)
    il = s["ingest_log"]
    out.print(f"ingest log: {il['files']:,} files · {il['records']:,} records · {il['quarantined']:,} quarantined")


@app.command()
def export(store: str = StoreOpt, out_path: Path = typer.Option(..., "--out", "-o", help="Native JSONL to write."),
           where: str = typer.Option(None, help="SQL filter over exchange columns, e.g. \"account_id = 'a1'\"."),
           as_json: bool = JsonOpt) -> None:
    """Write exchanges as native JSONL (re-ingests unchanged)."""
    from distillguard.store import Store
    from distillguard.store.export import export_native

    n = export_native(Store(store), out_path, where=where)
    if as_json:
        _print_json({"exchanges": n, "out": str(out_path)})
    else:
        out.print(f"exported {n:,} exchanges to {plain(out_path)}")


def _load_stage_clis() -> None:
    """Register every stage whose dependencies are installed; remember the others with the extra they need."""
    for mod, (extra, _commands) in STAGE_EXTRAS.items():
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name and mod.startswith(e.name):
                continue  # stage not present in this checkout
            _missing_stages[mod] = (extra, e.name or "?")
            continue
        m.register(app)


def _missing_extra_for(argv: list[str]) -> tuple[str, str, str] | None:
    """(command, extra, missing module) when the command asked for belongs to a stage that could not load."""
    command = next((a for a in argv if not a.startswith("-")), None)
    for mod, (extra, missing) in _missing_stages.items():
        if command in STAGE_EXTRAS[mod][1]:
            return command, extra, missing
    return None


def main() -> None:
    _load_stage_clis()
    need = _missing_extra_for(sys.argv[1:])
    if need:
        command, extra, missing = need
        console.print(f"error: `{plain(command)}` needs the '{extra}' extra (missing module {plain(missing)}): "
                      f"pip install 'distillguard[{extra}]'")
        sys.exit(EXIT_BAD_INPUT)
    debug = "--debug" in sys.argv[1:]  # read before parsing: the handler below runs after typer has returned
    try:
        app()
    except DistillguardError as e:
        if debug:
            raise
        console.print(f"[red]error:[/] {plain(e)}")
        sys.exit(EXIT_BAD_INPUT)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - the last line of defence: one readable line, traceback on request
        if debug:
            raise
        console.print(f"[red]internal error:[/] {plain(type(e).__name__)}: {plain(e)} "
                      "(rerun with --debug for the traceback; please report it)")
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
