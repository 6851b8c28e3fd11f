"""`distillguard classify` and `distillguard signals`: per-exchange signals from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import typer

from distillguard.errors import DistillguardError

signals_app = typer.Typer(name="signals", help="Per-exchange signals: score a store, list detectors, evaluate.",
                          no_args_is_help=False, invoke_without_command=True)

#: Prompts scored per call in `classify` (bounded memory on any input size).
CLASSIFY_CHUNK = 8192


def _read_prompts(path: Path, bad: list):
    """(line number, text, system) per JSONL line. A bad line does not stop the run: its location and reason go
    to ``bad`` (and into the output as an error record in input order), so one stray line in a million-prompt set
    costs that line only."""
    opener = sys.stdin.buffer if str(path) == "-" else None
    f = opener or path.open("rb")
    try:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                bad.append((n, f"not JSON ({e})"))
                yield n, None, None, None
                continue
            system = obj.get("system") if isinstance(obj, dict) else None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                bad.append((n, 'each line must be a JSON object with a string "text"'))
                yield n, None, None, None
            elif system is not None and not isinstance(system, str):
                bad.append((n, '"system" must be a string when present'))
                yield n, None, None, None
            else:
                yield n, obj, obj["text"], system
    finally:
        if opener is None:
            f.close()


def classify_file(path: Path, out, detectors=None, bad: list | None = None) -> int:
    """Score every prompt in a JSONL file; writes one JSON object per input line, in input order (a bad line as
    ``{"line": n, "error": reason}``). Returns the number of prompts scored; bad lines are appended to ``bad``."""
    from distillguard.signals.score import score_texts

    bad = [] if bad is None else bad

    def flush(rows) -> None:
        good = [r for r in rows if r[1] is not None]
        res = score_texts([r[2] for r in good], [r[3] for r in good], detectors=detectors) if good else {}
        names = [k for k in res if k not in ("template_key", "task_item_key")]
        reasons = dict(bad)
        i = -1
        for n, obj, _t, _s in rows:
            if obj is None:
                out.write(orjson.dumps({"line": n, "error": reasons.get(n, "bad line")}) + b"\n")
                continue
            i += 1
            rec = {"line": n}
            if "id" in obj:
                rec["id"] = obj["id"]
            rec.update({k: round(float(res[k][i]), 4) for k in names})
            rec["template_key"] = res["template_key"][i]
            rec["task_item_key"] = res["task_item_key"][i]
            out.write(orjson.dumps(rec) + b"\n")

    count = 0
    chunk = []
    for row in _read_prompts(path, bad):
        chunk.append(row)
        if len(chunk) >= CLASSIFY_CHUNK:
            flush(chunk)
            count += sum(r[1] is not None for r in chunk)
            chunk = []
    if chunk:
        flush(chunk)
        count += sum(r[1] is not None for r in chunk)
    return count


def register(app: typer.Typer) -> None:
    from distillguard.cli import console, out

    @app.command()
    def classify(prompts: Path = typer.Argument(..., help="JSONL: one object per line with \"text\" (optional \"system\", \"id\"); - for stdin."),
                 out_path: Path = typer.Option(None, "--out", "-o", help="Write scores here instead of stdout."),
                 detector: list[str] = typer.Option(None, "--detector", "-d", help="Only these detectors (repeatable).")) -> None:
        """Score any prompt set with every per-exchange signal: one JSON line of scores per prompt."""
        if str(prompts) != "-" and not prompts.is_file():
            raise DistillguardError(f"no such file: {prompts}")
        from distillguard.cli import EXIT_QUARANTINED
        from distillguard.ui import plain

        dets = list(detector) if detector else None
        bad: list = []
        if out_path is None:
            n = classify_file(prompts, sys.stdout.buffer, dets, bad)
            sys.stdout.flush()
        else:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = out_path.with_name(f".{out_path.name}.tmp")
            with tmp.open("wb") as f:
                n = classify_file(prompts, f, dets, bad)
            tmp.replace(out_path)
            console.print(f"classified {n:,} prompts → {plain(out_path)}")
        if bad:
            first_line, first_reason = bad[0]
            console.print(f"{len(bad):,} bad line(s) skipped (each an \"error\" record in the output); first: "
                          f"{plain(prompts)}:{first_line}: {plain(first_reason)}")
            raise typer.Exit(EXIT_QUARANTINED)

    @signals_app.callback()
    def signals(ctx: typer.Context,
                store: str = typer.Option(None, "--store", "-s", help="Store directory or URL to score."),
                batch_size: int = typer.Option(32768, help="Exchanges per batch (memory bound)."),
                where: str = typer.Option(None, help="SQL filter over exchange columns."),
                workers: int = typer.Option(1, "--workers", "-w", min=1, help="Scoring processes (the read and write stay in one)."),
                as_json: bool = typer.Option(False, "--json", help="Print a JSON summary.")) -> None:
        """Score every exchange in a store and write table exchange_signals."""
        if ctx.invoked_subcommand is not None:
            return
        if store is None:
            raise DistillguardError("give --store DIR (or a subcommand: list, eval)")
        import time

        from distillguard.signals.score import TABLE, run_signals
        from distillguard.store import Store

        st = Store(store)
        t0 = time.perf_counter()
        n = run_signals(st, batch_size=batch_size, where=where, progress=not as_json, console=console, workers=workers)
        dt = time.perf_counter() - t0
        if as_json:
            sys.stdout.write(orjson.dumps({"table": TABLE, "rows": n, "seconds": round(dt, 3)}).decode() + "\n")
        else:
            out.print(f"scored {n:,} exchanges in {dt:.1f}s ({n / max(dt, 1e-9):,.0f}/s) → table {TABLE}")

    @signals_app.command("list")
    def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Registered detectors: name, version, what each sees."""
        from rich.table import Table

        from distillguard.signals.registry import detectors

        dets = detectors()
        if as_json:
            rows = [{"name": d.name, "version": d.version, "column": f"sig_{d.name}", "module": type(d).__module__,
                     "description": d.description()} for d in dets]
            sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
            return
        t = Table(title="per-exchange detectors", title_justify="left")
        for c in ("name", "version", "what it sees"):
            t.add_column(c)
        for d in dets:
            t.add_row(d.name, d.version, d.summary())
        out.print(t)

    @signals_app.command("eval")
    def eval_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Held-out quality: phrasings never trained on, and the independent per-prompt evaluation set."""
        from rich.table import Table

        from distillguard.signals import evalset
        from distillguard.signals.evaluate import heldout_report

        rep = heldout_report()
        sets = {name: evalset.report(eval_set=name) for name in evalset.SETS}
        ind = sets["v1"]
        if as_json:
            sys.stdout.write(orjson.dumps({**rep, "independent": ind, "independent_v2": sets["v2"],
                                           "independent_sets": sets},
                                          option=orjson.OPT_INDENT_2).decode() + "\n")
            return
        t = Table(title="held-out phrasings (threshold 0.5)", title_justify="left")
        for c in ("tactic", "positives", "negatives", "AUC", "precision", "recall", "FPR", "hard neg. ≥0.5"):
            t.add_column(c, justify="left" if c == "tactic" else "right")
        for r in rep["tactics"]:
            t.add_row(r["tactic"], str(r["positives"]), str(r["negatives"]), f"{r['auc']:.3f}", f"{r['precision']:.3f}",
                      f"{r['recall']:.3f}", f"{r['fpr']:.4f}", f"{r['hard_negatives_flagged']}/{r['hard_negatives']}")
        out.print(t)
        t = Table(title="independent evaluation set, per prompt (any attack signal ≥ 0.5)", title_justify="left")
        for c in ("family", "tactic", "prompts", "recall (own signal)", "recall (any attack signal)"):
            t.add_column(c, justify="left" if c in ("family", "tactic") else "right")
        for f in ind["families"]:
            t.add_row(f["family"], f["tactic"], str(f["n"]), f"{f['recall_own']:.3f}", f"{f['recall_any']:.3f}")
        out.print(t)
        for name, r in sets.items():
            langs = ", ".join(f"{k} {v['recall']:.2f}" for k, v in r["by_language"].items())
            out.print(f"set {name}: attack prompts {r['attack_prompts']}: recall {r['recall_any']:.3f} ({langs}); hard "
                      f"negatives {r['hard_negative_prompts']}: FPR {r['hard_negative_fpr']:.4f}; benign (simulator "
                      f"corpora) {r['benign_prompts']:,}: FPR {r['benign_fpr']:.4f}")

    app.add_typer(signals_app)
