"""Fast lexical models: hashed character + word n-grams, one calibrated logistic regression per tactic.

Why this shape: the bulk of traffic must be scored at tens of thousands of prompts per second on
two cores, and the evidence for most tactics is phrasing ("write out your hidden reasoning",
"score this response from 1 to 10", "rewrite so it passes the content filter"). Character
3-5-grams survive typos, inflection and languages without spaces; word uni/bi-grams carry
phrase structure. All tactics share one feature matrix, so scoring a batch is one hashing pass
and one sparse x dense product ``X @ W`` with ``W`` of shape (features, tactics).

Calibration: each tactic's raw decision value is mapped through a Platt sigmoid fitted on
out-of-fold decision values, so a 0.9 means roughly "nine in ten prompts scoring like this were
the tactic" on the training mix, and scores from different tactics are comparable.

The fitted model is cached (``$DISTILLGUARD_CACHE`` or ``~/.cache/distillguard``) under a name
that includes a hash of the training data and of this module's version, so editing a phrase
file or the featuriser retrains instead of silently loading a stale model.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from distillguard.signals import hashing as H

#: Bump when the featuriser or the training procedure changes (part of the cache key).
MODEL_VERSION = "8"
N_BITS = 18
N_FEATURES = 1 << N_BITS
CHAR_ORDERS = (4,)
WORD_ORDERS = (1, 2)
#: Character n-gram orders over runs of CJK characters (see ``hashing.cjk_char_ngram_hashes``).
CJK_ORDERS = (2,)
#: Character n-gram orders over runs of two-byte-script characters: Cyrillic, Greek, Arabic, Hebrew
#: (see ``hashing.twobyte_char_ngram_hashes``).
TWOBYTE_ORDERS = (3,)
#: The lexical models read a prompt's first LEX_HEAD and last LEX_TAIL characters: instructions sit
#: at the edges of a prompt, and the middle of a pasted document adds cost, not evidence.
LEX_HEAD = 800
LEX_TAIL = 400
#: Inverse regularisation strength of each tactic's logistic regression (liblinear).
C = 4.0
#: Fitted models kept in the cache directory (newest first).
KEEP_CACHED_MODELS = 4
#: Up to this many texts are scored by gather-and-sum instead of sparse matrices.
SMALL_BATCH = 8
#: Largest share of real benign training documents, scored out of fold, that an attack tactic may
#: put at or above 0.5; the calibration is shifted to respect it (see ``fit``). 0 turns it off.
BENIGN_FPR_BUDGET = 0.0007
#: Word uni/bigrams of question sentences also get features of their own (``question_tokens``).
QUESTION_FEATURES = True
QUESTION_SALT = 6000
#: Calibration folds split by phrasing line / benign document rather than by row (see ``fit``).
GROUP_FOLDS = True
#: The scorer is a third fit on all rows; the two half-models only give out-of-fold values for the
#: calibration (and the benign budget). Without it the scorer is the average of the two half-models,
#: which with GROUP_FOLDS sees every phrasing line at half weight (+50% training CPU when on).
FULL_FIT_SCORER = True
#: Benign-document mining for the full-data scorer: a real benign training document whose keyed
#: out-of-fold probability reaches BENIGN_MINING_PROB (it fired when unseen, like a provider's benign
#: prompt would) counts BENIGN_MINING_WEIGHT times in the full fit. 1 turns it off.
BENIGN_MINING_WEIGHT = 10.0
BENIGN_MINING_PROB = 0.2
#: Words at each edge of a prompt that also get position-specific features.
EDGE_WORDS = 12

#: Tactics also scored on a prompt's first and last part (see ``edge_parts``): an attack wrapper is
#: usually its own paragraph or line around a payload, and scoring the whole prompt alone lets a
#: long payload dilute it. Capability columns describe the payload and keep the whole-prompt score.
PART_TACTICS = ("cot_elicitation", "reward_grading", "policy_rewrite", "synthetic_data")
#: A part needs this many words (or, for text without spaces, PART_MIN_CHARS characters) to be scored alone.
PART_MIN_WORDS = 4
PART_MIN_CHARS = 12
_PART_SPLIT = re.compile(r"\n\s*\n|\n")

#: The tactics the lexical model scores, in column order of ``W``.
TACTICS = ("cot_elicitation", "reward_grading", "policy_rewrite", "synthetic_data", "coding", "agentic",
           "computer_use", "vision", "data_analysis")


_FIB = np.uint64(0x9E3779B97F4A7C15)


def _cols(h: np.ndarray, salt: int, n_bits: int) -> np.ndarray:
    # Multiplicative (Fibonacci) hashing: the top bits of h*odd are well spread, one multiply.
    c = h + np.uint64(salt)  # one temporary, then in place
    c *= _FIB
    c >>= np.uint64(64 - n_bits)
    return c.astype(np.int32)


def edge_parts(texts) -> tuple[list[str], np.ndarray]:
    """The first and last line-separated part of every prompt with at least two scoreable parts,
    and the row each part belongs to (one-part prompts contribute nothing)."""
    if not isinstance(texts, list):
        texts = texts.to_pylist() if hasattr(texts, "to_pylist") else list(texts)
    parts, owner = [], []
    cut = LEX_HEAD + LEX_TAIL
    words, chars = PART_MIN_WORDS, PART_MIN_CHARS
    for i, t in enumerate(texts):
        if not t or "\n" not in t:
            continue
        # Lines: the same scoreable parts as splitting on _PART_SPLIT, whose blank-line separators only
        # drop whitespace-only lines (never scoreable), and str.split is several times cheaper. Only the
        # first and the last scoreable part matter: lines are tested from each end until one qualifies
        # (PART_MIN_WORDS words, counted by a split that stops there, or PART_MIN_CHARS characters of
        # non-ASCII text), so the middle of a long prompt is never looked at.
        ps = t.split("\n")
        first = -1
        for j, p in enumerate(ps):
            if len(p.split(None, words - 1)) >= words or (len(p.strip()) >= chars and not p.isascii()):
                first = j
                break
        if first < 0:
            continue
        for j in range(len(ps) - 1, first, -1):
            p = ps[j]
            if len(p.split(None, words - 1)) >= words or (len(p.strip()) >= chars and not p.isascii()):
                parts += [ps[first][:cut], p[:cut]]
                owner += [i, i]
                break
    return parts, np.array(owner, dtype=np.int64)


#: Byte classes for sentence ends: 1 an ASCII end (. ! line break), 2 a question mark, 3 the lead byte of a
#: multi-byte mark (。！？ ؟ ।), checked against its continuation bytes only where it occurs.
_TERM_CLASS = np.zeros(256, dtype=np.uint8)
for _c in b".!\n":
    _TERM_CLASS[_c] = 1
_TERM_CLASS[ord("?")] = 2
for _c in (0xE3, 0xEF, 0xD8, 0xE0):
    _TERM_CLASS[_c] = 3
#: Multi-byte sentence ends: (bytes, is a question mark).
_TERM_MARKS = ((b"\xef\xbc\x9f", True), (b"\xd8\x9f", True), (b"\xe3\x80\x82", False), (b"\xef\xbc\x81", False),
               (b"\xe0\xa5\xa4", False))


def _terminators(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of sentence ends (. ! ? line break, and the lead byte of 。！？؟।) and whether each
    is a question mark. Multi-byte marks are found by their lead byte, because the tokeniser counts
    non-ASCII bytes as word bytes and a CJK "word" runs through them."""
    cls = _TERM_CLASS[raw]
    pos = np.flatnonzero(cls)
    c = cls[pos]
    lead = np.flatnonzero(c == 3)
    if len(lead):
        lp = pos[lead]
        padded = np.concatenate([raw, np.zeros(2, dtype=np.uint8)])  # reads past the end see NULs
        b0, b1, b2 = padded[lp], padded[lp + 1], padded[lp + 2]
        keep = np.zeros(len(lp), dtype=bool)
        isq = np.zeros(len(lp), dtype=bool)
        for mark, q in _TERM_MARKS:
            m = (b0 == mark[0]) & (b1 == mark[1])
            if len(mark) == 3:
                m &= b2 == mark[2]
            keep |= m
            if q:
                isq |= m
        c[lead] = np.where(keep, np.where(isq, 2, 1), 0)
        ok = c > 0
        pos, c = pos[ok], c[ok]
    return pos, c == 2


