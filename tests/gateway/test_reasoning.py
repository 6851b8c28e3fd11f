"""Reasoning protection (strip / summary / leak withholding, on streams too) and HMAC binding."""

from __future__ import annotations

import anthropic
import httpx
import openai
import orjson
import pytest

from distillguard.gateway.reasoning import (
    WITHHELD_NOTICE,
    Binder,
    LeakGuard,
    ThinkFilter,
    leak_matches,
    split_think,
)
from tests.gateway.conftest import read_exchanges


def test_binder_states():
    b = Binder(secret=b"s")
    sig = b.sign("acct-a", "conv-1", "step one. step two.", upstream="upsig-123")
    assert b.verify("acct-a", "conv-1", "step one. step two.", sig) == ("valid", "upsig-123", False)
    assert b.verify("acct-b", "conv-1", "step one. step two.", sig)[0] == "foreign"
    assert b.verify("acct-a", "conv-1", "step one. step 2.", sig)[0] == "altered"
    assert b.verify("acct-a", "conv-2", "step one. step two.", sig)[0] == "altered"  # replayed in another session
    assert b.verify("acct-a", "conv-1", "x", "upsig-123")[0] == "unsigned"
    assert Binder(secret=b"other").verify("acct-a", "conv-1", "step one. step two.", sig)[0] == "foreign"


def test_think_filter_handles_tags_split_across_deltas():
    f = ThinkFilter()
    pieces = ["Hi <th", "ink>secret ", "plan</thi", "nk>answer", " done"]
    vis, hid = zip(*[f.feed(p) for p in pieces], strict=True)
    assert "".join(vis) == "Hi answer done" and "".join(hid) == "secret plan"
    assert split_think("<think>a b</think>\nthe answer") == ("the answer", "a b")


def test_leak_guard_holds_back_so_no_matched_ngram_escapes():
    reasoning = "first we compute the total cost of every item then we divide by the count of items"
    g = LeakGuard(n=4, min_matches=2)
    g.set_reasoning(reasoning)
    released = []
    for w in "sure. we compute the total cost of every item and".split():
        released += g.add(w, w + " ")
    released += g.finish()
    assert g.withheld and "compute" not in released and "total" not in released
    assert leak_matches("we compute the total cost of every item", reasoning, 4) == 5
    g2 = LeakGuard(n=4, min_matches=2)
    g2.set_reasoning(reasoning)
    out = []
    for w in "the answer is forty two in total".split():
        out += g2.add(w, w + " ")
    out += g2.finish()
    assert not g2.withheld and out == "the answer is forty two in total".split()


@pytest.fixture
def protected(make_gateway, tmp_path):
    enf = tmp_path / "enforcement.jsonl"
    enf.write_bytes(orjson.dumps({"subject_type": "account", "subject_id": "marked", "action": "protect_reasoning",
                                  "reason": "CoT harvesting campaign", "source": "scan",
                                  "created_at": "2026-01-01T00:00:00Z"}) + b"\n")
    return make_gateway(accounts=("marked", "clean"), enforcement_file=str(enf))


def test_protected_chat_strips_reasoning_plain_and_streamed(protected):
    c = openai.OpenAI(base_url=protected.url, api_key=protected.keys["marked"], max_retries=0)
    r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "solve this"}])
    assert "reasoning_content" not in (r.choices[0].message.model_extra or {})
    assert r.choices[0].message.content
    text, saw_reasoning = [], False
    for ch in c.chat.completions.create(model="m", messages=[{"role": "user", "content": "solve this"}], stream=True):
        if ch.choices:
            d = ch.choices[0].delta
            saw_reasoning |= bool((d.model_extra or {}).get("reasoning_content"))
            text.append(d.content or "")
    assert not saw_reasoning and "".join(text) == r.choices[0].message.content
    # the same prompt from an unmarked account does get the reasoning
    clean = openai.OpenAI(base_url=protected.url, api_key=protected.keys["clean"], max_retries=0)
    assert clean.chat.completions.create(model="m", messages=[{"role": "user", "content": "solve this"}]) \
        .choices[0].message.model_extra["reasoning_content"]
    protected.flush()
    protected.srv.stop()
    rows = {(r["account_id"], r["stream"]): r for r in read_exchanges(protected.tmp / "store")}
    m = rows[("marked", True)]
    assert m["action"] == "protect" and m["reasoning_redacted"] and m["reasoning_text"] is None
    assert m["reasoning_chars"] > 100 and any("CoT harvesting" in x for x in m["action_reasons"])
    assert rows[("clean", False)]["reasoning_redacted"] is False


def test_protected_streams_strip_think_tags_and_withhold_leaks(protected):
    key = protected.keys["marked"]
    c = openai.OpenAI(base_url=protected.url, api_key=key, max_retries=0)
    text = []
    for ch in c.chat.completions.create(model="m", messages=[{"role": "user", "content": "go [think-tags]"}], stream=True):
        if ch.choices:
            text.append(ch.choices[0].delta.content or "")
    out = "".join(text)
    assert "<think>" not in out and "</think>" not in out and out.strip()
    # the upstream copies 40 words of its reasoning into the answer: withheld, none of it reaches the client
    leak_stream = httpx.post(protected.url + "/chat/completions", headers={"authorization": f"Bearer {key}"},
                             json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "x [leak]"}]})
    plain = httpx.post(protected.url + "/chat/completions", headers={"authorization": f"Bearer {protected.keys['clean']}"},
                       json={"model": "m", "messages": [{"role": "user", "content": "x [leak]"}]}).json()
    hidden = plain["choices"][0]["message"]["reasoning_content"]
    streamed = "".join((orjson.loads(line[6:])["choices"][0]["delta"].get("content") or "")
                       for line in leak_stream.text.split("\n\n") if line.startswith("data: {")
                       and orjson.loads(line[6:]).get("choices"))
    assert WITHHELD_NOTICE in streamed
    assert leak_matches(streamed, hidden, 8) == 0
    assert '"finish_reason":"content_filter"' in leak_stream.text
    ns = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x [leak]"}])
    assert ns.choices[0].message.content == WITHHELD_NOTICE and ns.choices[0].finish_reason == "content_filter"


