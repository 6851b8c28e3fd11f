"""Review before enforcement: scan recommends, the enforcement policy applies only what it may alone,
an analyst's confirm/dismiss reaches enforcement, campaigns.status and intel export, and survives a re-scan."""

from __future__ import annotations

import time

import pytest

from distillguard.campaigns.enforcement import RECOMMENDATIONS
from distillguard.console.actions import Actor, apply_action
from distillguard.console.data import ConsoleData
from distillguard.intel.export import build_bundle
from distillguard.policy import RequestFacts, evaluate, parse_policy
from distillguard.policy.enforcement import EnforcementSource
from distillguard.policy.review import EnforcementPolicy
from distillguard.scan.config import ScanConfig
from distillguard.scan.run import run_scan, write_tables
from distillguard.store import Store
from distillguard.testing.worlds import build_tiny_world
from tests.console.helpers import make_settings

POLICY = parse_policy({})


def _gateway_view(store, account):
    """What a gateway on this store decides for one account (same code path as a live request)."""
    snap = EnforcementSource(store.path).load()
    return evaluate(POLICY, snap, RequestFacts(account, cluster_id=snap.clusters.get(account)), now=time.time())


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    st = Store(tmp_path_factory.mktemp("review") / "store", create=True)
    w = build_tiny_world(st, seed=3)
    cfg = ScanConfig()
    res = run_scan(st, cfg, signals="never")
    write_tables(st, res, cfg)
    return st, w, res, cfg


def test_scan_recommends_and_applies_only_what_the_policy_lets_it(scanned):
    st, _, res, _ = scanned
    assert res.campaigns
    enf = st.read_table("enforcement").to_pylist()
    recs = st.read_table(RECOMMENDATIONS).to_pylist()
    assert {r["campaign_id"] for r in recs} == {c["campaign_id"] for c in res.campaigns}
    # nothing blocks or demands verification by itself: those wait for an analyst
    assert not [r for r in enf if r["source"] == "scan" and r["action"] in ("block", "require_verification")]
    for c in res.campaigns:
        mine = {r["action"]: r for r in recs if r["campaign_id"] == c["campaign_id"]}
        primary = mine[c["recommended_action"]]
        assert primary["primary"]
        if c["recommended_action"] in ("block", "require_verification"):
            assert primary["disposition"] == "awaiting_review"
        for action, r in mine.items():
            assert (r["disposition"] == "applied") == any(
                e["campaign_id"] == c["campaign_id"] and e["action"] == action for e in enf)
    applied = [r for r in recs if r["disposition"] == "applied"]
    assert applied and all(r["confidence"] >= EnforcementPolicy().rule(r["action"]).min_confidence for r in applied)
    # the gateway applies exactly the applied ones: a block-recommended member is served (protected/throttled)
    blockc = next(c for c in res.campaigns if c["recommended_action"] == "block")
    member = next(a for a, cid in res.campaign_members.items() if cid == blockc["campaign_id"])
    d = _gateway_view(st, member)
    assert d.decided != "block" and (d.protect or d.throttle)


def test_confirm_and_dismiss_flow_into_enforcement_status_and_intel(scanned, tmp_path):
    st0, _, res, cfg = scanned
    import shutil

    shutil.copytree(st0.path, tmp_path / "store")
    st = Store(tmp_path / "store")
    data = ConsoleData(st, make_settings())
    ana = Actor("ana", "analyst")
    camps = sorted(res.campaigns, key=lambda c: -c["confidence"])
    confirm, dismiss = camps[0], camps[-1]
    assert confirm["campaign_id"] != dismiss["campaign_id"]
    with pytest.raises(Exception, match="no confirmed campaigns"):
        build_bundle(st, confirmed=True, raw=True)
    apply_action(data, data.settings, ana, "confirm", "campaign", confirm["campaign_id"], "clear CoT harvesting")
    apply_action(data, data.settings, ana, "dismiss", "campaign", dismiss["campaign_id"], "a benchmark lab")

    status = {r["campaign_id"]: r["status"] for r in st.read_table("campaigns").to_pylist()}
    assert status[confirm["campaign_id"]] == "confirmed" and status[dismiss["campaign_id"]] == "dismissed"
    in_cluster: dict = {}
    for r in st.read_table("account_clusters").to_pylist():
        in_cluster.setdefault(r["cluster_id"], set()).add(r["account_id"])
    conf_members = {a for a, c in res.campaign_members.items() if c == confirm["campaign_id"]}
    for r in st.read_table("enforcement").to_pylist():  # the confirm reaches no account outside the campaign
        if r["source"] == "analyst" and r["subject_type"] == "cluster" and r["action"] != "allow":
            assert in_cluster.get(r["subject_id"], set()) <= conf_members
    bundle, rep = build_bundle(st, confirmed=True, raw=True)
    assert rep.campaigns == [confirm["campaign_id"]]
    conf_member = next(a for a, c in res.campaign_members.items() if c == confirm["campaign_id"])
    dis_member = next(a for a, c in res.campaign_members.items() if c == dismiss["campaign_id"])
    want = confirm["recommended_action"]
    assert _gateway_view(st, conf_member).decided == want
    d = _gateway_view(st, dis_member)
    assert d.decided == "allow" and not d.protect and not d.throttle
    recs = {(r["campaign_id"], r["action"]): r["disposition"] for r in st.read_table(RECOMMENDATIONS).to_pylist()}
    assert recs[(confirm["campaign_id"], want)] == "confirmed"
    assert data.campaign(confirm["campaign_id"])["status"] == "confirmed"

    # a re-scan keeps both verdicts: the dismissed campaign is not re-enforced, the confirmed one stays enforced
    time.sleep(0.01)
    write_tables(st, res, cfg)
    status = {r["campaign_id"]: r["status"] for r in st.read_table("campaigns").to_pylist()}
    assert status[confirm["campaign_id"]] == "confirmed" and status[dismiss["campaign_id"]] == "dismissed"
    enf = st.read_table("enforcement").to_pylist()
    assert not [r for r in enf if r["source"] == "scan" and r["campaign_id"] == dismiss["campaign_id"]]
    d = _gateway_view(st, dis_member)
    assert d.decided == "allow" and not d.protect and not d.throttle
    assert _gateway_view(st, conf_member).decided == want


