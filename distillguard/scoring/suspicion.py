"""The account model: how much one account's own traffic looks like harvesting, in [0, 1].

One documented logistic blend, ``suspicion = σ(bias + Σ weight_k · x_k)``, whose weights live in the scan
configuration (``scoring.account_model``), none in code. Every component ``x_k`` is in [0, 1]. Shares (intent,
capability, reasoning, single-turn, template reuse) are what they are on any store; magnitudes that depend on
the provider — requests per day, requested output length — enter as *percentiles within the store at hand*
(``2·rank − 1`` above the median, 0 below), so the same weights mean the same thing on a 5,000-request
third-party log and on a 30M-exchange production store. A component whose input the store does not have (no
account facts: no limits, creation dates or verification) falls back to what the exchanges say (volume
pressure from the within-store volume percentile) or contributes nothing — it never zeroes the model.

It is deliberately *not* enough to flag an account alone — a benchmark researcher or a tutoring platform looks
like this too — it feeds the coordination stage (entity discount) and the cluster score, where what accounts
share decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from distillguard.scan.base import CAPABILITY_PREFIX

#: Share-based components are shrunk towards zero by n / (n + prior_exchanges): one coding request is
#: "100% single-turn, 100% on one template, 100% coding" and says nothing about how the account behaves.
COMPONENTS = ("intent", "capability", "task_items", "reasoning", "single_turn", "template_reuse", "limit_util",
              "volume", "long_output", "harvest_shape", "received_output", "new_account", "low_verification",
              "fast_pivot")


def _col(t: pa.Table, name: str, default: float = 0.0) -> np.ndarray:
    if name not in t.column_names:
        return np.full(t.num_rows, default)
    a = t[name].to_numpy(zero_copy_only=False)
    a = np.asarray([default if v is None else v for v in a], dtype=float) if a.dtype == object else a.astype(float)
    return np.where(np.isnan(a), default, a)


def _known(t: pa.Table, name: str) -> np.ndarray:
    if name not in t.column_names:
        return np.zeros(t.num_rows, dtype=bool)
    a = t[name].to_numpy(zero_copy_only=False)
    return np.asarray([v is not None and not (isinstance(v, float) and np.isnan(v)) for v in a], dtype=bool)


def upper_percentile(v: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """max(0, 2·p − 1) where p is v's mid-rank percentile among the store's accounts (those ``present``):
    0 at or below the median, → 1 for the store's heaviest. Accounts without the value get 0."""
    present = np.ones(len(v), dtype=bool) if present is None else present
    out = np.zeros(len(v))
    x = v[present]
    if len(x) == 0:
        return out
    order = np.sort(x)
    lo, hi = np.searchsorted(order, x, "left"), np.searchsorted(order, x, "right")
    p = (lo + hi) / 2.0 / len(x)
    out[present] = np.clip(2 * p - 1, 0, 1)
    return out


def credible_values(v: np.ndarray, n: np.ndarray, present: np.ndarray, prior: float) -> np.ndarray:
    """Each account's value shrunk towards the store's median (over the accounts ``present``) by its credibility
    ``n / (n + prior)``, n = how many of its exchanges the value is a mean of.

    Why: a percentile ranks accounts by their means, and the mean of one or two requests is mostly noise. One
    request at the largest max_tokens the store has seen would otherwise rank at the top and push every
    harvester with hundreds of long requests below it; early in a campaign, when each of its accounts has sent a
    handful, the ranks would follow whoever happened to ask for the most last. Shrunk first, an account ranks
    high only when plenty of its requests say so (the Bayesian average, with the store's median as the prior
    and ``prior`` exchanges of weight). ``prior`` 0 leaves the values as they are."""
    out = np.array(v, dtype=float, copy=True)
    if prior <= 0 or not present.any():
        return out
    med = float(np.median(out[present]))
    n = np.maximum(np.asarray(n, dtype=float), 0.0)
    w = n / (n + prior)
    out[present] = med + w[present] * (out[present] - med)
    return out


