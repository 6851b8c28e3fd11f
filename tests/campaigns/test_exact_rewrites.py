"""Rewrites of the campaigns step for speed that must give the very bits the code they replaced gave: ``shared_tail``
(Python floats for small o) and ``build._store_mix`` (column by column). A p-value decides a merge at a threshold
and is printed in the evidence; the store mix is what every campaign title is compared with."""

import numpy as np

from distillguard.campaigns.operations import _TAIL_SCALAR_MAX, _shared_tail_arrays, shared_tail


def test_the_scalar_tail_is_the_array_tail_bit_for_bit():
    rng = np.random.default_rng(7)
    for _ in range(500):
        k = int(rng.integers(0, 300))
        probs = rng.random(k) ** rng.uniform(0.3, 8.0)
        probs[rng.random(k) < 0.05] = 0.0           # skipped, as before
        for o in (1, 2, 3, int(rng.integers(4, _TAIL_SCALAR_MAX + 1))):
            assert shared_tail(o, probs) == _shared_tail_arrays(o, probs)
            assert shared_tail(o, list(probs)) == _shared_tail_arrays(o, probs)


def test_the_tail_is_the_exact_probability():
    # three fair coins: P(X >= 2) = 4/8; one certain and one impossible entity: P(X >= 1) = 1
    assert abs(shared_tail(2, np.array([0.5, 0.5, 0.5])) - 0.5) < 1e-12
    assert shared_tail(1, np.array([1.0, 0.0])) == 1.0
    assert shared_tail(0, np.array([])) == 1.0
    assert shared_tail(3, np.array([0.9, 0.9])) == 0.0      # more shared than there are entities
    assert abs(shared_tail(_TAIL_SCALAR_MAX + 1, np.full(40, 0.5)) - _shared_tail_arrays(_TAIL_SCALAR_MAX + 1, np.full(40, 0.5))) == 0


def _store_mix_by_rows(rows):
    """The row-by-row loop ``build._store_mix`` replaced (the reference it must equal)."""
    from distillguard.campaigns.build import _num
    tot, acc = 0.0, {}
    for r in rows:
        n = _num(r.get("n_exchanges"))
        tot += n
        for k, v in r.items():
            if k.startswith("share_"):
                acc[k[6:]] = acc.get(k[6:], 0.0) + _num(v) * n
        acc["_task_items"] = acc.get("_task_items", 0.0) + _num(r.get("task_item_share")) * n
    return {k: v / max(tot, 1.0) for k, v in acc.items()}


def test_the_store_mix_by_columns_is_the_row_loop_bit_for_bit():
    import pyarrow as pa

    from distillguard.campaigns.build import _store_mix
    rng = np.random.default_rng(3)
    n = 2000
    def col():
        v = rng.random(n).tolist()
        return [None if rng.random() < 0.05 else (float("nan") if rng.random() < 0.02 else x) for x in v]
    t = pa.table({"account_id": [f"a{i}" for i in range(n)], "n_exchanges": rng.integers(0, 5000, n).tolist(),
                  "share_coding": col(), "x": col(), "share_reasoning": col(), "task_item_share": col()})
    got = _store_mix(t)
    assert got == _store_mix_by_rows(t.to_pylist())
    assert list(got) == list(_store_mix_by_rows(t.to_pylist()))   # the same keys in the same order
    assert _store_mix(t.drop_columns(["task_item_share"])) == _store_mix_by_rows(t.drop_columns(["task_item_share"]).to_pylist())
    assert _store_mix(t.slice(0, 0)) == {}
