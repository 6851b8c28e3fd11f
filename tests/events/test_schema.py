from dataclasses import fields

from distillguard.events import ACCOUNT_SCHEMA, EXCHANGE_SCHEMA, Account, Exchange
from distillguard.events.schema import field_docs


def test_typed_views_match_arrow_schemas():
    assert [f.name for f in fields(Exchange)] == EXCHANGE_SCHEMA.names
    assert [f.name for f in fields(Account)] == ACCOUNT_SCHEMA.names


def test_every_field_is_documented():
    for schema in (EXCHANGE_SCHEMA, ACCOUNT_SCHEMA):
        for name, _typ, doc in field_docs(schema):
            assert len(doc) > 10, f"{name} lacks a doc string"


def test_only_identity_fields_are_required():
    required = [f.name for f in EXCHANGE_SCHEMA if not f.nullable]
    assert required == ["exchange_id", "ts", "account_id"]


def test_schema_doc_is_current():
    """docs/schema.md is generated from the schema; regenerate with `python -m distillguard.events.docgen`."""
    from pathlib import Path

    from distillguard.events.docgen import render

    doc = Path(__file__).parents[2] / "docs" / "schema.md"
    assert doc.read_text() == render()
