"""Training and held-out sets for the lexical models, built from the shipped data files.

Attack traffic is "instruction wrapper + task payload": the same GSM8K problem or coding task
arrives wrapped in "show your hidden reasoning" or "grade this answer". So every attack phrasing
is composed with payloads drawn from the same pools as the benign examples; the payload then
carries no evidence for the tactic and the model must learn the wrapper. Hard negatives
(tutoring "explain step by step", code review, "rewrite this paragraph", benchmark research)
are composed the same way so they sit right next to the attacks in feature space.

Phrase files (``data/phrases/<name>.txt`` and ``<name>.heldout.txt``): one phrasing per line,
``#`` starts a comment, ``{task}`` marks where the payload goes (otherwise it goes before or
after), leading ``@tactic`` tags add labels (``@coding Review this diff...``), and ``((a|b|c))``
is an alternation: each composition picks one option at random, so one line stands for many
phrasings without listing every combination. Held-out
files are never read for training. Training payloads and benign rows come from ``data/corpora``,
which holds no text the simulator emits (``disjoint.py``); the held-out payloads and benign rows
are the simulator's own corpora, so the held-out numbers measure generalisation to phrasings and
prompts the model has not seen, and a simulated world's benign traffic is never trained on.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from distillguard.signals import lexical
from distillguard.signals.lexical import TACTICS

DATA = Path(__file__).parent / "data"
PHRASES = DATA / "phrases"
ATTACK_TACTICS = ("cot_elicitation", "reward_grading", "policy_rewrite", "synthetic_data")
CAPABILITIES = ("coding", "agentic", "computer_use", "vision", "data_analysis")
#: Compositions generated per phrasing line.
REPEATS = 6
#: Hard negatives are composed this many times more often than attack phrasings: they are the
#: evidence that "step by step", "final answer" or "rate 1-5" alone is not the tactic, and they
#: are outnumbered by the attack phrasings that use the same words.
HARD_NEGATIVE_WEIGHT = 2
#: Real benign prompts count this many times in training: they are the only negatives not written
#: around the attacks' vocabulary, and what a provider's traffic mostly looks like.
BENIGN_WEIGHT = 5
#: Compositions of a line with ``((a|b))`` alternations, as a multiple of the plain lines'.
ALTERNATION_REPEATS = 4


_TACTIC_WORDS = re.compile(r"\b(score|scores|rate|rated|rating|response|responses|rank|ranked|grade|graded|"
                           r"judge|judges|better|best|compare|reasoning|think|thought|explain|step|steps|full|complete|completed|every|"
                           r"entire|whole|write|writes|wrote|continue|continues|official|review|neutral|output|expected|result|"
                           r"correct|answer|answers|evaluate|label|labels|sum|total|question|questions|instruction|"
                           r"instructions|task|tasks|problem|problems|prompt|prompts|test|tests|quiz|new|harder|"
                           r"generate|create|rewrite|each|list)\b", re.I)


@dataclass(frozen=True)
class Phrase:
    text: str
    tags: tuple[str, ...]


def read_phrases(path: Path) -> list[Phrase]:
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tags = []
        while line.startswith("@"):
            tag, _, line = line.partition(" ")
            tags.append(tag[1:])
            line = line.strip()
        for t in tags:
            if t not in TACTICS:
                raise ValueError(f"{path.name}: unknown tag @{t} (choose from {', '.join(TACTICS)})")
        out.append(Phrase(line.replace("\\n", "\n"), tuple(tags)))
    return out


def _rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def training_files() -> list[Path]:
    """Every file whose content determines the fitted model (hashed into the cache key)."""
    files = sorted(p for p in PHRASES.glob("*.txt") if not p.name.endswith(".heldout.txt"))
    files += sorted((DATA / "corpora").glob("*.jsonl"))
    return files + [Path(__file__)]


# Per benign source: which capability labels it carries (1), contradicts (0) or says nothing about (-1).
def _source_labels(source: str, category: str) -> dict[str, int]:
    lab = {t: 0 for t in TACTICS}
    if source == "chatgpt":
        # "Act as a Linux terminal / Excel sheet / ..." role prompts: ambiguous for capabilities.
        for c in CAPABILITIES:
            lab[c] = -1
    elif source == "arena":
        lab["coding"] = 1 if category.endswith("/coding") else (-1 if category == "arena-hard-v0.1" else 0)
        lab["data_analysis"] = -1 if category == "arena-hard-v0.1" else 0
    elif source in ("code", "humaneval"):
        lab["coding"] = 1
        lab["data_analysis"] = -1
    elif source == "toolformer":
        lab["agentic"] = 1
    elif source == "bfcl":
        lab["agentic"] = -1
        lab["coding"] = -1
        lab["data_analysis"] = -1
    return lab


#: Training benign sources: public prompts the simulator never emits (``data/make_subsets.py``).
_TRAIN_SOURCES = {"chatgpt": "benign_chatgpt_prompts.jsonl", "arena": "benign_arena_hard.jsonl",
                  "bfcl": "tools_bfcl.jsonl", "toolformer": "tools_gpteacher_toolformer.jsonl",
                  "gsm8k": "train_gsm8k.jsonl", "code": "train_code.jsonl"}
#: Held-out benign sources: the simulator's own corpora, i.e. the benign traffic of every simulated
#: world. Read only for evaluation; tests/signals/test_disjoint.py proves no row is trained on.
_HELDOUT_SOURCES = {"dolly": "benign_dolly_open_qa.jsonl", "chatgpt": "benign_chatgpt_prompts.jsonl",
                    "arena": "benign_arena_hard.jsonl", "bfcl": "tools_bfcl.jsonl",
                    "toolformer": "tools_gpteacher_toolformer.jsonl", "gsm8k": "tasks_gsm8k_test.jsonl",
                    "gsm8k_train": "tasks_gsm8k_train.jsonl", "code": "tasks_code.jsonl",
                    "humaneval": "tasks_humaneval.jsonl"}
SIM_CORPORA = Path(__file__).resolve().parents[1] / "sim" / "data" / "corpora"


@cache
def _pools(heldout: bool) -> dict[str, list[tuple[str, dict[str, int]]]]:
    """Benign documents and payloads, each with its source labels."""
    if heldout:
        sources = {k: _rows(SIM_CORPORA / f) for k, f in _HELDOUT_SOURCES.items()}
    else:
        sources = {k: _rows(DATA / "corpora" / f) for k, f in _TRAIN_SOURCES.items()}
        gsm, code = sources["gsm8k"], sources["code"]
        # Hard-negative mining: plain task items that use the attack tactics' vocabulary ("her
        # mean score", "the response rate", "the expected output") in their ordinary sense.
        sources["gsm8k"] = gsm[:2500] + [r for r in gsm[2500:] if _TACTIC_WORDS.search(r["text"])][:1500]
        sources["code"] = code[:1500] + [r for r in code[1500:] if _TACTIC_WORDS.search(r["text"])][:1000]
    return {k: [(r["text"], _source_labels(k.split("_")[0], r.get("category", ""))) for r in v]
            for k, v in sources.items()}


def _payloads(heldout: bool) -> list[tuple[str, dict[str, int]]]:
    p = _pools(heldout)
    out = p["gsm8k"][:600] + p["code"][:400]
    if heldout:
        out += p["humaneval"] + p["dolly"][:300]
    else:
        out += p["bfcl"][:300]
    out += [x for x in p["arena"] if len(x[0]) < 2500][:200]
    return out


_FORMS = ("{p}\n\n{t}", "{t}\n\n{p}", "{p} {t}", "{p}\n{t}", "{p}", "{t}\n---\n{p}")


_ALTERNATION = re.compile(r"\(\(([^()]*)\)\)")


def _expand(text: str, rng: np.random.Generator) -> str:
    """One random reading of every ``((a|b|c))`` group in a phrasing."""
    if "((" not in text:
        return text

    def pick(m: re.Match) -> str:
        options = m.group(1).split("|")
        return options[int(rng.integers(len(options)))]

    return _ALTERNATION.sub(pick, text)


def _typo(text: str, rng: np.random.Generator) -> str:
    """Swap two adjacent letters once: attackers' prompts are not spell-checked."""
    if len(text) < 12:
        return text
    i = int(rng.integers(1, len(text) - 2))
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


