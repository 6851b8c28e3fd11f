"""`ingest --map FILE`: a mapping file turns a custom log (JSONL, CSV, Parquet, warehouse JSON) into exchanges."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.errors import ConfigError
from distillguard.ingest import ingest_paths
from distillguard.ingest.mapping import load_mapping
from tests.ingest.helpers import quarantine_of, rows_by_id

MAPS = Path(__file__).parents[2] / "examples" / "maps"


def _map(tmp_path: Path, spec: dict) -> str:
    p = tmp_path / "m.yaml"
    p.write_text(yaml.safe_dump(spec))
    return load_mapping(p).name


def test_flat_gateway_example(store):
    name = load_mapping(MAPS / "flat_gateway.yaml").name
    res = ingest_paths(store, [MAPS / "flat_gateway.jsonl"], fmt=name)
    rows = rows_by_id(store)
    assert res.records == 3 and res.quarantined == 0
    r = rows["req-0001"]
    assert r["account_id"] == "acct-481" and r["api_key_id"] == "key-481-a"
    assert r["ts"] == datetime(2026, 3, 2, 10, 15, 3, 120000, tzinfo=UTC)
    assert r["client_ip"] == "203.0.113.7" and r["client_asn"] == 64500
    assert r["max_tokens"] == 512 and r["system_prompt"] == "You are a helpful assistant."
    assert r["prompt"].startswith("Summarise") and r["output_tokens"] == 190
    assert r["endpoint"] == "chat.completions" and r["source_format"] == "map:flat_gateway"
    assert r["extra"] == {"region": "eu-west"}  # keep_unmapped
    assert rows["req-0002"]["ts"] == datetime.fromtimestamp(1772446504, tz=UTC)  # unix_ms
    assert rows["req-0003"]["client_asn"] == 64511  # ASN written as text


def test_warehouse_export_bigquery_and_snowflake(store):
    name = load_mapping(MAPS / "bigquery_export.yaml").name
    res = ingest_paths(store, [MAPS / "bigquery_export.jsonl"], fmt=name)
    rows = rows_by_id(store)
    assert res.records == 3, quarantine_of(res)
    bq = rows["bq-1"]
    assert bq["ts"] == datetime(2026, 3, 4, 8, 0, 1, 250000, tzinfo=UTC)
    assert bq["system_prompt"] == "Answer tersely." and bq["prompt"].startswith("What is the boiling")
    assert bq["response_text"] == "About 78.4 °C." and bq["temperature"] == pytest.approx(0.2)
    assert rows["bq-2"]["account_id"] == "org-3"  # the second path is the fallback
    sf = rows["sf-1"]  # upper-case columns, VARIANT columns as JSON text
    assert sf["account_id"] == "acct-77" and sf["max_tokens"] == 32 and sf["client_asn"] == 64499


def test_csv_bad_rows_quarantined_one_by_one(store, tmp_path):
    name = _map(tmp_path, {"name": "csvlog", "timestamp_formats": ["%d/%m/%Y %H:%M"],
                           "fields": {"account_id": "user", "ts": "when", "prompt": "text",
                                      "max_tokens": "max_tokens", "tools_offered": {"path": "tools", "split": "|"}}})
    src = tmp_path / "log.csv"
    src.write_text("user,when,text,max_tokens,tools\n"
                   "u1,02/03/2026 10:00,hello there,100,search|calc\n"
                   "u2,yesterday,bad time,100,\n"
                   ",02/03/2026 10:01,no account,5,\n"
                   "u3,02/03/2026 10:02,\"quoted, with comma\",lots,\n"
                   "u4,02/03/2026 10:03,too,many,cells,here\n"
                   "u5,02/03/2026 10:04,fine,7,\n")
    res = ingest_paths(store, [src], fmt=name)
    rows = list(rows_by_id(store).values())
    assert sorted(r["account_id"] for r in rows) == ["u1", "u5"]
    u1 = next(r for r in rows if r["account_id"] == "u1")
    assert u1["tools_offered"] == ["search", "calc"] and u1["ts"] == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    q = {e["line"]: e["reason"] for e in quarantine_of(res)}
    assert set(q) == {3, 4, 5, 6}
    assert "ts" in q[3] and "yesterday" in q[3]
    assert "account_id" in q[4]
    assert "max_tokens" in q[5]
    assert "cells" in q[6]


def test_parquet(store, tmp_path):
    name = _map(tmp_path, {"name": "pq", "timestamp_formats": ["unix_s"],
                           "fields": {"account_id": "acct", "ts": "t", "prompt": "q.text"}})
    src = tmp_path / "log.parquet"
    pq.write_table(pa.table({"acct": ["a", "b", None], "t": [1772446504, 1772446505, 1772446506],
                             "q": [{"text": "one"}, {"text": "two"}, {"text": "three"}]}), src)
    res = ingest_paths(store, [src], fmt=name)
    rows = rows_by_id(store)
    assert sorted(r["prompt"] for r in rows.values()) == ["one", "two"]
    assert [e["line"] for e in quarantine_of(res)] == [3]


@pytest.mark.parametrize(("spec", "needle"), [
    ({"fields": {"account_id": "a", "ts": "t", "promt": "p"}}, "fields.promt"),
    ({"fields": {"account_id": "a"}}, "'ts'"),
    ({"fields": {"account_id": "a", "ts": "t"}, "constants": {"endpoit": "x"}}, "constants.endpoit"),
    ({"fields": {"account_id": "a", "ts": {"path": "t", "fromat": "iso"}}}, "fields.ts"),
    ({"fields": {"account_id": "a..b", "ts": "t"}}, "fields.account_id"),
    ({"fields": {"account_id": "a", "ts": "t"}, "format": "xml"}, "format"),
    ({"fields": {"account_id": "a", "ts": "t"}, "colour": 1}, "colour"),
])
def test_config_errors_name_the_key(tmp_path, spec, needle):
    with pytest.raises(ConfigError) as e:
        _map(tmp_path, spec)
    assert needle in str(e.value)


def test_cli_map_option(tmp_path):
    r = CliRunner().invoke(app, ["ingest", str(MAPS / "flat_gateway.jsonl"), "--map", str(MAPS / "flat_gateway.yaml"),
                                 "--store", str(tmp_path / "s"), "--json"])
    assert r.exit_code == 0, r.output
    assert '"ingested": 3' in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("fields: {account_id: a, ts: t, nope: x}\n")
    r = subprocess.run([sys.executable, "-m", "distillguard", "ingest", str(MAPS / "flat_gateway.jsonl"),
                        "--map", str(bad), "--store", str(tmp_path / "s2")], capture_output=True, text=True)
    assert r.returncode == 2 and "fields.nope" in r.stdout + r.stderr


def test_grown_file_resumes_and_rerun_is_idempotent(store, tmp_path):
    name = _map(tmp_path, {"name": "grow", "fields": {"account_id": "a", "ts": "t", "prompt": "p"}})
    src = tmp_path / "log.jsonl"
    src.write_text('{"a": "x", "t": 1772446504, "p": "one"}\n{"a": "y", "t": 1772446505, "p": "two"}\n')
    assert ingest_paths(store, [src], fmt=name).records == 2
    with open(src, "a") as fh:
        fh.write('{"a": "z", "t": 1772446506, "p": "three"}\n')
    assert ingest_paths(store, [src], fmt=name).records == 1  # only the new line
    assert ingest_paths(store, [src], fmt=name).records == 0  # unchanged: skipped
    assert sorted(r["prompt"] for r in rows_by_id(store).values()) == ["one", "three", "two"]
