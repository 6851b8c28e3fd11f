"""Prompt memo: the text signals of prompts already scored, kept across batches in one process.

Why: every text signal (the lexical tactic scores, the task-set match, the template key) is a pure
function of the prompt, and traffic repeats prompts far beyond one batch: apps and batch jobs send
the same prompt all day, and a campaign's retries and its accounts' shared items recur across days.
On a simulated world at scale 0.01, 559k exchanges hold 292k distinct prompts, but de-duplicating
only within each batch leaves 514k to score. The memo scores each distinct prompt once per worker
process for as long as it stays in the memo.

Exactness: prompts are looked up by their full text (a dict of ``str``), never by a hash of it,
so an attacker cannot make a prompt inherit another prompt's scores through a hash collision.

Bounded: at most ``capacity`` prompts and ``max_chars`` characters of prompt text (the text is
most of the memory: the scores are 60 bytes a prompt). When either is reached, the prompts seen
again since the last eviction (the ones that repeat) are kept, the newest up to half of each
bound, and the rest are forgotten. The memo belongs to one model and one task index; if either
changes (retraining, another task set) it is emptied.

Parts: the lexical model also scores each multi-line prompt's first and last part alone
(``lexical.edge_parts``); those parts are mostly a template's wrapper lines, which recur across
batches while the prompts around them differ. ``PromptMemo.parts`` (a ``ScoreMemo``, same rules,
half the prompt bound and a quarter of the characters) remembers their scores across batches too.
"""

from __future__ import annotations

import threading
from itertools import repeat

import numpy as np

#: Prompts one process remembers at most (the score arrays are allocated for this many: 60 bytes each).
DEFAULT_CAPACITY = 600_000
#: Characters of prompt text one process remembers at most (about a byte each for ASCII text, plus
#: about 150 bytes per prompt for the string and dict entry): with the default, at most ~200 MB.
DEFAULT_MAX_CHARS = 96_000_000


