"""Signals throughput of this checkout against another copy of distillguard, interleaved in one process.

    PYTHONPATH= python bench/signals_ab.py --base DIR --world WORLD_DIR [--reps 1]

On a shared machine two runs one after the other see different loads, and the CPU-seconds of one pass
over a store moved by ±20% between runs at load 40. Here both versions are imported into one process
(``--base``: a directory holding another ``distillguard`` package, e.g. ``git archive main distillguard |
tar -x -C DIR``; this checkout is the one the script lives in) and every batch of the store is scored
by both, in alternating order, each version with its own prompt memo as a signals worker has; the
CPU-seconds of each side are summed separately and the rows compared. Both lexical models must be in
the cache (``DISTILLGUARD_CACHE``) or are trained on first use.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def _load(root: str):
    """(score module, detectors, memo class) of the distillguard package under ``root``."""
    for k in [k for k in sys.modules if k == "distillguard" or k.startswith("distillguard.")]:
        del sys.modules[k]
    sys.path.insert(0, root)
    try:
        import distillguard.signals.score as score
        from distillguard.signals import lexical, tasks
        from distillguard.signals.memo import PromptMemo

        dets = score._resolve(None)
        lexical.get_model()
        tasks.get_index()
    finally:
        sys.path.remove(root)
    return score, dets, PromptMemo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="directory holding the distillguard package to compare against")
    ap.add_argument("--world", required=True)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32768)
    a = ap.parse_args()
    base = _load(a.base)
    new = _load(str(HERE))
    assert base[0].__file__ != new[0].__file__
    from distillguard.store import Store

    new[0].keep_freed_memory()  # as the stage's worker processes do
    bs = list(Store(a.world).exchange_batches(columns=new[0].input_columns(new[1]), batch_size=a.batch, threads=1))
    n = sum(b.num_rows for b in bs)
    cpu = [0.0, 0.0]
    same = True
    load0 = os.getloadavg()[0]
    for r in range(a.reps):
        memos = [base[2](), new[2]()]
        for i, b in enumerate(bs):
            out = [None, None]
            for side in ((0, 1) if (i + r) % 2 == 0 else (1, 0)):
                score, dets, _ = (base, new)[side]
                c = time.process_time()
                out[side] = score.score_batch(b, dets, memos[side])
                cpu[side] += time.process_time() - c
            same &= out[0].equals(out[1])
    m = memos[1]
    parts = f", parts {m.parts.hits:,} of {m.parts.lookups:,}" if hasattr(m, "parts") else ""
    print(f"{a.reps} x {n:,} exchanges in {len(bs)} batches, interleaved: base {cpu[0]:.2f} CPU s = "
          f"{a.reps * n / cpu[0]:,.0f} ex/CPU-s; this checkout {cpu[1]:.2f} CPU s = {a.reps * n / cpu[1]:,.0f} ex/CPU-s "
          f"(CPU ratio {cpu[1] / cpu[0]:.3f}); rows identical: {same}")
    print(f"memo hits {m.hits:,} of {m.lookups:,} distinct-per-batch prompts{parts}; "
          f"load {load0:.1f} -> {os.getloadavg()[0]:.1f}; peak RSS (both versions and all batches) "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
