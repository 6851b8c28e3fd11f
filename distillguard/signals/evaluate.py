"""Held-out evaluation of the lexical models: phrasings, payloads and benign rows never trained on."""

from __future__ import annotations

import numpy as np

from distillguard.signals import corpus, lexical

THRESHOLD = 0.5


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def heldout_report(threshold: float = THRESHOLD) -> dict:
    model = lexical.get_model()
    texts, labels, groups = corpus.heldout_set()
    probs = model.predict(texts)
    groups_a = np.array(groups)
    rows = []
    for j, tactic in enumerate(model.tactics):
        y = labels[:, j]
        keep = y >= 0
        yk, pk = y[keep], probs[keep, j]
        pred = pk >= threshold
        tp = int((pred & (yk == 1)).sum())
        fp = int((pred & (yk == 0)).sum())
        fn = int((~pred & (yk == 1)).sum())
        hn = (groups_a == "hard_negative") & keep & (labels[:, j] == 0)
        rows.append({
            "tactic": tactic,
            "positives": int((yk == 1).sum()),
            "negatives": int((yk == 0).sum()),
            "auc": round(_auc(yk, pk), 4),
            "precision": round(tp / max(tp + fp, 1), 4),
            "recall": round(tp / max(tp + fn, 1), 4),
            "fpr": round(fp / max(int((yk == 0).sum()), 1), 5),
            "hard_negatives": int(hn.sum()),
            "hard_negatives_flagged": int((probs[hn, j] >= threshold).sum()),
        })
    return {"threshold": threshold, "model": model.data_hash, "n": len(texts), "tactics": rows}
