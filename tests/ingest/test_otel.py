import json
from datetime import UTC, datetime

import orjson
import pytest

from distillguard.ingest import ingest_paths
from distillguard.ingest.otel import any_value
from tests.ingest.helpers import DATA, quarantine_of, rows_by_id, sample, write_lines


def test_one_line_many_spans_and_non_genai_spans_skipped(ingest):
    res, rows = ingest("otel_genai.jsonl")
    f = res.files[0]
    assert f.format == "otel"
    # line 1: HTTP span + chat span; line 2: agent span + 2 chat spans; line 3: HTTP span only
    assert (f.lines, f.stored_lines, f.empty, f.quarantined_lines) == (3, 2, 1, 0)
    assert res.records == 3 and res.quarantined == 0
    assert {r["extra"]["operation"] for r in rows.values()} == {"chat"}


def test_chat_span_maps_every_column(ingest):
    _, rows = ingest("otel_genai.jsonl")
    r = rows["chatcmpl-otel-shared"]
    assert r["ts"] == datetime(2026, 2, 3, 14, 5, 9, 120000, tzinfo=UTC)
    assert (r["account_id"], r["client_ip"], r["model"], r["endpoint"]) == (
        "acct-7f3a", "203.0.113.24", "gpt-x-2026-02", "chat.completions")
    assert r["system_prompt"] == "You are a concise math tutor."
    assert r["prompt"].startswith("Explain step by step") and r["response_text"].startswith("Write the odd")
    assert (r["max_tokens"], r["temperature"]) == (512, pytest.approx(0.2))
    assert (r["input_tokens"], r["output_tokens"], r["stop_reason"], r["latency_ms"]) == (31, 42, "stop", 1840)
    assert r["extra"]["service"] == "chat-gateway" and r["extra"]["span_id"] == "eee19b7ec3c1b174"


def test_structured_messages_tools_images_and_reasoning(ingest):
    _, rows = ingest("otel_genai.jsonl")
    tool = next(r for r in rows.values() if r["conversation_id"] == "conv_123")
    assert tool["account_id"] == "acct-22be"  # enduser.id
    assert tool["has_images"] is True and tool["prompt"] == "What's the weather in Lisbon right now?\n[image]"
    assert tool["tool_calls"] == ["get_weather"] and tool["tools_offered"] == ["get_weather"]
    assert tool["stop_reason"] == "tool_call" and tool["response_text"] == ""
    assert tool["exchange_id"].startswith("dg-")
    anth = next(r for r in rows.values() if r["model"] == "claude-x-2026-02")
    assert anth["endpoint"] == "messages" and anth["extra"]["provider"] == "anthropic"  # gen_ai.system (older)
    assert anth["reasoning_text"] == "Merge sort counts inversions..." and anth["response_text"] == "Use a merge-sort based count."


