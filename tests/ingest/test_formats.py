"""Across formats: auto-detection, one store for everything, and one conversation read the same way."""

import json
import shutil

import orjson
import pytest
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.ingest import ingest_paths
from distillguard.ingest.registry import all_readers
from distillguard.store.stats import store_stats
from tests.ingest.helpers import DATA, quarantine_of, rows_by_id, write_lines

EXPECTED_FORMAT = {
    "native_exchanges.jsonl": "native",
    "accounts.jsonl": "accounts",
    "openai_chat.jsonl": "openai",
    "openai_responses.jsonl": "openai",
    "openai_batch_6a1f0c_batch.json": "openai",
    "openai_batch_6a1f0c_input.jsonl": "openai",
    "openai_batch_6a1f0c_output.jsonl": "openai",
    "anthropic_messages.jsonl": "anthropic",
    "anthropic_msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d_batch.json": "anthropic",
    "anthropic_msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d_requests.jsonl": "anthropic",
    "anthropic_msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d_results.jsonl": "anthropic",
    "litellm_payloads.jsonl": "litellm",
    "otel_genai.jsonl": "otel",
    "malformed.jsonl": "openai",
}


def test_every_builtin_reader_is_registered():
    assert {"native", "accounts", "openai", "anthropic", "litellm", "otel"} <= set(all_readers())


def test_auto_detection_picks_the_right_reader_per_file(store):
    assert {p.name for p in DATA.glob("*.json*")} == set(EXPECTED_FORMAT)
    res = ingest_paths(store, [DATA])
    got = {f.path.rsplit("/", 1)[-1]: f.format for f in res.files}
    assert got == EXPECTED_FORMAT


def test_all_formats_share_one_store_and_every_record_is_accounted_for(store):
    res = ingest_paths(store, [DATA])
    for f in res.files:
        assert f.lines == f.stored_lines + f.empty + f.quarantined_lines, f.path
    by_fmt = {r["source_format"]: r["exchanges"] for r in store_stats(store)["by_source_format"]}
    assert by_fmt == {"openai": 15, "anthropic": 9, "litellm": 3, "otel": 3, "native": 2}
    assert res.accounts == 8
    malformed = next(f for f in res.files if f.path.endswith("malformed.jsonl"))
    assert (malformed.stored_lines, malformed.quarantined_lines) == (2, 7)
    reasons = " | ".join(q["reason"] for q in quarantine_of(res))
    for expected in ("invalid JSON", "no account identity", "input_tokens: not an integer",
                     "unparseable timestamp", "expected a JSON object", "not a scalar"):
        assert expected in reasons
    # Joined on account: the accounts file describes the exchange authors.
    con = store.connect()
    joined = con.sql("SELECT count(*) FROM exchanges e JOIN accounts a USING (account_id)").fetchall()[0][0]
    assert joined >= 20
    # Batch results take their time from their batch object, so no exchange is dated by a file's mtime.
    assert con.sql("SELECT max(ts) FROM exchanges").fetchall()[0][0].isoformat() == "2026-02-03T17:00:00+00:00"


def test_cli_ingests_the_demo_data(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["ingest", str(DATA), "--store", str(tmp_path / "s"), "--json"])
    assert res.exit_code == 3, res.output  # the malformed sample is quarantined on purpose
    out = orjson.loads(res.stdout)
    assert out["ingested"] == 32 and out["accounts"] == 8 and out["quarantined"] == 7
    again = runner.invoke(app, ["ingest", str(DATA), "--store", str(tmp_path / "s"), "--json"])
    assert orjson.loads(again.stdout)["ingested"] == 0  # idempotent


# --- one conversation, five formats --------------------------------------------------------------------

SYSTEM = "You are terse."
PROMPT = "Why is the sky blue?"
ANSWER = "Rayleigh scattering favours short wavelengths."
THOUGHT = "Consider scattering cross-section versus wavelength."
TS_ISO, TS_EPOCH = "2026-02-05T08:30:00.250Z", 1770280200.25


