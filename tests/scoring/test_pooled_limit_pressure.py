"""One payer's accounts judged on their combined draw on a per-account limit (``account_model.pool_limit_pressure``).

Limits are set per account. A hydra splits one payer's volume over many accounts, so each stays far under its
own limit and the average utilisation the pooled model took is the very quantity the split keeps low (issue 14,
loop replay seed 5 at 4 h: 11 accounts on one card, 57 requests, 0.11 of a 300-a-day limit on average, 0.76
together). The pooled group's ``limit_util`` is at least the largest card's summed utilisation, clipped to 1.
"""

import pyarrow as pa
import pytest

from distillguard.scan.config import AccountModelConfig, ScoringConfig
from distillguard.scoring.suspicion import account_suspicion, blend, pooled_components
from tests.scoring.test_entity_subclusters import best_risk
from tests.scoring.test_member_ties import _con

#: a hydra account's early mix: half its requests a coding harvest, half ordinary chat (no reasoning elicitation)
MIXED = {"single_turn_share": 0.45, "top_template_share": 0.15, "top_capability_share": 0.6,
         "share_cot_elicitation": 0.05, "reasoning_share": 0.25}
ORDINARY = {"single_turn_share": 0.3, "top_template_share": 0.1, "top_capability_share": 0.3,
            "share_cot_elicitation": 0.0, "reasoning_share": 0.05}


def _feats(per: dict[str, tuple[int, float | None, dict[str, float]]]) -> pa.Table:
    """account -> (requests, rate_util against its own limit or None (no limit on record), traffic mix)."""
    ids = list(per)
    cols: dict[str, list] = {"account_id": ids, "n_exchanges": [float(per[a][0]) for a in ids],
                             "rpd_limit": [300.0 if per[a][1] is not None else None for a in ids],
                             "rate_util": [per[a][1] for a in ids]}
    for k in MIXED:
        cols[k] = [per[a][2][k] for a in ids]
    cols["org_id"] = [("org-co" if a.startswith("co") else None) for a in ids]
    cols["verification_level"] = [(2 if a.startswith("co") else 0) for a in ids]
    return account_suspicion(pa.table(cols))


def test_a_cards_holders_count_their_combined_draw():
    t = _feats({f"h{i}": (6, 0.08, MIXED) for i in range(10)} | {f"o{i}": (6, 0.08, MIXED) for i in range(2)})
    rows = t.to_pylist()
    model = AccountModelConfig()
    avg = pooled_components(rows, model)
    card = [f"h{i}" for i in range(10)]
    on = pooled_components(rows, model, payers=[card, ["o0", "o1"]])
    assert avg["limit_util"] == pytest.approx(0.08)
    assert on["limit_util"] == pytest.approx(0.8)   # the larger card's ten holders, not all twelve
    assert pooled_components(rows, AccountModelConfig(pool_limit_pressure=False), payers=[card]) == avg
    assert {k: v for k, v in on.items() if k != "limit_util"} == {k: v for k, v in avg.items() if k != "limit_util"}
    assert blend(on, model) > blend(avg, model) + 0.15
    # clipped: one account's whole limit is the most a group can draw on it
    assert pooled_components(rows, model, payers=[card + ["o0", "o1"]] * 2)["limit_util"] <= 1.0


def test_holders_without_a_limit_and_light_users_add_little():
    # no limit on record: limit_util is the volume percentile, which is not a share of a limit and is not summed
    t = _feats({f"h{i}": (6, None, MIXED) for i in range(10)})
    rows = t.to_pylist()
    model = AccountModelConfig()
    assert pooled_components(rows, model, payers=[[r["account_id"] for r in rows]]) == pooled_components(rows, model)
    # a family of three ordinary users on one card, each at 1% of its limit
    fam = _feats({f"f{i}": (6, 0.01, ORDINARY) for i in range(3)}).to_pylist()
    assert pooled_components(fam, model, payers=[["f0", "f1", "f2"]])["limit_util"] == pytest.approx(0.03)


HYDRA = [f"hyd{i}" for i in range(8)]
FAMILY = [f"fam{i}" for i in range(3)]
COMPANY = [f"co{i}" for i in range(6)]   # one verified organisation: one party, its card is no tie
USERS = [f"user{i}" for i in range(24)]
OUTSIDE = [f"out{i}" for i in range(60)]
COMMUNITY = HYDRA + FAMILY + COMPANY + USERS


def _rows() -> list[tuple[str, str, str, float]]:
    rows = [(a, "system_prompt", "sp-popular-tool", 0.3) for a in COMMUNITY + OUTSIDE]
    rows += [(a, "ip24", f"203.0.{i // 2}", 0.5) for i, a in enumerate(USERS)]
    rows += [(a, "payment", "card-hydra", 1.5) for a in HYDRA]
    rows += [(a, "payment_burst", "card-hydra|1", 1.0) for a in HYDRA]
    rows += [(a, "payment", "card-family", 1.5) for a in FAMILY]
    rows += [(a, "payment_burst", "card-family|1", 1.0) for a in FAMILY]
    rows += [(a, "payment", "card-company", 1.5) for a in COMPANY]
    rows += [(a, "ip24", "198.18.0", 0.5) for a in COMPANY]
    return rows


def _risk(cfg: ScoringConfig, hydra_util: float = 0.1, company=MIXED) -> dict[str, float]:
    per = ({a: (6, hydra_util, MIXED) for a in HYDRA} | {a: (40, 0.1, ORDINARY) for a in FAMILY + USERS + OUTSIDE}
           | {a: (40, 0.1, company) for a in COMPANY})
    feats = _feats(per)
    con = _con(_rows())
    return best_risk(con, feats, {a: 0 for a in COMMUNITY}, cfg)


def test_a_hydras_card_group_with_mixed_traffic_is_flagged_on_its_combined_draw():
    on = _risk(ScoringConfig())
    off = _risk(ScoringConfig(account_model=AccountModelConfig(pool_limit_pressure=False)))
    assert max(off[a] for a in HYDRA) < 0.5
    assert min(on[a] for a in HYDRA) >= 0.5
    # the family on its card (ordinary traffic) and the verified company (one party: its card ties nobody) stay
    for a in FAMILY + COMPANY + USERS:
        assert on[a] < 0.5
    # the same card group drawing little in all stays where it was
    assert max(_risk(ScoringConfig(), hydra_util=0.01)[a] for a in HYDRA) < 0.5