class ScoreMemo:
    """Texts (full text keys) and one float32 score row each, bounded like the prompt memo: at most
    ``capacity`` texts and ``max_chars`` characters; when full, the texts seen again since the last
    eviction are kept (the newest, up to half of each bound)."""

    def __init__(self, capacity: int, n_cols: int, max_chars: int):
        self.capacity, self.n_cols, self.max_chars = max(int(capacity), 0), n_cols, max(int(max_chars), 0)
        self.lookups = 0
        self.hits = 0
        self._lock = threading.Lock()
        self.index: dict[str, int] = {}
        self.keys = np.empty(self.capacity, dtype=object)
        self.scores = np.zeros((self.capacity, n_cols), dtype=np.float32)
        self.seen_again = np.zeros(self.capacity, dtype=bool)
        self.chars = np.zeros(self.capacity, dtype=np.int64)
        self.n_chars = 0
        self.size = 0

    def recall(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(remembered?, score rows of the remembered texts in order)."""
        with self._lock:
            get = self.index.get
            rows = np.fromiter(map(get, texts, repeat(-1)), dtype=np.int64, count=len(texts))
            hit = rows >= 0
            r = rows[hit]
            self.seen_again[r] = True
            self.lookups += len(texts)
            self.hits += len(r)
            return hit, self.scores[r]

    def add(self, texts: list[str], scores: np.ndarray) -> None:
        m = len(texts)
        if m == 0 or m > self.capacity // 2:
            return
        lens = np.fromiter(map(len, texts), dtype=np.int64, count=m)
        new_chars = int(lens.sum())
        if new_chars > self.max_chars // 2:
            return
        with self._lock:
            if self.size + m > self.capacity or self.n_chars + new_chars > self.max_chars:
                keep = np.flatnonzero(self.seen_again[:self.size])[-(self.capacity // 2):]
                newest_first = np.cumsum(self.chars[keep][::-1])
                keep = keep[len(keep) - int(np.searchsorted(newest_first, self.max_chars // 2, side="right")):]
                k = len(keep)
                for arr in (self.keys, self.scores, self.chars):
                    arr[:k] = arr[keep]
                self.keys[k:self.size] = None
                self.n_chars = int(self.chars[:k].sum())
                self.seen_again[:] = False
                self.index = {t: i for i, t in enumerate(self.keys[:k])}
                self.size = k
            s = slice(self.size, self.size + m)
            self.chars[s] = lens
            self.n_chars += new_chars
            self.keys[s] = texts
            self.scores[s] = scores
            self.seen_again[s] = False
            self.index.update(zip(texts, range(self.size, self.size + m), strict=True))
            self.size += m


class PromptMemo:
    def __init__(self, capacity: int | None = None, n_tactics: int = 0, max_chars: int | None = None):
        capacity = _settings["capacity"] if capacity is None else capacity
        max_chars = _settings["max_chars"] if max_chars is None else max_chars
        self.capacity = max(int(capacity), 0)
        self.max_chars = max(int(max_chars), 0)
        self.n_tactics = n_tactics
        self.owner: tuple[int, int] | None = None
        self.lookups = 0
        self.hits = 0
        self._lock = threading.Lock()
        self._alloc()

    def _alloc(self) -> None:
        c = self.capacity
        self.index: dict[str, int] = {}
        self.keys = np.empty(c, dtype=object)
        self.lex = np.zeros((c, self.n_tactics), dtype=np.float32)
        self.task_score = np.zeros(c, dtype=np.float32)
        self.task_key = np.empty(c, dtype=object)
        self.template_key = np.empty(c, dtype=object)
        self.seen_again = np.zeros(c, dtype=bool)
        self.chars = np.zeros(c, dtype=np.int64)  # length of each remembered prompt
        self.n_chars = 0
        self.size = 0
        self.parts = ScoreMemo(c // 2, self.n_tactics, self.max_chars // 4)

    def bind(self, owner: tuple[int, int], n_tactics: int) -> None:
        """Empty the memo unless it was filled with this (model, task index) pair."""
        with self._lock:
            if owner != self.owner or n_tactics != self.n_tactics:
                self.owner, self.n_tactics = owner, n_tactics
                self._alloc()

    def recall(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(remembered?, and for the remembered prompts in order: lexical scores, task score, task key,
        template key)."""
        with self._lock:
            get = self.index.get
            rows = np.fromiter(map(get, prompts, repeat(-1)), dtype=np.int64, count=len(prompts))
            hit = rows >= 0
            r = rows[hit]
            self.seen_again[r] = True
            self.lookups += len(prompts)
            self.hits += len(r)
            return hit, self.lex[r], self.task_score[r], self.task_key[r], self.template_key[r]

    def add(self, prompts: list[str], lex: np.ndarray, task_score: np.ndarray, task_key: np.ndarray,
            template_key: np.ndarray) -> None:
        m = len(prompts)
        if m == 0 or m > self.capacity // 2:
            return
        lens = np.fromiter(map(len, prompts), dtype=np.int64, count=m)
        new_chars = int(lens.sum())
        if new_chars > self.max_chars // 2:
            return
        with self._lock:
            if self.size + m > self.capacity or self.n_chars + new_chars > self.max_chars:
                self._evict()
            s = slice(self.size, self.size + m)
            self.chars[s] = lens
            self.n_chars += new_chars
            self.keys[s] = prompts
            self.lex[s] = lex
            self.task_score[s] = task_score
            self.task_key[s] = task_key
            self.template_key[s] = template_key
            self.seen_again[s] = False
            self.index.update(zip(prompts, range(self.size, self.size + m), strict=True))
            self.size += m

    def _evict(self) -> None:
        """Keep the prompts seen again since the last eviction (the newest, up to half of each bound)."""
        keep = np.flatnonzero(self.seen_again[:self.size])[-(self.capacity // 2):]
        # newest first, as many as fit in half the character budget
        newest_first = np.cumsum(self.chars[keep][::-1])
        keep = keep[len(keep) - int(np.searchsorted(newest_first, self.max_chars // 2, side="right")):]
        k = len(keep)
        for arr in (self.keys, self.lex, self.task_score, self.task_key, self.template_key, self.chars):
            arr[:k] = arr[keep]
        self.n_chars = int(self.chars[:k].sum())
        self.keys[k:self.size] = None
        self.task_key[k:self.size] = None
        self.template_key[k:self.size] = None
        self.seen_again[:] = False
        self.index = {p: i for i, p in enumerate(self.keys[:k])}
        self.size = k


_memo: PromptMemo | None = None
_memo_lock = threading.Lock()
_settings = {"capacity": DEFAULT_CAPACITY, "max_chars": DEFAULT_MAX_CHARS}


def configure(capacity: int = DEFAULT_CAPACITY, max_chars: int = DEFAULT_MAX_CHARS) -> None:
    """Bounds of the memos this process (and the workers it forks later) create; forgets its memo if
    the bounds change (the scan's ``signals_memo_prompts`` / ``signals_memo_chars``)."""
    global _memo
    with _memo_lock:
        new = {"capacity": max(int(capacity), 0), "max_chars": max(int(max_chars), 0)}
        if new != _settings:
            _settings.update(new)
            _memo = None


def process_memo() -> PromptMemo:
    """This process's memo (a forked worker starts with a copy of its parent's and goes its own way)."""
    global _memo
    with _memo_lock:
        if _memo is None:
            _memo = PromptMemo()
        return _memo
