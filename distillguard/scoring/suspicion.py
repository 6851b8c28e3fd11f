"""Individual account suspicion: how much one account's own traffic looks like harvesting.

A transparent logistic blend with hand-set weights (no training on simulator labels). It is
deliberately *not* enough to flag an account alone — a benchmark researcher or a tutoring
platform looks like this too — it feeds the coordination stage (entity discount) and the
cluster score, where what accounts share decides.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from distillguard.scan.base import CAPABILITY_PREFIX

#: (component, weight, words used when it is a top reason)
WEIGHTS: dict[str, float] = {
    "intent": 2.6,       # share of requests eliciting reasoning / grading / rewrites
    "capability": 0.9,   # share concentrated on one capability (agentic, coding, vision)
    "task_items": 0.4,   # share whose core is a known task-set item
    "reasoning": 1.6,    # share of requests asking for reasoning/thinking
    "single_turn": 0.8,
    "template_reuse": 0.6,
    "limit_util": 1.6,   # daily volume close to the account's limit
    "new_account": 0.5,
    "low_verification": 0.3,
    "fast_pivot": 1.2,   # moved to a newly released model within a day
}
BIAS = -3.2
#: Share-based components are shrunk towards zero by n / (n + PRIOR_EXCHANGES): one coding request is
#: "100% single-turn, 100% on one template, 100% coding" and says nothing about how the account behaves.
PRIOR_EXCHANGES = 5.0


def _col(t: pa.Table, name: str, default: float = 0.0) -> np.ndarray:
    if name not in t.column_names:
        return np.full(t.num_rows, default)
    a = t[name].to_numpy(zero_copy_only=False)
    a = np.asarray([default if v is None else v for v in a], dtype=float) if a.dtype == object else a.astype(float)
    return np.where(np.isnan(a), default, a)


def components(features: pa.Table, non_intent: tuple[str, ...] = ("sig_task_dataset",)) -> dict[str, np.ndarray]:
    share_cols = [c for c in features.column_names if c.startswith("share_")]
    intent_cols = [c for c in share_cols if not ("sig_" + c[6:]).startswith(CAPABILITY_PREFIX)
                   and "sig_" + c[6:] not in non_intent]
    intent = np.max(np.stack([_col(features, c) for c in intent_cols]), axis=0) if intent_cols else np.zeros(features.num_rows)
    util = np.clip(np.maximum.reduce([_col(features, "mean_rpd_util"), 0.8 * _col(features, "rpd_util"),
                                      _col(features, "rate_util")]), 0, 1)
    age = _col(features, "account_age_days", 365.0)
    pivot = _col(features, "pivot_delay_hours", 1e9)
    n = _col(features, "n_exchanges", 1e9)
    sure = n / (n + PRIOR_EXCHANGES)
    return {
        "intent": intent * sure,
        "capability": _col(features, "top_capability_share") * sure,
        "task_items": np.clip(_col(features, "task_item_share"), 0, 1) * sure,
        "reasoning": _col(features, "reasoning_share") * sure,
        "single_turn": _col(features, "single_turn_share") * sure,
        "template_reuse": _col(features, "top_template_share") * sure,
        "limit_util": util,
        "new_account": (age < 30).astype(float),
        "low_verification": (_col(features, "verification_level", 1.0) <= 0).astype(float),
        "fast_pivot": ((pivot <= 24) & (_col(features, "new_model_share") >= 0.3)).astype(float),
    }


def account_suspicion(features: pa.Table, non_intent: tuple[str, ...] = ("sig_task_dataset",)) -> pa.Table:
    """features + ``suspicion`` in [0,1] and one ``c_<component>`` column per component."""
    comp = components(features, non_intent)
    z = np.full(features.num_rows, BIAS)
    for k, v in comp.items():
        z = z + WEIGHTS[k] * v
    s = 1 / (1 + np.exp(-z))
    out = features
    for k, v in comp.items():
        out = out.append_column(f"c_{k}", pa.array(v, pa.float64()))
    return out.append_column("suspicion", pa.array(s, pa.float64()))
