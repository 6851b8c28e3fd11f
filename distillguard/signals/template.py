"""Masked token streams and the prompt-template fingerprint.

A distillation campaign sends the same wrapper ("You are an expert... {problem}... show your
reasoning in <think> tags") with a different payload each time, from thousands of accounts. The
template fingerprint keeps the wrapper and masks what varies: numbers, quoted spans, code blocks,
URLs, capitalised names, a matched task-set item, and (when a prompt has several lines) the
longest line, which is usually the payload. What is left, the head and tail of the masked token
stream, is shingled into word bigrams and summarised by two MinHash values: two prompts get the
same ``template_key`` when both minima agree, which happens with probability about J^2 for
skeleton Jaccard similarity J (1 for slot variants of one template, ~0.7 for a typo in the
wrapper, under 0.1 for unrelated templates). That is an LSH band of two rows; every hash is a
fixed function of the bytes, so keys from different batches, processes or machines agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.signals import hashing as H

#: Masking rules (RE2 syntax, applied in order before lower-casing). Placeholder words survive
#: tokenisation and hash like ordinary words, so a slot is one token.
MASKS: tuple[tuple[str, str], ...] = (
    (r"```[\s\S]*?```", " qqcode "),
    (r"`[^`\n]{1,200}`", " qqcode "),
    (r"https?://\S+", " qqurl "),
    (r"[\w.+-]+@[\w-]+\.[\w.]+", " qqmail "),
    (r"\"[^\"\n]{1,300}\"", " qqquote "),
    (r"“[^”\n]{1,300}”", " qqquote "),
    (r"«[^»\n]{1,300}»", " qqquote "),
    (r"([a-z,;:] )[A-Z][a-z]{2,}", "\\1qqname"),
    (r"[0-9][0-9.,:/]*", " qqnum "),
    (r"\n+", " qqnl "),
)

SKELETON_HEAD = 20
SKELETON_TAIL = 20
#: Fewer unmasked skeleton tokens than this and the prompt has no template worth keying.
MIN_TEMPLATE_TOKENS = 4
#: A line this long (in tokens) in a multi-line prompt is taken to be the payload.
MIN_PAYLOAD_TOKENS = 8
PAYLOAD_DOMINANCE = 1.5


def _word_hash(word: str) -> np.uint64:
    bv = H.byte_view(pa.array([word]))
    return H.word_tokens(bv).hash[0]


SLOT_WORDS = ("qqcode", "qqurl", "qqmail", "qqquote", "qqname", "qqnum", "qqtask", "qqpayload")
SLOTS = {w: _word_hash(w) for w in SLOT_WORDS}
NEWLINE = _word_hash("qqnl")
_SLOT_SET = np.array(sorted(SLOTS.values()), dtype=np.uint64)


def mask_texts(texts) -> pa.Array:
    """Apply MASKS to a string array (vectorised in Arrow's C++ regex engine)."""
    t = H.clip(H.as_string_array(texts))
    for pattern, repl in MASKS:
        t = pc.replace_substring_regex(t, pattern, repl)
    return pc.utf8_lower(t)


@dataclass
class MaskedTokens:
    """Word tokens of the masked prompts (document order), shared by task matching and templates."""

    n_docs: int
    tokens: H.Tokens


def masked_tokens(texts) -> MaskedTokens:
    arr = mask_texts(texts)
    bv = H.byte_view(arr)
    return MaskedTokens(len(arr), H.word_tokens(bv))


def _doc_starts(doc: np.ndarray, n_docs: int) -> np.ndarray:
    return np.searchsorted(doc, np.arange(n_docs + 1))


def template_keys(mt: MaskedTokens, task_mask: np.ndarray | None = None) -> pa.Array:
    """One key per document (null when too short); ``task_mask`` marks tokens of a matched task item."""
    tok = mt.tokens
    n = mt.n_docs
    h = tok.hash.copy()
    doc = tok.doc
    if len(h) == 0:
        return pa.nulls(n, pa.string())
    if task_mask is not None and task_mask.any():
        h[task_mask] = SLOTS["qqtask"]
        has_task = np.zeros(n, dtype=bool)
        has_task[doc[task_mask]] = True
    else:
        has_task = np.zeros(n, dtype=bool)
    # The longest line of a multi-line prompt is the payload when it clearly dominates (at least
    # PAYLOAD_DOMINANCE times the words of all other lines, which keep enough words to be a
    # template themselves) and no task item was found. A long wrapper around a short question
    # is left whole: masking the wrapper would key the prompt by its question.
    is_nl = h == NEWLINE
    is_word = ~np.isin(h, _SLOT_SET) & ~is_nl
    first = np.ones(len(h), dtype=bool)
    first[1:] = doc[1:] != doc[:-1]
    seg = np.cumsum(is_nl | first) - 1                       # global segment id
    seg_len = np.bincount(seg, weights=is_word).astype(np.int64)
    seg_doc = np.zeros(len(seg_len), dtype=np.int64)
    seg_doc[seg] = doc
    n_seg = np.bincount(seg_doc, weights=seg_len > 0, minlength=n)
    doc_words = np.bincount(seg_doc, weights=seg_len, minlength=n).astype(np.int64)
    doc_max = np.zeros(n, dtype=np.int64)
    np.maximum.at(doc_max, seg_doc, seg_len)
    rest = doc_words[seg_doc] - seg_len
    payload_seg = ((seg_len == doc_max[seg_doc]) & (n_seg[seg_doc] >= 2) & (seg_len >= MIN_PAYLOAD_TOKENS)
                   & (seg_len >= PAYLOAD_DOMINANCE * rest) & (rest >= MIN_TEMPLATE_TOKENS) & ~has_task[seg_doc])
    pay = payload_seg[seg] & ~is_nl
    h[pay] = SLOTS["qqpayload"]
    # Collapse runs of one slot (three numbers in a row are one slot) and drop line breaks at the edges.
    slot = np.isin(h, _SLOT_SET)
    dup = np.zeros(len(h), dtype=bool)
    dup[1:] = slot[1:] & (h[1:] == h[:-1]) & ~first[1:]
    keep = ~dup
    h, doc, slot = h[keep], doc[keep], slot[keep]
    starts = _doc_starts(doc, n)
    rank = np.arange(len(h)) - starts[doc]
    count = (starts[1:] - starts[:-1])[doc]
    sk = (rank < SKELETON_HEAD) | (rank >= count - SKELETON_TAIL)
    h, doc, slot = h[sk], doc[sk], slot[sk]
    words = np.bincount(doc, weights=~slot & (h != NEWLINE), minlength=n)
    # Word bigrams of the skeleton, two MinHash values per document.
    same = doc[1:] == doc[:-1]
    a, b, d = h[:-1][same], h[1:][same], doc[1:][same]
    if len(d) == 0:
        return pa.nulls(n, pa.string())
    m1 = H.pair_hash(a, b, 0x5151)
    m2 = H.pair_hash(a, b, 0xA7A7)
    starts = _doc_starts(d, n)
    nonempty = starts[:-1] < starts[1:]
    idx = starts[:-1][nonempty]
    k1 = np.minimum.reduceat(m1, idx)
    k2 = np.minimum.reduceat(m2, idx)
    ok = np.zeros(n, dtype=bool)
    ok[nonempty] = words[nonempty] >= MIN_TEMPLATE_TOKENS
    keys: list[str | None] = [None] * n
    docs_ne = np.flatnonzero(nonempty)
    for i, x, y in zip(docs_ne.tolist(), k1.tolist(), k2.tolist(), strict=True):
        if ok[i]:
            keys[i] = f"t{x >> 16:012x}{y >> 16:012x}"
    return pa.array(keys, type=pa.string())


def skeleton_text(text: str) -> str:
    """The masked form of one prompt, for analysts asking why two prompts share a template."""
    return mask_texts([text])[0].as_py()
