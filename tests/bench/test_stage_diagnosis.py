"""bench/stage_diagnosis.py counts each missed campaign account by the traffic it sent (issue 11, small providers:
an account with a handful of requests carries almost no evidence of its own, so those rows bound what any rule on
the account's own traffic can recover)."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def _table(world: Path, name: str, data: dict) -> None:
    (world / "tables" / name).mkdir(parents=True)
    pq.write_table(pa.table(data), world / "tables" / name / "part-0.parquet")


def test_missed_accounts_counted_by_exchanges(tmp_path, bench_script):
    from distillguard.scan.config import ScoringConfig
    ids = ["a0", "a1", "a2", "a3", "a4", "b0"]
    pq.write_table(pa.table({"account_id": ids, "campaign_id": ["c"] * 5 + [None],
                             "persona": ["campaign"] * 5 + ["chat_users"], "role": ["attacker"] * 5 + ["benign"]}),
                   tmp_path / "labels.parquet")
    # a4 sent nothing: no account_features row, no risk row
    _table(tmp_path, "account_risk", {"account_id": ids[:4] + ["b0"], "flagged": [True, False, False, False, False],
                                      "risk": [0.9, 0.1, 0.1, 0.1, 0.0]})
    _table(tmp_path, "account_features", {"account_id": ids[:4] + ["b0"], "n_exchanges": [50, 3, 12, 40, 9],
                                          "c_harvest_shape": [0.5, 0.1, 0.1, 0.1, 0.2],
                                          "suspicion": [0.5, 0.1, 0.1, 0.1, 0.2]})
    _table(tmp_path, "clusters", {"cluster_id": ["k"], "n_accounts": [2], "risk": [0.9], "coordination": [1.0],
                                  "reasons": pa.array([["x"]], pa.list_(pa.string()))})
    _table(tmp_path, "cluster_members", {"cluster_id": ["k", "k"], "account_id": ["a0", "a1"]})
    out = bench_script("stage_diagnosis").stages(str(tmp_path), ScoringConfig())
    assert out[("attack", "flagged")] == 1
    assert {k[1]: v for k, v in out.items() if k[0] == "missed, exchanges"} == {"0": 1, "1-4": 1, "5-19": 1, ">=20": 1}


def test_missed_accounts_above_every_benign_account_are_counted(tmp_path, bench_script):
    """A missed account whose own harvest shape or suspicion tops every benign account's is counted apart: the
    small-provider diagnosis (dev3 710, 704) separates those from thin-traffic misses."""
    from distillguard.scan.config import ScoringConfig
    ids = ["a0", "a1", "a2", "b0", "b1"]
    pq.write_table(pa.table({"account_id": ids, "campaign_id": ["c"] * 3 + [None] * 2,
                             "persona": ["campaign"] * 3 + ["chat_users"] * 2,
                             "role": ["attacker"] * 3 + ["benign"] * 2}), tmp_path / "labels.parquet")
    _table(tmp_path, "account_risk", {"account_id": ids, "flagged": [False] * 5, "risk": [0.3, 0.2, 0.1, 0.1, 0.1]})
    _table(tmp_path, "account_features", {"account_id": ids, "n_exchanges": [80, 30, 3, 20, 40],
                                          "c_harvest_shape": [0.8, 0.4, None, 0.5, 0.3],
                                          "suspicion": [0.5, 0.9, 0.1, 0.7, 0.6]})
    _table(tmp_path, "clusters", {"cluster_id": ["k"], "n_accounts": [2], "risk": [0.2], "coordination": [0.2],
                                  "reasons": pa.array([["x"]], pa.list_(pa.string()))})
    _table(tmp_path, "cluster_members", {"cluster_id": ["k", "k"], "account_id": ["a0", "b0"]})
    out = bench_script("stage_diagnosis").stages(str(tmp_path), ScoringConfig())
    assert out[("missed, above every benign", "harvest shape")] == 1  # a0 only (0.8 > 0.5; a1 0.4 is not)
    assert out[("missed, above every benign", "suspicion")] == 1      # a1 only (0.9 > 0.7)
    assert out[("attack", "no cluster")] == 2


def test_by_campaign_keeps_each_campaigns_accounts_apart(tmp_path, bench_script):
    """A world's recall can hide a whole campaign lost beside another found: --by-campaign keys each row by it."""
    from distillguard.scan.config import ScoringConfig
    ids = ["h0", "h1", "p0", "b0"]
    pq.write_table(pa.table({"account_id": ids, "campaign_id": ["hydra", "hydra", "pool", None],
                             "persona": ["campaign"] * 3 + ["chat_users"], "role": ["attacker"] * 3 + ["benign"]}),
                   tmp_path / "labels.parquet")
    _table(tmp_path, "account_risk", {"account_id": ids, "flagged": [False, False, True, False],
                                      "risk": [0.4, 0.4, 0.7, 0.0]})
    _table(tmp_path, "account_features", {"account_id": ids, "n_exchanges": [30, 8, 50, 9],
                                          "c_harvest_shape": [0.3, 0.2, 0.9, 0.5], "suspicion": [0.3, 0.2, 0.9, 0.5]})
    _table(tmp_path, "clusters", {"cluster_id": ["k", "q"], "n_accounts": [2, 1], "risk": [0.4, 0.7],
                                  "coordination": [0.6, 1.0], "reasons": pa.array([["x"], ["y"]], pa.list_(pa.string()))})
    _table(tmp_path, "cluster_members", {"cluster_id": ["k", "k", "q"], "account_id": ["h0", "h1", "p0"]})
    mod = bench_script("stage_diagnosis")
    out = mod.stages(str(tmp_path), ScoringConfig(), by_campaign=True)
    assert out[("attack hydra", "cluster risk < threshold")] == 2
    assert out[("attack pool", "flagged")] == 1
    assert out[("missed, exchanges hydra", ">=20")] == 1 and out[("missed, exchanges hydra", "5-19")] == 1
    assert mod.stages(str(tmp_path), ScoringConfig())[("attack", "cluster risk < threshold")] == 2


