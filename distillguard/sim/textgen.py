"""Synthetic response and reasoning text of realistic length and rough shape.

The detector never needs the model's actual answers, only their size and shape (code fences, numbered
steps, JSON verdicts), so responses are assembled from small phrase banks into pools of a few hundred
texts per style; exchanges pick from the pools by index, which keeps generation vectorised.
"""

from __future__ import annotations

import numpy as np

_NOUNS = ("value function result approach input list algorithm answer problem case step method variable index "
          "table error request model system data file process user output constraint solution example test "
          "number range string loop equation rate total cost area time distance edge boundary query").split()
_VERBS = ("compute check return handle update consider note assume verify simplify combine apply compare define "
          "store iterate parse convert validate measure estimate divide multiply subtract add").split()
_ADJ = ("simple efficient correct final initial remaining total main optional previous next common empty sorted "
        "valid large small careful direct").split()
_OPEN = ["First,", "Next,", "Then", "Now", "So", "Here", "In this case,", "Note that", "Therefore,", "Finally,",
         "Also,", "However,", "This means", "As a result,", "For example,"]
_THINK = ["Let me think about this.", "Wait, let me re-check that.", "Hmm, that does not look right.",
          "Let me consider another approach.", "Okay, so the key point is", "Actually, I should verify",
          "Let me break this down.", "So far so good.", "Double-checking the arithmetic:", "Alternatively,"]
_CODE_LINES = ["def {n}({a}, {b}):", "    if not {a}:", "        return []", "    result = []", "    for item in {a}:",
               "        result.append({n}(item))", "    return result", "class {N}:", "    def __init__(self, {a}):",
               "        self.{a} = {a}", "const {a} = await fetch({b});", "for (let i = 0; i < {a}.length; i++) {{",
               "  total += {a}[i];", "}}", "import {a}", "    {a} = {b} + 1", "    raise ValueError('{a}')",
               "SELECT {a}, count(*) FROM {b} GROUP BY {a};", "    assert {n}({a}) == {b}"]


def _sentence(rng: np.random.Generator) -> str:
    w = [_OPEN[rng.integers(len(_OPEN))], "we", _VERBS[rng.integers(len(_VERBS))], "the",
         _ADJ[rng.integers(len(_ADJ))], _NOUNS[rng.integers(len(_NOUNS))]]
    for _ in range(int(rng.integers(1, 4))):
        w += [("and", "so", "with", "for", "because")[rng.integers(5)], "the", _NOUNS[rng.integers(len(_NOUNS))]]
    return " ".join(w) + "."


def _code_line(rng: np.random.Generator) -> str:
    t = _CODE_LINES[rng.integers(len(_CODE_LINES))]
    return t.format(n=_VERBS[rng.integers(len(_VERBS))] + "_" + _NOUNS[rng.integers(len(_NOUNS))],
                    N=_NOUNS[rng.integers(len(_NOUNS))].title(), a=_NOUNS[rng.integers(len(_NOUNS))],
                    b=_NOUNS[rng.integers(len(_NOUNS))])


def _piece(rng: np.random.Generator, style: str, i: int) -> str:
    if style == "code":
        if i % 12 == 0:
            return "\n```python\n" if i % 24 == 0 else "\n```\n" + _sentence(rng) + "\n"
        return _code_line(rng) + "\n"
    if style == "math":
        a, b = int(rng.integers(2, 500)), int(rng.integers(2, 90))
        return (f"Step {i + 1}: {_sentence(rng)} {a} × {b} = {a * b}.\n" if i % 3 == 0 else _sentence(rng) + " ")
    if style == "grade":
        if i == 0:
            return f'{{"score": {int(rng.integers(1, 11))}, "preferred": "{"AB"[rng.integers(2)]}", "rationale": "'
        return _sentence(rng) + " "
    if style == "tool":
        if i == 0:
            return f'I will call `{_VERBS[rng.integers(len(_VERBS))]}_{_NOUNS[rng.integers(len(_NOUNS))]}` with ' \
                   f'{{"query": "{_NOUNS[rng.integers(len(_NOUNS))]}", "limit": {int(rng.integers(1, 50))}}}.\n'
        return _sentence(rng) + " "
    if style == "reasoning":
        return (_THINK[rng.integers(len(_THINK))] + " " if i % 4 == 0 else "") + _sentence(rng) + (
            "\n\n" if i % 6 == 5 else " ")
    if style == "list":
        return f"{i + 1}. {_sentence(rng)}\n"
    return _sentence(rng) + ("\n\n" if i % 5 == 4 else " ")


_BANKS: dict[str, list[str]] = {}


def _bank(style: str) -> list[str]:
    """A fixed bank of pieces per style (seeded once), so pools are cheap joins of bank entries."""
    if style not in _BANKS:
        rng = np.random.default_rng(sum(map(ord, style)))
        _BANKS[style] = [_piece(rng, style, i) for i in range(600)]
    return _BANKS[style]


def make_text(rng: np.random.Generator, style: str, chars: int) -> str:
    bank = _bank(style)
    head = _piece(rng, style, 0) if style in ("grade", "tool") else ""
    est = max(4, int(chars / 60) + 4)
    idx = rng.integers(1, len(bank), size=est)
    s = head + "".join(bank[i] for i in idx)
    while len(s) < chars:
        s += "".join(bank[i] for i in rng.integers(1, len(bank), size=est))
    s = s[:chars]
    if style == "grade":
        s = s[: max(0, chars - 2)] + '"}'
    return s.strip() or "ok"


def lognormal_lengths(rng: np.random.Generator, n: int, median: float, sigma: float, lo: int = 8, hi: int = 60_000
                      ) -> np.ndarray:
    return np.clip(rng.lognormal(np.log(median), sigma, size=n), lo, hi).astype(np.int64)


def text_pool(rng: np.random.Generator, style: str, median: float, sigma: float, size: int = 256) -> list[str]:
    return [make_text(rng, style, int(c)) for c in lognormal_lengths(rng, size, median, sigma)]


def add_typos(rng: np.random.Generator, s: str, rate: float) -> str:
    """Keyboard-ish noise: drop, double or swap a letter now and then."""
    if rate <= 0 or len(s) < 4:
        return s
    out = list(s)
    n = max(1, int(len(s) * rate * 0.02))
    for _ in range(n):
        i = int(rng.integers(1, len(out) - 1))
        if not out[i].isalpha():
            continue
        op = rng.integers(3)
        if op == 0:
            del out[i]
        elif op == 1:
            out.insert(i, out[i])
        else:
            out[i], out[i - 1] = out[i - 1], out[i]
    return "".join(out)