def test_protected_anthropic_and_responses_streams(protected):
    a = anthropic.Anthropic(base_url=protected.srv.url, api_key=protected.keys["marked"], max_retries=0)
    with a.messages.stream(model="m", max_tokens=100, messages=[{"role": "user", "content": "q [leak]"}],
                           thinking={"type": "enabled", "budget_tokens": 1024}) as s:
        final = s.get_final_message()
    assert final.content[0].type == "thinking" and final.content[0].thinking == ""
    # the answer's safe opening is relayed, then the notice; none of the copied reasoning
    assert final.content[1].text.endswith(WITHHELD_NOTICE) and final.stop_reason == "refusal"
    clean = anthropic.Anthropic(base_url=protected.srv.url, api_key=protected.keys["clean"], max_retries=0)
    hidden = clean.messages.create(model="m", max_tokens=100, messages=[{"role": "user", "content": "q [leak]"}],
                                   thinking={"type": "enabled", "budget_tokens": 1024}).content[0].thinking
    assert leak_matches(final.content[1].text, hidden, 8) == 0
    c = openai.OpenAI(base_url=protected.url, api_key=protected.keys["marked"], max_retries=0)
    types = []
    with c.responses.stream(model="m", input="plan it") as s:
        for e in s:
            types.append(e.type)
        resp = s.get_final_response()
    assert not any(t.startswith("response.reasoning") for t in types)
    rs = [o for o in resp.output if o.type == "reasoning"][0]
    assert not rs.content and rs.encrypted_content.startswith("dg1.p.")
    assert resp.output_text


def test_summary_mode(make_gateway, tmp_path):
    pol = tmp_path / "policy.yaml"
    pol.write_text("reasoning: {mode: summary, summary_chars: 40}\n"
                   "rules:\n  - name: all\n    when: {endpoint_in: [chat.completions]}\n    action: protect_reasoning\n")
    gw = make_gateway(policy=str(pol))
    c = openai.OpenAI(base_url=gw.url, api_key=gw.keys["acct-1"], max_retries=0)
    r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
    s = r.choices[0].message.model_extra["reasoning_content"]
    assert "reasoning summarised" in s and len(s) < 120
    got = []
    for ch in c.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}], stream=True):
        if ch.choices:
            got.append((ch.choices[0].delta.model_extra or {}).get("reasoning_content") or "")
    assert "".join(got) == s


def test_reasoning_replay_across_accounts_and_edits_is_flagged(protected):
    """Account `clean` harvests a signed thinking block; `marked` (another account) replays it."""
    a = anthropic.Anthropic(base_url=protected.srv.url, api_key=protected.keys["clean"], max_retries=0)
    conv = [{"role": "user", "content": "derive the formula"}]
    m = a.messages.create(model="m", max_tokens=100, messages=conv, thinking={"type": "enabled", "budget_tokens": 1024})
    block = m.content[0].model_dump()
    follow = conv + [{"role": "assistant", "content": [block, {"type": "text", "text": m.content[1].text}]},
                     {"role": "user", "content": "continue"}]
    ok = a.messages.create(model="m", max_tokens=100, messages=follow, thinking={"type": "enabled", "budget_tokens": 1024})
    assert ok.content  # same account, same conversation, untouched block: accepted
    other = anthropic.Anthropic(base_url=protected.srv.url, api_key=protected.keys["marked"], max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as e:
        other.messages.create(model="m", max_tokens=100, messages=follow)
    assert e.value.body["error"]["code"] == "reasoning_signature_invalid"
    edited = [dict(x) for x in follow]
    edited[1] = {"role": "assistant", "content": [{**block, "thinking": block["thinking"] + " injected"}]}
    with pytest.raises(anthropic.BadRequestError):
        a.messages.create(model="m", max_tokens=100, messages=edited)
    # chat completions: reasoning pasted back into another conversation of the same account
    c = openai.OpenAI(base_url=protected.url, api_key=protected.keys["clean"], max_retries=0)
    r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "conv one"}])
    msg = r.choices[0].message.model_extra
    replay = [{"role": "user", "content": "conv two"},
              {"role": "assistant", "content": "ok", "reasoning_content": msg["reasoning_content"],
               "reasoning_signature": msg["reasoning_signature"]},
              {"role": "user", "content": "more"}]
    with pytest.raises(openai.BadRequestError) as e2:
        c.chat.completions.create(model="m", messages=replay)
    assert e2.value.code == "reasoning_signature_invalid"
    protected.flush()
    protected.srv.stop()
    rows = read_exchanges(protected.tmp / "store")
    blocked = [r for r in rows if r["http_status"] == 400]
    assert len(blocked) == 3 and all(r["action"] == "block" for r in blocked)
    states = sorted(orjson.loads(r["extra"])["reasoning_binding"] for r in blocked)
    assert states == ["altered", "altered", "foreign"]
