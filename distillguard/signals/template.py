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

import functools
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.signals import hashing as H

#: Span masks (RE2 syntax): (pattern, placeholder, trigger substrings). A regex runs only on the
#: rows that contain one of its triggers, so the common prompt without code, links or quotes pays a
#: substring scan, not a regex. Numbers, capitalised names and line breaks are found on the token
#: stream instead (see masked_tokens), which is cheaper than three more regex passes.
SPAN_MASKS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (r"```[\s\S]*?```|`[^`\n]{1,200}`", " qqcode ", ("`",)),
    (r"https?://\S+|[\w.+-]+@[\w-]+\.[\w.]+", " qqurl ", ("://", "@")),
    (r"\"[^\"\n]{1,300}\"|“[^”\n]{1,300}”|«[^»\n]{1,300}»", " qqquote ", ("\"", "“", "«")),
)

#: Span masks run by Python's ``re`` on the rows that contain a trigger instead of by Arrow's RE2. RE2
#: compiles a counted repetition such as ``{1,300}`` into that many automaton states and spent about
#: 65 ms per 30k-prompt batch on the quote mask alone; Python's backtracking engine matches these
#: patterns with the same leftmost-first semantics (nothing but literal characters and negated literal
#: classes, counted in code points by both) three times faster. Patterns with ``\s``, ``\w`` or ``\S``
#: stay on RE2: their classes are ASCII there and Unicode in Python, so the results could differ.
PYTHON_RE_MASKS = frozenset({SPAN_MASKS[2][0]})

SKELETON_HEAD = 20
SKELETON_TAIL = 20
#: Fewer unmasked skeleton tokens than this and the prompt has no template worth keying.
MIN_TEMPLATE_TOKENS = 4
#: ... unless a payload or task item was masked: then this many wrapper words suffice.
MIN_WRAPPER_WORDS = 2
#: A comma this close to a prompt's start separates a greeting from the rest.
GREETING_WORDS = 3
#: A line this long (in tokens) in a multi-line prompt is taken to be the payload.
MIN_PAYLOAD_TOKENS = 8
#: How much one instruction word counts against a line being the payload.
INSTRUCTION_WEIGHT = 4
#: Words that mark a line as instructions to the model rather than the task content.
INSTRUCTION_WORDS = """
you your yourself please answer answers respond response reply output print write explain show think thinking
thought thoughts reasoning reason step steps solve solution following below above final format tags tag json
must should do not don't never always first then before after verbatim complete full detailed carefully
brief briefly concise use using include provide give return list put end begin start wrap inside between
rate score grade rank judge evaluate compare rewrite translate summarize summarise continue chain task
problem question instructions instruction assistant model user system role act pretend imagine
""".split()


def _word_hash(word: str) -> np.uint64:
    bv = H.byte_view(pa.array([word]))
    return H.word_tokens(bv).hash[0]


SLOT_WORDS = ("qqcode", "qqurl", "qqquote", "qqname", "qqnum", "qqtask", "qqpayload")
SLOTS = {w: _word_hash(w) for w in SLOT_WORDS}
NEWLINE = _word_hash("qqnl")
_SLOT_SET = np.array(sorted(SLOTS.values()), dtype=np.uint64)
_INSTRUCTION_SET = np.unique(H.word_tokens(H.byte_view(pa.array([" ".join(INSTRUCTION_WORDS)]))).hash)
_PREFIX_BITS = np.uint64(48)  # hashes are mixed: their top 16 bits are as good as random


def _prefix_table(keys: np.ndarray) -> np.ndarray:
    table = np.zeros(1 << 16, dtype=bool)
    table[keys >> _PREFIX_BITS] = True
    return table


_INSTRUCTION_PREFIX = _prefix_table(_INSTRUCTION_SET)


def _is_instruction(h: np.ndarray) -> np.ndarray:
    """``np.isin(h, _INSTRUCTION_SET)`` without sorting the tokens: a 64k-entry table of the set's hash
    prefixes rejects almost every other word, and only the rest are looked up exactly."""
    out = np.zeros(len(h), dtype=bool)
    cand = np.flatnonzero(_INSTRUCTION_PREFIX[h >> _PREFIX_BITS])
    if len(cand):
        hc = h[cand]
        pos = np.minimum(np.searchsorted(_INSTRUCTION_SET, hc), len(_INSTRUCTION_SET) - 1)
        out[cand] = _INSTRUCTION_SET[pos] == hc
    return out


