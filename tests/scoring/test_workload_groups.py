"""Workload harvest groups (scoring/workload.py): the tail's accounts on one workload, against a hypergeometric null."""
import numpy as np
import pyarrow as pa

from distillguard.scan.config import ScoringConfig, WorkloadGroupConfig
from distillguard.scoring.workload import score_workload_groups, workload_groups


def _store(n_benign: int = 200, n_attack: int = 6, seed: int = 0) -> pa.Table:
    """Chat users (mostly no signal), developers (coding + tools, half of them asking long answers) and, when
    ``n_attack``, a harvest running one reasoning-elicitation workload at the top of harvest shape."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_benign):
        dev = i % 2 == 0
        rows.append(dict(account_id=f"b{i:03d}", c_harvest_shape=float(rng.uniform(0.0, 0.5)),
                         share_cap_coding=float(rng.uniform(0.7, 1.0)) if dev else float(rng.uniform(0, 0.3)),
                         share_cot_elicitation=0.0, tools_share=float(rng.uniform(0.6, 0.9)) if dev else 0.0,
                         reasoning_share=float(rng.uniform(0.1, 0.4)), suspicion=float(rng.uniform(0.1, 0.5))))
    for i in range(n_attack):
        rows.append(dict(account_id=f"a{i:03d}", c_harvest_shape=float(rng.uniform(0.55, 0.8)),
                         share_cap_coding=0.1, share_cot_elicitation=float(rng.uniform(0.4, 0.6)), tools_share=0.0,
                         reasoning_share=float(rng.uniform(0.6, 0.7)), suspicion=float(rng.uniform(0.6, 0.8))))
    return pa.Table.from_pylist(rows)


def test_one_workload_in_the_harvest_tail_is_found():
    groups = workload_groups(_store(), WorkloadGroupConfig(enabled=True))
    assert len(groups) == 1
    assert groups[0]["members"] == [f"a{i:03d}" for i in range(6)]
    assert groups[0]["p"] <= 0.01 and groups[0]["k"] == 6


def test_store_without_attackers_has_no_group():
    """The benign populations' long-answer corners reach the tail about as often as their size predicts."""
    for seed in range(5):
        assert workload_groups(_store(n_attack=0, seed=seed), WorkloadGroupConfig(enabled=True)) == []


def test_enrichment_keeps_a_population_whose_tail_is_a_minority_out():
    """Benign accounts on the attackers' workload, mostly outside the tail, dilute the group below
    ``min_enrichment``; with the key at 0 the null alone decides."""
    t = _store(n_attack=6)
    extra = [dict(account_id=f"c{i:03d}", c_harvest_shape=0.01, share_cap_coding=0.1, share_cot_elicitation=0.5,
                  tools_share=0.0, reasoning_share=0.65, suspicion=0.2) for i in range(40)]
    t = pa.concat_tables([t, pa.Table.from_pylist(extra, schema=t.schema)])
    assert workload_groups(t, WorkloadGroupConfig(enabled=True, min_enrichment=0.4)) == []
    assert workload_groups(t, WorkloadGroupConfig(enabled=True, min_enrichment=0.0, alpha=1.0))


def test_groups_score_as_clusters():
    t = _store()
    cs, risk = score_workload_groups(t, workload_groups(t, WorkloadGroupConfig(enabled=True)), ScoringConfig())
    assert [c.cluster_id for c in cs] == ["clw-0000"] and cs[0].coordination == 1.0
    assert risk.num_rows == 6 and set(risk["cluster_id"].to_pylist()) == {"clw-0000"}
    assert min(risk["risk"].to_pylist()) >= 0.5  # suspicion 0.6-0.8 ** 0.6


def _with_intent(t: pa.Table, n_attack: int, seed: int = 1) -> pa.Table:
    """The store with intent components: attackers high with their own variation, benign accounts low."""
    rng = np.random.default_rng(seed)
    rows = t.to_pylist()
    for r in rows:
        hi = r["account_id"].startswith("a")
        for c in ("c_intent", "c_reasoning", "c_task_items", "c_capability"):
            r[c] = float(rng.uniform(0.5, 0.65)) if hi else float(rng.uniform(0.0, 0.2))
    return pa.Table.from_pylist(rows)


