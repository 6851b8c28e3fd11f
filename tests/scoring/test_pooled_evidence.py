"""Pooled evidence: a strongly coordinated group's traffic judged at the group's volume.

Early in its life each account of a hydra has sent a handful of requests, and the account model shrinks
every share by n / (n + prior), so no single account looks like much — the very split the operation relies
on. Scoring pools the traffic of a strongly coordinated cluster's distinctively tied core before shrinking.
Checked here on the scoring stage's own inputs (tests/scoring/test_member_ties.py's pool and store): the
pooled model equals the model on one account holding all the group's requests; a young pool is flagged with
pooling and not without; an ordinary group is not flagged however strongly it is tied.
"""

import numpy as np
import pyarrow as pa
import pytest

from distillguard.scan.config import AccountModelConfig, ScoringConfig
from distillguard.scoring import score_clusters
from distillguard.scoring.suspicion import account_suspicion, pooled_suspicion
from tests.scoring.test_member_ties import OUTSIDE, POOL, _con, _incidence

HARVEST = {"single_turn_share": 1.0, "top_template_share": 1.0, "top_capability_share": 1.0,
           "share_cot_elicitation": 0.9, "reasoning_share": 0.9}
ORDINARY = {"single_turn_share": 0.3, "top_template_share": 0.1, "top_capability_share": 0.3,
            "share_cot_elicitation": 0.0, "reasoning_share": 0.05}


def _feats(per_account: dict[str, tuple[int, dict[str, float]]]) -> pa.Table:
    ids = list(per_account)
    cols = {"account_id": ids, "n_exchanges": [float(per_account[a][0]) for a in ids]}
    for k in HARVEST:
        cols[k] = [per_account[a][1][k] for a in ids]
    cols["org_id"] = [("org-co" if a.startswith("co") else None) for a in ids]
    cols["verification_level"] = [(2 if a.startswith("co") else 0) for a in ids]
    return account_suspicion(pa.table(cols))


def _rows(t: pa.Table, ids) -> list[dict]:
    return [r for r in t.to_pylist() if r["account_id"] in set(ids)]


def test_pooled_model_is_the_model_on_the_groups_combined_requests():
    split = _feats({f"a{i}": (2, HARVEST) for i in range(6)})
    one = _feats({"whole": (12, HARVEST)})
    p = pooled_suspicion(split.to_pylist(), AccountModelConfig())
    assert p == pytest.approx(one["suspicion"][0].as_py(), rel=1e-9)
    assert p > max(split["suspicion"].to_pylist()) + 0.1


def test_pooling_weighs_members_by_their_requests():
    t = _feats({"heavy": (100, ORDINARY), "light1": (1, HARVEST), "light2": (1, HARVEST)})
    p = pooled_suspicion(t.to_pylist(), AccountModelConfig())
    assert p < _feats({"x": (102, HARVEST)})["suspicion"][0].as_py()
    assert p == pytest.approx(_feats({"h": (100, ORDINARY)})["suspicion"][0].as_py(), abs=0.05)


def _young_pool_risk(traffic: dict[str, float], cfg: ScoringConfig) -> dict[str, float]:
    per = {a: (2, traffic) for a in POOL} | {"home": (40, ORDINARY), "mixed": (2, ORDINARY),
                                            "co1": (200, ORDINARY), "co2": (200, ORDINARY)}
    feats = _feats(per | {a: (50, ORDINARY) for a in OUTSIDE})
    _, out = score_clusters(_con(_incidence()), feats, {a: 0 for a in per}, [], cfg)
    return dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))


def test_a_young_pool_is_flagged_at_the_groups_volume_and_not_without_pooling():
    on = _young_pool_risk(HARVEST, ScoringConfig())
    off = _young_pool_risk(HARVEST, ScoringConfig(pool_min_coordination=None))
    assert min(on[a] for a in POOL) >= 0.5
    assert max(off[a] for a in POOL) < 0.5
    # bystanders are judged on their own traffic as before
    for a in ("home", "co1", "co2"):
        assert on[a] < 0.5 and on[a] <= off[a] + 1e-9


