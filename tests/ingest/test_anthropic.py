from datetime import UTC, datetime

import pytest

from distillguard.ingest import ingest_paths
from distillguard.ingest.anthropic import request_fields
from tests.ingest.helpers import quarantine_of, rows_by_id, sample, write_lines


def test_messages_log_maps_every_column(ingest):
    res, rows = ingest("anthropic_messages.jsonl")
    assert res.files[0].format == "anthropic"
    assert res.records == 6 and res.quarantined == 0
    r = rows["req_shared_anthropic"]
    assert r["ts"] == datetime(2026, 2, 3, 14, 5, 9, 120000, tzinfo=UTC)
    assert (r["account_id"], r["org_id"], r["api_key_id"]) == ("acct-7f3a", "org-19c2", "key_4b1e")
    assert (r["model"], r["endpoint"], r["source_format"]) == ("claude-x-2026-02", "messages", "anthropic")
    assert (r["sdk_name"], r["sdk_version"]) == ("anthropic-python", "0.52.0")
    assert r["system_prompt"] == "You are a concise math tutor."
    assert r["prompt"].startswith("Explain step by step") and r["n_turns"] == 1
    assert (r["max_tokens"], r["temperature"]) == (512, pytest.approx(0.2))
    assert r["response_text"].startswith("Write the odd numbers")
    assert (r["stop_reason"], r["input_tokens"], r["output_tokens"]) == ("end_turn", 31, 42)
    assert (r["http_status"], r["latency_ms"], r["client_ip"]) == (200, 1840, "203.0.113.24")
    assert "sk-ant" not in repr(r)  # x-api-key header is never stored


def test_extended_thinking_and_redaction(ingest):
    _, rows = ingest("anthropic_messages.jsonl")
    r = rows["msg_thinking01"]
    assert r["system_prompt"] == "You are an expert competitive programmer."  # system as blocks
    assert r["reasoning_requested"] is True and r["thinking_budget"] == 10000
    assert r["reasoning_text"].startswith("Merge sort counts inversions")
    assert r["reasoning_redacted"] is True  # a redacted_thinking block came back too
    assert r["response_text"] == "Use a merge-sort based count: O(n log n)."
    assert r["input_tokens"] == 60 + 1200  # cache reads are billed prompt tokens
    assert r["output_tokens"] == 3100 and r["max_tokens"] == 16000


def test_tool_use_history_images_and_errors(ingest):
    _, rows = ingest("anthropic_messages.jsonl")
    t = rows["msg_tool02"]
    assert [x["role"] for x in t["turns"]] == ["user", "assistant", "tool"]
    assert t["turns"][1]["text"] == '[tool_call get_stock_price] {"ticker":"ACME"}'
    assert t["turns"][2]["text"] == "ACME: 101.25 USD"
    assert t["prompt"] == "What's ACME trading at?" and t["tools_offered"] == ["get_stock_price"]
    img = rows["msg_image03"]
    assert img["has_images"] is True and img["tool_calls"] == ["lookup_order"] and img["stop_reason"] == "tool_use"
    assert img["account_id"] == "key_anth_9f"  # only an API key id was logged
    err = next(r for r in rows.values() if r["prompt"] == "Hello")
    assert err["account_id"] == "enduser-77" and err["http_status"] == 529
    assert err["extra"]["error"]["type"] == "overloaded_error" and err["response_text"] is None


def test_streamed_events_are_folded_into_one_message(ingest):
    _, rows = ingest("anthropic_messages.jsonl")
    r = rows["msg_stream04"]
    assert r["stream"] is True and r["thinking_budget"] == 4000
    assert r["reasoning_text"] == "Keep prev, curr, next pointers; flip curr.next each step."
    assert r["response_text"] == "Iterate once, pointing each node at its predecessor."
    assert (r["stop_reason"], r["input_tokens"], r["output_tokens"]) == ("end_turn", 22, 180)


def test_message_batches_join_requests_to_results(ingest):
    res, rows = ingest("anthropic_msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d_results.jsonl",
                       "anthropic_msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d_requests.jsonl")
    assert res.files[0].path.endswith("_requests.jsonl") and res.files[0].empty == 3
    assert res.records == 3 and res.quarantined == 0
    ok = rows["msg_batch_001"]
    assert ok["endpoint"] == "batch" and ok["batch_id"] == "msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d"
    assert ok["account_id"] == "acct-c0ff" and ok["prompt"].startswith("Derive the quadratic formula")
    assert ok["thinking_budget"] == 1024 and ok["reasoning_text"].startswith("Start from ax^2")
    assert ok["extra"]["result_type"] == "succeeded" and ok["extra"]["ts_source"] == "file_mtime"
    kinds = sorted(r["extra"]["result_type"] for r in rows.values())
    assert kinds == ["errored", "expired", "succeeded"]
    errored = next(r for r in rows.values() if r["extra"]["result_type"] == "errored")
    assert errored["extra"]["error"]["type"] == "invalid_request_error" and errored["prompt"].startswith("Rate this essay")


def test_batch_object_gives_results_their_time(ingest):
    _, rows = ingest("anthropic_msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d_results.jsonl",
                     "anthropic_msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d_requests.jsonl",
                     "anthropic_msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d_batch.json")
    assert len(rows) == 3
    for r in rows.values():
        assert r["ts"] == datetime(2026, 2, 3, 17, 0, tzinfo=UTC)
        assert r["extra"]["ts_source"] == "batch_created_at"


def test_missing_timestamp_is_quarantined(store, tmp_path):
    rec = sample("anthropic_messages.jsonl")[0]
    del rec["timestamp"]
    res = ingest_paths(store, [write_lines(tmp_path / "a.jsonl", [rec])], fmt="anthropic")
    assert res.records == 0 and "no timestamp" in quarantine_of(res)[0]["reason"]


def test_user_message_with_text_and_tool_results_splits_into_turns():
    f = request_fields({"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "result"}]},
        {"type": "text", "text": "now summarise"}]}], "thinking": {"type": "disabled"}})
    assert f["turns"] == [{"role": "tool", "text": "result"}, {"role": "user", "text": "now summarise"}]
    assert f["reasoning_requested"] is False


def test_stored_ids_are_stable_across_runs(store, tmp_path):
    recs = sample("anthropic_messages.jsonl")
    write_lines(tmp_path / "a.jsonl", recs)
    ingest_paths(store, [tmp_path / "a.jsonl"])
    first = set(rows_by_id(store))
    from distillguard.store import Store

    other = Store(tmp_path / "other", create=True)
    write_lines(tmp_path / "b.jsonl", recs)
    ingest_paths(other, [tmp_path / "b.jsonl"])
    assert set(rows_by_id(other)) == first
