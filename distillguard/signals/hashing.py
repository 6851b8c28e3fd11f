"""Vectorised text hashing over a whole Arrow string column at once.

Every signal that looks at prompt text needs n-gram hashes: the lexical models (character and
word n-grams), the task-set fingerprint (word shingles) and the template fingerprint (masked
word shingles). scikit-learn's ``HashingVectorizer`` builds Python strings for every n-gram and
manages ~2,500 prompts/s for character n-grams on one core; the scan needs twenty times that. So
the whole batch is handled as one UTF-8 byte buffer (zero-copy from Arrow) and every n-gram hash
comes from one polynomial prefix sum: ``hash(s[a:b]) = (H[b] - H[a]) * P^-a`` modulo 2^64, which
is exact because P is odd and so invertible modulo 2^64. The hashes are pure functions of the
bytes, identical across processes, machines and batch boundaries (never Python's salted
``hash()``), so keys computed on different partitions agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_P = np.uint64(0x100000001B3)  # odd, so invertible modulo 2^64
_P_INV = np.uint64(pow(0x100000001B3, -1, 1 << 64))
_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)

#: Longest prompt prefix/suffix (characters) that the text signals read. Attack instructions
#: sit at the head or tail of a prompt; reading a 200 kB pasted file in full would let one huge
#: request stall a batch without adding evidence.
HEAD_CHARS = 1500
TAIL_CHARS = 500

_pow_cache: dict[str, np.ndarray] = {}


def _pows(n: int) -> tuple[np.ndarray, np.ndarray]:
    have = _pow_cache.get("p")
    if have is None or len(have) < n:
        size = max(n, 4096)
        p = np.full(size, _P, dtype=np.uint64)
        p[0] = 1
        pw = np.cumprod(p, dtype=np.uint64)
        q = np.full(size, _P_INV, dtype=np.uint64)
        q[0] = 1
        qi = np.cumprod(q, dtype=np.uint64)
        _pow_cache["p"], _pow_cache["q"] = pw, qi
    return _pow_cache["p"], _pow_cache["q"]


def mix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser: spreads polynomial hashes over all bits."""
    h = h ^ (h >> _S33)  # the two new arrays; the rest in place
    t = np.empty_like(h)
    h *= _MIX1
    np.right_shift(h, _S33, out=t)
    h ^= t
    h *= _MIX2
    np.right_shift(h, _S33, out=t)
    h ^= t
    return h