def test_bad_span_is_quarantined_alone(store, tmp_path):
    line = sample("otel_genai.jsonl")[1]
    spans = line["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[1]["attributes"] = [a for a in spans[1]["attributes"] if a["key"] != "enduser.id"]
    res = ingest_paths(store, [write_lines(tmp_path / "o.jsonl", [line])], fmt="otel")
    f = res.files[0]
    assert res.records == 1 and res.quarantined == 1 and (f.stored_lines, f.quarantined_lines) == (1, 0)
    q = quarantine_of(res)[0]
    assert "no account identity" in q["reason"] and q["line"] == 1
    one = orjson.loads(q["raw"])  # the quarantined raw is that one span, re-ingestable as OTLP
    assert len(one["resourceSpans"][0]["scopeSpans"][0]["spans"]) == 1


def test_pretty_printed_otlp_document(store, tmp_path):
    doc = sample("otel_genai.jsonl")[0]
    p = tmp_path / "export.json"
    p.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    res = ingest_paths(store, [p])
    assert res.files[0].format == "otel" and res.records == 1
    assert "chatcmpl-otel-shared" in rows_by_id(store)


def test_legacy_indexed_prompt_attributes(store, tmp_path):
    def kv(k, v):
        return {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}

    span = {"traceId": "ab", "spanId": "cd", "name": "openai.chat", "startTimeUnixNano": "1770127509000000000",
            "endTimeUnixNano": "1770127510000000000",
            "attributes": [kv("gen_ai.system", "openai"), kv("gen_ai.request.model", "m"), kv("user.id", "u1"),
                           kv("gen_ai.prompt.0.role", "system"), kv("gen_ai.prompt.0.content", "sys"),
                           kv("gen_ai.prompt.1.role", "user"), kv("gen_ai.prompt.1.content", "q?"),
                           kv("gen_ai.completion.0.role", "assistant"), kv("gen_ai.completion.0.content", "a!"),
                           kv("gen_ai.usage.prompt_tokens", 3), kv("gen_ai.usage.completion_tokens", 2)]}
    line = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    res = ingest_paths(store, [write_lines(tmp_path / "o.jsonl", [line])])
    assert res.records == 1
    r = next(iter(rows_by_id(store).values()))
    assert (r["system_prompt"], r["prompt"], r["response_text"]) == ("sys", "q?", "a!")
    assert (r["input_tokens"], r["output_tokens"], r["latency_ms"]) == (3, 2, 1000)


def test_any_value_decoding():
    assert any_value({"intValue": "12"}) == 12
    assert any_value({"arrayValue": {"values": [{"stringValue": "a"}, {"boolValue": True}]}}) == ["a", True]
    assert any_value({"kvlistValue": {"values": [{"key": "k", "value": {"doubleValue": 1.5}}]}}) == {"k": 1.5}
    assert any_value({"intValue": "x"}) is None


def test_sample_file_is_real_otlp_shape():
    line = orjson.loads((DATA / "otel_genai.jsonl").read_bytes().splitlines()[0])
    span = line["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    assert span["startTimeUnixNano"].isdigit() and all({"key", "value"} <= a.keys() for a in span["attributes"])


def test_content_on_span_events(store, tmp_path):
    def kv(k, v):
        return {"key": k, "value": {"stringValue": v}}

    base = {"traceId": "ab", "startTimeUnixNano": "1770127509000000000", "endTimeUnixNano": "1770127509500000000"}
    details = {**base, "spanId": "01", "attributes": [kv("gen_ai.operation.name", "chat"), kv("user.id", "u1"),
                                                      kv("gen_ai.request.model", "m")],
               "events": [{"name": "gen_ai.client.inference.operation.details", "timeUnixNano": "1770127509400000000",
                           "attributes": [kv("gen_ai.input.messages", json.dumps(
                               [{"role": "user", "parts": [{"type": "text", "content": "q1"}]}])),
                               kv("gen_ai.output.messages", json.dumps(
                                   [{"role": "assistant", "parts": [{"type": "text", "content": "a1"}]}]))]}]}
    legacy = {**base, "spanId": "02", "attributes": [kv("gen_ai.system", "openai"), kv("gen_ai.request.model", "m"),
                                                     kv("user.id", "u2")],
              "events": [{"name": "gen_ai.content.prompt",
                          "attributes": [kv("gen_ai.prompt", json.dumps([{"role": "user", "content": "q2"}]))]},
                         {"name": "gen_ai.content.completion",
                          "attributes": [kv("gen_ai.completion", json.dumps([{"role": "assistant", "content": "a2"}]))]}]}
    line = {"resourceSpans": [{"scopeSpans": [{"spans": [details, legacy]}]}]}
    res = ingest_paths(store, [write_lines(tmp_path / "o.jsonl", [line])])
    assert res.records == 2
    got = {r["account_id"]: (r["prompt"], r["response_text"]) for r in rows_by_id(store).values()}
    assert got == {"u1": ("q1", "a1"), "u2": ("q2", "a2")}