def _compose(phrases: list[Phrase], base: dict[str, int], payloads, rng, repeats: int):
    texts, labels, line = [], [], []
    for n, ph in enumerate(phrases):
        # An alternation line stands for many phrasings, so it is composed more often.
        for r in range(repeats * (ALTERNATION_REPEATS if "((" in ph.text else 1)):
            payload, plab = payloads[int(rng.integers(len(payloads)))]
            phrase = _expand(ph.text, rng)
            if "{task}" in phrase:
                text = phrase.replace("{task}", payload)
                with_payload = True
            else:
                form = _FORMS[int(rng.integers(len(_FORMS)))] if r else "{p}"
                text = form.format(p=phrase, t=payload)
                with_payload = "{t}" in form
            if rng.random() < 0.2:
                text = _typo(text, rng)
            lab = dict(base)
            for tag in ph.tags:
                lab[tag] = 1
            if with_payload:
                # The payload brings its own capability (a coding task is coding whatever wraps it).
                for c in CAPABILITIES:
                    if lab[c] != 1 and plab[c] != 0:
                        lab[c] = plab[c]
            texts.append(text)
            labels.append([lab[t] for t in TACTICS])
            line.append(n)
    return texts, labels, line


def _phrase_files(heldout: bool) -> dict[str, Path]:
    suffix = ".heldout.txt" if heldout else ".txt"
    out = {}
    for p in sorted(PHRASES.glob("*" + suffix)):
        name = p.name[: -len(suffix)]
        if not heldout and (name.endswith(".heldout") or "." in name):
            continue
        out[name] = p
    return out


