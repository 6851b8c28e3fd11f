"""A residential-proxy pool (issue 11, standard-107/-117/-119): its accounts relay the pool's private system prompts
beside their owners' ordinary traffic. The ordinary prompts most of the store also sends must not cancel the private
ones (``scoring.rare_content_chance``), and the owners' traffic diluting the accounts' own suspicion is offset by what
the teacher produced for them, when it is clearly more than the store receives (``private_content_collects``,
``workload_groups.read_received``)."""

import numpy as np
import pyarrow as pa
import pytest

from distillguard.scan.config import ScoringConfig, WorkloadGroupConfig
from distillguard.scoring import score_clusters
from distillguard.scoring.workload import score_workload_groups
from tests.scoring.test_member_ties import _con

POOL = [f"p{i}" for i in range(8)]
OTHERS = [f"o{i:02d}" for i in range(92)]


def _rows(private: bool = True, client: bool = False) -> list[tuple[str, str, str, float]]:
    """Every account sends the store's commonest system prompt and client string; the pool's accounts also send
    three prompts nobody else does (``private``) or run a client string nobody else runs (``client``)."""
    rows = [(a, "system_prompt", "default-sp", 0.1) for a in POOL + OTHERS]
    rows += [(a, "user_agent", "common-ua", 0.1) for a in POOL + OTHERS]
    if private:
        rows += [(a, "system_prompt", f"pool-sp-{j}", 0.6) for a in POOL for j in range(3)]
    if client:
        rows += [(a, "user_agent", "pool-ua", 0.6) for a in POOL]
    return rows


def _feats(pool_out: float = 900.0, pool_susp: float = 0.36) -> pa.Table:
    ids = POOL + OTHERS
    rng = np.random.default_rng(0)
    out = [pool_out if a in POOL else float(rng.uniform(350, 550)) for a in ids]
    rank = np.argsort(np.argsort(out)) / (len(out) - 1)
    return pa.table({"account_id": ids, "suspicion": [pool_susp if a in POOL else 0.1 for a in ids],
                     "n_exchanges": [300.0] * len(ids), "org_id": [None] * len(ids),
                     "verification_level": [0] * len(ids), "mean_output_tokens": out,
                     "n_output_tokens": [300.0] * len(ids), "c_received_output": [max(0.0, 2 * r - 1) for r in rank],
                     "c_harvest_shape": [0.3 if a in POOL else 0.05 for a in ids],
                     "mean_max_tokens": [4000.0 if a in POOL else 2500.0 for a in ids]})


def _score(cfg: ScoringConfig, rows=None, feats=None):
    cs, _ = score_clusters(_con(rows or _rows()), feats or _feats(), {a: 0 for a in POOL}, [], cfg)
    return cs[0]


def test_private_prompts_count_beside_the_store_wide_one():
    assert _score(ScoringConfig()).group_share.get("content", 0.0) > 0.9
    # read from every content entity (before): each member's chance of sharing *some* prompt is ~1
    assert _score(ScoringConfig(rare_content_chance=None)).group_share.get("content", 0.0) < 0.1



def _scatter_share(kind: str, cfg: ScoringConfig, harvest: bool) -> float:
    """The content share of one cluster (the pool and eight more members) whose every rare entity of ``kind`` is sent
    by two of its members: a scatter, not one set every member sends."""
    team = POOL + [f"d{i}" for i in range(8)]
    rows = [(a, "system_prompt", "default-sp", 0.1) for a in team + OTHERS]
    rows += [(a, kind, f"scatter-{i // 2}", 0.6) for i, a in enumerate(team)]
    ids = team + OTHERS
    feats = pa.table({"account_id": ids, "suspicion": [0.3] * len(ids), "n_exchanges": [300.0] * len(ids),
                      "org_id": [None] * len(ids), "verification_level": [0] * len(ids)})
    cs, _ = score_clusters(_con(rows), feats, {a: 0 for a in team}, [], cfg, harvest=harvest)
    return cs[0].group_share.get("content", 0.0)

def test_a_scatter_of_prompts_each_a_few_members_send_is_not_one_template_set():
    """A developers' community owns many coding-agent prompts, each sent by two or three of its members: rare in the
    store, but not one operation's template set (``rare_content_min_share``)."""
    def share(cfg):
        return _scatter_share("system_prompt", cfg, harvest=False)

    assert share(ScoringConfig()) < 0.1   # each prompt: 2 of a core of 16
    assert share(ScoringConfig(rare_content_min_share=0.0)) > 0.9


def test_the_content_reading_leaves_client_strings_alone():
    """A rare client string beside a common one is what made small providers' developer communities campaigns under
    ``rare_entity_chance``; the content-only reading does not touch the client group."""
    cs = _score(ScoringConfig(), rows=_rows(private=False, client=True))
    assert cs.group_share.get("client", 0.0) < 0.1
    assert _score(ScoringConfig(rare_entity_chance=0.0), rows=_rows(private=False, client=True)) \
        .group_share.get("client", 0.0) > 0.9


def test_a_pool_receiving_long_answers_is_read_on_them():
    lifted = _score(ScoringConfig(private_content_collects=True))
    off = _score(ScoringConfig(private_content_collects=False))
    assert lifted.suspicion > off.suspicion + 0.05
    assert any("receives clearly longer" in r for r in lifted.reasons)
    assert not any("receives clearly longer" in r for r in off.reasons)


def test_a_group_receiving_the_stores_answers_is_not_lifted():
    """A course lab's private homework draws ordinary answer lengths: owning its content is no reason to read it
    on what it receives."""
    plain = _score(ScoringConfig(private_content_collects=True), feats=_feats(pool_out=450.0))
    assert not any("receives clearly longer" in r for r in plain.reasons)
    assert plain.suspicion == pytest.approx(_score(ScoringConfig(private_content_collects=False),
                                                   feats=_feats(pool_out=450.0)).suspicion)


