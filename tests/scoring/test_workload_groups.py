"""Workload harvest groups (scoring/workload.py): the tail's accounts on one workload, against a hypergeometric null."""
import numpy as np
import pyarrow as pa

from distillguard.scan.config import WorkloadGroupConfig
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
    cs, risk = score_workload_groups(t, workload_groups(t, WorkloadGroupConfig(enabled=True)))
    assert [c.cluster_id for c in cs] == ["clw-0000"] and cs[0].coordination == 1.0
    assert risk.num_rows == 6 and set(risk["cluster_id"].to_pylist()) == {"clw-0000"}
    assert min(risk["risk"].to_pylist()) >= 0.5  # suspicion 0.6-0.8 ** 0.6