def question_tokens(bv: H.ByteView, tok: H.Tokens) -> np.ndarray:
    """Mask of the tokens whose sentence (up to the next sentence end in the same document) is a question."""
    pos, isq = _terminators(bv.raw)
    if not len(pos):
        return np.zeros(len(tok), dtype=bool)
    # j: the first sentence end at or after each token's start (``searchsorted(pos, tok.start)``), from
    # the token each sentence end falls before: fewer searches (sentence ends) over the sorted token starts.
    first_after = np.searchsorted(tok.start, pos, side="right")
    j = np.cumsum(np.bincount(first_after, minlength=len(tok) + 1)[:len(tok)])
    inside = j < len(pos)
    jj = np.minimum(j, len(pos) - 1)
    return inside & (pos[jj] < bv.ends[tok.doc]) & isq[jj]


_NONE = np.zeros(0, dtype=np.int64)


def hashed_ngrams(texts, n_bits: int = N_BITS) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Per n-gram kind: (feature columns grouped by document, n-grams per document); and the row scale.

    Each row is scaled by 1/sqrt(total n-grams), i.e. unit norm as if every n-gram were distinct.
    """
    arr = H.normalise(H.clip(H.as_string_array(texts), LEX_HEAD, LEX_TAIL))
    n = len(arr)
    bv = H.byte_view(arr)
    parts: list[tuple[np.ndarray, np.ndarray]] = []  # (cols, counts per doc)
    for k in CHAR_ORDERS:
        h, counts = H.char_ngram_hashes(bv, k)
        parts.append((_cols(h, k, n_bits), counts))
    # Chinese and Japanese have no spaces, so their "words" are whole clauses: character bigrams
    # over CJK runs stand in for words there (nothing to hash, and almost no cost, elsewhere).
    for k in CJK_ORDERS:
        h, counts = H.cjk_char_ngram_hashes(bv, k)
        parts.append((_cols(h, 4000 + k, n_bits), counts))
    # Likewise for Cyrillic, Greek, Arabic and Hebrew, where a byte 4-gram is two characters: stems
    # are longer, and character 3-grams carry a phrasing across inflected forms.
    for k in TWOBYTE_ORDERS:
        h, counts = H.twobyte_char_ngram_hashes(bv, k)
        parts.append((_cols(h, 5000 + k, n_bits), counts))
    tok = H.word_tokens(bv)
    for k in WORD_ORDERS:
        d, _, h = H.word_ngrams(tok, k, salt=1000 + k)
        parts.append((_cols(h, 1000 + k, n_bits), np.bincount(d, minlength=n)))
    # Question view: the words of sentences that end in a question mark, hashed apart. "Why do
    # models hide their reasoning?" talks about the tactic; "Write out your reasoning." asks for it.
    if QUESTION_FEATURES and len(tok):
        q = question_tokens(bv, tok)
        if q.any():
            sub = H.Tokens(tok.doc[q], _NONE, _NONE, tok.hash[q])  # word_ngrams reads documents and hashes only
            for k in WORD_ORDERS:
                d, _, h = H.word_ngrams(sub, k, salt=QUESTION_SALT + k)
                parts.append((_cols(h, QUESTION_SALT + k, n_bits), np.bincount(d, minlength=n)))
    # Edge views: the same word n-grams again, hashed apart, for the first and last EDGE_WORDS
    # words. Instructions sit at a prompt's edges and payloads in between, so "score" in the
    # last words ("... Score (1-10):") weighs differently from "score" inside a math problem.
    if len(tok):
        starts = np.searchsorted(tok.doc, np.arange(n + 1))
        rank = np.arange(len(tok)) - starts[tok.doc]
        count = (starts[1:] - starts[:-1])[tok.doc]
        for salt, sel in ((2000, rank < EDGE_WORDS), (3000, rank >= count - EDGE_WORDS)):
            sub = H.Tokens(tok.doc[sel], _NONE, _NONE, tok.hash[sel])
            for k in WORD_ORDERS:
                d, _, h = H.word_ngrams(sub, k, salt=salt + k)
                parts.append((_cols(h, salt + k, n_bits), np.bincount(d, minlength=n)))
    total = np.zeros(n, dtype=np.int64)
    for _, c in parts:
        total += c
    scale = (1.0 / np.sqrt(np.maximum(total, 1))).astype(np.float32)
    return parts, scale


def featurize_parts(texts, n_bits: int = N_BITS) -> list[sp.csr_matrix]:
    """Hashed n-gram features as one CSR matrix per n-gram kind (their sum is the feature matrix).

    Keeping the kinds apart avoids re-sorting n-grams by document: each kind is already grouped
    by document, and ``X @ W`` distributes over the sum.
    """
    parts, scale = hashed_ngrams(texts, n_bits)
    n = len(scale)
    out = []
    for cols, counts in parts:
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        out.append(sp.csr_matrix((np.repeat(scale, counts), cols, indptr), shape=(n, 1 << n_bits)))
    return out


def featurize(texts, n_bits: int = N_BITS) -> sp.csr_matrix:
    """The feature matrix (sum of the parts); used for training, where one matrix is convenient."""
    parts = featurize_parts(texts, n_bits)
    X = parts[0]
    for p in parts[1:]:
        X = X + p
    return X.tocsr()


@dataclass
class LexicalModel:
    """Weights for every tactic plus Platt parameters; ``predict`` is the whole inference path."""

    tactics: tuple[str, ...]
    W: np.ndarray        # (features, tactics) float32
    bias: np.ndarray     # (tactics,)
    platt_a: np.ndarray  # (tactics,)
    platt_b: np.ndarray
    data_hash: str
    n_bits: int = N_BITS

    def decision(self, X: sp.csr_matrix | list[sp.csr_matrix]) -> np.ndarray:
        parts = X if isinstance(X, list) else [X]
        z = parts[0] @ self.W
        for p in parts[1:]:
            z += p @ self.W
        return np.asarray(z) + self.bias

    def predict(self, texts, part_memo=None) -> np.ndarray:
        """Calibrated probabilities, shape (len(texts), len(tactics)), float32: for PART_TACTICS the
        max over the whole prompt and its first and last parts. ``part_memo`` (a ``memo.ScoreMemo``)
        holds part scores from earlier calls: parts found there are not scored again."""
        p = self.predict_whole(texts)
        cols = [self.tactics.index(t) for t in PART_TACTICS if t in self.tactics]
        if len(p) and cols:
            parts, owner = edge_parts(texts)
            if parts:
                # A template's wrapper line recurs across thousands of prompts: score each distinct part once.
                distinct = list(dict.fromkeys(parts))
                index = dict(zip(distinct, range(len(distinct)), strict=True))
                inv = np.fromiter(map(index.__getitem__, parts), dtype=np.int64, count=len(parts))
                pp = (self.predict_whole(distinct) if part_memo is None else self._predict_memo(distinct, part_memo))[inv]
                for j in cols:
                    np.maximum.at(p[:, j], owner, pp[:, j])
        return p

    def _predict_memo(self, texts: list[str], memo) -> np.ndarray:
        """``predict_whole(texts)`` with the texts found in ``memo`` not scored again (the same rows)."""
        if len(texts) <= SMALL_BATCH:
            return self.predict_whole(texts)  # the small-batch path's rounding: neither looked up nor kept
        hit, remembered = memo.recall(texts)
        out = np.empty((len(texts), len(self.tactics)), dtype=np.float32)
        out[hit] = remembered
        miss = np.flatnonzero(~hit)
        if len(miss):
            todo = [texts[i] for i in miss]
            # Never the small-batch path (other float rounding): as predict_whole(texts) would, score in a large batch.
            pad = [f"pad {i}" for i in range(max(0, SMALL_BATCH + 1 - len(todo)))]
            out[miss] = self.predict_whole(todo + pad)[:len(todo)]
            memo.add(todo, out[miss])
        return out

    def predict_whole(self, texts) -> np.ndarray:
        """Calibrated probabilities of each text as a whole, shape (len(texts), len(tactics))."""
        if len(texts) == 0:
            return np.zeros((0, len(self.tactics)), dtype=np.float32)
        if len(texts) <= SMALL_BATCH:
            z = self._decision_small(texts)
        else:
            z = self.decision(featurize_parts(texts, self.n_bits))
        z = np.clip(z * self.platt_a + self.platt_b, -30.0, 30.0)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def _decision_small(self, texts) -> np.ndarray:
        """Gather-and-sum decision values for a handful of texts: the gateway's per-request path,
        where building sparse matrices would cost more than the arithmetic."""
        parts, scale = hashed_ngrams(texts, self.n_bits)
        n = len(scale)
        cols = np.concatenate([c for c, _ in parts])
        docs = np.concatenate([np.repeat(np.arange(n), cnt) for _, cnt in parts])
        g = self.W[cols]
        if n == 1:
            z = g.sum(axis=0, dtype=np.float64)[None, :]
        else:
            z = np.stack([np.bincount(docs, weights=g[:, k], minlength=n) for k in range(g.shape[1])], axis=1)
        return z * scale[:, None] + self.bias

    def column(self, tactic: str) -> int:
        return self.tactics.index(tactic)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp.npz")
        np.savez(tmp, tactics=np.array(self.tactics), W=self.W, bias=self.bias, platt_a=self.platt_a,
                 platt_b=self.platt_b, data_hash=np.array(self.data_hash), n_bits=np.array(self.n_bits))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LexicalModel:
        z = np.load(path, allow_pickle=False)
        return cls(tuple(str(t) for t in z["tactics"]), z["W"], z["bias"], z["platt_a"], z["platt_b"],
                   str(z["data_hash"]), int(z["n_bits"]))


def cache_dir() -> Path:
    env = os.environ.get("DISTILLGUARD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "distillguard"


def training_hash() -> str:
    """Hash of everything that determines the fitted weights (data files + version)."""
    from distillguard.signals import corpus

    h = hashlib.sha256(f"lexical-v{MODEL_VERSION}-bits{N_BITS}-{TACTICS}".encode())
    # The featuriser's and trainer's own source count as training inputs: a change to hashing
    # must never load weights fitted on the old feature space.
    for p in [*corpus.training_files(), Path(__file__), Path(H.__file__)]:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def key_folds(keys: list[str], seed: int = 0) -> np.ndarray:
    """Fold (0 or 1) of every row, the same for all rows with one key (a phrasing line, a benign
    document): a deterministic hash, so the split does not depend on row order."""
    import zlib

    fold_of: dict[str, int] = {}
    return np.fromiter((fold_of.setdefault(k, zlib.crc32(f"{seed}:{k}".encode()) & 1) for k in keys),
                       dtype=np.int8, count=len(keys))


def fit(texts: list[str], labels: np.ndarray, tactics=TACTICS, seed: int = 0, data_hash: str = "",
        keys: list[str] | None = None, benign: np.ndarray | None = None) -> LexicalModel:
    """One logistic regression per tactic; label -1 means "no opinion" (row left out for that tactic).

    ``keys`` (one per row, see ``corpus.build_keyed``) make the two calibration folds split by
    phrasing line and benign document instead of by row (GROUP_FOLDS): the Platt sigmoid is then
    fitted on scores of wordings the half-model never saw, which is what a provider's traffic is.
    The scorer is then a third fit on every row (FULL_FIT_SCORER): averaging two half-models that
    each saw half of the phrasing lines would give every line half its weight.

    ``benign`` (a mask of real benign prompts) bounds each attack tactic's false-positive rate on
    them: if more than BENIGN_FPR_BUDGET of the benign documents' out-of-fold scores (documents the
    half-model never saw, a validation split) would reach 0.5, the sigmoid is shifted so that only
    that share does. Recall is then bought only where benign traffic allows it.
    """
    return fit_matrix(featurize(texts), labels, tactics, seed, data_hash, keys, benign)


def fit_matrix(X: sp.csr_matrix, labels: np.ndarray, tactics=TACTICS, seed: int = 0, data_hash: str = "",
               keys: list[str] | None = None, benign: np.ndarray | None = None,
               full_fit: bool | None = None, budget: float | None = None,
               mining: float | None = None) -> LexicalModel:
    """``fit`` on an already featurised matrix (``full_fit`` / ``budget`` / ``mining`` default to the
    module keys FULL_FIT_SCORER / BENIGN_FPR_BUDGET / BENIGN_MINING_WEIGHT)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    folds = key_folds(keys, seed) if keys is not None and GROUP_FOLDS else None
    full_fit = FULL_FIT_SCORER if full_fit is None else full_fit
    budget = BENIGN_FPR_BUDGET if budget is None else budget
    mining = BENIGN_MINING_WEIGHT if mining is None else mining
    k = len(tactics)
    W = np.zeros((X.shape[1], k), dtype=np.float32)
    bias = np.zeros(k, dtype=np.float32)
    pa_, pb_ = np.ones(k, dtype=np.float32), np.zeros(k, dtype=np.float32)
    for j in range(k):
        y = labels[:, j]
        keep = np.flatnonzero(y >= 0)
        Xj, yj = X[keep], y[keep]
        if yj.min() == yj.max():
            raise ValueError(f"tactic {tactics[j]!r} has only one class in the training data")
        # liblinear's primal logistic regression: on this data it ranks held-out phrasings
        # clearly better than SGD at a few seconds per tactic. Positives are far fewer than
        # negatives; class weights keep recall on rare phrasings.
        def make():
            return LogisticRegression(C=C, class_weight="balanced", solver="liblinear", tol=1e-2, max_iter=200,
                                      random_state=seed)
        # Two half-models, each scoring the half it did not see: their out-of-fold decision values
        # calibrate the Platt sigmoid. The scorer is either a third fit on all rows (full_fit) or
        # the average of the two (a linear model again), as CalibratedClassifierCV(ensemble=True)
        # would do at half the cost.
        oof = np.zeros(len(yj))
        if folds is not None:
            fj = folds[keep]
            splits = [(np.flatnonzero(fj != f), np.flatnonzero(fj == f)) for f in (0, 1)]
        else:
            splits = StratifiedKFold(2, shuffle=True, random_state=seed).split(Xj, yj)
        for tr, te in splits:
            m = make().fit(Xj[tr], yj[tr])
            oof[te] = m.decision_function(Xj[te])
            if not full_fit:
                W[:, j] += 0.5 * m.coef_[0]
                bias[j] += 0.5 * m.intercept_[0]
        # Platt scaling on the out-of-fold values, without class weights, so probabilities match
        # frequencies on the training mix.
        cal = LogisticRegression(C=1e4, max_iter=1000).fit(oof.reshape(-1, 1), yj)
        pa_[j] = cal.coef_[0, 0]
        pb_[j] = cal.intercept_[0]
        if full_fit:
            weight = None
            if benign is not None and folds is not None and mining != 1.0 and tactics[j] in PART_TACTICS:
                prob = 1.0 / (1.0 + np.exp(-np.clip(pa_[j] * oof + pb_[j], -30.0, 30.0)))
                weight = np.where(benign[keep] & (yj == 0) & (prob >= BENIGN_MINING_PROB), mining, 1.0)
            m = make().fit(Xj, yj, sample_weight=weight)
            W[:, j] = m.coef_[0]
            bias[j] = m.intercept_[0]
        if benign is not None and folds is not None and budget > 0 and tactics[j] in PART_TACTICS:
            bj = benign[keep] & (yj == 0)
            if bj.sum() and pa_[j] > 0:
                # decision value above which at most the budgeted share of benign documents lie
                cut = float(np.quantile(oof[bj], 1.0 - budget, method="higher"))
                if -pb_[j] / pa_[j] <= cut:
                    pb_[j] = -pa_[j] * np.nextafter(cut, np.inf)
    return LexicalModel(tuple(tactics), W, bias, pa_, pb_, data_hash)


