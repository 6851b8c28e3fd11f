"""Ids and other non-behavioural fields must not tell attackers from ordinary accounts."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from distillguard.store import Store

sklearn = pytest.importorskip("sklearn")
from scipy.sparse import csr_matrix, hstack  # noqa: E402
from sklearn.feature_extraction.text import HashingVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold, cross_val_predict  # noqa: E402


def _id_features(world):
    # one id of each kind per account, picked independently of volume (min() over many ids would
    # leak how busy an account is, which is behaviour, not an id)
    con = Store(world).connect()
    con.register("labels", pq.read_table(world / "labels.parquet"))
    rows = con.sql("""
        SELECT a.account_id, a.org_id, arg_min(e.api_key_id, e.ts) AS key_id, arg_min(e.exchange_id, e.ts) AS ex_id,
               epoch_ms(a.created_at) % 1000 AS ms, second(a.created_at) AS sec,
               (l.campaign_id IS NOT NULL)::INT AS y
        FROM accounts a JOIN labels l USING (account_id) JOIN exchanges e USING (account_id)
        GROUP BY ALL ORDER BY a.account_id""").fetchall()
    return rows


def _auc(texts, nums, y) -> float:
    hv = HashingVectorizer(analyzer="char", ngram_range=(1, 2), n_features=2**12, alternate_sign=False, norm="l2")
    X = hstack([hv.transform(texts), csr_matrix(np.asarray(nums, dtype=float) / np.array([1000.0, 60.0]))]).tocsr()
    clf = LogisticRegression(max_iter=2000, C=1.0)
    p = cross_val_predict(clf, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")[:, 1]
    return roc_auc_score(y, p)


def test_ids_do_not_reveal_attackers(tiny_world):
    rows = _id_features(tiny_world)
    y = np.array([r[6] for r in rows])
    assert 20 < y.sum() < len(y) - 20
    texts = [" ".join(str(x) for x in r[:4]) for r in rows]
    nums = [[r[4], r[5]] for r in rows]
    auc = _auc(texts, nums, y)
    assert 0.35 < auc < 0.68, auc
    # the same classifier does find a leak when one exists (the test can fail)
    leaky = [t + (" zq" if yy else "") for t, yy in zip(texts, y, strict=True)]
    assert _auc(leaky, nums, y) > 0.75
