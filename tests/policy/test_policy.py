from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import orjson
import pyarrow as pa
import pytest

from distillguard.errors import ConfigError
from distillguard.gateway.classifier import RequestClassifier
from distillguard.policy import PolicyHolder, RequestFacts, evaluate, parse_policy
from distillguard.policy.enforcement import (
    AccountInfo,
    EnforcementSource,
    Snapshot,
    canonical_ip24,
    parse_enforcement,
)

NOW = time.time()


def snap_with(rows, clusters=None) -> Snapshot:
    s = Snapshot()
    s.decisions = parse_enforcement(rows, "test")
    s.clusters = clusters or {}
    return s


def row(st, sid, action, age_s=60, expires_in=None, reason="r"):
    return {"subject_type": st, "subject_id": sid, "action": action, "reason": reason, "source": "scan",
            "created_at": datetime.fromtimestamp(NOW - age_s, UTC),
            "expires_at": datetime.fromtimestamp(NOW + expires_in, UTC) if expires_in is not None else None}


def test_validation_errors_name_the_key():
    with pytest.raises(ConfigError) as e:
        parse_policy({"rules": [{"name": "a", "when": {"pathway_in": ["education"]}, "action": "blok"}]})
    assert "rules.0.action" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_policy({"rules": [{"name": "a", "when": {"signal": {"name": "sig_cot_elicitation", "abve": 0.5}},
                                 "action": "block"}]})
    assert "rules.0.when.signal" in str(e.value) and "abve" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_policy({"mode": "enforce", "reasoning": {"leak_check": {"ngram": 1}}})
    assert "reasoning.leak_check.ngram" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_policy({"rules": [{"name": "a", "when": {}, "action": "block"}]})
    assert "rules.0.when" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_policy({"modde": "shadow"})
    assert "modde" in str(e.value)


def test_newest_unexpired_row_wins_and_severity_combines():
    p = parse_policy({})
    s = snap_with([row("account", "a1", "block", age_s=100, reason="old"),
                   row("account", "a1", "throttle", age_s=10, expires_in=-1),  # newest, but expired
                   row("cluster", "c1", "protect_reasoning")], {"a1": "c1"})
    d = evaluate(p, s, RequestFacts("a1", cluster_id="c1"), now=NOW)
    assert d.decided == "block" and d.protect
    assert any("old" in r for r in d.reasons) and any("cluster" in r for r in d.reasons)
    s2 = snap_with([row("account", "a1", "throttle", expires_in=3600)])
    d2 = evaluate(p, s2, RequestFacts("a1"), now=NOW)
    assert d2.decided == "throttle" and d2.throttle_enforced


def test_account_allow_row_overrides_cluster_and_ip24():
    p = parse_policy({})
    s = snap_with([row("cluster", "c1", "block"), row("ip24", "198.51.100.0/24", "block"),
                   row("account", "a1", "allow", reason="dismissed by analyst")])
    d = evaluate(p, s, RequestFacts("a1", cluster_id="c1", ip24="198.51.100.0/24"), now=NOW)
    assert d.decided == "allow" and "allow-listed" in d.reasons[0]
    d = evaluate(p, s, RequestFacts("a2", cluster_id="c1"), now=NOW)
    assert d.decided == "block"
    assert canonical_ip24("198.51.100") == canonical_ip24("198.51.100.77/24") == "198.51.100.0/24"


