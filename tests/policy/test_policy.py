from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import orjson
import pyarrow as pa
import pytest

from distillguard.errors import ConfigError
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
        parse_policy({"rules": [{"name": "a", "when": {"signal": {"name": "sig_cot", "abve": 0.5}}, "action": "block"}]})
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


def test_rules_on_live_signals_and_account_facts():
    p = parse_policy({"rules": [
        {"name": "cot-new-edu", "when": {"signal": {"name": "sig_cot", "above": 0.7}, "account_age_days_below": 7,
                                        "pathway_in": ["education"]}, "action": "require_verification",
         "error_code": "verification_required"},
        {"name": "region", "when": {"region_in": ["xx"]}, "action": "block"},
        {"name": "low-verif", "when": {"verification_below": 1}, "action": "protect_reasoning", "shadow": True}]})
    young = AccountInfo("o", NOW - 2 * 86400, "education", 0, "US", "active", None)
    old = AccountInfo("o", NOW - 30 * 86400, "education", 2, "US", "active", None)
    hot = RequestFacts("a", account=young, score=lambda: {"sig_cot": 0.9})
    d = evaluate(p, snap_with([]), hot, now=NOW)
    assert d.decided == "require_verification" and d.error_code == "verification_required"
    assert not d.protect and any(r.startswith("shadow rule low-verif") for r in d.reasons)
    assert evaluate(p, snap_with([]), RequestFacts("a", account=old, score=lambda: {"sig_cot": 0.9}), now=NOW).decided == "allow"
    # no classifier installed: the signal is unavailable, so the rule does not fire
    assert evaluate(p, snap_with([]), RequestFacts("a", account=young, score=lambda: None), now=NOW).decided == "allow"
    calls = []
    lazy = RequestFacts("a", account=old, score=lambda: calls.append(1) or {"sig_cot": 1.0})
    evaluate(p, snap_with([]), lazy, now=NOW)
    assert calls == []  # cheaper conditions failed first: the classifier never ran
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