def _addenda() -> list[tuple[str, Path]]:
    """Training addenda ``<name>.<round>.txt`` (e.g. ``cot_elicitation.round8.txt``): (name, path).

    A round's new lines go here rather than into ``<name>.txt`` because the main files share one random
    stream (payload picks, alternation readings, typos): a line inserted there re-draws every later
    composition, so the refit differs by that noise as well as by the line, and a round could not tell
    the two apart. Each addendum is composed after all main files, from its own stream."""
    out = []
    for p in sorted(PHRASES.glob("*.txt")):
        name, _, rest = p.name[: -len(".txt")].partition(".")
        if rest and rest != "heldout":
            out.append((name, p))
    return out


def build(heldout: bool, seed: int = 7, repeats: int = REPEATS) -> tuple[list[str], np.ndarray, list[str]]:
    """(texts, labels (n, tactics) in {-1,0,1}, group) for the training or the held-out split.

    ``group`` names where each row came from (``attack:<tactic>``, ``hard_negative``,
    ``benign:<source>``) so evaluations can report per group.
    """
    texts, labels, groups, _ = build_keyed(heldout, seed, repeats)
    return texts, labels, groups


def build_keyed(heldout: bool, seed: int = 7, repeats: int = REPEATS):
    """``build`` plus each row's unit key: the phrasing line it was composed from, or the benign
    document it copies (a row's parts share its key). Rows with one key are near-copies of each other,
    so calibration folds split by key (``lexical.fit``): a phrasing's compositions on both sides of a
    fold would make the out-of-fold scores measure memory, not the unseen wording the model meets."""
    rng = np.random.default_rng(seed + (1000 if heldout else 0))
    payloads = _payloads(heldout)
    texts: list[str] = []
    labels: list[list[int]] = []
    groups: list[str] = []
    keys: list[str] = []
    files = [(name, path, rng) for name, path in _phrase_files(heldout).items()]
    if not heldout:
        files += [(name, path, np.random.default_rng([seed, zlib.crc32(path.name.encode())]))
                  for name, path in _addenda()]
    for name, path, stream in files:
        phrases = read_phrases(path)
        if name == "hard_negatives":
            base = {t: 0 for t in TACTICS}
            group = "hard_negative"
        elif name in TACTICS:
            base = {t: 0 for t in ATTACK_TACTICS}
            base.update({c: 0 for c in CAPABILITIES})
            base[name] = 1
            group = f"attack:{name}" if name in ATTACK_TACTICS else f"capability:{name}"
        else:
            raise ValueError(f"phrase file {path.name}: name must be hard_negatives or one of {', '.join(TACTICS)}")
        weight = HARD_NEGATIVE_WEIGHT if group == "hard_negative" and not heldout else 1
        t, lab, line = _compose(phrases, base, payloads, stream, repeats * weight)
        texts += t
        labels += lab
        groups += [group] * len(t)
        keys += [f"{path.name}:{i}" for i in line]
    for src, docs in _pools(heldout).items():
        for _ in range(1 if heldout else BENIGN_WEIGHT):
            for i, (text, lab) in enumerate(docs):
                texts.append(text)
                labels.append([lab[t] for t in TACTICS])
                groups.append(f"benign:{src}")
                keys.append(f"{src}:{i}")
    if not heldout:
        # The models also score a prompt's first and last parts alone (lexical.edge_parts), so the
        # parts of benign prompts and hard negatives are negatives too ("Score:" closing a benchmark
        # item, a tutoring line after a problem). Attack tactics only; capabilities say nothing.
        neg = [i for i, g in enumerate(groups) if g == "hard_negative" or g.startswith("benign:")]
        parts, owner = lexical.edge_parts([texts[i] for i in neg])
        part_label = [0 if t in ATTACK_TACTICS else -1 for t in TACTICS]
        texts += parts
        labels += [part_label] * len(parts)
        groups += ["negative_part"] * len(parts)
        keys += [keys[neg[o]] for o in owner]
    return texts, np.array(labels, dtype=np.int8), groups, keys


def training_set() -> tuple[list[str], np.ndarray]:
    texts, labels, _ = build(heldout=False)
    return texts, labels


def training_set_keyed() -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """The training set, each row's unit key (see ``build_keyed``) and a mask of real benign prompts."""
    texts, labels, groups, keys = build_keyed(heldout=False)
    return texts, labels, keys, np.array([g.startswith("benign:") for g in groups])


def heldout_set() -> tuple[list[str], np.ndarray, list[str]]:
    return build(heldout=True, repeats=3)