def test_a_workload_group_receiving_long_answers_is_read_on_them():
    feats = _feats(pool_susp=0.3)
    group = [dict(members=list(POOL), k=8, K=8, tail=10, n=100, p=1e-9)]
    on, _ = score_workload_groups(feats, group, ScoringConfig())
    off, _ = score_workload_groups(feats, group, ScoringConfig(workload_groups=WorkloadGroupConfig(read_received=False)))
    assert off[0].suspicion == pytest.approx(0.3)
    assert on[0].suspicion > 0.35 and on[0].risk > off[0].risk
    ordinary, _ = score_workload_groups(_feats(pool_out=450.0, pool_susp=0.3), group, ScoringConfig())
    assert ordinary[0].suspicion == pytest.approx(0.3)


BY = [f"b{i}" for i in range(4)]


def _risk_of(cfg: ScoringConfig) -> tuple[dict[str, float], float | None]:
    """The pool (its private prompts, its schedule) and four ordinary accounts on its home ISP: without the private
    prompts the group is one schedule, so only the prompts made it strongly coordinated."""
    rows = [(a, "system_prompt", "default-sp", 0.1) for a in POOL + BY + OTHERS]
    rows += [(a, "system_prompt", f"pool-sp-{j}", 0.6) for a in POOL for j in range(3)]
    rows += [(a, "sync", "sched-1", 0.6) for a in POOL]
    rows += [(a, "asn", "asn-1", 0.6) for a in POOL + BY + OTHERS[:30]]   # a home ISP: shared by chance
    ids = POOL + BY + OTHERS
    feats = pa.table({"account_id": ids, "suspicion": [0.7 if a in POOL + BY else 0.1 for a in ids],
                      "n_exchanges": [300.0] * len(ids), "org_id": [None] * len(ids),
                      "verification_level": [0] * len(ids)})
    cs, out = score_clusters(_con(rows), feats, {a: 0 for a in POOL + BY}, [], cfg)
    return dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True)), cs[0].unlifted_risk


def test_members_not_sending_the_pools_content_keep_the_capped_level():
    (on, capped), (off, none) = _risk_of(ScoringConfig()), _risk_of(ScoringConfig(rare_content_members_only=False))
    assert none is None and capped is not None
    assert min(on[a] for a in POOL) == pytest.approx(min(off[a] for a in POOL))
    assert max(on[a] for a in BY) < min(off[a] for a in BY)   # at the capped level (× its member factors)
    assert max(on[a] for a in BY) <= capped


TOOL = ["t0", "t1"]


def _risk_distinct(cfg: ScoringConfig) -> dict[str, float]:
    """The pool (eight accounts relaying its three private prompts, with diluted traffic) and two step-by-step tool
    users in its community who share one rare prompt between themselves only: 2 of a core of 10, not the pool's set."""
    rows = [(a, "system_prompt", "default-sp", 0.1) for a in POOL + TOOL + OTHERS]
    rows += [(a, "system_prompt", f"pool-sp-{j}", 0.6) for a in POOL for j in range(3)]
    rows += [(a, "system_prompt", "tool-sp", 0.6) for a in TOOL]
    rows += [(a, "sync", "sched-1", 0.6) for a in POOL[:5]]
    ids = POOL + TOOL + OTHERS
    feats = pa.table({"account_id": ids, "suspicion": [0.25 if a in POOL + TOOL else 0.1 for a in ids],
                      "n_exchanges": [300.0] * len(ids), "org_id": [None] * len(ids),
                      "verification_level": [0] * len(ids)})
    feats = feats.set_column(1, "suspicion", pa.array([0.7 if a in POOL[:5] else s for a, s in
                                                       zip(ids, feats["suspicion"].to_pylist(), strict=True)]))
    _, out = score_clusters(_con(rows), feats, {a: 0 for a in POOL + TOOL}, [], cfg)
    return dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))


def test_a_proxy_holding_the_pools_template_set_has_a_distinctive_tie():
    """``rare_content_distinctive``: a proxy whose own traffic is diluted by its owner's keeps the pool's level through
    the pool's private prompts; two members sharing one rare prompt of their own do not (``_set``)."""
    on, off = _risk_distinct(ScoringConfig()), _risk_distinct(ScoringConfig(rare_content_distinctive=False))
    anyr = _risk_distinct(ScoringConfig(rare_content_distinctive_set=False))
    assert min(on[a] for a in POOL[5:]) > max(off[a] for a in POOL[5:])
    assert max(on[a] for a in TOOL) == pytest.approx(max(off[a] for a in TOOL))
    assert max(anyr[a] for a in TOOL) > max(on[a] for a in TOOL)


def test_a_harvesting_sub_clusters_scatter_of_private_templates_is_its_kit():
    """A quiet hydra running a mixed kit sends thousands of templates, each private one by a few of its accounts (dev3
    quiet_hydra-703: at most 8 of 47), so no one template reaches ``rare_content_min_share`` of a core. A harvesting
    sub-cluster (members picked from the store's harvest-shape tail) reads its content from every rare entity another
    party of it sends (``rare_content_min_share_harvest``); the same scatter in a community is still no template set."""
    def share(cfg, harvest):
        return _scatter_share("template", cfg, harvest)

    assert share(ScoringConfig(), harvest=True) > 0.9
    assert share(ScoringConfig(rare_content_min_share_harvest=None), harvest=True) < 0.1
    assert share(ScoringConfig(), harvest=False) < 0.1
