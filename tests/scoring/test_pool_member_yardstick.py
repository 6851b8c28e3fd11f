"""A member of a pooled body judged against its members read one by one, not the pooled reading (issue 11).

A pooled cluster's suspicion is its distinctively tied core's combined traffic at the group's volume; a member's own
traffic is one share of it, diluted, for a residential proxy, by its owner's ordinary traffic. Compared with the
pooled reading in the member suspicion-ratio rule, such a proxy fell off (dev2 standard-300: five proxies of the coding
hydra sending its private system prompts, own 0.30–0.34 against a pooled 0.82, risk 0.44–0.497). With
``scoring.pool_member_yardstick`` a member that sends the template set the pool's anchors send is compared with the
cluster's suspicion read member by member; a bystander read with the pool for what it shares with it (a stock client,
one rare prompt two pool accounts send) keeps the pooled yardstick.
"""

import pyarrow as pa

from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from distillguard.scoring.suspicion import account_suspicion
from tests.scoring.test_member_ties import _con
from tests.scoring.test_pooled_evidence import HARVEST, ORDINARY
from tests.scoring.test_proxy_pool import OTHERS
from tests.scoring.test_proxy_pool import POOL as PP

#: a proxy's 60 exchanges: a tenth the pool's relayed harvest, the rest its owner's ordinary traffic
MIXED = {k: 0.1 * HARVEST[k] + 0.9 * ORDINARY[k] for k in HARVEST}
PROXY, OPERATOR, BYSTANDER = PP[6], PP[7], "bystander"


def _risk(cfg: ScoringConfig) -> tuple[object, dict[str, float], dict[str, float]]:
    """Eight pool accounts sending three system prompts nobody outside sends (six of them thin, three exchanges of
    harvest each; an operator with 60; a proxy with 60 mostly ordinary), three on one /24; a bystander with the
    proxy's very traffic that runs the stock client the pool runs and sends one rare prompt two pool accounts send;
    92 ordinary accounts around them."""
    ids = PP + OTHERS + [BYSTANDER]
    rows = [(a, "system_prompt", "default-sp", 0.1) for a in ids]
    rows += [(a, "user_agent", "common-ua", 0.1) for a in ids]
    rows += [(a, "system_prompt", f"pool-sp-{j}", 0.6) for a in PP for j in range(3)]
    rows += [(a, "system_prompt", "side-sp", 0.6) for a in (PP[0], PP[1], BYSTANDER)]
    rows += [(a, "ip24", "198.51.0", 0.5) for a in PP[3:6]]
    n = {a: 3.0 for a in PP} | {a: 50.0 for a in OTHERS} | {PROXY: 60.0, BYSTANDER: 60.0, OPERATOR: 60.0}
    traffic = {a: HARVEST for a in PP} | {a: ORDINARY for a in OTHERS} | {PROXY: MIXED, BYSTANDER: MIXED}
    cols = {"account_id": ids, "n_exchanges": [n[a] for a in ids]}
    for k in HARVEST:
        cols[k] = [traffic[a][k] for a in ids]
    cols["mean_max_tokens"] = [8000.0 if a in PP else 1000.0 + i for i, a in enumerate(ids)]
    cols["mean_output_tokens"] = [3000.0 if a in PP else 400.0 + i for i, a in enumerate(ids)]
    cols["n_max_tokens"] = cols["n_output_tokens"] = cols["n_exchanges"]
    cols["org_id"], cols["verification_level"] = [None] * len(ids), [0] * len(ids)
    feats = account_suspicion(pa.table(cols))
    cs, out = score_clusters(_con(rows), feats, {a: 0 for a in PP + [BYSTANDER]}, [], cfg)
    risk = dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))
    own = dict(zip(feats["account_id"].to_pylist(), feats["suspicion"].to_pylist(), strict=True))
    reasons = dict(zip(out["account_id"].to_pylist(), out["reasons"].to_pylist(), strict=True))
    return cs[0], risk, own, reasons


