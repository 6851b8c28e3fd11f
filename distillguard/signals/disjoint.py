"""Which simulator text reaches the signal models' training set (it must be none).

The simulator's benign traffic is drawn from public corpora, and so were the lexical models'
negatives; a model that trained on the very prompts the benchmark later emits looks better on that
benchmark than on a provider's traffic. This module names every text the simulator can emit — its
prompt files (corpora, attack task lists) and the literal parts of its templates, system prompts
and slot values — and finds any of them inside a set of training texts after normalisation, so the
split is checked rather than assumed (``tests/signals/test_disjoint.py``;
``data/make_subsets.py`` uses the same list to leave simulator rows out of the shipped subsets).

Containment, not equality: a simulator prompt pasted inside a training composition ("wrapper +
payload") leaks just the same. Texts are compared as word sequences after NFKC, case folding and
whitespace collapsing, so a re-encoded or re-spaced copy is still found.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import yaml

SIM_DATA = Path(__file__).resolve().parents[1] / "sim" / "data"
#: Word n-gram length used to find candidates; a simulator text is then confirmed word by word.
SHINGLE = 8
#: Simulator texts shorter than this many words ("/q", "Fetch all.", "Hello") are only a leak when a
#: whole training text equals them; inside a longer text they are everyday phrases, not copies.
MIN_CONTAINED_WORDS = 4
#: Template fragments (the text between slots) shorter than this many words are common phrases
#: ("Solve this:", "{task} please") that anyone writes; longer ones are the simulator's wording.
MIN_TEMPLATE_WORDS = 6
_WORD = re.compile(r"\w+")
_SLOT = re.compile(r"\{[a-z_][a-z0-9_]*\}")


def words(text: str) -> list[str]:
    """The normalised word sequence of a text (NFKC, case-folded, punctuation and spacing dropped)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def normalise(text: str) -> str:
    return " ".join(words(text))


def simulator_prompt_files(root: Path = SIM_DATA) -> list[Path]:
    """Every prompt file under the simulator's data: JSONL with ``text`` and plain one-per-line lists."""
    out = []
    for p in sorted(root.rglob("*")):
        if p.suffix in (".jsonl", ".txt") and "LICENSES" not in p.parts:
            out.append(p)
    return out


def _file_texts(p: Path) -> list[str]:
    lines = p.read_text(encoding="utf-8").split("\n")  # not splitlines: JSON strings may hold U+2028
    if p.suffix == ".jsonl":
        return [json.loads(line)["text"] for line in lines if line.strip()]
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def simulator_prompts(root: Path = SIM_DATA) -> dict[str, list[str]]:
    """Prompt texts per simulator file (path relative to the data root)."""
    return {str(p.relative_to(root)): _file_texts(p) for p in simulator_prompt_files(root)}


def _strings(node) -> Iterable[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def simulator_template_fragments(root: Path = SIM_DATA) -> list[str]:
    """Literal text between slots in the simulator's YAML (templates, system prompts, slot values)
    of at least MIN_TEMPLATE_WORDS words."""
    out = set()
    for p in sorted(root.rglob("*.yaml")):
        for s in _strings(yaml.safe_load(p.read_text(encoding="utf-8"))):
            for frag in _SLOT.split(s):
                if len(words(frag)) >= MIN_TEMPLATE_WORDS:
                    out.add(frag)
    return sorted(out)


def simulator_texts(root: Path = SIM_DATA) -> list[str]:
    """Everything the simulator can emit as prompt text: prompt-file rows and template fragments."""
    texts = [t for rows in simulator_prompts(root).values() for t in rows]
    return texts + simulator_template_fragments(root)


def leaks(training: Iterable[str], sim: Iterable[str], shingle: int = SHINGLE) -> list[str]:
    """Simulator texts found (as whole word sequences) inside any training text."""
    sim_norm = _by_words(sim)
    return sorted({sim_norm[w] for _, w in _matches(training, sim_norm, shingle)})


def leaking_rows(training: Iterable[str], sim: Iterable[str], shingle: int = SHINGLE) -> set[int]:
    """Indices of the training texts that contain a simulator text (they must be left out)."""
    return {i for i, _ in _matches(training, _by_words(sim), shingle)}


def _by_words(sim: Iterable[str]) -> dict[tuple[str, ...], str]:
    out: dict[tuple[str, ...], str] = {}
    for t in sim:
        w = words(t)
        if w:
            out.setdefault(tuple(w), t)
    return out


def _matches(training: Iterable[str], sim_norm: dict[tuple[str, ...], str], shingle: int):
    """(training index, simulator word tuple) for every simulator text found in a training text.

    A simulator text of at least ``shingle`` words is a candidate when its first shingle occurs in
    a training text, and confirmed by a word-boundary substring test on the normalised forms;
    shorter ones are looked up as every n-gram of that length in the training texts, and those under
    MIN_CONTAINED_WORDS words only as whole training texts.
    """
    heads: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    short: dict[int, set[tuple[str, ...]]] = {}
    tiny: set[tuple[str, ...]] = set()
    for w in sim_norm:
        if len(w) >= shingle:
            heads.setdefault(w[:shingle], []).append(w)
        elif len(w) >= MIN_CONTAINED_WORDS:
            short.setdefault(len(w), set()).add(w)
        else:
            tiny.add(w)
    for k, text in enumerate(training):
        w = words(text)
        if tuple(w) in tiny:
            yield k, tuple(w)
        joined = None
        for i in range(len(w) - shingle + 1):
            cands = heads.get(tuple(w[i:i + shingle]))
            if not cands:
                continue
            joined = joined if joined is not None else " " + " ".join(w) + " "
            for c in cands:
                if (" " + " ".join(c) + " ") in joined:
                    yield k, c
        for n, grams in short.items():
            for i in range(len(w) - n + 1):
                g = tuple(w[i:i + n])
                if g in grams:
                    yield k, g
