"""Generate the configuration reference of docs/simulator.md and docs/world.schema.json from the models.

The reference is generated so it cannot drift from the validator: a test fails when the committed
page or schema differ from what this module produces. Run ``python -m distillguard.sim.docgen``.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from distillguard.sim.config import WorldSpec
from distillguard.sim.content import ContentFile

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "simulator.md"
SCHEMA = ROOT / "docs" / "world.schema.json"
BEGIN = "<!-- BEGIN GENERATED REFERENCE -->"
END = "<!-- END GENERATED REFERENCE -->"


def _models_in(tp) -> list[type[BaseModel]]:
    out = []
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    for arg in typing.get_args(tp):
        out.extend(_models_in(arg))
    return out


def _type_name(tp) -> str:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp.__name__
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(tp))}]"
    return getattr(tp, "__name__", str(tp))


def _default(f) -> str:
    if f.default is PydanticUndefined and f.default_factory is None:
        return "**required**"
    v = f.default_factory() if f.default_factory is not None else f.default
    if isinstance(v, BaseModel):
        return "(defaults below)"
    return f"`{json.dumps(v, default=str)}`"


def _table(model: type[BaseModel]) -> tuple[list[str], list[tuple[str, type[BaseModel]]]]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    subs = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        rows.append(f"| `{name}` | {_type_name(ann)} | {_default(f)} | {(f.description or '').replace('|', '/')} |")
        origin = typing.get_origin(ann)
        for sub in _models_in(ann):
            where = f"{name}[]" if origin is list else (f"{name}.<name>" if origin is dict else name)
            subs.append((where, sub))
    return rows, subs


def _walk(root: type[BaseModel], title: str) -> list[str]:
    """One table per model, in the order first met, each saying where it is used."""
    order: list[type[BaseModel]] = [root]
    used: dict[type[BaseModel], list[str]] = {root: [title]}
    i = 0
    tables: dict[type[BaseModel], list[str]] = {}
    while i < len(order):
        m = order[i]
        rows, subs = _table(m)
        tables[m] = rows
        for where, sub in subs:
            paths = [f"{u}.{where}" if u != title else where for u in used[m]]
            if sub not in used:
                used[sub] = []
                order.append(sub)
            used[sub].extend(p for p in paths if p not in used[sub])
        i += 1
    out = []
    for m in order:
        out += [f"#### `{m.__name__}`", "", "Used at: " + ", ".join(f"`{u}`" for u in used[m][:6])
                + (" …" if len(used[m]) > 6 else ""), ""]
        out += tables[m] + [""]
    return out


def reference() -> str:
    lines = ["### World file (`--config`)", ""] + _walk(WorldSpec, "(top level)")
    lines += ["### Content file (`content_files`)", ""] + _walk(ContentFile, "(content file)")
    return "\n".join(lines)


def render_doc(text: str) -> str:
    a, b = text.index(BEGIN), text.index(END)
    return text[: a + len(BEGIN)] + "\n" + reference() + text[b:]


def schema_text() -> str:
    return json.dumps(WorldSpec.model_json_schema(), indent=2) + "\n"


def main() -> None:
    DOC.write_text(render_doc(DOC.read_text()))
    SCHEMA.write_text(schema_text())
    print(f"wrote {DOC} and {SCHEMA}")


if __name__ == "__main__":
    main()
