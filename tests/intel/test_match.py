"""The issue's "done when": A exports, B imports and matches, and B now flags accounts its scan missed."""

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from distillguard.errors import DistillguardError
from distillguard.intel.apply import apply_intel
from distillguard.intel.importer import import_bundle
from distillguard.intel.keys import parse_key
from distillguard.intel.match import match_store

from .conftest import PARTNER, make_cfg

CFG = make_cfg()

NOW = datetime(2026, 2, 14, 12, 0, tzinfo=UTC)
GROUP_KEY_HEX = "8f1c2b7d9e0a4c6b3d5e7f9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e"


def _flagged(store) -> set[str]:
    return {r["account_id"] for r in store.read_table("account_risk").to_pylist() if r["flagged"]}


def _share(two, bundles, raw=False):
    rep = import_bundle(bundles["raw" if raw else "hashed"], two.store_b, PARTNER, CFG)
    assert rep.indicators > 0 and rep.unsupported == 0
    return rep


def test_partner_intel_finds_accounts_b_missed(two, bundles, key, tmp_path):
    before = _flagged(two.store_b)
    assert not before & set(two.b_attack), "precondition: B's own scan missed the campaign"

    _share(two, bundles)
    rep = match_store(two.store_b, key, CFG, now=NOW)
    applied = apply_intel(two.store_b, CFG, now=NOW)

    after = _flagged(two.store_b)
    assert set(two.b_attack) <= after
    assert sorted(applied.newly_flagged) == sorted(two.b_attack)
    assert not after & set(two.b_benign), "a legitimate customer was flagged on partner intel"
    # The account on fresh infrastructure is found by its prompts alone.
    hits = {h["account_id"]: h for h in rep.hits}
    assert hits["b-x05"]["kinds"] == ["template"]
    # Every campaign account is recognised by its templates, including those alternating two of them.
    assert all("template" in hits[a]["kinds"] for a in two.b_attack)
    # The legit customer in the campaign's hosting ASN matches weakly and stays unflagged; the one behind
    # the university NAT does not match at all (A never exported the NAT).
    assert hits[two.b_benign_same_asn]["kinds"] == ["asn"] and hits[two.b_benign_same_asn]["boost"] < 0.2
    assert two.b_benign_nat not in hits and two.b_benign_app not in hits

    matches = two.store_b.read_table("intel_matches").to_pylist()
    assert {m["kind"] for m in matches} >= {"ip", "ip24", "asn", "email_domain", "payment", "ja4", "template"}
    ev = next(m for m in matches if m["account_id"] == "b-x00" and m["kind"] == "payment")["evidence"]
    assert "partner Provider A" in ev and "Chain-of-thought harvesting" in ev
    risk = {r["account_id"]: r for r in two.store_b.read_table("account_risk").to_pylist()}
    assert risk["b-x00"]["risk_before_intel"] == pytest.approx(0.22)
    assert any(x.startswith("partner intel:") for x in risk["b-x00"]["reasons"])
    edges = two.store_b.read_table("intel_edges").to_pylist()
    linked = {e["src_account"] for e in edges} | {e["dst_account"] for e in edges}
    assert set(two.b_attack) <= linked and all(e["kind"] == "intel" for e in edges)


def test_apply_is_idempotent_and_can_enforce(two, bundles, key, tmp_path):
    _share(two, bundles)
    match_store(two.store_b, key, CFG, now=NOW)
    trusted = make_cfg(may_enforce=True, enforce={"allow": True})
    first = apply_intel(two.store_b, trusted, now=NOW, enforce_action="require_verification")
    r1 = {r["account_id"]: r["risk"] for r in two.store_b.read_table("account_risk").to_pylist()}
    second = apply_intel(two.store_b, trusted, now=NOW, enforce_action="require_verification")
    r2 = {r["account_id"]: r["risk"] for r in two.store_b.read_table("account_risk").to_pylist()}
    assert r1 == r2 and second.newly_flagged == []
    enf = two.store_b.read_table("enforcement").to_pylist()
    assert len(enf) == first.enforcement_rows == len(two.b_attack)
    assert {e["source"] for e in enf} == {"intel"} and {e["action"] for e in enf} == {"require_verification"}
    with pytest.raises(DistillguardError, match="unknown enforcement action"):
        apply_intel(two.store_b, enforce_action="nuke")


def test_matching_needs_the_groups_key(two, bundles, key, other_key, tmp_path):
    _share(two, bundles)
    rep = match_store(two.store_b, other_key, CFG, now=NOW)
    assert rep.matches == 0 and rep.indicators_other_key > 0 and "another group key" in rep.warnings[0]
    # Even when the bundle does not say which key it used, a wrong key finds nothing: the HMACs differ.
    t = two.store_b.read_table("intel_indicators")
    two.store_b.write_table("intel_indicators", t.set_column(
        t.schema.get_field_index("key_id"), "key_id", pa.nulls(t.num_rows, pa.string())))
    rep = match_store(two.store_b, other_key, CFG, now=NOW)
    assert rep.matches == 0
    assert match_store(two.store_b, key, CFG, now=NOW).matches > 0


def test_raw_bundle_matches_without_a_key(two, bundles, tmp_path):
    _share(two, bundles, raw=True)
    rep = match_store(two.store_b, None, CFG, now=NOW)
    assert set(two.b_attack) <= {h["account_id"] for h in rep.hits}


def test_expired_indicators_do_not_match(two, bundles, key, tmp_path):
    _share(two, bundles)
    rep = match_store(two.store_b, key, CFG, now=NOW + timedelta(days=400))
    assert rep.matches == 0 and rep.indicators_expired > 0


def test_reimport_replaces_instead_of_duplicating(two, bundles, key, tmp_path):
    r1 = _share(two, bundles)
    r2 = _share(two, bundles)
    assert r1.total_stored == r2.total_stored == r1.indicators


def test_import_refuses_bad_input(two, bundles, tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"type": "bundle", "id": "bundle--not-a-uuid", "objects": []}')
    with pytest.raises(DistillguardError, match="not a valid STIX"):
        import_bundle(p, two.store_b, PARTNER, CFG)
    with pytest.raises(DistillguardError, match="not found"):
        import_bundle(tmp_path / "missing.json", two.store_b, PARTNER, CFG)
    assert not two.store_b.has_table("intel_indicators")
    with pytest.raises(DistillguardError, match="no imported indicators"):
        match_store(two.store_b, None, CFG)


def test_apply_without_a_local_scan_creates_rows_for_matched_accounts(two, bundles):
    import shutil

    shutil.rmtree(two.store_b.path / "tables" / "account_risk")
    _share(two, bundles)
    match_store(two.store_b, parse_key(GROUP_KEY_HEX, "t"), CFG, now=NOW)
    rep = apply_intel(two.store_b, CFG, now=NOW)
    rows = {r["account_id"]: r for r in two.store_b.read_table("account_risk").to_pylist()}
    assert set(rows) == set(two.b_attack) | {two.b_benign_same_asn}  # only matched accounts
    assert sorted(rep.newly_flagged) == sorted(two.b_attack)
    assert rows[two.b_benign_same_asn]["flagged"] is False