def _chat_user_on_the_workload() -> dict:
    """A benign account asking the campaign's kind of long answer: in the tail, on the workload, weak intent."""
    return dict(account_id="u000", c_harvest_shape=0.56, share_cap_coding=0.1, share_cot_elicitation=0.5,
                tools_share=0.0, reasoning_share=0.65, suspicion=0.15, c_intent=0.05, c_reasoning=0.1,
                c_task_items=0.08, c_capability=0.1)


def test_member_weak_on_its_own_evidence_is_left_out():
    """The chat user joins on tail rank and workload; the member check leaves it out, and only it."""
    t = _with_intent(_store(n_attack=12), 12)
    t = pa.concat_tables([t, pa.Table.from_pylist([_chat_user_on_the_workload()], schema=t.schema)])
    off = workload_groups(t, WorkloadGroupConfig(member_max_z=1e9))
    assert len(off) == 1 and "u000" in off[0]["members"]
    on = workload_groups(t, WorkloadGroupConfig())
    assert len(on) == 1 and on[0]["members"] == [f"a{i:03d}" for i in range(12)]
    assert on[0]["left_out"] == ["u000"]
    _, risk = score_workload_groups(t, on, ScoringConfig())
    assert "u000" not in risk["account_id"].to_pylist()


def test_attacker_weak_on_one_column_stays():
    """An attacker's own variation — far below the group on one column — is not enough to leave it out."""
    t = _with_intent(_store(n_attack=12), 12).to_pylist()
    a = next(r for r in t if r["account_id"] == "a003")
    a["suspicion"], a["c_reasoning"] = 0.1, 0.05
    groups = workload_groups(pa.Table.from_pylist(t), WorkloadGroupConfig())
    assert len(groups) == 1 and "a003" in groups[0]["members"] and groups[0]["left_out"] == []


def test_small_groups_are_not_checked():
    """Below ``member_min_group`` there is no bulk to compare with: every member of the group stays."""
    t = _with_intent(_store(n_attack=6), 6)
    t = pa.concat_tables([t, pa.Table.from_pylist([_chat_user_on_the_workload()], schema=t.schema)])
    groups = workload_groups(t, WorkloadGroupConfig())
    assert len(groups) == 1 and "u000" in groups[0]["members"]
    assert "u000" not in workload_groups(t, WorkloadGroupConfig(member_min_group=5))[0]["members"]


def test_cluster_risk_exponents_are_configuration():
    """The risk formula's exponents come from the scoring configuration, for every route."""
    from distillguard.scoring.risk import cluster_risk
    base = ScoringConfig()
    assert cluster_risk(0.5, 0.8, base) == 0.5 ** 0.4 * 0.8 ** 0.6
    heavier = ScoringConfig(coordination_exponent=1.0, suspicion_exponent=1.0)
    assert cluster_risk(0.5, 0.8, heavier) == 0.4
    assert cluster_risk(0.5, 0.8, heavier, 0.5) == 0.2
    t = _store()
    groups = workload_groups(t, WorkloadGroupConfig(enabled=True))
    lo = score_workload_groups(t, groups, ScoringConfig(suspicion_exponent=2.0))[0]
    hi = score_workload_groups(t, groups, base)[0]
    assert lo and all(a.risk < b.risk for a, b in zip(lo, hi, strict=True))


def test_group_weights_cover_every_edge_kind_and_reject_unknown_groups():
    """Every evidence group an edge kind maps to has a configured weight; a misspelt group is an error, and a
    partial override keeps the other defaults."""
    import pytest
    from pydantic import ValidationError

    from distillguard.graph.edges import KIND_GROUP
    cfg = ScoringConfig()
    assert set(KIND_GROUP.values()) <= set(cfg.group_weights)
    assert ScoringConfig(group_weights={"payment": 2.0}).group_weights["network"] == cfg.group_weights["network"]
    with pytest.raises(ValidationError):
        ScoringConfig(group_weights={"paymnet": 2.0})
    with pytest.raises(ValidationError):
        ScoringConfig(group_weights={"payment": -1.0})