def credible_output(features: pa.Table, prior: float) -> tuple[np.ndarray, np.ndarray]:
    """(each account's mean requested max_tokens shrunk towards the store's median by its credibility — what
    ``long_output`` ranks —, which accounts record it). n = its exchanges carrying max_tokens (a feature table
    without that count: its exchanges)."""
    n = _col(features, "n_exchanges", 1e9)
    mt_known = _known(features, "mean_max_tokens")
    n_mt = _col(features, "n_max_tokens", np.nan) if "n_max_tokens" in features.column_names else n
    n_mt = np.where(np.isnan(n_mt), n, n_mt)
    return credible_values(_col(features, "mean_max_tokens"), n_mt, mt_known, prior), mt_known


def credible_received(features: pa.Table, prior: float) -> tuple[np.ndarray, np.ndarray]:
    """(each account's mean output tokens received per exchange shrunk towards the store's median by its
    credibility, which accounts record it). n = its exchanges carrying an output count (without that count: its
    exchanges). A store that records no output counts gives nobody this component."""
    n = _col(features, "n_exchanges", 1e9)
    known = _known(features, "mean_output_tokens")
    n_out = _col(features, "n_output_tokens", np.nan) if "n_output_tokens" in features.column_names else n
    n_out = np.where(np.isnan(n_out), n, n_out)
    return credible_values(_col(features, "mean_output_tokens"), n_out, known, prior), known


@dataclass(frozen=True)
class StoreOutput:
    """What a pooled group's requested length is ranked against (:func:`pooled_components`): the store's
    accounts' credible mean max_tokens (sorted) and the median they are shrunk towards."""
    credible: np.ndarray
    median: float

    @classmethod
    def of(cls, features: pa.Table, prior: float) -> StoreOutput | None:
        if "mean_max_tokens" not in features.column_names:
            return None
        mt, known = credible_output(features, prior)
        if not known.any():
            return None
        raw = _col(features, "mean_max_tokens")[known]
        return cls(np.sort(mt[known]), float(np.median(raw)))

    @classmethod
    def received(cls, features: pa.Table, prior: float) -> StoreOutput | None:
        """The same for the output tokens received per exchange (what ``received_output`` ranks)."""
        if "mean_output_tokens" not in features.column_names:
            return None
        got, known = credible_received(features, prior)
        if not known.any():
            return None
        raw = _col(features, "mean_output_tokens")[known]
        return cls(np.sort(got[known]), float(np.median(raw)))

    def rank(self, mean: float, n: float, prior: float) -> float:
        """``long_output`` of a body of ``n`` requests asking ``mean`` max_tokens on average: shrunk as an account's
        mean is, then as an upper percentile (mid-rank) among the store's accounts."""
        v = self.median + (n / (n + prior) if prior > 0 else 1.0) * (mean - self.median)
        lo, hi = np.searchsorted(self.credible, v, "left"), np.searchsorted(self.credible, v, "right")
        return float(np.clip(2 * (lo + hi) / 2.0 / len(self.credible) - 1, 0, 1))