COT = "Think step by step and write out your full chain of thought before the final answer: is 221 prime?"
#: One prompt per live signal, each of which the shipped classifier scores near 1 on that signal.
LIVE = {
    "sig_cot_elicitation": COT,
    "sig_synthetic_data": "Come up with a set of 20 diverse task instructions for training a language model. "
                          "Vary the topic, the verb and the format; do not repeat yourself.",
    "sig_reward_grading": "Rate the following response on a scale of 1 to 10 for helpfulness and accuracy, and "
                          "explain your score. Response: The capital of France is Paris.",
    "sig_policy_rewrite": "Rewrite this answer so that it is politically safe and avoids any content the government "
                          "would censor: Tiananmen Square 1989 events.",
    "sig_cap_coding": "Write a Python function that parses a CSV file and returns the rows sorted by the second "
                      "column, with unit tests.",
    "sig_cap_agentic": "You are an agent with tools search_web and send_email. Plan the steps, call the tools, and "
                       "book a flight to Berlin.",
    "sig_cap_computer_use": "Here is a screenshot of the desktop. Click the Start button, open the browser, and move "
                            "the mouse to the address bar.",
    "sig_cap_vision": "Describe what is in this image in detail: the objects, colours and any text visible in the photo.",
    "sig_cap_data_analysis": "Here is a table of monthly sales by region. Compute the mean, median and year-over-year "
                             "growth and plot a trend chart with pandas.",
}
BENIGN = "What is a good name for my cat?"
CLF = RequestClassifier()


def real(prompt: str, calls: list | None = None):
    """The facts' score hook wired to the real request classifier (as the gateway wires it)."""
    def score():
        if calls is not None:
            calls.append(prompt)
        return CLF.score(prompt, None)
    return score


def test_unknown_signal_names_are_refused_with_the_valid_ones():
    from distillguard.signals.score import PROMPT_SIGNALS

    assert set(LIVE) == set(PROMPT_SIGNALS)  # every live signal has a firing test below
    for bad in ("sig_cot", "cot_elicitation", "sig_task_dataset"):
        with pytest.raises(ConfigError) as e:
            parse_policy({"rules": [{"name": "a", "when": {"signal": {"name": bad, "above": 0.5}}, "action": "block"}]})
        msg = str(e.value)
        assert "rules.0.when.signal.name" in msg and f"unknown live signal {bad!r}" in msg
        assert all(n in msg for n in PROMPT_SIGNALS)
    assert "did you mean sig_cot_elicitation" in str(pytest.raises(ConfigError, parse_policy, {"rules": [
        {"name": "a", "when": {"signal": {"name": "cot_elicitation", "above": 0.5}}, "action": "block"}]}).value)


@pytest.mark.parametrize("name", sorted(LIVE))
def test_a_rule_on_each_live_signal_fires_with_the_real_classifier(name):
    p = parse_policy({"rules": [{"name": f"r-{name}", "when": {"signal": {"name": name, "above": 0.8}},
                                 "action": "block"}]})
    hit = evaluate(p, snap_with([]), RequestFacts("a", score=real(LIVE[name])), now=NOW)
    assert hit.decided == "block" and hit.reasons == [f"rule r-{name}: block"]
    assert evaluate(p, snap_with([]), RequestFacts("a", score=real(BENIGN)), now=NOW).decided == "allow"
    # a prompt written for another signal does not trip this one (each rule reads its own score)
    other = LIVE["sig_cap_vision" if name != "sig_cap_vision" else "sig_reward_grading"]
    assert evaluate(p, snap_with([]), RequestFacts("a", score=real(other)), now=NOW).decided == "allow"


def test_rules_on_live_signals_and_account_facts():
    p = parse_policy({"rules": [
        {"name": "cot-new-edu", "when": {"signal": {"name": "sig_cot_elicitation", "above": 0.7},
                                        "account_age_days_below": 7, "pathway_in": ["education"]},
         "action": "require_verification", "error_code": "verification_required"},
        {"name": "region", "when": {"region_in": ["xx"]}, "action": "block"},
        {"name": "low-verif", "when": {"verification_below": 1}, "action": "protect_reasoning", "shadow": True}]})
    young = AccountInfo("o", NOW - 2 * 86400, "education", 0, "US", "active", None)
    old = AccountInfo("o", NOW - 30 * 86400, "education", 2, "US", "active", None)
    d = evaluate(p, snap_with([]), RequestFacts("a", account=young, score=real(COT)), now=NOW)
    assert d.decided == "require_verification" and d.error_code == "verification_required"
    assert not d.protect and any(r.startswith("shadow rule low-verif") for r in d.reasons)
    assert evaluate(p, snap_with([]), RequestFacts("a", account=young, score=real(BENIGN)), now=NOW).decided == "allow"
    assert evaluate(p, snap_with([]), RequestFacts("a", account=old, score=real(COT)), now=NOW).decided == "allow"
    # no classifier answer: the signal is unavailable, so the rule does not fire
    assert evaluate(p, snap_with([]), RequestFacts("a", account=young, score=lambda: None), now=NOW).decided == "allow"
    calls = []
    evaluate(p, snap_with([]), RequestFacts("a", account=old, score=real(COT, calls)), now=NOW)
    assert calls == []  # cheaper conditions failed first: the classifier never ran
    evaluate(p, snap_with([]), RequestFacts("a", account=young, score=real(COT, calls)), now=NOW)
    assert calls == [COT]
    assert evaluate(p, snap_with([]), RequestFacts("a", account=old, country="XX"), now=NOW).decided == "block"