def _clip(texts: pa.Array) -> pa.Array:
    return H.clip(texts)


def _rows_containing(arr: pa.Array, triggers: tuple[str, ...]) -> np.ndarray:
    """Rows whose UTF-8 bytes contain any of ``triggers``: one vectorised pass over the batch's bytes.

    A trigger that straddles two rows marks the first one too; that only costs a regex run that
    finds nothing (the triggers gate a regex, they do not decide a result)."""
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    base, total = int(offsets[0]), int(offsets[-1] - offsets[0])
    hit = np.zeros(n, dtype=bool)
    if total == 0 or bufs[2] is None:
        return hit
    data = np.frombuffer(bufs[2], dtype=np.uint8, count=total, offset=base)
    for trig in triggers:
        tb = np.frombuffer(trig.encode(), dtype=np.uint8)
        m = len(data) - len(tb) + 1
        if m <= 0:
            continue
        at = data[:m] == tb[0]
        for k in range(1, len(tb)):
            at &= data[k:k + m] == tb[k]
        pos = np.flatnonzero(at) + base
        hit[np.searchsorted(offsets, pos, side="right") - 1] = True
    return hit


def mask_spans(texts) -> pa.Array:
    """Clip, then replace code, links and quoted spans by placeholders (Arrow's C++ regex engine)."""
    t = _clip(H.as_string_array(texts))
    for pattern, repl, triggers in SPAN_MASKS:
        hit = _rows_containing(t, triggers)
        if not hit.any():
            continue
        mask = pa.array(hit)
        sub = pc.filter(t, mask)
        if pattern in PYTHON_RE_MASKS:
            rx = _compiled(pattern)
            done = pa.array([rx.sub(repl, x) for x in sub.to_pylist()], type=pa.string())
        else:
            done = pc.replace_substring_regex(sub, pattern, repl)
        t = pc.replace_with_mask(t, mask, done)
    return t


@functools.cache
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


#: Byte map for template hashing: ASCII lower-cased, digits folded, whitespace to spaces.
_LOWER = H.FOLD.copy()
_LOWER[ord("A"):ord("Z") + 1] = np.arange(ord("a"), ord("z") + 1, dtype=np.uint8)
#: Byte classes for one OR-reduce per token: not a digit, a part break (newline or colon), a comma.
_NONDIGIT, _BREAK, _COMMA = np.uint8(1), np.uint8(2), np.uint8(4)
_BYTE_FLAGS = np.full(256, _NONDIGIT, dtype=np.uint8)
_BYTE_FLAGS[ord("0"):ord("9") + 1] = 0
_BYTE_FLAGS[ord("\n")] |= _BREAK
_BYTE_FLAGS[ord(":")] |= _BREAK
_BYTE_FLAGS[ord(",")] |= _COMMA
_SENT_PREV = np.zeros(256, dtype=bool)  # bytes after which a capitalised word is a name, not a sentence start
for _c in b"abcdefghijklmnopqrstuvwxyz":
    _SENT_PREV[_c] = True


@dataclass
class MaskedTokens:
    """Word tokens of the masked prompts (document order), shared by task matching and templates.

    ``tokens.hash`` already has numbers and names replaced by their slot; ``nl_before`` marks
    tokens that start a new line (the template's line structure).
    """

    n_docs: int
    tokens: H.Tokens
    nl_before: np.ndarray


