import json
import re
from datetime import UTC, datetime

import pytest
import stix2

from distillguard.errors import DistillguardError
from distillguard.intel.config import IntelConfig
from distillguard.intel.export import build_bundle, validate_bundle_text
from distillguard.intel.stixobjects import EXT_INDICATOR, parse_pattern
from distillguard.testing.intel_fixture import CAMPAIGN, COMMON_UA, NAT_IP

NOW = datetime(2026, 2, 14, 12, 0, tzinfo=UTC)


def _objs(bundle_json: str) -> list[dict]:
    return json.loads(bundle_json)["objects"]


def test_bundle_has_the_model_and_parses_strictly(bundles):
    text = bundles["hashed"].read_text()
    parsed = validate_bundle_text(text)  # allow_custom=False
    assert parsed.type == "bundle"
    objs = _objs(text)
    by_type = {}
    for o in objs:
        by_type.setdefault(o["type"], []).append(o)
    assert {"identity", "campaign", "intrusion-set", "indicator", "relationship", "note", "marking-definition",
            "extension-definition"} <= set(by_type)
    camp = by_type["campaign"][0]
    iset = by_type["intrusion-set"][0]
    rels = by_type["relationship"]
    assert any(r["relationship_type"] == "attributed-to" and r["source_ref"] == camp["id"]
               and r["target_ref"] == iset["id"] for r in rels)
    ind_ids = {i["id"] for i in by_type["indicator"]}
    indicated = {r["source_ref"] for r in rels if r["relationship_type"] == "indicates" and r["target_ref"] == camp["id"]}
    assert indicated == ind_ids
    kinds = {i["extensions"][EXT_INDICATOR]["kind"] for i in by_type["indicator"]}
    assert kinds == {"ip", "ip24", "asn", "email_domain", "ja4", "header_fp", "user_agent", "payment", "template"}
    amber = stix2.TLP_AMBER.id
    provider = next(i for i in by_type["identity"] if i["name"] == "distillguard provider")
    for ind in by_type["indicator"]:
        assert ind["valid_from"] < ind["valid_until"]
        assert 1 <= ind["confidence"] <= 100
        assert ind["object_marking_refs"] == [amber]
        assert ind["created_by_ref"] == provider["id"]
        assert ind["pattern_type"] == "stix"
    assert "reasoning 78%" in by_type["note"][0]["content"]
    assert "Accounts in the campaign: 12" in by_type["note"][0]["content"]
    # Each distillguard SCO type comes with its extension definition, and instances of it parse strictly.
    ext_ids = {e["id"] for e in by_type["extension-definition"]}
    assert len(ext_ids) == 6


