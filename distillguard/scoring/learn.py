"""Learning from analysts: re-weight the account model from verdicts and partner indicators.

The account model (``suspicion = σ(bias + Σ w_k · x_k)``, :mod:`distillguard.scoring.suspicion`) ships with
hand-set weights. A provider's analysts know better about *their* traffic: every campaign they confirm or
dismiss in the console (``analyst_labels``, one row per member account; ``campaign_decisions`` × the stored
``campaign_members`` for verdicts recorded without labels) and every account a trusted partner's indicator
matched (``intel_boost``) says which of the model's components separate attacks from their benign cohorts.

Each scan re-fits the component weights from *all* labels on record, always starting from the configured
weights (so re-scans do not drift: the same labels give the same model), as a penalised logistic regression:

* the labelled accounts are the ones a scan already surfaced, not a sample of the store, so they say which
  evidence separates, not how common attacks are: the fit has an intercept of its own for the labelled
  sample's attack share, which is not applied; instead the bias is shifted so the *store's* mean log-odds
  stays where the configured model put it (re-weighting must not make every account more suspicious);
* an L2 penalty pulls every weight towards its configured value, and each weight may move at most
  ``max_weight_change`` from it (and never below 0: a component is evidence or nothing);
* **held-out check:** the labels are split into folds *by campaign* (a campaign's accounts look alike, so
  account-level folds would test on near-copies of the training set); the model fitted on the other folds
  must beat the configured weights (with the same free intercept) on the held-out folds' log-loss by
  ``min_improvement``, or nothing is applied. Labels of one class only, too few labels, or a single campaign are refused.

The result is one :class:`ModelUpdate`: what changed, by how much, and why it was (not) applied; ``scan``
writes it to ``account_model_updates`` and prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa

from distillguard.scoring.suspicion import COMPONENTS, components

UPDATES_TABLE = "account_model_updates"
UPDATE_SCHEMA = pa.schema([
    ("scan_at", pa.timestamp("ms", tz="UTC")), ("component", pa.string()), ("weight_before", pa.float64()),
    ("weight_after", pa.float64()), ("change", pa.float64()), ("applied", pa.bool_()), ("why", pa.string()),
    ("n_attack", pa.int64()), ("n_benign", pa.int64()), ("n_campaigns", pa.int64()),
    ("heldout_loss_before", pa.float64()), ("heldout_loss_after", pa.float64()),
])


@dataclass
class Labels:
    account_id: list[str] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)
    group: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)


@dataclass
class ModelUpdate:
    applied: bool
    why: str
    before: dict[str, float]
    after: dict[str, float]
    n_attack: int = 0
    n_benign: int = 0
    n_campaigns: int = 0
    heldout_before: float | None = None
    heldout_after: float | None = None
    sources: dict[str, int] = field(default_factory=dict)
    bias_before: float = 0.0
    bias_after: float = 0.0

    def changes(self, eps: float = 1e-3) -> dict[str, float]:
        return {k: self.after[k] - self.before[k] for k in self.before if abs(self.after[k] - self.before[k]) > eps}

    def summary(self) -> str:
        """One paragraph for the scan's output and report."""
        if not (self.n_attack or self.n_benign):
            return "account model: configured weights (no analyst verdicts or partner indicators on record)"
        head = (f"account model: {self.n_attack} attack / {self.n_benign} benign labelled accounts "
                f"in {self.n_campaigns} campaigns")
        if self.heldout_before is not None and self.heldout_after is not None:
            head += f"; held-out log-loss {self.heldout_before:.3f} → {self.heldout_after:.3f}"
        ch = self.changes()
        moved = ", ".join(f"{k} {self.before[k]:.2f}→{self.after[k]:.2f}"
                          for k in sorted(ch, key=lambda k: -abs(ch[k]))) or "no weight moved"
        if abs(self.bias_after - self.bias_before) > 1e-3:
            moved += f"; bias {self.bias_before:.2f}→{self.bias_after:.2f} (keeps the store's mean log-odds)"
        return f"{head}; {'re-weighted' if self.applied else 'NOT applied'}: {self.why}" + \
            (f" ({moved})" if self.applied else "")

    def table(self, scan_at: datetime) -> pa.Table:
        rows = [dict(scan_at=scan_at, component=k, weight_before=self.before[k], weight_after=self.after[k],
                     change=self.after[k] - self.before[k], applied=self.applied, why=self.why,
                     n_attack=self.n_attack, n_benign=self.n_benign, n_campaigns=self.n_campaigns,
                     heldout_loss_before=self.heldout_before, heldout_loss_after=self.heldout_after)
                for k in self.before]
        rows.append(dict(rows[0], component="bias", weight_before=self.bias_before, weight_after=self.bias_after,
                         change=self.bias_after - self.bias_before))
        return pa.Table.from_pylist(rows, schema=UPDATE_SCHEMA)