def masked_tokens(texts) -> MaskedTokens:
    arr = mask_spans(texts)
    bv = H.byte_view(arr, table=_LOWER)
    tok = H.word_tokens(bv)
    raw = bv.raw
    st, en = tok.start, tok.end
    h = tok.hash.copy()
    if len(st):
        # One OR-reduce over interleaved (token start, token end) boundaries gives, per token, the
        # byte classes inside it (even slots) and inside the gap before the next token (odd slots).
        bounds = np.empty(2 * len(st), dtype=np.int64)
        bounds[0::2] = st
        bounds[1::2] = en
        flags = np.concatenate([_BYTE_FLAGS[raw], np.zeros(1, dtype=np.uint8)])
        red = np.bitwise_or.reduceat(flags, bounds)
        inside, gap = red[0::2], red[1::2]
        h[(inside & _NONDIGIT) == 0] = SLOTS["qqnum"]
        # "... met Alice": a capitalised word right after a lower-case letter and a space (after a
        # comma it is as often a sentence start in chat: "hey, Please ...").
        ok = (st >= 2) & (en - st >= 3)
        s2 = np.where(ok, st, 2)
        rp = np.concatenate([raw, np.zeros(4, dtype=np.uint8)])  # reads past the end see NULs
        name = (ok & (rp[s2] >= 65) & (rp[s2] <= 90) & (rp[s2 - 1] == 32) & _SENT_PREV[rp[s2 - 2]]
                & (rp[s2 + 1] >= 97) & (rp[s2 + 1] <= 122) & (rp[s2 + 2] >= 97) & (rp[s2 + 2] <= 122)
                & (s2 - 2 >= bv.starts[tok.doc]))
        h[name] = SLOTS["qqname"]
        # Part boundaries: a line break, a colon ("Solve in Python: ..."), or a comma among the
        # first words ("hey, ...", "Bonjour, ...") in the gap before a token.
        gaps = (gap & _BREAK) > 0
        commas = (gap & _COMMA) > 0
        first = np.ones(len(st), dtype=bool)
        first[1:] = tok.doc[1:] != tok.doc[:-1]
        starts = np.searchsorted(tok.doc, np.arange(len(arr) + 1))
        rank = np.arange(len(st)) - starts[tok.doc]
        nl_before = np.zeros(len(st), dtype=bool)
        nl_before[1:] = gaps[:-1] | (commas[:-1] & (rank[1:] <= GREETING_WORDS))
        # a document's leading breaks are not structure; between documents the gap is empty
        nl_before &= ~first
    else:
        nl_before = np.zeros(0, dtype=bool)
    return MaskedTokens(len(arr), H.Tokens(tok.doc, st, en, h), nl_before)


def _doc_starts(doc: np.ndarray, n_docs: int) -> np.ndarray:
    return np.searchsorted(doc, np.arange(n_docs + 1))


def template_keys(mt: MaskedTokens, task_mask: np.ndarray | None = None, _skeleton: list | None = None) -> pa.Array:
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
    # In a multi-line prompt the payload is the line that reads least like an instruction: most
    # words, fewest instruction words ("you", "answer", "step", "think", ...). It is masked when
    # it has MIN_PAYLOAD_TOKENS words, the other lines keep enough words to be a template, and
    # no task item was found (that mask is exact and wins).
    nl = mt.nl_before
    is_word = ~np.isin(h, _SLOT_SET)
    is_instr = _is_instruction(h)
    first = np.ones(len(h), dtype=bool)
    first[1:] = doc[1:] != doc[:-1]
    seg = np.cumsum(nl | first) - 1                          # global line id
    seg_len = np.bincount(seg, weights=is_word).astype(np.int64)
    seg_instr = np.bincount(seg, weights=is_instr, minlength=len(seg_len)).astype(np.int64)
    seg_doc = np.zeros(len(seg_len), dtype=np.int64)
    seg_doc[seg] = doc
    n_seg = np.bincount(seg_doc, weights=seg_len > 0, minlength=n)
    doc_words = np.bincount(seg_doc, weights=seg_len, minlength=n).astype(np.int64)
    # Only parts long enough to be a payload compete (a short closing line must not win over a
    # question that happens to contain "list" or "using").
    merit = np.where(seg_len >= MIN_PAYLOAD_TOKENS, seg_len - INSTRUCTION_WEIGHT * seg_instr, -1)
    doc_best = np.full(n, np.iinfo(np.int64).min)
    # segments run in document order, so each document's best is one reduceat over its run
    seg_starts = _doc_starts(seg_doc, n)
    has_seg = seg_starts[:-1] < seg_starts[1:]
    if has_seg.any():
        doc_best[has_seg] = np.maximum.reduceat(merit, seg_starts[:-1][has_seg])
    # ties: the first such line of the document
    cand = merit == doc_best[seg_doc]
    first_cand = np.zeros(len(seg_len), dtype=bool)
    cidx = np.flatnonzero(cand)
    if len(cidx):
        fc = np.ones(len(cidx), dtype=bool)
        fc[1:] = seg_doc[cidx[1:]] != seg_doc[cidx[:-1]]
        first_cand[cidx[fc]] = True
    rest = doc_words[seg_doc] - seg_len
    payload_seg = (first_cand & (n_seg[seg_doc] >= 2) & (seg_len >= MIN_PAYLOAD_TOKENS) & (merit > 0)
                   & (rest >= 1) & ~has_task[seg_doc])
    pay = payload_seg[seg]
    h[pay] = SLOTS["qqpayload"]
    doc_of_payload = doc[pay]
    slot = np.isin(h, _SLOT_SET)  # seven values: isin compares directly, no sort
    # Collapse runs of one slot (three numbers in a row, a masked payload, are one slot).
    dup = np.zeros(len(h), dtype=bool)
    dup[1:] = slot[1:] & (h[1:] == h[:-1]) & ~first[1:]
    # Part structure is part of the template: a token that starts a part hashes differently.
    h = np.where(nl, H.pair_hash(h, np.full(len(h), NEWLINE, dtype=np.uint64), 0x1E), h)
    keep = ~dup
    h, doc, slot = h[keep], doc[keep], slot[keep]
    starts = _doc_starts(doc, n)
    rank = np.arange(len(h)) - starts[doc]
    count = (starts[1:] - starts[:-1])[doc]
    sk = (rank < SKELETON_HEAD) | (rank >= count - SKELETON_TAIL)
    h, doc, slot = h[sk], doc[sk], slot[sk]
    if _skeleton is not None:
        _skeleton.append((h, doc))
    words = np.bincount(doc, weights=~slot, minlength=n)
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
    # A prompt whose payload or task item was masked needs fewer wrapper words to be a template.
    has_slot = has_task.copy()
    has_slot[np.unique(doc_of_payload)] = True
    need = np.where(has_slot, MIN_WRAPPER_WORDS, MIN_TEMPLATE_TOKENS)
    ok = np.zeros(n, dtype=bool)
    ok[nonempty] = words[nonempty] >= need[nonempty]
    docs_ne = np.flatnonzero(nonempty)
    return _key_strings(n, docs_ne, k1, k2, ok[docs_ne])


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE_SHIFTS = np.arange(60, 12, -4, dtype=np.uint64)  # bits 63..16, high nibble first: 12 hex digits