def components(features: pa.Table, non_intent: tuple[str, ...] = ("sig_task_dataset",),
               prior_exchanges: float = 5.0, rank_prior_exchanges: float = 5.0) -> dict[str, np.ndarray]:
    share_cols = [c for c in features.column_names if c.startswith("share_")]
    intent_cols = [c for c in share_cols if not ("sig_" + c[6:]).startswith(CAPABILITY_PREFIX)
                   and "sig_" + c[6:] not in non_intent]
    intent = np.max(np.stack([_col(features, c) for c in intent_cols]), axis=0) if intent_cols else np.zeros(features.num_rows)
    n = _col(features, "n_exchanges", 1e9)
    sure = n / (n + prior_exchanges)
    # volume against this store: requests per active day, as an upper percentile
    volume = upper_percentile(_col(features, "mean_rpd")) * sure
    util = np.clip(np.maximum.reduce([_col(features, "mean_rpd_util"), 0.8 * _col(features, "rpd_util"),
                                      _col(features, "rate_util")]), 0, 1)
    # no limit on record (a third-party log, a provider without tiers): pressure is the volume percentile
    util = np.where(_known(features, "rpd_limit"), util, volume)
    # requested output length against this store, each account's mean first shrunk towards the store's median
    # by how many of its requests carried max_tokens (a feature table without the count: its exchanges)
    mt, mt_known = credible_output(features, rank_prior_exchanges)
    long_out = upper_percentile(mt, mt_known) * sure
    # output actually received per exchange against this store, shrunk like the requested length (by the
    # exchanges that carry an output count): what the teacher produced for the account. A quiet pool mixes
    # ordinary prompts in and asks an ordinary max_tokens, but its harvest prompts still draw long answers; an
    # agent loop or a chat receives short ones (issue 11, docs/detection.md "The account model")
    received = credible_received(features, rank_prior_exchanges)
    received_out = upper_percentile(*received) * sure
    # harvesting shape: long answers requested *and* one turn per request — a corpus being collected, not a
    # conversation or an agent loop (either alone is common: long chats, terse batch jobs)
    single = _col(features, "single_turn_share") * sure
    age = _col(features, "account_age_days", 365.0)
    pivot = _col(features, "pivot_delay_hours", 1e9)
    return {
        "intent": intent * sure,
        "capability": _col(features, "top_capability_share") * sure,
        "task_items": np.clip(_col(features, "task_item_share"), 0, 1) * sure,
        "reasoning": _col(features, "reasoning_share") * sure,
        "single_turn": single,
        "template_reuse": _col(features, "top_template_share") * sure,
        "limit_util": util,
        "volume": volume,
        "long_output": long_out,
        "harvest_shape": long_out * single,
        "received_output": received_out,
        "new_account": (age < 30).astype(float),
        "low_verification": (_known(features, "verification_level")
                             & (_col(features, "verification_level", 1.0) <= 0)).astype(float),
        "fast_pivot": ((pivot <= 24) & (_col(features, "new_model_share") >= 0.3)).astype(float),
    }


#: How each component is shrunk by the account's own volume: (n / (n + prior)) ** power; the rest are not.
SHRINK_POWER = {"intent": 1, "capability": 1, "task_items": 1, "reasoning": 1, "single_turn": 1,
                "template_reuse": 1, "volume": 1, "long_output": 1, "harvest_shape": 2, "received_output": 1}


def _model(model):
    if model is None:
        from distillguard.scan.config import AccountModelConfig

        return AccountModelConfig()
    return model


def _unshrunk(r: dict, comp: str, k: float) -> tuple[float, float]:
    """(the component's value before the account's own shrinkage, the account's n / (n + k))."""
    n = max(float(r.get("n_exchanges") or 0.0), 0.0)
    sure = n / (n + k) if k > 0 else 1.0
    v = float(r.get(f"c_{comp}") or 0.0)
    v = 0.0 if v != v else v
    p = SHRINK_POWER.get(comp, 0)
    if not p:
        return v, sure
    return (min(1.0, max(0.0, v / sure ** p)) if sure > 0 else 0.0), sure


