"""Run fault-injection scenarios and print a table per area (recorder: sent / accepted / recorded).

    PYTHONPATH=. python bench/chaos/run.py --scenario all [--json out.json] [--work /tmp/chaos]
    PYTHONPATH=. python bench/chaos/run.py --scenario poison --scenario disk_full
    PYTHONPATH=. python bench/chaos/run.py --list

An area is a module ``bench/chaos/<area>.py`` with a ``SCENARIOS`` dict of plain functions; every such
module is found, so adding an area edits nothing here. A scenario function gets the area's context: what
the module's optional ``setup(work: Path, code: Path)`` returns (released with ``teardown(ctx)``), else
the area's own work directory. It returns a dict (one table row) or an object with ``row()``; a row's
``ok`` (default true) is whether it met its target, ``notes`` (a dict) is printed under the table.
``--code DIR`` runs the processes under test from another checkout (e.g. the commit before a fix) with
the same harness, to measure the "before" side. Exit status 1 if any scenario misses its target.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_NOT_AREAS = {"run", "common"}


def registry() -> dict[str, tuple[object, object]]:
    """scenario name -> (area module, function), over every area module in this directory."""
    out: dict = {}
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
        if info.name in _NOT_AREAS or info.name.startswith("_"):
            continue
        try:
            mod = importlib.import_module(f"bench.chaos.{info.name}")
        except ImportError as e:  # one area's missing dependency does not hide the others
            print(f"area {info.name} not loaded: {e}", file=sys.stderr)
            continue
        for name, fn in getattr(mod, "SCENARIOS", {}).items():
            if name in out:
                raise SystemExit(f"scenario {name!r} registered twice (bench/chaos/{info.name}.py)")
            out[name] = (mod, fn)
    return out


def table(rows: list[dict]) -> str:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c != "notes" and c not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    import orjson

    reg = registry()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", action="append", help="name, or 'all' (repeatable)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--work", type=Path, help="work directory (default: a new temp dir)")
    ap.add_argument("--code", type=Path, default=ROOT, help="checkout the processes under test run from")
    a = ap.parse_args(argv)
    if a.list or not a.scenario:
        for name, (mod, fn) in reg.items():
            area = mod.__name__.rsplit(".", 1)[1]
            print(f"{area:10} {name:18} {(fn.__doc__ or '').strip().splitlines()[0] if fn.__doc__ else ''}")
        return 0
    names = list(reg) if "all" in a.scenario else a.scenario
    unknown = [n for n in names if n not in reg]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return 2
    work = a.work or Path(tempfile.mkdtemp(prefix="chaos-"))
    by_area: dict[str, list[dict]] = {}
    contexts: dict[object, object] = {}
    try:
        for name in names:
            mod, fn = reg[name]
            area = mod.__name__.rsplit(".", 1)[1]
            if mod not in contexts:
                (work / area).mkdir(parents=True, exist_ok=True)
                setup = getattr(mod, "setup", None)
                contexts[mod] = setup(work / area, a.code) if setup else work / area
            print(f"-- {area}/{name}", file=sys.stderr, flush=True)
            res = fn(contexts[mod])
            row = res.row() if hasattr(res, "row") else dict(res)
            row.setdefault("scenario", name)
            by_area.setdefault(area, []).append(row)
            print(f"   {row}", file=sys.stderr, flush=True)
    finally:
        for mod, ctx in contexts.items():
            teardown = getattr(mod, "teardown", None)
            if teardown:
                teardown(ctx)
    for area, rows in by_area.items():
        print(f"\n### {area}\n")
        print(table(rows))
        for r in rows:
            if r.get("notes"):
                print(f"- {r['scenario']}: {orjson.dumps(r['notes'], default=str).decode()}")
    if a.json:
        a.json.write_bytes(orjson.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                         "code": str(a.code), "work": str(work), "areas": by_area},
                                        option=orjson.OPT_INDENT_2, default=str))
    return 0 if all(r.get("ok", True) for rows in by_area.values() for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