def _small_group_with_a_bystander() -> pa.Table:
    """Five harvest accounts on one workload (suspicion 0.45-0.8) and a reseller on that workload in the tail with
    ordinary suspicion (0.2): six members, under ``member_min_group``, so the robust-z check does not run."""
    t = _with_intent(_store(n_attack=5), 5).to_pylist()
    for r, s in zip((r for r in t if r["account_id"].startswith("a")), (0.8, 0.75, 0.6, 0.5, 0.45), strict=True):
        r["suspicion"] = s
    u = _chat_user_on_the_workload() | {"account_id": "r000", "suspicion": 0.2, "c_harvest_shape": 0.7}
    return pa.concat_tables([pa.Table.from_pylist(t), pa.Table.from_pylist([u], schema=pa.Table.from_pylist(t).schema)])


def test_member_below_its_peers_is_judged_on_its_own_traffic():
    """The reseller is in the group (too small for the member check) but its suspicion is under
    ``member_peer_ratio`` of the others' mean: it takes ``cluster_risk(1, own)``, under the flag threshold, while
    every harvest account — the weakest at 0.45 too — keeps the group's risk. Off: the reseller is flagged."""
    from distillguard.scoring.risk import cluster_risk
    t = _small_group_with_a_bystander()
    groups = workload_groups(t, WorkloadGroupConfig())
    assert len(groups) == 1 and "r000" in groups[0]["members"] and len(groups[0]["members"]) == 6
    cs, risk = score_workload_groups(t, groups, ScoringConfig())
    got = dict(zip(risk["account_id"].to_pylist(), risk["risk"].to_pylist(), strict=True))
    assert cs[0].risk >= 0.5
    assert got["r000"] == cluster_risk(1.0, 0.2, ScoringConfig()) < 0.5
    assert all(got[f"a{i:03d}"] == cs[0].risk for i in range(5))
    off = ScoringConfig(workload_groups=WorkloadGroupConfig(member_peer_ratio=None))
    _, risk_off = score_workload_groups(t, workload_groups(t, off.workload_groups), off)
    assert dict(zip(risk_off["account_id"].to_pylist(), risk_off["risk"].to_pylist(), strict=True))["r000"] >= 0.5


def test_peer_check_only_lowers_a_member():
    """A member whose own suspicion would give more than the group's keeps the group's (the fall is one-sided); a
    member under its peers falls to its own level, with a reason; None turns the check off."""
    from distillguard.scoring.workload import _member_risk
    cfg = ScoringConfig()
    own = {"a": 0.9, "b": 0.1, "c": 0.8}
    assert _member_risk("a", own, 0.5, cfg)[0] == 0.5   # above its peers: the group's risk, not its own 0.94
    assert _member_risk("b", own, 0.7, cfg)[0] == min(0.7, 0.1 ** 0.6)
    assert _member_risk("b", own, 0.7, cfg)[1]           # and says why
    assert _member_risk("b", {"a": 0.9, "b": 0.1}, 0.7,
                        ScoringConfig(workload_groups=WorkloadGroupConfig(member_peer_ratio=None)))[0] == 0.7


def _demand_store(n_peers: int = 25, bystander: dict | None = None) -> tuple[pa.Table, list[dict]]:
    """Five harvest accounts on one reasoning-elicitation workload asking, receiving and eliciting far more than the
    store's other accounts on that workload (``n_peers`` of them, outside the group, at 0.4–0.6 on each demand
    column), and a bystander in the group on the same workload whose suspicion clears the peer check (0.45 against
    the others' 0.70 × 0.6) but whose demand is under the peers' median on every column."""
    base = dict(share_cot_elicitation=0.5, reasoning_share=0.65, share_cap_coding=0.1, tools_share=0.0)
    rows = [dict(base, account_id=f"a{i:03d}", suspicion=s, c_harvest_shape=0.7, c_long_output=0.9,
                 c_received_output=0.9, c_reasoning=0.6) for i, s in enumerate((0.8, 0.75, 0.7, 0.65, 0.6))]
    rows.append(dict(base, account_id="n000", suspicion=0.45, c_harvest_shape=0.7, c_long_output=0.3,
                     c_received_output=0.3, c_reasoning=0.3) | (bystander or {}))
    rows += [dict(base, account_id=f"p{i:03d}", suspicion=0.3, c_harvest_shape=0.1,
                  c_long_output=0.4 + 0.2 * i / max(n_peers - 1, 1), c_received_output=0.4 + 0.2 * i / max(n_peers - 1, 1),
                  c_reasoning=0.4 + 0.2 * i / max(n_peers - 1, 1)) for i in range(n_peers)]
    rows += [dict(account_id=f"d{i:03d}", suspicion=0.2, c_harvest_shape=0.2, c_long_output=0.5, c_received_output=0.5,
                  c_reasoning=0.2, share_cot_elicitation=0.0, reasoning_share=0.1, share_cap_coding=0.9, tools_share=0.8)
             for i in range(40)]
    members = sorted([f"a{i:03d}" for i in range(5)] + ["n000"])
    return pa.Table.from_pylist(rows), [dict(members=members, k=6, K=6, tail=10, n=len(rows), p=1e-6, left_out=[])]