def pooled_components(rows: list[dict], model=None, store: StoreOutput | None = None,
                      payers: list[list[str]] | None = None) -> dict[str, float]:
    """The account model's components on a group's pooled traffic: each component's unshrunk value averaged
    over the group's exchanges, then shrunk by the group's combined volume N / (N + prior_exchanges).
    With ``store`` (and ``pool_output_rank``) the requested length is ranked as the group's: the pooled mean
    max_tokens over the group's requests that carry it, shrunk by *their* number and ranked among the store's
    accounts (``long_output``; ``harvest_shape`` = that rank × the pooled single-turn share). Averaging the
    members' ranks would keep each thin member's mean pulled to the store's median by its own handful of
    requests — the per-account shrinkage pooling exists to undo (issue 14: a hydra's 12 accounts on one card, 60
    requests, ranked as 0.43 on average where their pooled mean ranks 0.77).

    Why: a hydra splits its volume over many accounts, so early in its life each account has sent a
    handful of requests and the per-account shrinkage keeps every one of them near the prior — the split
    that hides it from per-account evidence. Where coordination says the accounts act as one (the caller
    pools only strongly coordinated groups tied by distinctive evidence), their traffic is one body of
    evidence and counts at the group's volume. ``rows``: feature rows with ``n_exchanges`` and the
    ``c_<component>`` columns of :func:`account_suspicion`.

    ``payers`` (with ``pool_limit_pressure``): the account ids of each payment instrument's holders in the group.
    Limits are set per account; a hydra keeps each account far under its own by splitting one payer's volume
    over many. The group's ``limit_util`` is then at least the largest payer's summed utilisation (each holder's
    own, against its own limit; holders without a limit on record add nothing), clipped to 1: the group's
    combined draw measured in one account's limits. The average the other components take is the very quantity
    the split keeps low (issue 14: a card's 11 accounts, 57 requests in 4 hours, averaged 0.11 of a 300-a-day
    limit; together 0.76)."""
    model = _model(model)
    k = float(model.prior_exchanges)
    ns = np.array([max(float(r.get("n_exchanges") or 0.0), 0.0) for r in rows])
    # math.fsum (exact, then rounded once): the result does not depend on the order of ``rows``, so a cluster's
    # pooled suspicion is the same to the bit however its members were listed (docs/detection.md "Reproducible")
    total = math.fsum(ns.tolist())
    if total <= 0:
        return {c: 0.0 for c in COMPONENTS}
    sure_n = total / (total + k) if k > 0 else 1.0
    out = {}
    for comp in COMPONENTS:
        raw = np.array([_unshrunk(r, comp, k)[0] for r in rows])
        out[comp] = math.fsum((raw * ns).tolist()) / total * sure_n ** SHRINK_POWER.get(comp, 0)
    if store is not None and getattr(model, "pool_output_rank", False):
        mts = [(float(r["mean_max_tokens"]), float(r.get("n_max_tokens") if _present(r.get("n_max_tokens"))
                                                     else r.get("n_exchanges") or 0.0))
               for r in rows if _present(r.get("mean_max_tokens"))]
        n_mt = math.fsum(n for _, n in mts)
        if n_mt > 0:
            rank = store.rank(math.fsum(m * n for m, n in mts) / n_mt, n_mt, float(model.rank_prior_exchanges))
            single = out["single_turn"] / sure_n if sure_n > 0 else 0.0
            out["long_output"] = rank * sure_n
            out["harvest_shape"] = rank * single * sure_n ** 2
    if payers and getattr(model, "pool_limit_pressure", False):
        by_id = {r.get("account_id"): r for r in rows}
        best = 0.0
        for holders in payers:
            best = max(best, math.fsum(float(by_id[a].get("c_limit_util") or 0.0) for a in sorted(set(holders))
                                       if a in by_id and _present(by_id[a].get("rpd_limit"))))
        out["limit_util"] = max(out["limit_util"], min(1.0, best))
    return out


def _present(v) -> bool:
    return v is not None and not (isinstance(v, float) and np.isnan(v))


def blend(comps: dict[str, float], model) -> float:
    z = float(model.bias) + sum(float(model.weights.get(c, 0.0)) * v for c, v in comps.items())
    return float(1 / (1 + np.exp(-z)))


def received_lift(cfg) -> float:
    """How much more weight the received-output component gets in a cluster spared by the percentile gate for what
    its core collects (``scoring.collecting_received_weight`` over the account model's own weight; 0: none)."""
    w = cfg.collecting_received_weight
    return 0.0 if w is None else max(0.0, float(w) - float(cfg.account_model.weights.get("received_output", 0.0)))


def with_received(susp: float, received, lift: float) -> float:
    """An account's (or a pooled group's) suspicion with ``lift`` more weight on its received-output component:
    the logit moves by lift × x, exactly the blend with that weight raised (every other term unchanged)."""
    x = 0.0 if received is None or received != received else min(1.0, max(0.0, float(received)))
    if lift <= 0 or x <= 0:
        return float(susp)
    p = min(max(float(susp), 1e-12), 1 - 1e-12)
    return float(1 / (1 + math.exp(-(math.log(p / (1 - p)) + lift * x))))