def as_string_array(texts) -> pa.Array:
    """A plain ``string`` Arrow array (nulls become empty strings) from a list or Arrow column."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if not isinstance(texts, pa.Array):
        texts = pa.array(texts, type=pa.string())
    if pa.types.is_large_string(texts.type) or pa.types.is_string_view(texts.type):
        texts = texts.cast(pa.string())
    elif pa.types.is_dictionary(texts.type):
        texts = texts.cast(pa.string())
    if texts.null_count:
        texts = pc.fill_null(texts, "")
    return texts


def clip(texts: pa.Array, head: int = HEAD_CHARS, tail: int = TAIL_CHARS) -> pa.Array:
    """Keep the head and tail of long texts (see HEAD_CHARS). Only rows with more UTF-8 bytes than
    head + tail (bytes >= characters) can change; the others are left as they are without slicing and
    re-joining every row of a batch that holds a few long prompts."""
    if len(texts) == 0:
        return texts
    cand = pc.fill_null(pc.greater(pc.binary_length(texts), head + tail), False)
    n_cand = pc.sum(cand).as_py() or 0
    if n_cand == 0:
        return texts
    if n_cand < len(texts):
        return pc.replace_with_mask(texts, cand, _clip_all(pc.filter(texts, cand), head, tail))
    return _clip_all(texts, head, tail)


def _clip_all(texts: pa.Array, head: int, tail: int) -> pa.Array:
    lens = pc.utf8_length(texts)
    if len(texts) == 0 or pc.max(lens).as_py() <= head + tail:
        return texts
    long = pc.greater(lens, head + tail)
    joined = pc.binary_join_element_wise(pc.utf8_slice_codeunits(texts, 0, head),
                                         pc.utf8_slice_codeunits(texts, -tail), " … ")
    return pc.if_else(long, joined, texts)


def normalise(texts: pa.Array) -> pa.Array:
    """Lower-cased text (Unicode-aware); digit and whitespace folding happen on bytes (see FOLD)."""
    return pc.utf8_lower(texts)


#: Byte map applied before n-gram hashing: every digit becomes '0' and every ASCII whitespace a
#: space, so "Janet has 16 eggs" and "Janet has 23 eggs" share their n-grams. Length-preserving,
#: so it runs as one table lookup instead of a regex pass.
FOLD = np.arange(256, dtype=np.uint8)
FOLD[ord("0"):ord("9") + 1] = ord("0")
for _c in b"\t\n\r\x0b\x0c":
    FOLD[_c] = ord(" ")


#: The prefix hash weighs byte j by P^j with j its position in the whole batch (powers as a 2^16-entry
#: table times one power per 2^16-byte chunk: broadcast products, no per-byte gather).
_CHUNK_BITS = 16
_CHUNK = 1 << _CHUNK_BITS


def _chunk_pows(chunks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(P^j, P^-j for j < 2^16; P^(2^16 c), P^-(2^16 c) for c < chunks)."""
    lo, lo_inv = _pows(_CHUNK)
    hi = _pow_cache.get("hi")
    if hi is None or len(hi) < chunks:
        size = max(chunks, 64)
        step = np.uint64(pow(int(_P), _CHUNK, 1 << 64))  # P^(2^16)
        step_inv = np.uint64(pow(int(_P_INV), _CHUNK, 1 << 64))
        p = np.full(size, step, dtype=np.uint64)
        p[0] = 1
        q = np.full(size, step_inv, dtype=np.uint64)
        q[0] = 1
        _pow_cache["hi"], _pow_cache["hi_inv"] = np.cumprod(p, dtype=np.uint64), np.cumprod(q, dtype=np.uint64)
    return lo[:_CHUNK], lo_inv[:_CHUNK], _pow_cache["hi"], _pow_cache["hi_inv"]