def test_an_ordinary_group_is_not_flagged_however_tied():
    on = _young_pool_risk(ORDINARY, ScoringConfig())
    assert max(on.values()) < 0.5


def test_pooling_needs_enough_distinctively_tied_members():
    on = _young_pool_risk(HARVEST, ScoringConfig(pool_min_accounts=len(POOL) + 2))
    assert max(on[a] for a in POOL) < 0.5
    assert np.isfinite(list(on.values())).all()


def test_a_one_request_stranger_sharing_one_template_with_one_pool_account_is_read_on_its_own():
    # issue 14 (loop replay, seed 3, 08:00): a company account's one coding request used the template one hydra
    # account and one student also used. Nobody outside the community held it — the three were put in the
    # community *because* they share it — so it counted as a private content tie, and the account (one
    # request: almost all prior) was read as the pool's pooled traffic and flagged. An operation's own
    # templates are sent by many of its pooled accounts; this one by one.
    from tests.scoring.test_member_ties import _incidence as pool_incidence

    rows = pool_incidence() + [(a, "template", "tpl-common-coding", 0.4) for a in (POOL[0], "stranger", "student")]
    per = ({a: (2, HARVEST) for a in POOL} | {"stranger": (1, ORDINARY), "student": (1, ORDINARY)}
           | {"home": (40, ORDINARY), "mixed": (2, ORDINARY), "co1": (200, ORDINARY), "co2": (200, ORDINARY)})
    feats = _feats(per | {a: (50, ORDINARY) for a in OUTSIDE})
    _, out = score_clusters(_con(rows), feats, {a: 0 for a in per}, [], ScoringConfig())
    risk = dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))
    assert min(risk[a] for a in POOL) >= 0.5      # the pool is still read as one body of traffic
    assert risk["stranger"] < 0.25 and risk["student"] < 0.25



TRIO = ["trio0", "trio1", "trio2"]
USERS = [f"user-lc{i}" for i in range(9)]


def _stock_client_risk(cfg: ScoringConfig, ua_holders: int = 1) -> dict[str, float]:
    """An agentic trio (one card, one sign-up burst) and nine ordinary users of one stock LangChain build that one
    trio account also sends and nobody outside their community does, with the header order two trio accounts'
    SDK produces: "private" to the community that absorbed their holders, so each user has a distinctive client
    tie and is one of the pooled accounts (loop replay cohorts_mixed seed 8's community ``cl1-0017``)."""
    ua, hf = "langchain-openai/0.2.14 OpenAI/Python 1.68.2", "hfp-3296"
    rows = [(a, "payment", "card-trio", 1.5) for a in TRIO] + [(a, "creation_burst", "standard|7", 0.9) for a in TRIO]
    rows += [(a, "ip24", f"203.0.{i}", 0.5) for i, a in enumerate(TRIO + USERS)]
    rows += [(a, "user_agent", ua, 0.3) for a in (*TRIO[:ua_holders], *USERS)]
    rows += [(a, "header_fp", hf, 0.3) for a in (*TRIO[1:], *USERS)]
    rows += [(a, "user_agent", "OpenAI/Python 1.93.0", 0.12) for a in OUTSIDE]
    rows += [(a, "header_fp", "hfp-stock", 0.12) for a in OUTSIDE]
    per = {a: (20, HARVEST) for a in TRIO} | {a: (1, ORDINARY) for a in USERS}
    feats = _feats(per | {a: (50, ORDINARY) for a in OUTSIDE})
    _, out = score_clusters(_con(rows), feats, {a: 0 for a in per}, [], cfg)
    return dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))


