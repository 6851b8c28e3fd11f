"""``shared_tail`` sums the tail with Python floats for small o: it must give the very bits the numpy
recurrence gives (a p-value decides a merge at a threshold and is printed in the evidence)."""

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
