"""The account model's ``received_output`` component: the output tokens an account actually received per exchange,
shrunk towards the store's median by the exchanges carrying a count and ranked within the store (an upper
percentile, as ``long_output`` ranks the requested length). A quiet pool asks an ordinary max_tokens and mixes
ordinary prompts in, yet its harvest prompts draw long answers (sampled dev world standard-103: its accounts'
median received output at the store's ~87th percentile, the course lab's and the framework users' at or below the
median); a store that records no output counts gives nobody the component."""

from __future__ import annotations

import pyarrow as pa
import pytest

from distillguard.scan.config import AccountModelConfig
from distillguard.scoring.suspicion import account_suspicion

ORDINARY = [f"o{i}" for i in range(100)]


def _features(pool_out: float | None, n_out: float = 200.0) -> pa.Table:
    ids = ORDINARY + ["pool"]
    out = [300.0 + 3 * i for i in range(100)] + [pool_out]
    return pa.table({"account_id": ids, "n_exchanges": [200.0] * len(ids),
                     "mean_output_tokens": pa.array(out, pa.float64()),
                     "n_output_tokens": pa.array([200] * 100 + [int(n_out)], pa.int64()),
                     "single_turn_share": [0.5] * len(ids)})


def _model(w: float) -> AccountModelConfig:
    return AccountModelConfig(weights={"received_output": w})


def _by(t: pa.Table, col: str) -> dict[str, float]:
    return dict(zip(t["account_id"].to_pylist(), t[col].to_pylist(), strict=True))


def test_an_account_receiving_the_longest_answers_ranks_high_and_is_more_suspicious():
    on, off = account_suspicion(_features(900.0), model=_model(0.5)), account_suspicion(_features(900.0), model=_model(0.0))
    c = _by(on, "c_received_output")
    assert c["pool"] > 0.95 and c["o10"] == 0.0   # below the store's median: nothing
    assert _by(on, "suspicion")["pool"] > _by(off, "suspicion")["pool"] + 0.02
    assert _by(on, "suspicion")["o10"] == pytest.approx(_by(off, "suspicion")["o10"])


def test_a_handful_of_long_answers_is_shrunk_towards_the_median():
    few = _by(account_suspicion(_features(650.0, n_out=2.0), model=_model(0.5)), "c_received_output")
    many = _by(account_suspicion(_features(650.0), model=_model(0.5)), "c_received_output")
    assert few["pool"] < many["pool"] - 0.3


def test_a_store_without_output_counts_gives_nobody_the_component():
    f = _features(900.0)
    f = f.drop_columns(["mean_output_tokens", "n_output_tokens"])
    assert set(_by(account_suspicion(f, model=_model(0.5)), "c_received_output").values()) == {0.0}