def test_a_proxy_sending_the_pools_kit_is_judged_against_its_members_not_the_pooled_reading():
    cs, on, own, why = _risk(ScoringConfig())
    _, off, _, _ = _risk(ScoringConfig(pool_member_yardstick=False))
    assert cs.pooled_suspicion > 0 and cs.risk >= 0.5          # a pooled cluster, flagged
    assert own[PROXY] < 0.6 * cs.suspicion                      # the proxy's own traffic is far under the pooled reading
    assert off[PROXY] < 0.5 <= on[PROXY], (off[PROXY], on[PROXY])
    assert on[PROXY] == cs.risk
    assert any("compared with the members' read one by one" in r for r in why[PROXY])
    # the bystander, with the proxy's very traffic, is read with the pool (a stock client the pool's anchors run, one
    # rare prompt two of them send) but sends nothing its anchors send as a body: unchanged, unflagged
    assert abs(own[BYSTANDER] - own[PROXY]) < 0.02
    assert on[BYSTANDER] == off[BYSTANDER] < 0.5
    # every other account as before
    assert all(on[a] == off[a] for a in on if a != PROXY)


def _lifted_community(cfg: ScoringConfig, kit: list[str]) -> tuple[object, dict[str, float]]:
    """tests/scoring/test_rare_hidden_ties.py's community (a quiet pool of 27 among a popular tool's 40 users, strong
    only through a card three pool accounts reuse and a burst four were signed up in), pooled, whose ``kit`` accounts
    also send one template nobody outside sends. Read with ``rare_content_min_share`` 0.1 so ten senders make it the
    core's template set without making the community strong through content."""
    from tests.scoring.test_rare_hidden_ties import OUTSIDE, USERS, _rows
    from tests.scoring.test_rare_hidden_ties import POOL as QP

    ids = QP + USERS + OUTSIDE
    feats = pa.table({"account_id": ids, "suspicion": [0.5 if a in QP + USERS else 0.1 for a in ids],
                      "c_received_output": [0.7 if a in QP else 0.1 if a in USERS else 0.0 for a in ids],
                      "n_exchanges": [200.0] * len(ids), "org_id": [None] * len(ids),
                      "verification_level": [0] * len(ids)})
    rows = [r for r in _rows() if r[1] != "user_agent"] + [(a, "asn", "as-home", 0.5) for a in QP + USERS + OUTSIDE[:70]]
    rows += [(a, "ip24", f"10.0.{i // 4}", 0.5) for i, a in enumerate(QP)]
    rows += [(a, "template", "kit-tpl", 0.4) for a in kit]
    cfg = cfg.model_copy(update={"rare_ties_received_quantile": None, "rare_content_min_share": 0.1})
    scores, out = score_clusters(_con(rows), feats, {a: 0 for a in QP + USERS}, [], cfg)
    return scores[0], dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))


def test_a_member_sending_the_kit_the_rare_tie_holders_send_takes_the_lifted_level():
    """``pool_member_takes_lift`` (dev quiet_hydra-112: two hydra accounts sending the hydra's template set, read with
    its pool, held at the capped 0.348 in a community lifted to 0.604): the card and burst holders (the pool's
    anchors) and three more pool accounts send one template; those three take the lifted level."""
    from tests.scoring.test_rare_hidden_ties import POOL as QP
    from tests.scoring.test_rare_hidden_ties import USERS

    carriers = QP[7:10]
    cs, on = _lifted_community(ScoringConfig(), QP[:10])
    _, off = _lifted_community(ScoringConfig(pool_member_takes_lift=False), QP[:10])
    assert cs.unlifted_risk is not None and not cs.content_lift and cs.risk >= 0.5
    assert max(off[a] for a in carriers) <= cs.unlifted_risk + 1e-9 < 0.5
    assert min(on[a] for a in carriers) == cs.risk
    assert all(on[a] == off[a] for a in USERS + QP[10:])   # the tool's users and the rest of the pool as before
    # the same template sent by pool accounts holding no card or burst is no kit of the anchors: nobody lifted
    _, none = _lifted_community(ScoringConfig(), QP[7:17])
    assert max(none[a] for a in QP[7:17]) < 0.5
