"""Credibility-weighted ranking of requested output length: an account's mean max_tokens is shrunk towards the
store's median by n / (n + rank_prior_exchanges) before it is ranked, so one request at a huge max_tokens does
not outrank a harvester's many; rank_prior_exchanges 0 is the raw ranking. The per-account count it needs
(``n_max_tokens``) is the same from `watch`'s merged partials as from a full projection."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from distillguard.scan.config import AccountModelConfig
from distillguard.scoring.suspicion import account_suspicion, credible_values

# 100 ordinary accounts with 20 requests each at 500–1,490 max_tokens; one account that sent a single request
# at the store's largest max_tokens; one harvester with 50 requests at a slightly lower mean.
ORDINARY = [f"o{i}" for i in range(100)]


def _features(n_one: float = 1.0) -> pa.Table:
    ids = ORDINARY + ["one_shot", "harvester"]
    mt = [500.0 + 10 * i for i in range(100)] + [8192.0, 8000.0]
    n = [20.0] * 100 + [n_one, 50.0]
    return pa.table({"account_id": ids, "n_exchanges": n, "n_max_tokens": pa.array(n, pa.int64()),
                     "mean_max_tokens": pa.array(mt, pa.float64()), "single_turn_share": [1.0] * len(ids)})


def _long_output(feats: pa.Table, k: float) -> dict[str, float]:
    # prior_exchanges 0: the component's own shrinkage by n_exchanges off, so only the ranking is compared
    out = account_suspicion(feats, model=AccountModelConfig(prior_exchanges=0.0, rank_prior_exchanges=k))
    return dict(zip(out["account_id"].to_pylist(), out["c_long_output"].to_pylist(), strict=True))


def test_one_request_at_a_huge_max_tokens_ranks_below_a_harvester():
    lo = _long_output(_features(), k=5.0)
    assert lo["harvester"] > lo["one_shot"]
    assert lo["harvester"] == max(lo.values())
    # the one-shot account still ranks above the ordinary median: shrunk, not discarded
    assert lo["one_shot"] > lo["o50"]


def test_rank_prior_zero_is_the_raw_ranking():
    raw = _long_output(_features(), k=0.0)
    assert raw["one_shot"] > raw["harvester"]
    assert raw["one_shot"] == max(raw.values())
    # and equals ranking the means as they are
    mt = np.array(_features()["mean_max_tokens"].to_pylist())
    assert np.array_equal(credible_values(mt, np.ones(len(mt)), np.ones(len(mt), bool), 0.0), mt)


def test_a_one_shot_with_enough_requests_ranks_first_again():
    # the same mean from 500 requests is credible: it outranks the harvester's lower mean
    lo = _long_output(_features(n_one=500.0), k=5.0)
    assert lo["one_shot"] > lo["harvester"]


def test_accounts_without_max_tokens_stay_out_of_the_ranking():
    f = _features()
    mt = pa.array(f["mean_max_tokens"].to_pylist()[:-1] + [None], pa.float64())
    f = f.set_column(f.column_names.index("mean_max_tokens"), "mean_max_tokens", mt)
    lo = _long_output(f, k=5.0)
    assert lo["harvester"] == 0.0
    assert lo["one_shot"] == max(lo.values())
