import os
import shutil
from datetime import UTC, datetime

import pytest

from distillguard.ingest import ingest_paths
from distillguard.ingest.openai import chat_messages, content_text
from tests.ingest.helpers import DATA, quarantine_of, rows_by_id, sample, write_lines

TS = datetime(2026, 2, 3, 14, 5, 9, 120000, tzinfo=UTC)


def test_chat_completion_maps_every_column(ingest):
    res, rows = ingest("openai_chat.jsonl")
    assert res.files[0].format == "openai"
    assert res.quarantined == 0 and res.records == 7
    r = rows["req_shared_openai"]
    assert r["ts"] == TS
    assert (r["account_id"], r["org_id"], r["api_key_id"]) == ("acct-7f3a", "org-19c2", "key_4b1e")
    assert (r["model"], r["endpoint"], r["source_format"]) == ("gpt-x-2026-02", "chat.completions", "openai")
    assert (r["client_ip"], r["user_agent"]) == ("203.0.113.24", "OpenAI/Python 1.82.0")
    assert (r["sdk_name"], r["sdk_version"]) == ("openai-python", "1.82.0")
    assert r["header_order_fp"] and len(r["header_order_fp"]) == 16
    assert r["system_prompt"] == "You are a concise math tutor."
    assert r["turns"] == [{"role": "user", "text": r["prompt"]}]
    assert r["prompt"].startswith("Explain step by step") and r["n_turns"] == 1
    assert r["max_tokens"] == 512 and r["temperature"] == pytest.approx(0.2)
    assert r["response_text"].startswith("Write the odd numbers") and r["response_chars"] == len(r["response_text"])
    assert (r["stop_reason"], r["input_tokens"], r["output_tokens"]) == ("stop", 31, 42)
    assert (r["http_status"], r["latency_ms"]) == (200, 1840)
    assert r["reasoning_text"] is None and r["tool_calls"] == [] and r["has_images"] is False


def test_reasoning_fields_of_openai_compatible_servers(ingest):
    _, rows = ingest("openai_chat.jsonl")
    ds = rows["chatcmpl-reasoning01"]  # DeepSeek/vLLM reasoning_content
    assert ds["reasoning_text"].startswith("Assume finitely many primes")
    assert ds["reasoning_chars"] == len(ds["reasoning_text"]) and ds["reasoning_tokens"] == 190
    assert ds["reasoning_redacted"] is None
    assert ds["sdk_name"] is None and ds["user_agent"] == "python-requests/2.32.3"
    hidden = rows["chatcmpl-image01"]  # reasoning tokens billed, none returned
    assert hidden["reasoning_text"] is None and hidden["reasoning_redacted"] is True
    assert hidden["reasoning_requested"] is True and hidden["reasoning_effort"] == "medium"
    assert hidden["has_images"] is True and "[image]" in hidden["prompt"]
    assert hidden["max_tokens"] == 2000


def test_tools_offered_and_called_and_secrets_dropped(ingest):
    _, rows = ingest("openai_chat.jsonl")
    r = rows["chatcmpl-toolcall01"]
    assert r["tools_offered"] == ["get_weather", "web_search"]
    assert r["tool_calls"] == ["get_weather"] and r["stop_reason"] == "tool_calls"
    assert r["reasoning_text"] == "The user wants live weather; call get_weather."  # OpenRouter-style `reasoning`
    assert r["system_prompt"] == "You can call tools."  # developer role
    assert r["account_id"] == "acct-22be" and r["api_key_id"] == "key_77aa"
    assert (r["top_p"], r["n"]) == (pytest.approx(0.9), 1)
    assert (r["sdk_name"], r["sdk_version"]) == ("openai-python", "1.82.0")
    assert "sk-" not in repr(r)  # the Authorization header never reaches the store


def test_error_request_only_and_streamed_records(ingest):
    _, rows = ingest("openai_chat.jsonl")
    by_prompt = {r["prompt"]: r for r in rows.values()}
    err = by_prompt["Write a 10,000-word essay on the French revolution."]
    assert err["http_status"] == 429 and err["response_text"] is None
    assert err["extra"]["error"] == {"type": "requests", "message": "Rate limit reached for requests per minute."}
    assert err["exchange_id"].startswith("dg-")
    req_only = by_prompt["Summarise the plot of Hamlet in three sentences."]
    assert req_only["account_id"] == "enduser-0042" and req_only["stream"] is True
    assert req_only["response_text"] is None and req_only["http_status"] is None
    streamed = rows["req_stream_01"]  # id from the x-request-id response header
    assert streamed["response_text"] == "Ohayou gozaimasu" and streamed["stop_reason"] == "stop"
    assert (streamed["input_tokens"], streamed["output_tokens"], streamed["http_status"]) == (14, 6, 200)
    assert streamed["model"] == "gpt-x-mini" and streamed["sdk_name"] == "openai-python"