def pooled_suspicion(rows: list[dict], model=None) -> float:
    """The account model on the group's pooled components (:func:`pooled_components`)."""
    model = _model(model)
    return blend(pooled_components(rows, model), model)


def member_suspicion(row: dict, group: dict[str, float], model=None) -> float:
    """One member of a pooled group, shrunk towards its group's pooled components instead of towards
    nothing: component = sure · own + (1 − sure) · group, sure = n / (n + prior). An account with a handful
    of requests reads as its group; one with plenty of its own ordinary traffic (a bystander the cluster
    swept in) stays what its own traffic says."""
    model = _model(model)
    k = float(model.prior_exchanges)
    comps = {}
    for comp in COMPONENTS:
        raw, sure = _unshrunk(row, comp, k)
        p = SHRINK_POWER.get(comp, 0)
        comps[comp] = (sure ** p) * raw + (1 - sure ** p) * group.get(comp, 0.0) if p else float(
            row.get(f"c_{comp}") or 0.0)
    return blend(comps, model)


def account_suspicion(features: pa.Table, non_intent: tuple[str, ...] = ("sig_task_dataset",),
                      model=None) -> pa.Table:
    """features + ``suspicion`` in [0,1] and one ``c_<component>`` column per component. ``model`` is an
    ``AccountModelConfig`` (bias, weights, prior_exchanges); the configuration's defaults when None."""
    if model is None:
        from distillguard.scan.config import AccountModelConfig

        model = AccountModelConfig()
    comp = components(features, non_intent, model.prior_exchanges, model.rank_prior_exchanges)
    z = np.full(features.num_rows, float(model.bias))
    for k, v in comp.items():
        z = z + float(model.weights.get(k, 0.0)) * v
    s = 1 / (1 + np.exp(-z))
    out = features
    for k, v in comp.items():
        out = out.append_column(f"c_{k}", pa.array(v, pa.float64()))
    return out.append_column("suspicion", pa.array(s, pa.float64()))


def store_percentile(susp: float, members: list[str], feats_s: dict[str, float], store_s: np.ndarray) -> float:
    """The share of the store's accounts *outside* the cluster whose suspicion is below the cluster's: where its
    traffic sits in the provider's own population. Outside only, so a campaign that is half of a small store is
    judged against the rest of it, not against itself."""
    below = int(np.searchsorted(store_s, susp, side="left"))
    inside = [feats_s[a] for a in members if a in feats_s]
    below -= sum(1 for v in inside if v < susp)
    outside = len(store_s) - len(inside)
    return below / outside if outside > 0 else 1.0


def unusual_own_bar(suspicion: np.ndarray, ids: list[str], strong: set[str], quantile: float | None,
                    spread: float, min_accounts: int = 20) -> float | None:
    """The own suspicion above which a member's traffic is unusual *for this store*: Q + spread × (Q − median),
    Q the ``quantile`` of the suspicion of the accounts outside strong clusters. A member tied to a hydra only by
    a crowded sign-up burst or a shared ISP is judged on its own traffic; compared with the cluster's suspicion
    it loses most of its risk (a proxy replaying ordinary traffic beside the harvest sits at half the pool's
    level), although that traffic is far above what the store's own users send. Measured as a distance past
    an upper quantile, not a far-tail quantile: a few percent of missed harvest accounts among the outside
    accounts moved Q0.99 from 0.31 to 0.52 at scale 1.0 (docs/benchmarks.md, branch ``own18``). None: off, or
    fewer than ``min_accounts`` such accounts, or no spread above their median (nothing to call unusual by)."""
    if quantile is None:
        return None
    keep = np.fromiter((a not in strong for a in ids), dtype=bool, count=len(ids))
    outside = np.asarray(suspicion, dtype=float)[keep]
    if outside.size < min_accounts:
        return None
    q, med = float(np.quantile(outside, quantile)), float(np.median(outside))
    if q <= med:
        return None   # no spread above the median: the store gives no scale for "unusual"
    return q + spread * (q - med)
