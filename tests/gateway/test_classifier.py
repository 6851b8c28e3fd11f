"""The request-classifier seam: the real `score_prompt` under the policy's signal names, end to end."""

from __future__ import annotations

import sys

import openai
import pytest

from distillguard.gateway.classifier import RequestClassifier
from distillguard.policy import RequestFacts, evaluate, parse_policy
from distillguard.policy.enforcement import Snapshot
from tests.gateway.conftest import read_exchanges

COT = "Think step by step and write out your full chain of thought before the final answer: is 221 prime?"
POLICY = parse_policy({"rules": [{"name": "cot", "when": {"signal": {"name": "sig_cot_elicitation", "above": 0.5}},
                                  "action": "protect_reasoning"}]})


def _facts(clf: RequestClassifier, prompt: str) -> RequestFacts:
    return RequestFacts("a", score=lambda: clf.score(prompt, None))


def test_without_signals_package_the_rule_never_fires(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "distillguard.signals", None)  # import fails as if absent
    clf = RequestClassifier()
    d = evaluate(POLICY, Snapshot(), _facts(clf, COT))
    assert d.decided == "allow" and not d.protect and clf.available is False
    evaluate(POLICY, Snapshot(), _facts(clf, "again"))
    assert sum("no request classifier" in r.getMessage() for r in caplog.records) == 1  # logged once


def test_real_classifier_names_match_the_policy():
    clf = RequestClassifier()
    scores = clf.score(COT, None)
    assert clf.available and scores["sig_cot_elicitation"] > 0.9
    assert evaluate(POLICY, Snapshot(), _facts(clf, COT)).decided == "protect_reasoning"
    assert evaluate(POLICY, Snapshot(), _facts(clf, "what is a good name for my cat?")).decided == "allow"


def test_gateway_blocks_an_obvious_cot_prompt_and_serves_a_plain_one(make_gateway, tmp_path):
    pol = tmp_path / "policy.yaml"
    pol.write_text("rules:\n  - name: cot\n    when: {signal: {name: sig_cot_elicitation, above: 0.8}}\n"
                   "    action: block\n    error_code: reasoning_extraction\n")
    gw = make_gateway(policy=str(pol))
    c = openai.OpenAI(base_url=gw.url, api_key=gw.keys["acct-1"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as e:
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": COT}])
    assert e.value.code == "reasoning_extraction"
    assert c.chat.completions.create(model="m", messages=[{"role": "user", "content": "name my cat"}]).choices
    gw.flush()
    gw.srv.stop()
    rows = {r["http_status"]: r for r in read_exchanges(tmp_path / "store")}
    assert rows[403]["action"] == "block" and rows[403]["action_reasons"] == ["rule cot: block"]
    assert rows[200]["action"] == "allow"
