"""The mock upstream answers a request as long as it asks (bench only): a replay of a simulated world receives what
the world's teacher produced. With the mock's fixed sizes every account received the same lengths through the
gateway, and detection's received-output evidence (the percentile gate's test of harvesting sub-clusters, the
workload groups' received reading) read nothing in bench/loop_replay.py (loop20: the agentic trio of seeds 2 and 4
first flagged after 1% of its exchanges)."""

from __future__ import annotations

import anthropic
from openai import OpenAI

from tests.gateway.conftest import read_exchanges

MSG = [{"role": "user", "content": "explain the proof"}]


def test_sizes_from_the_request_reach_the_store_through_the_gateway(make_gateway):
    gw = make_gateway()
    c = OpenAI(base_url=gw.url, api_key=gw.keys["acct-1"], max_retries=0)
    sized = c.chat.completions.create(model="m", messages=MSG, extra_headers={
        "x-mock-answer-words": "700", "x-mock-reasoning-words": "0"})
    assert sized.usage.completion_tokens == 700 and not (sized.choices[0].message.model_extra or {}).get(
        "reasoning_content")
    plain = c.chat.completions.create(model="m", messages=MSG)  # the mock's own sizes: 40 + 120 words here
    assert plain.usage.completion_tokens == 160
    a = anthropic.Anthropic(base_url=gw.srv.url, api_key=gw.keys["acct-1"], max_retries=0)
    m = a.messages.create(model="m", max_tokens=64, messages=MSG, extra_headers={
        "x-mock-answer-words": "30", "x-mock-reasoning-words": "90"})
    assert m.usage.output_tokens == 120 and [b.type for b in m.content] == ["thinking", "text"]
    one = c.chat.completions.create(model="m", messages=MSG, extra_headers={"x-mock-answer-words": "5"})
    assert one.usage.completion_tokens == 160  # both headers or neither
    gw.flush()
    gw.srv.stop()
    got = sorted(r["output_tokens"] for r in read_exchanges(gw.tmp / "store"))
    assert got == [120, 160, 160, 700]