def test_responses_api(ingest):
    res, rows = ingest("openai_responses.jsonl")
    assert res.files[0].format == "openai" and res.quarantined == 0
    r = rows["resp_01reasoning"]
    assert r["endpoint"] == "responses" and r["system_prompt"] == "Answer as a senior engineer."
    assert r["turns"] == [{"role": "user", "text": "Find the bug in this function and fix it.\n[image]"}]
    assert r["has_images"] is True
    assert r["tools_offered"] == ["run_tests", "web_search"] and r["tool_calls"] == ["run_tests"]
    assert r["reasoning_requested"] is True and r["reasoning_effort"] == "high"
    assert r["reasoning_text"] == "Checked the loop bounds; off-by-one in the range."
    assert r["reasoning_redacted"] is True  # a summary, not the reasoning itself
    assert (r["input_tokens"], r["output_tokens"], r["reasoning_tokens"]) == (950, 1400, 1200)
    assert r["max_tokens"] == 8000 and r["response_text"].startswith("The loop stops")
    assert r["client_ip"] == "2001:db8::17" and r["org_id"] == "org-77f1"
    s = rows["resp_03stream"]  # streamed: the response.completed event carries the response
    assert s["endpoint"] == "responses" and s["response_text"] == "Bonjour tout le monde"
    assert (s["stream"], s["output_tokens"], s["http_status"]) == (True, 6, 200)
    g = rows["resp_02grading"]
    assert g["prompt"].startswith("Grade this answer") and g["stop_reason"] == "max_output_tokens"
    assert g["extra"]["previous_response_id"] == "resp_00prev"


def test_batch_output_joins_its_input_by_custom_id(ingest):
    res, rows = ingest("openai_batch_6a1f0c_output.jsonl", "openai_batch_6a1f0c_input.jsonl")
    # The input file is read first although it was listed second.
    assert [os.path.basename(f.path) for f in res.files][0] == "openai_batch_6a1f0c_input.jsonl"
    inp, out = res.files
    assert (inp.lines, inp.empty, inp.records) == (3, 3, 0)
    assert (out.records, out.quarantined) == (3, 0)
    r = rows["req_batch_0001"]
    assert r["endpoint"] == "batch" and r["batch_id"] == "batch_6a1f0c"
    assert r["system_prompt"] == "Think step by step." and r["prompt"] == "Is 221 prime? Explain."
    assert r["account_id"] == "acct-b47c" and r["max_tokens"] == 1000
    assert r["response_text"] == "221 = 13 x 17, so it is not prime."
    assert r["ts"] == datetime(2026, 2, 3, 16, 0, 1, tzinfo=UTC) and r["http_status"] == 200
    assert r["extra"]["batch_join"] == "joined" and r["extra"]["custom_id"] == "task-0001"
    expired = rows["batch_req_a3"]  # error line: the request is still an exchange
    assert expired["prompt"] == "List the first five Fibonacci numbers." and expired["response_text"] is None
    assert expired["extra"]["batch_error"]["code"] == "batch_expired"
    assert expired["extra"]["ts_source"] == "file_mtime"


def test_batch_object_dates_lines_without_a_time(ingest):
    res, rows = ingest("openai_batch_6a1f0c_output.jsonl", "openai_batch_6a1f0c_input.jsonl",
                       "openai_batch_6a1f0c_batch.json")
    assert res.files[0].path.endswith("_batch.json") or res.files[1].path.endswith("_batch.json")
    expired = rows["batch_req_a3"]
    assert expired["ts"] == datetime(2026, 2, 3, 15, 55, tzinfo=UTC)  # the batch's created_at
    assert expired["extra"]["ts_source"] == "batch_created_at"
    assert rows["req_batch_0001"]["ts"] == datetime(2026, 2, 3, 16, 0, 1, tzinfo=UTC)  # its own body.created


def test_batch_output_without_input_keeps_every_record(ingest, store):
    res, rows = ingest("openai_batch_6a1f0c_output.jsonl")
    # No identity is known for these lines, so they are quarantined (raw kept), not dropped.
    assert res.records == 0 and res.quarantined == 3
    assert all("no account identity" in q["reason"] for q in quarantine_of(res))
    # Re-ingesting the output file changes nothing (it is already ingested) ...
    res2, _ = ingest("openai_batch_6a1f0c_input.jsonl", "openai_batch_6a1f0c_output.jsonl")
    assert res2.files[1].skipped == "already ingested" and res2.records == 0
    # ... but its quarantine file, ingested together with the input file, maps every record.
    qfile = res.files[0].quarantine_file
    res3 = ingest_paths(store, [DATA / "openai_batch_6a1f0c_input.jsonl", qfile])
    assert res3.files[1].format == "quarantine" and res3.records == 3 and res3.quarantined == 0
    r = rows_by_id(store)["req_batch_0001"]
    assert r["source_format"] == "openai" and r["batch_id"] == "batch_6a1f0c"  # from the original file name
    assert r["prompt"] == "Is 221 prime? Explain." and r["extra"]["batch_join"] == "joined"