def _key_strings(n: int, docs: np.ndarray, k1: np.ndarray, k2: np.ndarray, ok: np.ndarray) -> pa.Array:
    """``"t" + 12 hex digits of k1 >> 16 + 12 of k2 >> 16`` for ``docs[ok]``, null elsewhere: formatted as
    one byte matrix (a batch has tens of thousands of keys; a Python f-string each is a visible cost)."""
    docs, k1, k2 = docs[ok], k1[ok], k2[ok]
    m = len(docs)
    chars = np.empty((m, 25), dtype=np.uint8)
    chars[:, 0] = ord("t")
    chars[:, 1:13] = _HEX[((k1[:, None] >> _NIBBLE_SHIFTS) & np.uint64(15)).astype(np.intp)]
    chars[:, 13:] = _HEX[((k2[:, None] >> _NIBBLE_SHIFTS) & np.uint64(15)).astype(np.intp)]
    present = np.zeros(n, dtype=bool)
    present[docs] = True
    lengths = np.where(present, 25, 0).astype(np.int32)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    validity = pa.array(present).buffers()[1]
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes())],
                                 null_count=n - m)


def skeleton_text(text: str) -> str:
    """The skeleton the template key is computed from (slots as ``qq...`` words, ``⏎`` at the start
    of a part), for analysts asking why two prompts share a template."""
    from distillguard.signals import tasks

    spans = mask_spans([text])[0].as_py().encode()
    mt = masked_tokens([text])
    names: dict[int, str] = {}
    for i in range(len(mt.tokens)):
        names.setdefault(int(mt.tokens.hash[i]),
                         spans[mt.tokens.start[i]:mt.tokens.end[i]].decode(errors="replace").lower())
    names.update({int(v): k for k, v in SLOTS.items()})
    marked = {int(H.pair_hash(np.array([k], dtype=np.uint64), np.array([NEWLINE], dtype=np.uint64), 0x1E)[0]): "⏎ " + w
              for k, w in names.items()}
    names.update(marked)
    sk: list = []
    template_keys(mt, tasks.match(mt).token_mask, _skeleton=sk)
    return " ".join(names.get(int(x), "?") for x in sk[0][0]) if sk else ""