def test_ordinary_users_of_one_stock_client_do_not_qualify_each_other_for_the_pooled_reading():
    # issue 14 (loop replay cohorts_mixed seed 8, branch loop22): a chat user and university-NAT accounts holding
    # the LangChain build one agentic-trio account sent were pooled accounts themselves, so they made each other
    # "enough pooled holders" of the build and took the trio's pooled reading (a 1-request account at the
    # community's full risk). Counting only the pool's anchors (its card / sign-up burst holders), one holds it.
    # (seed 8's community passed the one-tool rule by collecting long answers, which these features do not carry)
    on = _stock_client_risk(ScoringConfig(software_output_alpha=None))
    off = _stock_client_risk(ScoringConfig(software_output_alpha=None, pool_anchored=False))
    assert min(on[a] for a in TRIO) >= 0.5 and min(off[a] for a in TRIO) >= 0.5
    assert min(off[a] for a in USERS) > 0.4            # as before: read as the pool (pooled 0.80, own 0.06)
    assert max(on[a] for a in USERS) < 0.1             # judged on their own traffic
    # the operation's kit — the client all its anchors run — still reads a member holding it as the pool
    kit = _stock_client_risk(ScoringConfig(software_output_alpha=None), ua_holders=3)
    assert min(kit[a] for a in USERS) > 0.4


def _private_pool_risk(cfg: ScoringConfig, traffic: dict[str, float]) -> tuple[float, dict[str, float]]:
    """Eight accounts of a pool, six sending three system prompts nobody outside sends, three of those on one /24
    (dev2 standard-300's coding hydra, issue 11: private prompts and shared ASNs, coordination 0.57), each with
    three exchanges of ``traffic`` asking for long answers; 92 ordinary accounts around them."""
    from tests.scoring.test_proxy_pool import OTHERS
    from tests.scoring.test_proxy_pool import POOL as PP

    rows = [(a, "system_prompt", "default-sp", 0.1) for a in PP + OTHERS]
    rows += [(a, "user_agent", "common-ua", 0.1) for a in PP + OTHERS]
    rows += [(a, "system_prompt", f"pool-sp-{j}", 0.6) for a in PP[:6] for j in range(3)]
    rows += [(a, "ip24", "198.51.0", 0.5) for a in PP[3:6]]
    ids = PP + OTHERS
    cols = {"account_id": ids, "n_exchanges": [3.0 if a in PP else 50.0 for a in ids]}
    for k in HARVEST:
        cols[k] = [(traffic if a in PP else ORDINARY)[k] for a in ids]
    cols["mean_max_tokens"] = [8000.0 if a in PP else 1000.0 + i for i, a in enumerate(ids)]
    cols["mean_output_tokens"] = [3000.0 if a in PP else 400.0 + i for i, a in enumerate(ids)]
    cols["n_max_tokens"] = cols["n_output_tokens"] = cols["n_exchanges"]
    cols["org_id"], cols["verification_level"] = [None] * len(ids), [0] * len(ids)
    cs, out = score_clusters(_con(rows), account_suspicion(pa.table(cols)), {a: 0 for a in PP}, [], cfg)
    risk = dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))
    return cs[0].coordination, {a: risk[a] for a in PP[:6]}


def test_a_pool_strong_through_prompts_it_owns_is_pooled_below_the_pooling_coordination():
    """Issue 11 (dev2 standard-300): a coding hydra's community sends seven system prompts nobody outside it sends
    and shares ASNs, coordination 0.573, just under ``pool_min_coordination`` (0.6): its 17 accounts were each read
    on their own split volume (cluster suspicion 0.44, risk 0.490) and the whole campaign was lost. Sending an
    operation's own prompts is acting as one body of traffic (``pool_private_content``)."""
    coord, on = _private_pool_risk(ScoringConfig(), HARVEST)
    assert coord < ScoringConfig().pool_min_coordination
    assert min(on.values()) >= 0.5, on
    _, off = _private_pool_risk(ScoringConfig(pool_private_content=False), HARVEST)
    assert max(off.values()) < 0.5, off
    # pooled ordinary traffic stays ordinary: owning prompts is no evidence of a harvest by itself
    _, plain = _private_pool_risk(ScoringConfig(), ORDINARY)
    assert max(plain.values()) < 0.5, plain
