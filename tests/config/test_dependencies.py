"""Dependencies that are used, or gone: pyproject.toml and the package's imports agree."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).parents[2]
#: Declared for a package that imports them itself (starlette's sessions and forms), never by distillguard.
# s3fs is loaded by fsspec for s3:// URLs (fsspec.filesystem("s3")), never imported by name.
# pandas: PySpark's mapInArrow requires it (spark extra) though distillguard never imports it.
INDIRECT = {"itsdangerous", "python-multipart", "s3fs", "pandas"}
#: Imported directly but installed by a declared package that pins it (pydantic's core; LiteLLM's proxy server).
PROVIDED_BY = {"pydantic-core": "pydantic", "fastapi": "litellm"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, str]:
    """Normalised distribution name -> where it is declared (core or extra), without the dev extra."""
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {_norm(re.split(r"[\[<>=!~ ]", d)[0]): "core" for d in proj["dependencies"]}
    for extra, deps in proj["optional-dependencies"].items():
        if extra != "dev":
            out.update({_norm(re.split(r"[\[<>=!~ ]", d)[0]): extra for d in deps if _norm(
                re.split(r"[\[<>=!~ ]", d)[0]) not in out})
    return out


def _imported() -> set[str]:
    """Distributions providing the top-level modules distillguard imports (stdlib and itself excluded);
    ``distillguard/testing`` (helpers for tests and benchmarks) may use the dev extra and is left out."""
    mods = set()
    for f in (ROOT / "distillguard").rglob("*.py"):
        if "testing" in f.relative_to(ROOT / "distillguard").parts[:1]:
            continue
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    mods -= set(sys.stdlib_module_names) | {"distillguard", "__future__"}
    dists = packages_distributions()
    return {_norm(d) for m in mods for d in dists.get(m, [m])}


def test_every_import_is_declared_and_every_declared_package_imported():
    declared = _declared()
    imported = {PROVIDED_BY.get(d, d) for d in _imported()}
    assert not imported - set(declared), f"imported but not declared: {sorted(imported - set(declared))}"
    unused = set(declared) - imported - INDIRECT
    assert not unused, f"declared but never imported: {sorted(unused)}"
