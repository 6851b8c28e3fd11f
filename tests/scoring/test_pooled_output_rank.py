"""A pooled group ranks its requested length as one body of requests (``account_model.pool_output_rank``).

``long_output`` ranks an account's mean max_tokens within the store after shrinking it towards the store's median
by n / (n + rank_prior_exchanges): one request at a huge max_tokens should not outrank a harvester's hundreds. A
hydra's thin accounts (two requests each) all sit near the median that way, so averaging their ranks keeps the
pooled group where no single member is — the per-account shrinkage pooling exists to undo (issue 14, seed 5:
12 accounts on one card, 60 requests, average rank 0.43, pooled rank 0.77). The pooled form equals the model on
one account holding all the group's requests.
"""

import numpy as np
import pyarrow as pa
import pytest

from distillguard.scan.config import AccountModelConfig
from distillguard.scoring.suspicion import StoreOutput, account_suspicion, blend, pooled_components


def _feats(per: dict[str, tuple[int, float, float]]) -> pa.Table:
    """account -> (requests, mean max_tokens, single-turn share)."""
    ids = list(per)
    return account_suspicion(pa.table({
        "account_id": ids, "n_exchanges": [float(per[a][0]) for a in ids],
        "n_max_tokens": [float(per[a][0]) for a in ids], "mean_max_tokens": [per[a][1] for a in ids],
        "single_turn_share": [per[a][2] for a in ids], "top_capability_share": [0.6] * len(ids)}))


def _store(extra: dict[str, tuple[int, float, float]]) -> pa.Table:
    rng = np.random.default_rng(3)
    ordinary = {f"u{i}": (int(rng.integers(5, 60)), float(rng.choice([1024, 2048, 4096, 8192, 16000])), 0.4) for i in range(200)}
    return _feats(ordinary | extra)


def test_thin_members_asking_long_answers_rank_as_their_pooled_requests():
    hydra = {f"h{i}": (2, 12000.0, 1.0) for i in range(10)}
    t = _store(hydra)
    rows = [r for r in t.to_pylist() if r["account_id"] in hydra]
    model = AccountModelConfig()
    store = StoreOutput.of(t, model.rank_prior_exchanges)
    on = pooled_components(rows, model, store)
    off = pooled_components(rows, AccountModelConfig(pool_output_rank=False), store)
    assert pooled_components(rows, model) == off   # no store: the members' ranks averaged, as before
    # one account holding the group's 20 requests, ranked in the same store
    whole = _store({"whole": (20, 12000.0, 1.0)})
    w = next(r for r in whole.to_pylist() if r["account_id"] == "whole")
    assert on["long_output"] == pytest.approx(w["c_long_output"], abs=0.02)
    assert on["harvest_shape"] == pytest.approx(w["c_harvest_shape"], abs=0.02)
    assert on["long_output"] > off["long_output"] + 0.15
    assert blend(on, model) > blend(off, model)


def test_a_pool_asking_ordinary_lengths_does_not_rank_high():
    group = {f"g{i}": (2, 2048.0, 1.0) for i in range(10)}
    t = _store(group)
    rows = [r for r in t.to_pylist() if r["account_id"] in group]
    model = AccountModelConfig()
    on = pooled_components(rows, model, StoreOutput.of(t, model.rank_prior_exchanges))
    assert on["long_output"] < 0.2
    # a store without requested lengths: nothing to rank against
    assert StoreOutput.of(t.drop(["mean_max_tokens"]), 5.0) is None
