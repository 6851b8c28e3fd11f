"""The dense-block step numbers accounts and entities with an Arrow sort (``dense_numbering``); the incidence
matrix, and so the blocks, are the same only if that numbering is exactly ``np.unique``'s."""

import numpy as np
import pyarrow as pa
import pytest

from distillguard.graph.denseblock import dense_numbering

# ASCII, Latin-1, CJK and an astral-plane character, plus the separator the entity keys use: code-point
# order and UTF-8 byte order must agree on all of them, including prefixes ("a" < "a\x1f" < "ab")
_ALPHABET = list("abAB09_-.:/| ") + ["\x1f", "é", "ß", "Ω", "中", "文", "😀"]


def _random_strings(rng: np.random.Generator, n: int, distinct: int) -> list[str]:
    pool = ["".join(rng.choice(_ALPHABET, size=rng.integers(0, 6))) for _ in range(distinct)]
    return [pool[i] for i in rng.integers(0, len(pool), size=n)]


@pytest.mark.parametrize("seed", range(5))
def test_numbering_is_np_unique(seed):
    rng = np.random.default_rng(seed)
    vals = _random_strings(rng, 5000, int(rng.integers(1, 800)))
    names, inv = dense_numbering(pa.array(vals))
    ref_names, ref_inv = np.unique(np.array(vals, dtype=object), return_inverse=True)
    assert names.tolist() == ref_names.tolist()
    assert np.array_equal(inv, ref_inv.ravel())
    assert [names[i] for i in inv] == vals  # and it maps back


def test_numbering_of_a_chunked_column_is_np_unique():
    rng = np.random.default_rng(11)
    chunks = [_random_strings(rng, 700, 90) for _ in range(4)]
    names, inv = dense_numbering(pa.chunked_array(chunks))
    flat = [v for c in chunks for v in c]
    ref_names, ref_inv = np.unique(np.array(flat, dtype=object), return_inverse=True)
    assert names.tolist() == ref_names.tolist()
    assert np.array_equal(inv, ref_inv.ravel())


def test_numbering_of_an_empty_column():
    names, inv = dense_numbering(pa.array([], pa.string()))
    assert len(names) == 0 and len(inv) == 0