class ByteView:
    """The UTF-8 bytes of a string array plus per-document offsets and the prefix hash.

    ``data``: uint8, all documents back to back (after the byte table); ``raw``: the same bytes
    before the table (case, digits, line breaks intact); ``starts``/``ends``: int64 per document;
    ``prefix``: uint64, ``len(data) + 1``, ``H[i] = sum_{j<i} (data[j]+1) * P^j``. ``doc`` (document
    of each byte) and ``local`` (offset inside it) are built only when asked for: the hashing paths
    work from the document offsets, as a per-byte array costs more than the hashes themselves.
    """

    def __init__(self, data: np.ndarray, raw: np.ndarray, starts: np.ndarray, ends: np.ndarray, prefix: np.ndarray):
        self.data, self.raw, self.starts, self.ends, self.prefix = data, raw, starts, ends, prefix
        self._doc: np.ndarray | None = None

    @property
    def n_docs(self) -> int:
        return len(self.starts)

    @property
    def lengths(self) -> np.ndarray:
        return self.ends - self.starts

    @property
    def doc(self) -> np.ndarray:
        """int32 document of each byte."""
        if self._doc is None:
            self._doc = np.repeat(np.arange(self.n_docs, dtype=np.int32), self.lengths)
        return self._doc

    @property
    def local(self) -> np.ndarray:
        """int64 offset of each byte inside its document."""
        return np.arange(len(self.data), dtype=np.int64) - np.repeat(self.starts, self.lengths)

    def doc_of(self, pos: np.ndarray) -> np.ndarray:
        """int32 document of each byte position in ``pos`` (any order)."""
        # The first document whose end lies beyond the position (empty documents end where they start).
        return np.searchsorted(self.ends, pos, side="right").astype(np.int32)

    def substring_hash(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Hash of data[a:b] for arrays of positions within one document each:
        ``sum_{a<=j<b} (data[j]+1) * P^(j-a)``, so equal bytes hash equally wherever they sit."""
        _, lo_inv, _, hi_inv = _chunk_pows((len(self.data) >> _CHUNK_BITS) + 1)
        # P^-a turns a prefix difference into a position-free hash.
        return (self.prefix[b] - self.prefix[a]) * (lo_inv[a & (_CHUNK - 1)] * hi_inv[a >> _CHUNK_BITS])


def byte_view(texts: pa.Array, fold: bool = True, table: np.ndarray | None = None) -> ByteView:
    texts = as_string_array(texts)
    n = len(texts)
    bufs = texts.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=texts.offset * 4).astype(np.int64)
    base = offsets[0]
    total = int(offsets[-1] - base)
    if total and bufs[2] is not None:
        data = np.frombuffer(bufs[2], dtype=np.uint8, count=total, offset=int(base))
    else:
        data = np.zeros(0, dtype=np.uint8)
    raw = data
    if table is not None:
        data = table[data]
    elif fold:
        data = FOLD[data]
    starts = offsets[:-1] - base
    ends = offsets[1:] - base
    chunks = (total >> _CHUNK_BITS) + 1
    lo, _, hi, _ = _chunk_pows(chunks)
    terms = np.empty(chunks * _CHUNK, dtype=np.uint64)
    terms[:total] = data
    terms[:total] += np.uint64(1)
    t2 = terms.reshape(chunks, _CHUNK)
    t2 *= lo
    t2 *= hi[:chunks, None]
    prefix = np.empty(total + 1, dtype=np.uint64)
    prefix[0] = 0
    np.cumsum(terms[:total], dtype=np.uint64, out=prefix[1:])
    return ByteView(data, raw, starts, ends, prefix)


def _crosses_document(bv: ByteView, m: int, n: int) -> np.ndarray:
    """Start positions below ``m`` of byte n-grams that would run past their document's end: the
    n - 1 positions before each boundary between documents (a handful per document)."""
    e = bv.ends[(bv.ends > 0) & (bv.ends < len(bv.data))]
    bad = (e[:, None] - np.arange(1, n, dtype=np.int64)[None, :]).ravel()
    return bad[(bad >= 0) & (bad < m)]


def char_ngram_hashes(bv: ByteView, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every byte n-gram inside one document, grouped by document, and the count per document.

    Counts follow from the lengths (a document of L bytes has max(L-n+1, 0) n-grams), so no
    per-n-gram document ids are needed. The hashes are polynomial (not mixed): callers mix them
    as much as their use needs.
    """
    total = len(bv.data)
    counts = np.maximum(bv.lengths - n + 1, 0)
    if total < n:
        return np.zeros(0, np.uint64), counts
    m = total - n + 1
    # Horner's rule on shifted views: the same value as the prefix-sum form, sum (b+1) * P^k,
    # without gathering powers for every byte.
    d = np.add(bv.data, np.uint64(1), dtype=np.uint64)  # widen and add in one pass
    h = d[n - 1:n - 1 + m] * _P if n > 1 else d[:m].copy()
    for k in range(n - 2, -1, -1):
        h += d[k:k + m]
        if k:
            h *= _P
    bad = _crosses_document(bv, m, n)
    if len(bad) == 0:
        return h, counts
    ok = np.ones(m, dtype=bool)
    ok[bad] = False
    return h[ok], counts


def char_ngrams(bv: ByteView, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(document, mixed hash) of every byte n-gram that lies inside one document."""
    h, counts = char_ngram_hashes(bv, n)
    doc = np.repeat(np.arange(bv.n_docs, dtype=np.int32), counts)
    return doc, mix64(h + np.uint64(n * 0x9E3779B97F4A7C15 % (1 << 64)))


# Bytes that form words: ASCII letters/digits/underscore and every non-ASCII byte (so accented
# and non-Latin words stay whole).
_WORD = np.zeros(256, dtype=bool)
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_":
    _WORD[_c] = True
_WORD[128:] = True


@dataclass
class Tokens:
    """Word tokens of every document: position, document and hash, in document order."""

    doc: np.ndarray     # int32
    start: np.ndarray   # int64 byte offsets
    end: np.ndarray
    hash: np.ndarray    # uint64

    def __len__(self) -> int:
        return len(self.doc)


def word_tokens(bv: ByteView) -> Tokens:
    isw = _WORD[bv.data]
    total = len(isw)
    if total == 0:
        z = np.zeros(0, np.int64)
        return Tokens(np.zeros(0, np.int32), z, z, np.zeros(0, np.uint64))
    # +1 where a run of word bytes starts, -1 one past where it ends (one pass over the bytes).
    edge = np.diff(isw.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    st = np.flatnonzero(edge == 1)
    en = np.flatnonzero(edge == -1)
    # A run that continues from one document into the next is two words: split it at the boundary.
    b = bv.starts[(bv.starts > 0) & (bv.starts < total)]
    b = np.unique(b[isw[b] & isw[b - 1]])
    if len(b):
        st = np.insert(st, np.searchsorted(st, b), b)
        en = np.insert(en, np.searchsorted(en, b), b)
    h = mix64(bv.substring_hash(st, en))
    # Tokens run in document order: each document's count from its end offset, no per-byte array.
    per_doc = np.diff(np.searchsorted(st, bv.ends), prepend=0)
    return Tokens(np.repeat(np.arange(bv.n_docs, dtype=np.int32), per_doc), st, en, h)


def pair_hash(a: np.ndarray, b: np.ndarray, salt: int) -> np.ndarray:
    return mix64(a * _MIX1 + b + np.uint64(salt))


def word_ngrams(tok: Tokens, n: int, salt: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(document, first-token index, hash) of word n-grams inside one document."""
    m = len(tok) - n + 1
    if m <= 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.uint64)
    idx = np.arange(m, dtype=np.int64)
    ok = tok.doc[:m] == tok.doc[n - 1:]
    h = tok.hash[:m].copy()
    for k in range(1, n):
        h = pair_hash(h, tok.hash[k:k + m], salt + k)
    return tok.doc[:m][ok], idx[ok], h[ok]


def _is_cjk_lead(data: np.ndarray) -> np.ndarray:
    # In valid UTF-8 a byte in 0xE3..0xEF can only lead a three-byte character, and that range
    # covers CJK punctuation, kana, CJK ideographs, Hangul syllables and full-width forms (the
    # scripts written without spaces, or with few) but not general punctuation (0xE2: "…", "—").
    return (data >= 0xE3) & (data <= 0xEF)


def cjk_char_ngram_hashes(bv: ByteView, n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of n consecutive CJK characters, grouped by document, and the count per document.

    Why: ``word_tokens`` keeps every non-ASCII byte inside words, so a Chinese or Japanese
    sentence without spaces is one "word", and a byte 4-gram spans barely one ideograph. Character
    n-grams over CJK runs give those scripts the word- and phrase-level features that spaces give
    other languages. Polynomial hashes of the 3n bytes (not mixed), like ``char_ngram_hashes``.
    """
    return _script_char_ngram_hashes(bv, n, 3, _is_cjk_lead(bv.data))


def _is_twobyte_script_lead(data: np.ndarray) -> np.ndarray:
    # 0xCE..0xDF lead the two-byte characters of Greek, Cyrillic, Armenian, Hebrew and Arabic
    # (not Latin-1 accents, 0xC2..0xCB, whose words the byte 4-grams already cover).
    return (data >= 0xCE) & (data <= 0xDF)


def twobyte_char_ngram_hashes(bv: ByteView, n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of n consecutive two-byte-script characters (Cyrillic, Greek, Arabic, Hebrew).

    Why: a byte 4-gram spans only two such characters, too little to tell a stem, and a word
    unigram only matches one inflected form; Russian "рассуждения / рассуждение / рассуждай"
    share the character 3-grams of their stem, so phrasings carry across inflections.
    """
    return _script_char_ngram_hashes(bv, n, 2, _is_twobyte_script_lead(bv.data))


def _script_char_ngram_hashes(bv: ByteView, n: int, width: int, lead: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    total = len(bv.data)
    span = width * n
    if total < span:
        return np.zeros(0, np.uint64), np.zeros(bv.n_docs, dtype=np.int64)
    p = np.flatnonzero(lead[: total - span + 1])
    for k in range(1, n):
        p = p[lead[p + width * k]]
    pd = bv.doc_of(p)
    ok = p + span <= bv.ends[pd]
    p, pd = p[ok], pd[ok]
    counts = np.bincount(pd, minlength=bv.n_docs).astype(np.int64)
    return bv.substring_hash(p, p + span), counts