_lock = threading.Lock()
_model: LexicalModel | None = None


def get_model(retrain: bool = False) -> LexicalModel:
    """The fitted model: from memory, else from the cache (if its data hash matches), else trained now."""
    global _model
    with _lock:
        if _model is not None and not retrain:
            return _model
        dh = training_hash()
        path = cache_dir() / f"signals-lexical-{dh}.npz"
        if not retrain and (m := _load_cached(path, dh)) is not None:
            _model = m
            return m
        with _file_lock(path.parent / "signals-lexical.lock"):
            # Another process may have trained while this one waited for the lock.
            if not retrain and (m := _load_cached(path, dh)) is not None:
                _model = m
                return m
            from distillguard.signals import corpus

            t0 = time.perf_counter()
            texts, labels, keys, benign = corpus.training_set_keyed()
            m = fit(texts, labels, data_hash=dh, keys=keys, benign=benign)
            m.fit_seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
            try:
                m.save(path)
                # Keep a few recent models (several checkouts may share the cache), drop the rest.
                olds = sorted(path.parent.glob("signals-lexical-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
                for old in olds[KEEP_CACHED_MODELS:]:
                    old.unlink(missing_ok=True)
            except OSError:
                pass  # read-only home: keep the model in memory only
        _model = m
        return m


def _load_cached(path: Path, dh: str) -> LexicalModel | None:
    if not path.exists():
        return None
    try:
        m = LexicalModel.load(path)
    except Exception:  # noqa: BLE001 - a corrupt cache file is retrained, never trusted
        return None
    if m.data_hash == dh and m.tactics == TACTICS and m.n_bits == N_BITS:
        return m
    return None


@contextmanager
def _file_lock(path: Path):
    """Serialise training across processes (pytest-xdist workers, parallel scans) on one machine."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")  # noqa: SIM115
    except OSError:
        yield
        return
    try:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def predict_texts(texts) -> np.ndarray:
    return get_model().predict(texts)


def empty_scores(n: int) -> np.ndarray:
    return np.zeros((n, len(TACTICS)), dtype=np.float32)


__all__ = ["TACTICS", "LexicalModel", "featurize", "featurize_parts", "fit", "get_model", "predict_texts", "cache_dir"]