def _rows(store, table: str) -> list[dict]:
    return store.read_table(table).to_pylist() if store.has_table(table) else []


def collect_labels(store, intel_weight: float = 0.5) -> Labels:
    """Every label on record, newest per account: analysts' account labels first, then campaign verdicts over
    the campaign's stored members, then partner indicators (positive, weighted by ``intel_weight`` × the
    boost) for accounts no analyst judged. ``group`` is the campaign (or the partner source) — what the
    held-out folds split on."""
    out: dict[str, tuple[float, float, str, str]] = {}
    for r in sorted(_rows(store, "analyst_labels"), key=lambda r: (r.get("at") is None, r.get("at"))):
        if r.get("label") in ("attack", "benign") and r.get("account_id"):
            out[r["account_id"]] = (1.0 if r["label"] == "attack" else 0.0, 1.0,
                                    str(r.get("campaign_id") or f"account:{r['account_id']}"), "analyst")
    decided = {}
    for r in sorted(_rows(store, "campaign_decisions"), key=lambda r: (r.get("at") is None, r.get("at"))):
        decided[r["campaign_id"]] = r.get("status")
    if decided:
        for r in _rows(store, "campaign_members"):
            st = decided.get(r.get("campaign_id"))
            if st in ("confirmed", "dismissed") and r["account_id"] not in out:
                out[r["account_id"]] = (1.0 if st == "confirmed" else 0.0, 1.0, str(r["campaign_id"]), "decision")
    if intel_weight > 0:
        for r in _rows(store, "intel_boost"):
            a = r.get("account_id")
            if a and a not in out:
                w = intel_weight * float(np.clip(r.get("boost") or 0.0, 0.0, 1.0))
                if w > 0:
                    src = r.get("sources")
                    src = ",".join(sorted(src)) if isinstance(src, list) else str(src or "partner")
                    out[a] = (1.0, w, f"intel:{src}", "intel")
    lab = Labels()
    for a in sorted(out):
        y, w, g, s = out[a]
        lab.account_id.append(a)
        lab.y.append(y)
        lab.weight.append(w)
        lab.group.append(g)
        lab.source.append(s)
    return lab


def _loss(theta, X, y, w, bias):
    z = np.clip(bias + X @ theta, -30, 30)
    p = 1 / (1 + np.exp(-z))
    eps = 1e-9
    return float(-(w * (y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))).sum() / max(w.sum(), eps))


def _fit(X, y, w, bias0, theta0, l2, max_change, weights_free: bool = True):
    """Penalised, box-bounded logistic fit: (intercept, component weights).

    The intercept is fitted freely and *not applied*: the labelled accounts are the ones scans surfaced and
    analysts looked at, so their attack share says nothing about the store; a free intercept absorbs it, so
    the weights move only for evidence that separates the classes. With ``weights_free`` False only the
    intercept is fitted (the configured weights' baseline for the held-out comparison)."""
    from scipy.optimize import minimize

    sw = max(float(w.sum()), 1e-9)
    n = len(theta0)

    def f(v):
        b, theta = v[0], (v[1:] if weights_free else theta0)
        z = np.clip(b + X @ theta, -30, 30)
        p = 1 / (1 + np.exp(-z))
        eps = 1e-9
        d = theta - theta0
        loss = -(w * (y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))).sum() / sw + 0.5 * l2 * float(d @ d)
        r = w * (p - y) / sw
        grad = np.concatenate([[r.sum()], (X.T @ r + l2 * d) if weights_free else []])
        return loss, grad

    v0 = np.concatenate([[bias0], theta0 if weights_free else []])
    bounds = [(None, None)] + ([(max(0.0, t - max_change), t + max_change) for t in theta0] if weights_free else [])
    res = minimize(f, v0, jac=True, method="L-BFGS-B", bounds=bounds)
    v = np.asarray(res.x, dtype=float)
    return float(v[0]), (v[1:1 + n] if weights_free else theta0.copy())


def _folds(groups: list[str], y: np.ndarray, k: int) -> list[np.ndarray]:
    """Whole campaigns to folds, round-robin within each class (largest first) so each fold sees both classes
    where it can; returns one boolean held-out mask per fold."""
    by_g: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by_g.setdefault(g, []).append(i)
    order = sorted(by_g, key=lambda g: (float(np.mean(y[by_g[g]])) >= 0.5, -len(by_g[g]), g))
    fold_of = {g: j % k for j, g in enumerate(order)}
    return [np.array([fold_of[g] == f for g in groups]) for f in range(k)]