def _risks(t, groups, cfg):
    cs, risk = score_workload_groups(t, groups, cfg)
    return cs[0], dict(zip(risk["account_id"].to_pylist(), risk["risk"].to_pylist(), strict=True)), \
        dict(zip(risk["account_id"].to_pylist(), risk["reasons"].to_pylist(), strict=True))


def _judged_on_own_traffic(t, groups, reason: str, off_key: str) -> None:
    """The bystander ``n000`` (own suspicion 0.45) takes ``cluster_risk(1, own)`` with ``reason`` among its reasons,
    the five harvest accounts keep the group's risk, and with ``off_key`` null the bystander takes the group's risk."""
    from distillguard.scoring.risk import cluster_risk
    cfg = ScoringConfig()
    cs, got, why = _risks(t, groups, cfg)
    assert got["n000"] == cluster_risk(1.0, 0.45, cfg) < cs.risk
    assert any(reason in r for r in why["n000"])
    assert all(got[f"a{i:03d}"] == cs.risk for i in range(5))
    _, off, _ = _risks(t, groups, ScoringConfig(workload_groups=WorkloadGroupConfig(**{off_key: None})))
    assert off["n000"] == cs.risk


def test_member_asking_no_more_than_its_workload_peers_is_judged_on_its_own_traffic():
    """The bystander passes the peer check on suspicion but asks, receives and elicits less than the typical account
    doing the same work outside the group: it takes ``cluster_risk(1, own)``, below the group's; the harvest accounts
    keep the group's risk. Off (``member_demand_columns`` null): the bystander takes the group's risk."""
    _judged_on_own_traffic(*_demand_store(), "no more than the 25 accounts outside its group", "member_demand_columns")


def test_member_above_its_peers_on_one_demand_column_keeps_the_groups_risk():
    """Receiving more than the workload's typical account (one column) is what a proxy carrying its owner's traffic
    beside the harvest still shows: it keeps the group's risk."""
    t, groups = _demand_store(bystander=dict(c_received_output=0.7))
    cs, got, _ = _risks(t, groups, ScoringConfig())
    assert got["n000"] == cs.risk


def test_demand_check_needs_enough_workload_peers():
    """Fewer than ``member_demand_min_peers`` accounts outside the group on its workload: no yardstick, no check."""
    t, groups = _demand_store(n_peers=10)
    cs, got, _ = _risks(t, groups, ScoringConfig())
    assert got["n000"] == cs.risk
    cs, got, _ = _risks(t, groups, ScoringConfig(workload_groups=WorkloadGroupConfig(member_demand_min_peers=5)))
    assert got["n000"] < cs.risk