def test_shadow_mode_decides_but_does_not_enforce():
    p = parse_policy({"mode": "shadow"})
    d = evaluate(p, snap_with([row("account", "a1", "block")]), RequestFacts("a1"), now=NOW)
    assert d.decided == "block" and d.enforced == "allow" and d.shadow
    assert d.reasons[0].startswith("shadow mode")


def test_hot_reload_keeps_last_good_policy(tmp_path):
    f = tmp_path / "policy.yaml"
    f.write_text("mode: enforce\nrules: []\n")
    h = PolicyHolder(f)
    assert h.policy.mode == "enforce" and not h.check()
    time.sleep(0.01)
    f.write_text("mode: shadow\nrules: []\n# changed\n")
    assert h.check() and h.policy.mode == "shadow" and h.version == 2
    f.write_text("mode: shadow\nrules:\n  - name: x\n    when: {pathway_in: [a]}\n    action: nuke\n")
    assert not h.check()
    assert h.policy.mode == "shadow" and "rules.0.action" in h.last_error
    with pytest.raises(ConfigError):
        PolicyHolder(f)  # at start-up a bad policy is fatal


def test_enforcement_source_reads_store_tables_and_files(tmp_path):
    from distillguard.store import Store

    st = Store(tmp_path / "store", create=True)
    st.write_table("enforcement", pa.Table.from_pylist([
        {"subject_type": "account", "subject_id": "a1", "action": "block", "reason": "scan said so", "source": "scan",
         "created_at": datetime.now(UTC), "expires_at": None, "campaign_id": "camp-1", "actor": "scan"}]))
    st.write_table("account_clusters", pa.Table.from_pylist([{"account_id": "a1", "cluster_id": "c9"}]))
    extra = tmp_path / "enf.jsonl"
    extra.write_bytes(orjson.dumps({"subject_type": "org", "subject_id": "o1", "action": "throttle", "reason": "x",
                                    "source": "analyst", "created_at": "2026-01-01T00:00:00Z",
                                    "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}) + b"\n")
    src = EnforcementSource(st.path, enforcement_file=extra)
    snap = src.load()
    assert snap.decision("account", "a1", time.time()).campaign_id == "camp-1"
    assert snap.decision("org", "o1", time.time()).action == "throttle"
    assert snap.clusters == {"a1": "c9"} and not src.changed()
    time.sleep(0.01)
    st.write_table("account_clusters", pa.Table.from_pylist([{"account_id": "a1", "cluster_id": "c10"}]))
    assert src.changed() and src.load().clusters == {"a1": "c10"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"subject_type": "account"}\nnot json\n')
    with pytest.raises(ConfigError) as e:
        EnforcementSource(None, enforcement_file=bad).load()
    assert ":2:" in str(e.value)


def test_an_empty_policy_file_is_refused_not_installed(tmp_path):
    """A reload that lands between an editor's truncate and its write must keep the rules in force."""
    f = tmp_path / "policy.yaml"
    f.write_text("rules: [{name: r, when: {region_in: [XX]}, action: block}]\n")
    h = PolicyHolder(f)
    f.write_text("")
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert h.check() is False and "empty" in h.last_error and [r.name for r in h.policy.rules] == ["r"]
    f.write_text("{}\n")
    assert h.check() is True and h.policy.rules == []
