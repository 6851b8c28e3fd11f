"""A harvesting sub-cluster's client tie read at its rarest (``scoring.harvest_rarest_tie_groups``, issue 11, dev3
quiet_hydra-703): a stock SDK string many of the store's accounts send must not cancel a TLS fingerprint nobody
outside the operation holds, and the reading decides only whether a sub-cluster is flagged (``rarest_tie_lift``)."""

import pyarrow as pa
import pytest

from distillguard.scan.config import ScoringConfig
from distillguard.scan.engine import rarest_tie_lift
from distillguard.scoring import score_clusters
from tests.scoring.test_member_ties import _con

HYDRA = [f"h{i:02d}" for i in range(12)]
OTHERS = [f"o{i:03d}" for i in range(188)]
OFF = ScoringConfig(harvest_rarest_tie_groups=[])


def _rows(private_tls: bool = True, stock_holders: int = 80) -> list[tuple[str, str, str, float]]:
    """Every hydra account and ``stock_holders`` other accounts send the stock SDK string; the hydra's accounts also
    run a TLS fingerprint nobody else runs (``private_tls``), and each other account its own."""
    rows = [(a, "user_agent", "OpenAI/Python 1.93.0", 0.1) for a in HYDRA + OTHERS[:stock_holders]]
    rows += [(a, "ja4", "hydra-tls" if private_tls and a in HYDRA else f"tls-{a}", 0.5) for a in HYDRA + OTHERS]
    return rows


def _feats(susp: float = 0.5) -> pa.Table:
    ids = HYDRA + OTHERS
    return pa.table({"account_id": ids, "suspicion": [susp if a in HYDRA else 0.1 for a in ids],
                     "n_exchanges": [300.0] * len(ids), "org_id": [None] * len(ids), "verification_level": [0] * len(ids)})


def _client(cfg: ScoringConfig, harvest: bool = True, **kw) -> float:
    cs, _ = score_clusters(_con(_rows(**kw)), _feats(), {a: 0 for a in HYDRA}, [], cfg, harvest=harvest)
    return cs[0].group_share.get("client", 0.0)


def test_a_stock_sdk_string_does_not_cancel_a_private_fingerprint():
    # each member's chance of sharing *some* client entity with 11 accounts drawn from the store is ~0.99 (the stock
    # string: 80 of the 188 others), so its private fingerprint counted for ~0 of the group
    assert _client(OFF) < 0.1
    assert _client(ScoringConfig()) > 0.9


def test_the_stock_string_alone_is_no_evidence_either_way():
    assert _client(ScoringConfig(), private_tls=False) == pytest.approx(_client(OFF, private_tls=False), abs=1e-9)
    assert _client(ScoringConfig(), private_tls=False) < 0.1


def test_a_community_is_read_as_before():
    # only a harvesting sub-cluster (members picked from the store's harvest-shape tail) reads its rarest tie
    assert _client(ScoringConfig(), harvest=False) == pytest.approx(_client(OFF, harvest=False), abs=1e-9)


PARENT = {a: 0 for a in HYDRA + OTHERS}


def _sub(rows, susp: float, cfg: ScoringConfig):
    """The hydra scored as level 0's harvesting sub-cluster, as ``score_level`` scores it."""
    return score_clusters(_con(rows), _feats(susp), {a: 0 for a in HYDRA}, [], cfg, id_prefix="cl0h", harvest=True,
                          parent=PARENT)


@pytest.mark.parametrize("susp", [0.3, 0.9])
def test_the_reading_decides_only_whether_a_sub_cluster_is_flagged(susp):
    """Under the flag threshold without the reading, a sub-cluster takes it and competes at the threshold
    (``tie_lift``); already flagged without it, it keeps the reading without it (dev3 705, 708: a sub-cluster a
    little more coordinated took the accounts of the workload group flagging the same hydra, one record in two)."""
    rows = _rows() + [(a, "system_prompt", "hydra-sp", 0.6) for a in HYDRA]   # private content: strong either way
    cfg = ScoringConfig()
    mh = {a: 0 for a in HYDRA}
    on, risk_on = _sub(rows, susp, cfg)
    off, risk_off = _sub(rows, susp, OFF)
    out, risk = rarest_tie_lift(_con(rows), _feats(susp), mh, [], cfg, 0, PARENT, on, risk_on)
    assert on[0].risk > off[0].risk
    want = off if off[0].risk >= cfg.flag_threshold else on
    assert out[0].risk == pytest.approx(want[0].risk)
    assert risk["risk"].to_pylist() == pytest.approx((risk_off if want is off else risk_on)["risk"].to_pylist())
    assert out[0].tie_lift == (want is on and on[0].risk >= cfg.flag_threshold)


def test_a_sub_cluster_the_reading_alone_takes_over_the_threshold_competes_there():
    rows = _rows() + [(a, "system_prompt", "hydra-sp", 0.6) for a in HYDRA]
    mh = {a: 0 for a in HYDRA}
    for susp in [x / 100 for x in range(30, 80)]:
        on, risk_on = _sub(rows, susp, ScoringConfig())
        off, _ = _sub(rows, susp, OFF)
        if off[0].risk < 0.5 <= on[0].risk:
            out, _ = rarest_tie_lift(_con(rows), _feats(susp), mh, [], ScoringConfig(), 0, PARENT, on, risk_on)
            assert out[0].tie_lift and out[0].risk == pytest.approx(on[0].risk)
            return
    pytest.fail("no suspicion where only the reading lifts the sub-cluster")