def _level_store(bystander: dict | None = None) -> tuple[pa.Table, list[dict]]:
    """``_demand_store`` in tokens: the harvest accounts ask 8,500–9,500 max_tokens and receive ~1,000 tokens, the
    25 workload peers ask 2,000–3,500 and receive 450–650; the bystander is above the peers' median on the asked-length
    percentile (0.7: chosen into the tail on it) but asks 3,300 and receives 600, a third of the group's kit."""
    t, groups = _demand_store(bystander=dict(c_long_output=0.7) | (bystander or {}))
    rows = t.to_pylist()
    for r in rows:
        a = r["account_id"]
        if a.startswith("a"):
            r["mean_max_tokens"], r["mean_output_tokens"] = 8500.0 + 250 * int(a[1:]), 950.0 + 25 * int(a[1:])
        elif a.startswith("p"):
            r["mean_max_tokens"], r["mean_output_tokens"] = 2000.0 + 60 * int(a[1:]), 450.0 + 8 * int(a[1:])
        elif a == "n000":
            r["mean_max_tokens"], r["mean_output_tokens"] = 3300.0, 600.0
        else:
            r["mean_max_tokens"], r["mean_output_tokens"] = 2500.0, 500.0
    for k in ("mean_max_tokens", "mean_output_tokens"):
        if k in (bystander or {}):
            next(r for r in rows if r["account_id"] == "n000")[k] = bystander[k]
    return pa.Table.from_pylist(rows), groups


def test_member_far_below_its_groups_token_level_is_judged_on_its_own_traffic():
    """The bystander passes the peer check and the demand check (above its peers' median asked-length percentile)
    but asks and receives a third of its group's tokens where the group is clearly above its workload peers: it
    takes ``cluster_risk(1, own)``; the harvest accounts keep the group's risk. Off (``member_level_columns``
    null): the bystander takes the group's risk (quiet_hydra-308 of the second dev family: two chat users)."""
    _judged_on_own_traffic(*_level_store(), "far fewer tokens than its group's bulk", "member_level_columns")


def test_member_near_its_groups_token_level_keeps_the_groups_risk():
    """A member asking 30% under its group's median (a proxy mixing its owner's shorter requests in), or far under it
    on one column only, is within the group's level: it keeps the group's risk."""
    for by in (dict(mean_max_tokens=6500.0, mean_output_tokens=750.0), dict(mean_output_tokens=1000.0)):
        t, groups = _level_store(by)
        cs, got, _ = _risks(t, groups, ScoringConfig())
        assert got["n000"] == cs.risk, by


def _with_orgs(t: pa.Table, verified: int, level: int = 2, org_of=lambda a: "org-acme") -> pa.Table:
    """The store with account facts: the attackers' workload run by ``verified`` accounts of one organisation
    verified to ``level`` (the rest each in its own one-account organisation)."""
    rows = t.to_pylist()
    k = 0
    for r in rows:
        if r["account_id"].startswith("a") and k < verified:
            r["org_id"], r["verification_level"] = org_of(r["account_id"]), level
            k += 1
        else:
            r["org_id"], r["verification_level"] = f"own-{r['account_id']}", 1
    return pa.Table.from_pylist(rows)


def test_a_verified_organisations_group_is_declared_not_hidden():
    """A company's developers on one workload fill the harvest-shape tail like an operation (dev2 quiet_hydra-314:
    153 of a verified 259-account company, a false campaign): the group takes the declared-organisation discount a
    community takes, in proportion to its verified members; unverified, one-account organisations or the key off
    leave the group's risk as it was."""
    base = _store()
    cfg = ScoringConfig()
    plain = score_workload_groups(base, workload_groups(base, cfg.workload_groups), cfg)[0][0].risk
    assert plain >= 0.5

    def risk(t, c=cfg):
        return score_workload_groups(t, workload_groups(t, c.workload_groups), c)[0][0]

    all_verified = risk(_with_orgs(base, 6))
    assert abs(all_verified.risk - plain * cfg.declared_discount) < 1e-12
    assert all_verified.risk < 0.5 and any("declared, not hidden" in r for r in all_verified.reasons)
    half = risk(_with_orgs(base, 3)).risk
    assert abs(half - plain * (1 - (1 - cfg.declared_discount) * 0.5)) < 1e-12
    assert abs(risk(_with_orgs(base, 6, level=1)).risk - plain) < 1e-12           # not verified
    assert abs(risk(_with_orgs(base, 6, org_of=lambda a: f"solo-{a}")).risk - plain) < 1e-12  # one-account orgs
    off = cfg.model_copy(update={"workload_groups": cfg.workload_groups.model_copy(update={"declared_discount": False})})
    assert abs(risk(_with_orgs(base, 6), off).risk - plain) < 1e-12