def test_batch_input_from_an_earlier_run_still_joins(store, tmp_path):
    for n in ("openai_batch_6a1f0c_input.jsonl", "openai_batch_6a1f0c_output.jsonl"):
        shutil.copy(DATA / n, tmp_path / n)
    assert ingest_paths(store, [tmp_path / "openai_batch_6a1f0c_input.jsonl"]).records == 0
    res = ingest_paths(store, [tmp_path / "openai_batch_6a1f0c_input.jsonl",
                               tmp_path / "openai_batch_6a1f0c_output.jsonl"])
    assert res.files[0].skipped == "already ingested"
    assert res.records == 3 and res.quarantined == 0
    assert rows_by_id(store)["req_batch_0002"]["account_id"] == "acct-b47c"


def test_batch_output_with_identity_but_no_input_is_stored(store, tmp_path):
    lines = sample("openai_batch_6a1f0c_output.jsonl")
    for line in lines:
        line["account_id"] = "acct-known"
    res = ingest_paths(store, [write_lines(tmp_path / "out.jsonl", lines)])
    assert res.records == 3
    r = rows_by_id(store)["req_batch_0002"]
    assert r["account_id"] == "acct-known" and r["prompt"] is None
    assert r["response_text"] == "Here is a neutral rewrite: ..." and r["extra"]["batch_join"] == "input not in this run"


def test_ambiguous_custom_id_is_not_joined(store, tmp_path):
    inp = sample("openai_batch_6a1f0c_input.jsonl")
    write_lines(tmp_path / "a_input.jsonl", inp)
    write_lines(tmp_path / "b_input.jsonl", inp)
    out = [dict(x, account_id="acct-x") for x in sample("openai_batch_6a1f0c_output.jsonl")]
    write_lines(tmp_path / "c_output.jsonl", out)
    ingest_paths(store, [tmp_path])
    r = rows_by_id(store)["req_batch_0001"]
    assert r["extra"]["batch_join"] == "ambiguous" and r["prompt"] is None


def test_legacy_completions_and_http_style_request(store, tmp_path):
    rec = {"timestamp": 1770127509, "request": {"method": "POST", "path": "/v1/completions",
                                                "headers": [["User-Agent", "OpenAI/Python 1.3.0"]],
                                                "body": {"model": "legacy-1", "prompt": "Once upon a time",
                                                         "max_tokens": 16}},
           "response": {"status_code": 200, "body": {"id": "cmpl-1", "object": "text_completion",
                                                      "choices": [{"text": " there was a fox.", "finish_reason": "length"}],
                                                      "usage": {"prompt_tokens": 4, "completion_tokens": 16}}},
           "metadata": {"api_key_id": "key_legacy"}}
    res = ingest_paths(store, [write_lines(tmp_path / "c.jsonl", [rec])], fmt="openai")
    assert res.records == 1
    r = rows_by_id(store)["cmpl-1"]
    assert r["endpoint"] == "completions" and r["prompt"] == "Once upon a time"
    assert r["response_text"] == " there was a fox." and r["stop_reason"] == "length"
    assert r["account_id"] == "key_legacy" and r["sdk_name"] == "openai-python" and r["http_status"] == 200


def test_content_parts_and_roles():
    text, img = content_text([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}},
                              {"type": "input_audio", "input_audio": {}}, "b"])
    assert (text, img) == ("a\n[image]\n[audio]\nb", True)
    m = chat_messages([{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                       {"role": "assistant", "content": None,
                        "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                       {"role": "tool", "content": "42", "tool_call_id": "c"}])
    assert m["system_prompt"] == "s"
    assert [t["role"] for t in m["turns"]] == ["user", "assistant", "tool"]
    assert m["turns"][1]["text"] == "[tool_call f] {}"


def test_no_identity_and_no_time_are_quarantined(store, tmp_path):
    base = sample("openai_chat.jsonl")[0]
    no_id = {**base, "metadata": {"client_ip": "192.0.2.1"}}
    no_ts = {k: v for k, v in base.items() if k != "timestamp"}
    no_ts["response"] = {k: v for k, v in base["response"].items() if k != "created"}
    res = ingest_paths(store, [write_lines(tmp_path / "x.jsonl", [no_id, no_ts, base])], fmt="openai")
    assert res.records == 1
    reasons = [q["reason"] for q in quarantine_of(res)]
    assert "no account identity" in reasons[0] and "no timestamp" in reasons[1]
