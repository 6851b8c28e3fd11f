"""`distillguard simulate` and `distillguard world-schema`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from distillguard.ui import make_console

console = make_console(stderr=True)
out = make_console()


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        config: str = typer.Option("default", "--config", "-c",
                                   help="World YAML file, or the name of a shipped world (default, benign_cohorts, "
                                        "cohorts_mixed, low_and_slow, ban_evasion, shared_proxy, later_tactics, "
                                        "heldout_phrasings)."),
        out_arg: str = typer.Option(..., "--out", "-o", help="Store directory to create (must hold no exchanges; local "
                                "disk: copy it to a bucket afterwards for an object-storage store)."),
        seed: int = typer.Option(None, "--seed", help="Override the config's seed (with --randomize: the world's "
                                 "seed; every parameter is drawn from it)."),
        scale: float = typer.Option(None, "--scale", help="Multiply exchange and account counts (0.01 = demo size; "
                                    "default 1, or the sampled scale with --randomize)."),
        randomize: bool = typer.Option(False, "--randomize", help="Ignore --config: draw a whole world from --seed "
                                       "(family 'mixed' unless --family)."),
        family: str = typer.Option(None, "--family", help="Draw a world of this family: standard, quiet_hydra, "
                                   "small_provider, no_attackers, mixed (implies --randomize)."),
        responses: str = typer.Option(None, "--responses", help="Override responses: text or lengths."),
        workers: int = typer.Option(None, "--workers", help="Generator processes (default: up to 2); output is "
                                    "identical for any number."),
        as_json: bool = typer.Option(False, "--json", help="Print the world summary as JSON."),
    ) -> None:
        """Generate a labelled traffic world: a store plus labels.parquet (ground truth, kept apart)."""
        from distillguard.errors import ConfigError
        from distillguard.sim.config import load_world
        from distillguard.sim.run import simulate as run
        from distillguard.store.remote import is_url

        if is_url(out_arg):  # labels.parquet and world.json are local files: refuse before writing anything
            raise ConfigError("simulate writes a local store directory, not a bucket: simulate to a directory, "
                              "then copy it (e.g. aws s3 sync DIR s3://bucket/prefix); scan --store s3://... reads "
                              "it there (docs/object-storage.md)", source=out_arg)
        out_dir = Path(out_arg)
        if randomize or family:
            import yaml

            from distillguard.sim.config import WORLDS_DIR, parse_world
            from distillguard.sim.sampler import sample_world

            raw, sampled_scale = sample_world(seed if seed is not None else 0, family or "mixed")
            spec, base = parse_world(raw, f"sampled world {raw['name']}"), WORLDS_DIR
            scale = sampled_scale if scale is None else scale
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "sampled_world.yaml").write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
        else:
            spec, base = load_world(config)
        scale = 1.0 if scale is None else scale
        if responses is not None:
            if responses not in ("text", "lengths"):
                raise ConfigError("--responses must be text or lengths")
            spec = spec.model_copy(update={"responses": responses})
        with Progress(TextColumn("[bold]simulate[/] day"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rows]:,} exchanges"), TimeElapsedColumn(), console=console,
                      transient=True, disable=as_json) as prog:
            task = prog.add_task("", total=spec.days, rows=0)
            summary = run(spec, base, out_dir, scale=scale, seed=seed, workers=workers,
                          on_progress=lambda d, _t, rows: prog.update(task, completed=d, rows=rows))
        if as_json:
            sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
            return
        t = Table(title=f"world {summary['name']} · seed {summary['seed']} · scale {summary['scale']}",
                  title_justify="left")
        for c in ("group", "role", "accounts", "exchanges"):
            t.add_column(c, justify="right" if c in ("accounts", "exchanges") else "left")
        for g in summary["groups"]:
            t.add_row(g["key"], g["role"], f"{g['accounts']:,}", f"{g['exchanges']:,}")
        out.print(t)
        for g in summary["groups"]:
            if g["accounts_at_rate_cap"]:
                console.print(f"[yellow]warning:[/] {g['key']}: {g['accounts_at_rate_cap']:,} accounts would exceed "
                              "limit_fraction × rpd_limit, so the group sends fewer exchanges than configured; "
                              "add accounts or raise identity.rpd_limit")
        out.print(f"wrote {summary['exchanges']:,} exchanges, {summary['accounts']:,} accounts to {out_dir} in "
                  f"{summary['seconds']}s ({summary['exchanges_per_second'] or 0:,}/s); labels in "
                  f"{out_dir / 'labels.parquet'}")

    @app.command("world-schema")
    def world_schema(out_path: Path = typer.Option(None, "--out", "-o", help="Write here instead of stdout.")) -> None:
        """Print the JSON schema of world config files (for editors and CI validation)."""
        from distillguard.sim.config import json_schema

        text = json.dumps(json_schema(), indent=2) + "\n"
        if out_path:
            out_path.write_text(text)
        else:
            sys.stdout.write(text)