def refit_account_model(features: pa.Table, labels: Labels, model, learning, non_intent=("sig_task_dataset",)
                        ) -> ModelUpdate:
    """Fit the account model's weights to ``labels`` (accounts of ``features``); returns the update, applied
    or refused with why. ``model`` is an ``AccountModelConfig``, ``learning`` a ``LearningConfig``."""
    before = {k: float(model.weights.get(k, 0.0)) for k in COMPONENTS}
    up = ModelUpdate(False, "", before, dict(before), bias_before=float(model.bias), bias_after=float(model.bias))
    if not labels.account_id:
        up.why = "no labels"
        return up
    idx = {a: i for i, a in enumerate(features["account_id"].to_pylist())}
    keep = [j for j, a in enumerate(labels.account_id) if a in idx]
    y = np.array([labels.y[j] for j in keep])
    w = np.array([labels.weight[j] for j in keep])
    groups = [labels.group[j] for j in keep]
    for j in keep:
        up.sources[labels.source[j]] = up.sources.get(labels.source[j], 0) + 1
    up.n_attack, up.n_benign = int((y >= 0.5).sum()), int((y < 0.5).sum())
    up.n_campaigns = len(set(groups))
    if min(up.n_attack, up.n_benign) < learning.min_labels:
        up.why = (f"needs at least {learning.min_labels} attack and {learning.min_labels} benign labelled accounts "
                  f"in this store (one class alone cannot say which evidence separates)")
        return up
    n_pos_g = len({g for g, t in zip(groups, y, strict=True) if t >= 0.5})
    n_neg_g = len({g for g, t in zip(groups, y, strict=True) if t < 0.5})
    if min(n_pos_g, n_neg_g) < learning.min_campaigns:
        up.why = (f"needs verdicts on at least {learning.min_campaigns} attack and {learning.min_campaigns} benign "
                  f"campaigns for a held-out check (have {n_pos_g} and {n_neg_g})")
        return up
    # components rank accounts against the table they are given: rank the whole store, as a scan does, and
    # take the labelled rows from that — ranked among the labelled few, a feature means something else
    allc = components(features, tuple(non_intent), model.prior_exchanges, model.rank_prior_exchanges)
    Xa = np.stack([allc[c] for c in COMPONENTS], axis=1)
    X = Xa[np.array([idx[labels.account_id[j]] for j in keep], dtype=np.int64)]
    theta0 = np.array([before[k] for k in COMPONENTS])
    bias = float(model.bias)
    k = int(min(learning.folds, up.n_campaigns))
    held0 = held1 = 0.0
    for mask in _folds(groups, y, k):
        tr = ~mask
        if not mask.any() or not tr.any():
            continue
        b0, _ = _fit(X[tr], y[tr], w[tr], bias, theta0, learning.l2, learning.max_weight_change, weights_free=False)
        b1, th = _fit(X[tr], y[tr], w[tr], bias, theta0, learning.l2, learning.max_weight_change)
        frac = float(w[mask].sum())
        held0 += _loss(theta0, X[mask], y[mask], w[mask], b0) * frac
        held1 += _loss(th, X[mask], y[mask], w[mask], b1) * frac
    tot = float(w.sum())
    up.heldout_before, up.heldout_after = held0 / tot, held1 / tot
    _, theta = _fit(X, y, w, bias, theta0, learning.l2, learning.max_weight_change)
    up.after = {c: float(round(t, 4)) for c, t in zip(COMPONENTS, theta, strict=True)}
    # keep the store's mean log-odds where the configured model put it: re-weighting says which evidence
    # separates, not that the whole store became more (or less) suspicious
    theta_r = np.array([up.after[c] for c in COMPONENTS])
    up.bias_after = float(round(bias + float(np.mean(Xa @ (theta0 - theta_r))), 4)) if len(Xa) else bias
    if up.heldout_after > up.heldout_before * (1 - learning.min_improvement):
        up.why = (f"held-out log-loss would not improve by {learning.min_improvement:.0%} "
                  f"({up.heldout_before:.3f} → {up.heldout_after:.3f}): the verdicts do not generalise across "
                  f"campaigns, so the configured weights stay")
        return up
    up.applied = True
    up.why = (f"fitted on every label, checked on {k} campaign-wise held-out folds; each weight moves at most "
              f"{learning.max_weight_change:g}")
    return up


def learn_account_model(store, features, model, learning, non_intent=("sig_task_dataset",)):
    """(model to scan with, update): the configured model re-weighted from the store's labels when the
    held-out check passes, else the configured model unchanged. ``features`` is the account-features table or
    a callable returning it (only called when there are labels)."""
    same = {k: float(model.weights.get(k, 0.0)) for k in COMPONENTS}
    b = float(model.bias)
    if not learning.enabled:
        return model, ModelUpdate(False, "learning from analysts is off (scoring.learning.enabled)", same, dict(same),
                                  bias_before=b, bias_after=b)
    labels = collect_labels(store, learning.intel_weight)
    if not labels.account_id:
        return model, ModelUpdate(False, "no labels", same, dict(same), bias_before=b, bias_after=b)
    feats = features() if callable(features) else features
    up = refit_account_model(feats, labels, model, learning, non_intent)
    if not up.applied:
        return model, up
    return model.model_copy(update={"weights": dict(up.after), "bias": up.bias_after}), up
