"""Render docs/schema.md from the Arrow schemas, so the reference cannot drift from the code."""

from __future__ import annotations

import sys
from pathlib import Path

from distillguard.events.schema import ACCOUNT_SCHEMA, EXCHANGE_SCHEMA, SCHEMA_VERSION, field_docs


def render() -> str:
    lines = [f"# Record schema (version {SCHEMA_VERSION})", "",
             "Generated from `distillguard/events/schema.py` by `python -m distillguard.events.docgen`; "
             "a test fails when this page and the code disagree.", "",
             "Required fields are marked **required**; every other field is nullable because some providers "
             "do not have it.", ""]
    for title, schema in (("exchanges", EXCHANGE_SCHEMA), ("accounts", ACCOUNT_SCHEMA)):
        lines += [f"## `{title}`", "", "| field | type | meaning |", "|---|---|---|"]
        for (name, typ, doc), f in zip(field_docs(schema), schema, strict=True):
            req = " **required**" if not f.nullable else ""
            lines.append(f"| `{name}`{req} | `{typ}` | {doc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[2] / "docs" / "schema.md"
    out.write_text(render())
    print(f"wrote {out}")
