"""Prompt templates as keyed MinHash signatures: comparable across providers, unreadable to anyone.

A campaign reuses a few prompt templates with changing slots (the problem, the code, the
document). The *skeleton* of a template is the set of word shingles that occur in at least half
of the prompts that use it: slot text varies, so its shingles drop out, and what is exported
never contains customer text, only a MinHash of hashed skeleton shingles.

The algorithm is fixed and written out here (and in docs/intel.md) rather than delegated to a
library default, because a partner must reproduce the exact same numbers, possibly in another
language, over its own masked templates:

* text: Unicode NFKC, lower-case; URLs → ``url``, e-mail addresses → ``email``, hex ids/UUIDs →
  ``hexid``, numbers → ``num``; tokens are ``\\w+`` runs; shingles are 3 consecutive tokens
  joined by one space (a text with fewer tokens is one shingle);
* shingle hash ``h``: the first 4 bytes (big-endian) of HMAC-SHA256(group key,
  ``distillguard-intel-v1|shingle|<shingle>``); without a key (``--raw`` exports only) the first 4
  bytes of SHA-256 of the same message;
* permutation ``i`` (0 ≤ i < num_perm): ``a_i = 1 + u32(SHA256("distillguard-minhash-v1|a|<seed>|<i>")) mod (2^32 - 1)``,
  ``b_i = u32(SHA256("distillguard-minhash-v1|b|<seed>|<i>"))``, where u32 is the first 4 bytes big-endian;
* signature value ``i`` = min over skeleton shingles of ``((a_i * h + b_i) mod (2^61 - 1)) mod 2^32``;
* wire form: the values as 8-digit lower-case hex each, concatenated.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from distillguard.intel.keys import HASH_PREFIX, GroupKey

SCHEME = "distillguard-minhash-v1"
NUM_PERM = 128
SEED = 20260223
SHINGLE_SIZE = 3
_PRIME = np.uint64((1 << 61) - 1)
_MASK32 = np.uint64(0xFFFFFFFF)

_URL = re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_HEXID = re.compile(r"\b(?=[0-9a-f-]*\d)[0-9a-f]{8,}(?:-[0-9a-f]{4,})*\b")
_NUM = re.compile(r"\d+(?:[.,]\d+)*")
_TOKEN = re.compile(r"\w+")


def mask(text: str) -> str:
    """Replace the parts of a prompt that vary per request even inside one template."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = _URL.sub(" url ", t)
    t = _EMAIL.sub(" email ", t)
    t = _HEXID.sub(" hexid ", t)
    t = _NUM.sub(" num ", t)
    return t


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(mask(text))


def shingles(text: str, size: int = SHINGLE_SIZE) -> set[str]:
    return shingles_of(tokens(text), size)


def shingles_of(toks: list[str], size: int = SHINGLE_SIZE) -> set[str]:
    if not toks:
        return set()
    if len(toks) < size:
        return {" ".join(toks)}
    return {" ".join(toks[i:i + size]) for i in range(len(toks) - size + 1)}


def skeleton(prompts: Iterable[str], min_share: float = 0.5, min_prompts: int = 3) -> frozenset[str] | None:
    """Shingles present in at least ``min_share`` of the prompts: the fixed text of the template."""
    counts: Counter[str] = Counter()
    n = 0
    for p in prompts:
        if not p:
            continue
        counts.update(shingles(p))
        n += 1
    if n < min_prompts:
        return None
    need = max(2, math.ceil(min_share * n))
    sk = frozenset(s for s, c in counts.items() if c >= need)
    return sk or None


@lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    def u32(tag: str, i: int) -> int:
        return int.from_bytes(hashlib.sha256(f"{SCHEME}|{tag}|{seed}|{i}".encode()).digest()[:4], "big")

    a = np.array([1 + u32("a", i) % 0xFFFFFFFF for i in range(num_perm)], dtype=np.uint64)
    b = np.array([u32("b", i) for i in range(num_perm)], dtype=np.uint64)
    return a, b


def _shingle_hash(sh: str, key: GroupKey | None) -> int:
    if key is not None:
        return key.shingle_hash32(sh)
    return int.from_bytes(hashlib.sha256(f"{HASH_PREFIX}|shingle|{sh}".encode()).digest()[:4], "big")


def signature(shingle_set: Iterable[str], key: GroupKey | None, num_perm: int = NUM_PERM,
              seed: int = SEED) -> np.ndarray:
    """MinHash of a shingle set as ``num_perm`` uint32 values (held in uint64)."""
    hs = np.fromiter((_shingle_hash(s, key) for s in shingle_set), dtype=np.uint64)
    if hs.size == 0:
        raise ValueError("cannot sign an empty shingle set")
    a, b = _permutations(num_perm, seed)
    vals = (np.outer(hs, a) + b) % _PRIME & _MASK32  # (n_shingles, num_perm); a*h + b < 2^64
    return vals.min(axis=0)


def encode(sig: np.ndarray) -> str:
    return "".join(f"{int(v):08x}" for v in sig)


def decode(text: str) -> np.ndarray:
    t = text.strip().lower()
    if not t or len(t) % 8 or not re.fullmatch(r"[0-9a-f]+", t):
        raise ValueError("template signature must be lower-case hex, 8 digits per value")
    return np.array([int(t[i:i + 8], 16) for i in range(0, len(t), 8)], dtype=np.uint64)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of the two shingle sets behind two signatures."""
    if a.shape != b.shape:
        return 0.0
    return float(np.mean(a == b))
