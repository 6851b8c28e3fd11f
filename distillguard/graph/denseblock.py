"""Camouflage-resistant dense blocks in the account × entity incidence (D-Cube style peeling).

Fraudar's point is that a fraudster can add edges to popular, benign entities (camouflage)
but cannot hide the block of rare entities its accounts share; with column weights that shrink
for popular entities (here: the IDF- and benign-discounted entity weight), the densest
subgraph is the coordinated block whatever camouflage is added. We use batch peeling
(Bahmani et al.): each pass drops every row and column whose weighted degree is at most
2(1+ε)·density, which needs O(log n) vectorised passes instead of a priority queue per node.
Blocks are found one after another, removing the rows of each found block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp


@dataclass
class Block:
    accounts: list[str]
    n_entities: int
    density: float  # weight / (rows + cols)


def _peel(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray, float]:
    best = (rows.copy(), cols.copy(), 0.0)
    mc = m.tocsc()
    while rows.any() and cols.any():
        rsum = np.asarray(m @ cols.astype(float)).ravel() * rows
        csum = np.asarray(rows.astype(float) @ mc).ravel() * cols
        mass = rsum.sum()
        size = rows.sum() + cols.sum()
        dens = mass / size
        if dens > best[2]:
            best = (rows.copy(), cols.copy(), dens)
        # every row and column degree sums to 2·mass, so the average degree is 2·density and at least
        # one node sits at or below 2(1+ε)·density: each pass removes something (O(log n / ε) passes)
        thr = 2 * (1 + eps) * dens
        new_rows = rows & (rsum > thr)
        new_cols = cols & (csum > thr)
        rows, cols = new_rows, new_cols
    return best


def dense_numbering(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for a string column, by an Arrow sort: the distinct values in
    ascending order (an object array) and each row's index among them.

    ``np.unique`` needs the strings as a NumPy array first (Python objects, or fixed-width UCS-4 for the
    entity keys, built with ``np.char.add``) and sorts every row: at scale 0.3 the step took 3.4 CPU-s, 0.4
    with this numbering (docs/benchmarks.md), the rest being the peeling itself. Arrow sorts only the distinct
    values (dictionary encoding finds them in one hash pass), in UTF-8 byte order, which is code-point order,
    the order ``np.unique`` gives: the incidence matrix's rows and columns, and so the blocks, are as before."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    enc = pc.dictionary_encode(arr, null_encoding="encode")  # distinct values in first-seen order, one hash pass
    order = pc.array_sort_indices(enc.dictionary).to_numpy()  # only the distinct values are sorted
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    inverse = rank[enc.indices.to_numpy(zero_copy_only=False)]
    return enc.dictionary.take(pa.array(order)).to_numpy(zero_copy_only=False), inverse


def dense_blocks(inc: pa.Table, k: int, eps: float = 0.1, min_rows: int = 3) -> list[Block]:
    """Up to ``k`` dense blocks from an incidence table (account_id, kind, entity, w)."""
    if inc.num_rows == 0 or k <= 0:
        return []
    a_names, ai = dense_numbering(inc["account_id"])
    _, ei = dense_numbering(pc.binary_join_element_wise(pc.cast(inc["kind"], pa.string()),
                                                        pc.cast(inc["entity"], pa.string()), "\x1f"))
    w = np.maximum(inc["w"].to_numpy(zero_copy_only=False).astype(float), 0)
    m = sp.csr_matrix((w, (ai, ei)), shape=(len(a_names), ei.max() + 1))
    alive = np.ones(len(a_names), dtype=bool)
    blocks: list[Block] = []
    for _ in range(k):
        cols = np.asarray(m[alive].sum(axis=0)).ravel() > 0
        if alive.sum() < min_rows or not cols.any():
            break
        rows, bcols, dens = _peel(m, alive.copy(), cols, eps)
        if rows.sum() < min_rows or dens <= 0:
            break
        blocks.append(Block([str(x) for x in a_names[rows]], int(bcols.sum()), float(dens)))
        alive &= ~rows
    return blocks