def test_by_role_keeps_a_relays_accounts_apart_from_the_operations_own(tmp_path, bench_script):
    """--by-role keys each row by the label's role inside the campaign: dev4 standard-901 finds all 19 of the
    operation's own accounts and 1 of the 24 customers' accounts its relay runs through; a ban rotation's standby
    account that never sent a request (standard-918) is counted under its own role."""
    from distillguard.scan.config import ScoringConfig
    ids = ["o0", "o1", "p0", "p1", "s0", "b0"]
    pq.write_table(pa.table({"account_id": ids, "campaign_id": ["c"] * 5 + [None],
                             "persona": ["campaign"] * 5 + ["chat_users"],
                             "role": ["attacker", "attacker", "proxy", "proxy", "standby", "benign"]}),
                   tmp_path / "labels.parquet")
    _table(tmp_path, "account_risk", {"account_id": ids[:4] + ["b0"], "flagged": [True, True, False, True, False],
                                      "risk": [0.9, 0.9, 0.3, 0.7, 0.0]})
    _table(tmp_path, "account_features", {"account_id": ids[:4] + ["b0"], "n_exchanges": [500, 400, 30, 40, 9],
                                          "c_harvest_shape": [0.6, 0.6, 0.2, 0.4, 0.3],
                                          "suspicion": [0.8, 0.8, 0.3, 0.4, 0.2]})
    _table(tmp_path, "clusters", {"cluster_id": ["k", "w"], "n_accounts": [3, 2], "risk": [0.9, 0.3],
                                  "coordination": [1.0, 0.2], "reasons": pa.array([["x"], ["y"]], pa.list_(pa.string()))})
    _table(tmp_path, "cluster_members", {"cluster_id": ["k", "k", "k", "w", "w"],
                                         "account_id": ["o0", "o1", "p1", "p0", "b0"]})
    mod = bench_script("stage_diagnosis")
    out = mod.stages(str(tmp_path), ScoringConfig(), by_campaign=True, by_role=True)
    assert out[("attack c attacker", "flagged")] == 2
    assert out[("attack c proxy", "flagged")] == 1
    assert out[("attack c proxy", "weak cap (evidence groups)")] == 1
    assert out[("attack c standby", "no cluster")] == 1
    assert out[("missed, exchanges c standby", "0")] == 1
    assert out[("missed, above every benign c proxy", "harvest shape")] == 0  # 0.2 < the benign 0.3
    # without the flag the rows are keyed as before
    assert out.keys() != mod.stages(str(tmp_path), ScoringConfig(), by_campaign=True).keys()
    assert mod.stages(str(tmp_path), ScoringConfig())[("attack", "flagged")] == 3