def _conversation() -> dict[str, dict]:
    tools_oai = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    meta = {"account_id": "acct-same", "client_ip": "192.0.2.44"}
    chat_req = {"model": "m-1", "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}],
                "max_tokens": 300, "temperature": 0.5, "tools": tools_oai}
    chat_resp = {"id": "x-openai", "object": "chat.completion", "created": int(TS_EPOCH), "model": "m-1",
                 "choices": [{"message": {"role": "assistant", "content": ANSWER, "reasoning_content": THOUGHT},
                              "finish_reason": "stop"}], "usage": {"prompt_tokens": 20, "completion_tokens": 9}}
    openai = {"timestamp": TS_ISO, "request": chat_req, "response": chat_resp, "metadata": meta}
    anthropic = {"timestamp": TS_ISO, "metadata": meta,
                 "request": {"model": "m-1", "system": SYSTEM, "max_tokens": 300, "temperature": 0.5,
                             "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
                             "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]},
                 "response": {"id": "x-anthropic", "type": "message", "model": "m-1",
                              "content": [{"type": "thinking", "thinking": THOUGHT, "signature": "s"},
                                          {"type": "text", "text": ANSWER}],
                              "stop_reason": "end_turn", "usage": {"input_tokens": 20, "output_tokens": 9}}}
    litellm = {"id": "x-litellm", "call_type": "completion", "startTime": TS_EPOCH, "endTime": TS_EPOCH + 1,
               "model": "m-1", "model_group": "m-1", "status": "success",
               "metadata": {"user_api_key_user_id": "acct-same", "requester_ip_address": "192.0.2.44"},
               "messages": chat_req["messages"], "response": {**chat_resp, "id": "x-litellm"},
               "model_parameters": {"max_tokens": 300, "temperature": 0.5, "tools": tools_oai},
               "prompt_tokens": 20, "completion_tokens": 9}

    def kv(k, v):
        val = {"intValue": str(v)} if isinstance(v, int) else (
            {"doubleValue": v} if isinstance(v, float) else {"stringValue": v})
        return {"key": k, "value": val}

    span = {"traceId": "t1", "spanId": "s1", "name": "chat m-1", "startTimeUnixNano": str(int(TS_EPOCH * 1000) * 10**6),
            "endTimeUnixNano": str(int(TS_EPOCH * 1000 + 1000) * 10**6),
            "attributes": [kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "openai"),
                           kv("gen_ai.request.model", "m-1"), kv("gen_ai.response.id", "x-otel"),
                           kv("user.id", "acct-same"), kv("client.address", "192.0.2.44"),
                           kv("gen_ai.request.max_tokens", 300), kv("gen_ai.request.temperature", 0.5),
                           kv("gen_ai.usage.input_tokens", 20), kv("gen_ai.usage.output_tokens", 9),
                           kv("gen_ai.tool.definitions", json.dumps([{"type": "function", "name": "lookup"}])),
                           kv("gen_ai.system_instructions", json.dumps([{"type": "text", "content": SYSTEM}])),
                           kv("gen_ai.input.messages", json.dumps([{"role": "user", "parts": [
                               {"type": "text", "content": PROMPT}]}])),
                           kv("gen_ai.output.messages", json.dumps([{"role": "assistant", "finish_reason": "stop", "parts": [
                               {"type": "reasoning", "content": THOUGHT}, {"type": "text", "content": ANSWER}]}]))]}
    otel = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    native = {"exchange_id": "x-native", "ts": TS_ISO, "account_id": "acct-same", "model": "m-1",
              "client_ip": "192.0.2.44", "system_prompt": SYSTEM, "turns": [{"role": "user", "text": PROMPT}],
              "tools_offered": ["lookup"], "max_tokens": 300, "temperature": 0.5, "response_text": ANSWER,
              "reasoning_text": THOUGHT, "input_tokens": 20, "output_tokens": 9}
    return {"openai": openai, "anthropic": anthropic, "litellm": litellm, "otel": otel, "native": native}


CORE = ("account_id", "ts", "model", "client_ip", "system_prompt", "turns", "prompt", "n_turns", "tools_offered",
        "max_tokens", "temperature", "response_text", "response_chars", "reasoning_text", "reasoning_chars",
        "input_tokens", "output_tokens")


def test_same_conversation_in_every_format_gives_the_same_core_fields(store, tmp_path):
    convo = _conversation()
    for name, rec in convo.items():
        write_lines(tmp_path / f"{name}.jsonl", [rec])
    res = ingest_paths(store, [tmp_path])  # the store lives under tmp_path too: it must not be read as input
    assert {f.format for f in res.files} == set(convo) and res.quarantined == 0
    rows = rows_by_id(store)
    assert set(rows) == {f"x-{n}" for n in convo}
    reference = {k: rows["x-native"][k] for k in CORE}
    assert reference["prompt"] == PROMPT and reference["reasoning_chars"] == len(THOUGHT)
    for name in convo:
        got = {k: rows[f"x-{name}"][k] for k in CORE}
        assert got == reference, name
        assert rows[f"x-{name}"]["source_format"] == name


@pytest.mark.parametrize("fmt", ["openai", "anthropic", "litellm", "otel"])
def test_explicit_format_on_a_foreign_file_quarantines_instead_of_guessing(store, tmp_path, fmt):
    other = "native_exchanges.jsonl"
    shutil.copy(DATA / other, tmp_path / other)
    res = ingest_paths(store, [tmp_path / other], fmt=fmt)
    f = res.files[0]
    assert f.lines == 2 and f.lines == f.stored_lines + f.empty + f.quarantined_lines
    assert res.records == 0


def test_unrecognised_file_is_reported_as_quarantined(store, tmp_path):
    # Found by the property tests: such a file's quarantine used to be written but not counted.
    p = tmp_path / "junk.jsonl"
    p.write_bytes(b"\x00\nnot json either\n\n")
    res = ingest_paths(store, [p])
    f = res.files[0]
    assert f.format is None and (f.lines, f.quarantined, f.quarantined_lines) == (2, 2, 2)
    assert [q["line"] for q in quarantine_of(res)] == [1, 2]


def test_gzipped_logs_and_json_array_documents(store, tmp_path):
    import gzip

    with gzip.open(tmp_path / "chat.jsonl.gz", "wb") as fh:
        fh.write((DATA / "openai_chat.jsonl").read_bytes())
    records = [orjson.loads(x) for x in (DATA / "litellm_payloads.jsonl").read_bytes().splitlines()]
    (tmp_path / "litellm.json").write_bytes(orjson.dumps(records, option=orjson.OPT_INDENT_2))
    res = ingest_paths(store, [tmp_path / "chat.jsonl.gz", tmp_path / "litellm.json"])
    assert [(f.format, f.records, f.lines) for f in res.files] == [("openai", 7, 7), ("litellm", 3, 3)]
    assert res.quarantined == 0


def test_utf8_byte_order_mark_is_ignored(store, tmp_path):
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + (DATA / "anthropic_messages.jsonl").read_bytes())
    res = ingest_paths(store, [p])
    assert res.files[0].format == "anthropic" and res.records == 6 and res.quarantined == 0