def test_default_export_leaks_no_identifier_or_prompt_text(bundles):
    text = bundles["hashed"].read_text()
    assert not re.search(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b", text), "a dotted-quad IP left the building"
    lowered = text.lower()
    for needle in (CAMPAIGN["domain"], "quickinbox.example", CAMPAIGN["payment"], CAMPAIGN["ja4"],
                   CAMPAIGN["header_fp"], CAMPAIGN["ua"], "64512", "olympiad", "step by step", "software engineer",
                   "a-att-", "op-relaymail", "relaymail", COMMON_UA):
        assert needle.lower() not in lowered, needle


def test_raw_export_carries_native_patterns(bundles):
    text = bundles["raw"].read_text()
    validate_bundle_text(text)
    patterns = {o["pattern"] for o in _objs(text) if o["type"] == "indicator"}
    assert "[ipv4-addr:value ISSUBSET '203.0.113.0/24']" in patterns
    assert "[autonomous-system:number = 64512]" in patterns
    assert f"[domain-name:value = '{CAMPAIGN['domain']}']" in patterns
    assert f"[x-distillguard-payment-instrument:value = '{CAMPAIGN['payment']}']" in patterns
    assert any(p.startswith("[x-distillguard-prompt-template:signature = ") for p in patterns)


def test_values_legitimate_accounts_share_are_dropped(two, key):
    _, rep = build_bundle(two.store_a, campaign_id=two.campaign_id, key=key, now=NOW)
    dropped = {(d["kind"], d["value"]) for d in rep.dropped}
    assert ("ip", NAT_IP) in dropped
    assert ("user_agent", COMMON_UA) in dropped
    assert all(d["benign_accounts"] > 0 for d in rep.dropped)


def test_keep_benign_overlap_labels_and_caps_confidence(two, key):
    cfg = IntelConfig()
    cfg.export.keep_benign_overlap = True
    bundle, rep = build_bundle(two.store_a, campaign_id=two.campaign_id, key=key, raw=True, config=cfg, now=NOW)
    assert not rep.dropped
    nat = [o for o in bundle.objects if o.type == "indicator" and o.pattern == f"[ipv4-addr:value = '{NAT_IP}']"]
    assert nat and "benign-overlap" in nat[0].labels and nat[0].confidence <= 15


def test_hashed_export_needs_a_key(two):
    with pytest.raises(DistillguardError, match="group's key"):
        build_bundle(two.store_a, campaign_id=two.campaign_id, key=None)


def test_unknown_campaign_and_missing_selection(two, key):
    with pytest.raises(DistillguardError, match="no campaign"):
        build_bundle(two.store_a, campaign_id="nope", key=key)
    with pytest.raises(DistillguardError, match="--campaign ID or --confirmed"):
        build_bundle(two.store_a, key=key)
    with pytest.raises(DistillguardError, match="no campaigns table"):
        build_bundle(two.store_b, confirmed=True, key=key)


def test_ids_are_stable_across_exports_and_tlp_is_configurable(two, key):
    cfg = IntelConfig()
    cfg.export.kinds = ["asn", "payment", "email_domain"]
    b1, _ = build_bundle(two.store_a, campaign_id=two.campaign_id, key=key, now=NOW, config=cfg)
    b2, _ = build_bundle(two.store_a, confirmed=True, key=key, now=NOW, tlp="red", config=cfg)
    ids1 = {o.id for o in b1.objects if o.type == "indicator"}
    ids2 = {o.id for o in b2.objects if o.type == "indicator"}
    assert ids1 == ids2
    assert all(o.object_marking_refs == [stix2.TLP_RED.id] for o in b2.objects if o.type == "indicator")


def test_strict_parse_rejects_unregistered_custom_content(bundles):
    doc = json.loads(bundles["hashed"].read_text())
    doc["objects"].append({"type": "x-evil-thing", "spec_version": "2.1", "id": "x-evil-thing--" + "0" * 8
                           + "-0000-4000-8000-" + "0" * 12, "payload": "boom"})
    with pytest.raises(DistillguardError, match="not a valid STIX 2.1 bundle"):
        validate_bundle_text(json.dumps(doc))
    doc["objects"].pop()
    ind = next(o for o in doc["objects"] if o["type"] == "indicator")
    ind["x_smuggled"] = "text"
    with pytest.raises(DistillguardError):
        validate_bundle_text(json.dumps(doc))


@pytest.mark.parametrize("pattern,kind,form", [
    ("[ipv4-addr:value = '203.0.113.9']", "ip", "raw"),
    ("[ipv4-addr:value ISSUBSET '203.0.113.0/24']", "ip24", "raw"),
    ("[ipv4-addr:value ISSUBSET '10.0.0.0/8']", "cidr", "raw"),
    ("[email-addr:value LIKE '%@relaymail.example']", "email_domain", "raw"),
    ("[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']", "unsupported", "raw"),
    ("[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [ipv4-addr:value = '5.6.7.8']", "unsupported", "raw"),
])
def test_foreign_patterns(pattern, kind, form):
    p = parse_pattern(pattern)
    assert (p.kind, p.value_form) == (kind, form)
