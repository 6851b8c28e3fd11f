"""A bystander in a small campaign cluster (dev4 standard-912, 913): an agent framework's user tied to the cluster by
busy windows it shares with one campaign account (``member_schedule_min_holders``: a pair's coincidence, not its own
distinctive tie) and, when its own prompts read suspicious, collecting far shorter answers than the members that hold
one (``untied_member_received_share``): the operation's accounts collect long answers, it does not."""
import pyarrow as pa

from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from tests.scoring.test_member_ties import OUTSIDE, POOL, _con, _features, _incidence


def _fw_risk(cfg: ScoringConfig, fw_susp: float, holders: int = 1, fw_received: float | None = None) -> dict[str, float]:
    """The hydra pool of ``test_member_ties`` plus an agent framework's user on the pool's residential ranges that
    keeps a schedule (a sync entity) with ``holders`` of the pool's accounts. Pool accounts receive long answers
    (received-output rank 0.99); the framework user ``fw_received`` (None: the column is not recorded)."""
    rows = _incidence() + [("fw", "ip24", "198.51.0", 0.5), ("fw", "ip24", "198.51.1", 0.5)]
    rows += [(a, "sync", "tpl-public~0~h", 0.5) for a in ["fw", *POOL[:holders]]]
    susp = {a: 0.5 for a in POOL} | {"home": 0.4, "mixed": 0.2, "co1": 0.2, "co2": 0.2, "fw": fw_susp}
    feats = _features(susp | {a: 0.1 for a in OUTSIDE})
    if fw_received is not None:
        rec = {a: 0.99 for a in [*POOL, "mixed"]} | {"fw": fw_received}
        feats = feats.append_column("c_received_output", pa.array([rec.get(a, 0.3) for a in feats["account_id"].to_pylist()],
                                                                  pa.float64()))
    _, out = score_clusters(_con(rows), feats, {a: 0 for a in susp}, [], cfg)
    return dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))


def test_a_pair_schedule_is_no_own_tie():
    """913: tied by a schedule it shares with one pool account and receiving what ordinary users do: scored alone."""
    cfg = ScoringConfig()
    risk = _fw_risk(cfg, 0.35, fw_received=0.0)
    assert risk["fw"] < cfg.flag_threshold
    assert min(risk[a] for a in POOL) >= cfg.flag_threshold
    assert _fw_risk(ScoringConfig(member_schedule_min_holders=None), 0.35, fw_received=0.0)["fw"] >= cfg.flag_threshold
    # a schedule three of the pool keep is the operation's: its own tie
    assert _fw_risk(cfg, 0.35, holders=3, fw_received=0.0)["fw"] >= cfg.flag_threshold
    # a pair's schedule alone is no reason to fall off: receiving as the pool does, it keeps the cluster's level
    # (dropping it from the quadratic fall-off cost dev4 standard-905 two campaign accounts)
    assert _fw_risk(cfg, 0.35, fw_received=0.9)["fw"] >= cfg.flag_threshold


def test_an_untied_member_collecting_little_is_scored_alone():
    """912: its own prompts read as suspicious as the pool's, but it receives what ordinary users do."""
    cfg = ScoringConfig()
    risk = _fw_risk(cfg, 0.55, fw_received=0.0)
    assert risk["fw"] < cfg.flag_threshold
    assert min(risk[a] for a in POOL) >= cfg.flag_threshold
    assert _fw_risk(ScoringConfig(untied_member_received_share=None), 0.55, fw_received=0.0)["fw"] >= cfg.flag_threshold
    # receiving as the pool does, or with the column not recorded, it keeps the cluster's level
    assert _fw_risk(cfg, 0.55, fw_received=0.95)["fw"] >= cfg.flag_threshold
    assert _fw_risk(cfg, 0.55)["fw"] >= cfg.flag_threshold
