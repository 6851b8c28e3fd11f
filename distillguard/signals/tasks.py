"""Task-set fingerprint: is the core of this prompt a known benchmark or task-set item?

Campaigns harvest reasoning on public task sets (GSM8K, HumanEval, code-instruction sets)
because they come with checkable answers. The item arrives wrapped ("Solve step by step:
{item}. Put the answer in \\boxed{}"), sometimes with numbers or names changed. So the match is
*containment*, not similarity of whole prompts: the share of the item's distinctive word
4-gram shingles that occur in the prompt. A MinHash/Jaccard comparison of whole prompts would
drop as the wrapper grows; containment does not. Shingles are taken over the masked token stream
(numbers, names and quotes already replaced by slot words), which makes a renumbered item still
match, and shingles shared by two or more items are dropped ("how much money does she" says
nothing about which item this is). Lookup is one ``searchsorted`` of every prompt shingle in the
batch against the sorted index: exact, vectorised and deterministic.

Extra task sets: point ``DISTILLGUARD_TASKSETS`` at JSONL files (``id`` + ``text`` per line,
``os.pathsep``-separated) to index a provider's own evaluation or fine-tuning sets too.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from distillguard.errors import ConfigError
from distillguard.signals import hashing as H
from distillguard.signals.template import MaskedTokens, masked_tokens

TASK_DIR = Path(__file__).parent / "data" / "tasks"
SHINGLE = 4
#: Minimum containment for a prompt to be keyed to an item, and minimum shingle hits.
MIN_CONTAINMENT = 0.5
MIN_HITS = 3
MAX_ITEMS_PER_SHINGLE = 3
BITMAP_BITS = 24
#: Keys are bucketed by their top BUCKET_BITS bits (a few keys per bucket) so a lookup scans one bucket.
BUCKET_BITS = 20


@dataclass
class TaskIndex:
    ids: list[str]               # item id per item number
    n_shingles: np.ndarray       # distinctive shingles per item
    keys: np.ndarray             # sorted uint64 shingle hashes
    items: np.ndarray            # int32 item of each key
    bitmap: np.ndarray           # uint8, 2^BITMAP_BITS bits (little-endian): is any key's hash prefix this value
    bucket_start: np.ndarray     # int64, 2^BUCKET_BITS + 1: first key of each hash prefix

    def __len__(self) -> int:
        return len(self.ids)


def _shingles(mt: MaskedTokens) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return H.word_ngrams(mt.tokens, SHINGLE, salt=0x7A5C)


def task_files() -> list[Path]:
    files = sorted(TASK_DIR.glob("*.jsonl"))
    extra = os.environ.get("DISTILLGUARD_TASKSETS", "")
    for p in filter(None, extra.split(os.pathsep)):
        path = Path(p)
        if not path.is_file():
            raise ConfigError(f"DISTILLGUARD_TASKSETS: no such file {p!r}")
        files.append(path)
    return files


def build_index(files: list[Path] | None = None) -> TaskIndex:
    ids: list[str] = []
    texts: list[str] = []
    for path in files or task_files():
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    ids.append(str(row["id"]))
                    texts.append(str(row["text"]))
                except (ValueError, KeyError, TypeError) as e:
                    raise ConfigError(f"task set line is not a JSON object with id and text ({e})",
                                      source=str(path), line=n) from None
    mt = masked_tokens(pa.array(texts, type=pa.string()))
    doc, _, h = _shingles(mt)
    # One entry per (shingle, item). Shingles in more than MAX_ITEMS_PER_SHINGLE items are not
    # distinctive ("how much money does"); a few near-duplicate items (GSM8K has some once names
    # and numbers are masked) may share a shingle and all stay findable.
    pair = np.unique(np.stack([h, doc.astype(np.uint64)], axis=1), axis=0)
    uh, inv, counts = np.unique(pair[:, 0], return_inverse=True, return_counts=True)
    keep = counts[inv] <= MAX_ITEMS_PER_SHINGLE
    keys = pair[keep, 0]
    items = pair[keep, 1].astype(np.int32)
    n_sh = np.bincount(items, minlength=len(ids))
    present = np.zeros(1 << BITMAP_BITS, dtype=bool)
    present[keys >> np.uint64(64 - BITMAP_BITS)] = True
    # Packed: 2 MB stays in cache where 16 MB of bools would miss on every look-up.
    bitmap = np.packbits(present, bitorder="little")
    bucket_start = np.searchsorted(keys >> np.uint64(64 - BUCKET_BITS),
                                   np.arange((1 << BUCKET_BITS) + 1, dtype=np.uint64)).astype(np.int64)
    return TaskIndex(ids, n_sh, keys, items, bitmap, bucket_start)


def _lower_bound(index: TaskIndex, h: np.ndarray) -> np.ndarray:
    """``np.searchsorted(index.keys, h)``, scanning only each hash's bucket: a binary search over all keys
    is a chain of cache misses per shingle; a bucket holds a handful of adjacent keys."""
    p = (h >> np.uint64(64 - BUCKET_BITS)).astype(np.int64)
    pos = index.bucket_start[p]
    hi = index.bucket_start[p + 1]
    active = np.flatnonzero(pos < hi)
    while len(active):
        active = active[index.keys[pos[active]] < h[active]]
        pos[active] += 1
        active = active[pos[active] < hi[active]]
    return pos


_lock = threading.Lock()
_index: TaskIndex | None = None


def get_index() -> TaskIndex:
    global _index
    with _lock:
        if _index is None:
            _index = build_index()
        return _index


@dataclass
class TaskMatch:
    score: np.ndarray            # float32 containment of the best item, per document
    key: pa.Array                # string item id or null
    token_mask: np.ndarray       # bool per masked token: covered by a shingle of the matched item


def match(mt: MaskedTokens, index: TaskIndex | None = None) -> TaskMatch:
    index = index or get_index()
    n = mt.n_docs
    score = np.zeros(n, dtype=np.float32)
    token_mask = np.zeros(len(mt.tokens), dtype=bool)
    doc, first_tok, h = _shingles(mt)
    if len(h) == 0 or len(index.keys) == 0:
        return TaskMatch(score, pa.nulls(n, pa.string()), token_mask)
    # A bitmap of the index's hash prefixes rejects almost every shingle that is in no task item
    # before the binary search (which is the cost: cache misses over the sorted keys).
    prefix = h >> np.uint64(64 - BITMAP_BITS)
    cand = np.flatnonzero((index.bitmap[prefix >> np.uint64(3)] >> (prefix & np.uint64(7)).astype(np.uint8)) & 1)
    hc = h[cand]
    lo = _lower_bound(index, hc)
    nk = len(index.keys)
    # Each shingle has at most MAX_ITEMS_PER_SHINGLE entries, all adjacent from ``lo``.
    ents, srcs = [], []
    for k in range(MAX_ITEMS_PER_SHINGLE):
        pos = np.minimum(lo + k, nk - 1)
        ok = (index.keys[pos] == hc) & (lo + k < nk)
        ents.append(pos[ok])
        srcs.append(cand[ok])
    entry = np.concatenate(ents)
    src = np.concatenate(srcs)
    hdoc = doc[src]
    htok = first_tok[src]
    hitem = index.items[entry].astype(np.int64)
    best_item = np.full(n, -1, dtype=np.int64)
    if len(hdoc):
        # Hits per (document, item). A shingle repeated inside one prompt counts twice; the
        # containment is capped at 1, and a repeat is rare enough not to pay for a dedupe sort.
        combo = hdoc.astype(np.int64) * len(index) + hitem
        cu, cc = np.unique(combo, return_counts=True)
        cdoc, citem = cu // len(index), cu % len(index)
        cont = cc / np.maximum(index.n_shingles[citem], 1)
        # Best item per document: sort by (doc, containment) and take the last of each doc.
        order = np.lexsort((cont, cdoc))
        cdoc, citem, cont, cc = cdoc[order], citem[order], cont[order], cc[order]
        last = np.ones(len(cdoc), dtype=bool)
        last[:-1] = cdoc[1:] != cdoc[:-1]
        bd, bi, bc, bn = cdoc[last], citem[last], np.minimum(cont[last], 1.0), cc[last]
        score[bd] = bc
        ok = (bc >= MIN_CONTAINMENT) & (bn >= MIN_HITS)
        best_item[bd[ok]] = bi[ok]
        # The span from the first to the last shingle of the matched item becomes the task slot
        # in the template (covering its non-distinctive shingles too).
        sel = best_item[hdoc] == hitem
        if sel.any():
            lo_tok = np.full(n, np.iinfo(np.int64).max)
            hi_tok = np.full(n, -1)
            np.minimum.at(lo_tok, hdoc[sel], htok[sel])
            np.maximum.at(hi_tok, hdoc[sel], htok[sel] + SHINGLE)
            tok_doc = mt.tokens.doc
            tpos = np.arange(len(tok_doc))
            token_mask = (tpos >= lo_tok[tok_doc]) & (tpos < hi_tok[tok_doc])
    keys = pa.array(index.ids, type=pa.string()).take(pa.array(best_item, mask=best_item < 0))
    return TaskMatch(score, keys, token_mask)