def test_a_rule_in_shadow_reports_what_it_would_have_done(scanned, tmp_path):
    st0, _, res, _ = scanned
    st = Store(tmp_path / "store", create=True)
    build_tiny_world(st, seed=3)
    cfg = ScanConfig.model_validate({"campaigns": {"enforcement": {"rules": {
        "protect_reasoning": {"mode": "off"}, "throttle": {"mode": "shadow", "subjects": ["account"]},
        "block": {"mode": "shadow", "subjects": ["account"]}}}}})
    write_tables(st, res, cfg)
    enf = st.read_table("enforcement").to_pylist()
    assert enf and all(r["source"] == "scan:shadow" for r in enf)
    recs = st.read_table(RECOMMENDATIONS).to_pylist()
    assert {r["disposition"] for r in recs} <= {"shadow", "awaiting_review", "below_confidence"}
    assert any(r["disposition"] == "shadow" and "would" in r["why"] and r["n_subjects"] > 0 for r in recs)
    member = next(a for a, c in res.campaign_members.items()
                  if next(x for x in res.campaigns if x["campaign_id"] == c)["recommended_action"] == "block")
    d = _gateway_view(st, member)
    assert d.decided == "allow" and not d.protect and not d.throttle  # nothing applied ...
    assert any("(would block)" in r or "(would throttle)" in r for r in d.reasons)  # ... but reported


def test_auto_block_above_a_confidence_when_configured(scanned):
    _, _, res, _ = scanned
    from datetime import UTC, datetime

    from distillguard.campaigns.enforcement import recommend

    pol = EnforcementPolicy.model_validate({"rules": {"block": {"mode": "auto", "min_confidence": 0.0,
                                                               "subjects": ["account"]}}})
    recs, enf = recommend(res.campaigns, res.campaign_members, datetime.now(UTC), 14, pol)
    blocked = {r["subject_id"] for r in enf.to_pylist() if r["action"] == "block"}
    want = {a for a, c in res.campaign_members.items()
            if next(x for x in res.campaigns if x["campaign_id"] == c)["recommended_action"] == "block"}
    assert want and blocked == want
    # the other defaults still hold when only `block` is configured
    assert pol.rule("throttle").mode == "auto" and pol.rule("require_verification").mode == "review"


def test_cluster_rows_only_for_clusters_of_campaign_members_alone():
    """A community can hold ordinary users behind the same proxy pool or NAT: a throttle or block on such a
    cluster would reach them, so only clusters made of campaign members alone get a cluster row."""
    from datetime import UTC, datetime

    from distillguard.campaigns.enforcement import recommend

    camp = {"campaign_id": "c", "title": "t", "confidence": 0.9, "recommended_action": "block",
            "cluster_ids": ["pure", "mixed"], "org_key": None, "evidence": []}
    members = {"a1": "c", "a2": "c", "a3": "c"}
    clusters = {"pure": ["a1", "a2"], "mixed": ["a3", "benign-user"]}
    pol = EnforcementPolicy.model_validate({"rules": {"block": {"mode": "auto", "subjects": ["account", "cluster"]}}})
    recs, enf = recommend([camp], members, datetime.now(UTC), 14, pol, cluster_members=clusters)
    rows = enf.to_pylist()
    assert {(r["subject_type"], r["subject_id"]) for r in rows if r["action"] == "block"} == {
        ("account", "a1"), ("account", "a2"), ("account", "a3"), ("cluster", "pure")}
    assert not any(r["subject_id"] in ("mixed", "benign-user") for r in rows)
    assert next(r for r in recs.to_pylist() if r["action"] == "block")["n_subjects"] == 4
