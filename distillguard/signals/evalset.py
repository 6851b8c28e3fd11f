"""Per-prompt evaluation on the independent held-out set (``data/eval/``), the issue-11 targets.

The set is attack phrasings grouped by family (indirect CoT, long-CoT system prompts, ReAct
trajectory synthesis, deflecting replies for a regulated chatbot, code review with a probability,
judge templates, instruction evolution, self-instruct, persona questions) and hard negatives that
share their vocabulary. It was written apart from the training phrasings, and the training code
never opens its directory (tests/signals/test_disjoint.py). Payloads and the benign rows are the
simulator's corpora, which are not trained on either.

Six sets (``SETS``): ``v1``; ``v2``, written later in other voices and 13 languages, before the
multilingual training phrasings, to check that the model was not fitted to ``v1``; ``v3``, ``v4``, ``v5`` and ``v6``
by other authors, each frozen before the training changes of its round (``v5`` written without reading the
training phrasings at all).
Recall is also reported per tactic and per language (``language``: a rough guess, for reporting; the
scripts and word lists of v5's low-resource languages were added with it, so earlier tables may regroup a few lines).

A prompt counts as caught when any attack-tactic signal reaches the threshold (the later stages
take the maximum over intent signals, so which attack column fires matters less than whether one
does); the tactic's own column is reported beside it. Benign and hard-negative false positives
are counted the same way: any attack-tactic signal at or above the threshold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distillguard.signals import corpus, lexical

EVAL_DIR = corpus.DATA / "eval"
#: The independent sets: name -> (attack file, hard-negative file). ``v1`` was written with the
#: first disjoint training data; ``v2`` later, in other voices and languages, before the
#: multilingual training phrasings, to check the model was not fitted to ``v1``; ``v3`` by another
#: author (tickets, code templates, polite and terse voices; 13 languages, five of them new), frozen
#: before the training changes of its round; ``v4`` by a fourth author (chat, e-mail, CLI help, notebook,
#: methods-section, spec and game voices; 16 languages, Romanian and Greek with no training phrasing),
#: frozen before the full-data scorer and benign budget were trained; ``v5`` by the prm19 helper on
#: 2026-12-05 (screenplay, deposition, lab-notebook, dataset-card, YAML/SQL voices; 34 languages, a dozen of
#: them low-resource), written before reading any training phrasing and frozen before the sixth round's changes;
#: ``v6`` by the prm23 helper on 2026-12-05 (chat-ops, ticket, README, cron, grant, court-reporter and museum-guide
#: voices; ~30 languages, Ukrainian, Urdu and Korean new), also written before reading any training phrasing and
#: committed before the seventh round's changes.
SETS = {"v1": ("attacks.txt", "hard_negatives.txt"), "v2": ("attacks_v2.txt", "hard_negatives_v2.txt"),
        "v3": ("attacks_v3.txt", "hard_negatives_v3.txt"), "v4": ("attacks_v4.txt", "hard_negatives_v4.txt"),
        "v5": ("attacks_v5.txt", "hard_negatives_v5.txt"), "v6": ("attacks_v6.txt", "hard_negatives_v6.txt")}
THRESHOLD = 0.5
#: Payload compositions per phrasing that has no ``{task}`` slot (besides the phrasing alone).
EXTRA_COMPOSITIONS = 2
#: Compositions per phrasing with a ``{task}`` slot.
SLOT_COMPOSITIONS = 3
SEED = 20261203


@dataclass(frozen=True)
class EvalLine:
    family: str
    tactic: str | None  # None for hard negatives
    text: str
    system: bool


def read_eval(path: Path) -> list[EvalLine]:
    """Parse an eval file: ``[family]`` sections, ``@tactic`` tags, ``system:`` prefix, ``\\n`` breaks."""
    out, family = [], "default"
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            family = line[1:-1]
            continue
        tactic = None
        if line.startswith("@"):
            tag, _, line = line.partition(" ")
            tactic = tag[1:]
            if tactic not in lexical.TACTICS:
                raise ValueError(f"{path.name}:{n}: unknown tactic @{tactic}")
        system = line.startswith("system:")
        if system:
            line = line[len("system:"):].strip()
        out.append(EvalLine(family, tactic, line.replace("\\n", "\n"), system))
    return out


def compose(lines: list[EvalLine], payloads: list[str], rng: np.random.Generator):
    """(prompt, system prompt or None, line) per composition, deterministic for a given rng."""
    rows = []
    for ln in lines:
        picks = [payloads[int(i)] for i in rng.integers(len(payloads), size=max(SLOT_COMPOSITIONS, EXTRA_COMPOSITIONS))]
        if ln.system:
            rows += [(p, ln.text, ln) for p in picks[:SLOT_COMPOSITIONS]]
        elif "{task}" in ln.text:
            rows += [(ln.text.replace("{task}", p), None, ln) for p in picks[:SLOT_COMPOSITIONS]]
        else:
            rows.append((ln.text, None, ln))
            if ln.tactic is not None:  # an attack wrapper arrives with a payload; a plain question alone
                forms = ("{p}\n\n{t}", "{t}\n\n{p}")
                rows += [(forms[i % 2].format(p=ln.text, t=p), None, ln) for i, p in enumerate(picks[:EXTRA_COMPOSITIONS])]
    return rows


def attack_scores(model: lexical.LexicalModel, prompts: list[str], systems: list[str | None]) -> np.ndarray:
    """Scores (n, tactics) as the detectors compute them: the max over prompt and system prompt."""
    p = model.predict(prompts)
    idx = [i for i, s in enumerate(systems) if s]
    if idx:
        ps = model.predict([systems[i] for i in idx])
        p[idx] = np.maximum(p[idx], ps)
    return p


_SCRIPTS = (("ja", re.compile(r"[\u3040-\u30ff]")), ("ko", re.compile(r"[\uac00-\ud7af]")),
            ("zh", re.compile(r"[\u4e00-\u9fff]")), ("ru", re.compile(r"[\u0400-\u04ff]")),
            ("fa", re.compile(r"[\u067e\u0686\u0698\u06af\u06cc]")), ("ar", re.compile(r"[\u0600-\u06ff]")),
            ("he", re.compile(r"[\u0590-\u05ff]")), ("el", re.compile(r"[\u0370-\u03ff]")),
            ("bn", re.compile(r"[\u0980-\u09ff]")), ("hi", re.compile(r"[\u0900-\u097f]")),
            ("ta", re.compile(r"[\u0b80-\u0bff]")), ("th", re.compile(r"[\u0e00-\u0e7f]")))
_WORDS = {
    "es": "el la los las que para por una como sin cada pero esta este respuesta ¿", "fr": "le les des une pour sans chaque est cette réponse tu ta ton",
    "de": "der die das und nicht ist eine ohne jede deine diese antwort", "pt": "o os um uma da é sem cada não você esta resposta seu sua melhor fazer só depois",
    "it": "il gli una senza ogni non questa risposta tuo tua", "nl": "het een en niet voor zonder elke deze je jouw antwoord",
    "tr": "bir ve için bu her yanıtı cevap ile gibi", "pl": "dla bez każdy każdej ta się jest odpowiedzi",
    "id": "yang dan untuk ini dengan tanpa setiap jawaban dari buatlah tulis", "vi": "và của cho này không từng câu trả lời các một hãy để bước",
    "sv": "och att för det inte utan varje svaret från som av ditt nedan", "cs": "pro bez každý každou tuto odpověď které níže podle jako vlády",
    "ro": "și să pentru fără este răspuns această tău te mi pe",
    "sw": "na kwa kila hii jibu swali bila kisha hatua wazo mwisho kati",
    "tl": "ang ng mga bawat sagot mo isang para tanong lang habang walang",
    "hu": "az és hogy egy minden választ válasz között nélkül majd meg",
    "fi": "ja että tai jokaisen vastaus vastauksen ilman sekä lopuksi kun",
    "ms": "jawapan soalan anda supaya bagi semula baharu pelbagai",
    "yo": "ní láti àti fún kí ìdáhùn sí ó",
    "ha": "wannan ta ba shugabanni idan cikin kuma",
    "en": "the and you your for this that with each every answer please",
}


def language(text: str) -> str:
    """A rough language guess for reporting recall per language (script first, then common words)."""
    for lang, rx in _SCRIPTS:
        if rx.search(text):
            return lang
    words = re.findall(r"[\w¿]+", text.lower())
    hits = {lang: sum(w in vocab.split() for w in words) for lang, vocab in _WORDS.items()}
    best = max(hits, key=lambda k: (hits[k], k == "en"))
    return best if best == "en" or hits[best] >= 2 else "en"


_benign_memo: dict = {}


def _benign(model: lexical.LexicalModel, threshold: float, attack_cols: tuple[int, ...]) -> dict:
    """Benign prompts flagged per source; the same for every set, so scored once per model and threshold."""
    key = (id(model), model.data_hash, threshold, attack_cols)
    if key not in _benign_memo:
        out = {}
        for src, docs in corpus._pools(heldout=True).items():
            p = model.predict([t for t, _ in docs])
            out[src] = {"n": len(docs), "flagged": int((p[:, attack_cols].max(axis=1) >= threshold).sum())}
        _benign_memo.clear()
        _benign_memo[key] = out
    return {k: dict(v) for k, v in _benign_memo[key].items()}


def report(model: lexical.LexicalModel | None = None, threshold: float = THRESHOLD, eval_set: str = "v1") -> dict:
    model = model or lexical.get_model()
    attack_cols = [model.column(t) for t in corpus.ATTACK_TACTICS if t in model.tactics]
    rng = np.random.default_rng(SEED)
    payloads = [t for t, _ in corpus._payloads(heldout=True)]
    groups = {}
    for name, fname in zip(("attacks", "hard_negatives"), SETS[eval_set], strict=True):
        rows = compose(read_eval(EVAL_DIR / fname), payloads, rng)
        s = attack_scores(model, [r[0] for r in rows], [r[1] for r in rows])
        groups[name] = (rows, s)
    rows, s = groups["attacks"]
    anyhit = s[:, attack_cols].max(axis=1) >= threshold
    fam = {}
    for i, (_, _, ln) in enumerate(rows):
        f = fam.setdefault(ln.family, {"family": ln.family, "tactic": ln.tactic, "n": 0, "own": 0, "any": 0})
        f["n"] += 1
        f["any"] += int(anyhit[i])
        f["own"] += int(ln.tactic in model.tactics and s[i, model.column(ln.tactic)] >= threshold)
    families = [dict(f, recall_own=round(f["own"] / f["n"], 4), recall_any=round(f["any"] / f["n"], 4))
                for f in fam.values()]
    by = {"tactic": {}, "language": {}}
    for i, (_, _, ln) in enumerate(rows):
        for key, val in (("tactic", ln.tactic), ("language", language(ln.text))):
            b = by[key].setdefault(val, [0, 0])
            b[0] += 1
            b[1] += int(anyhit[i])
    hrows, hs = groups["hard_negatives"]
    hhit = hs[:, attack_cols].max(axis=1) >= threshold
    hfam = {}
    for i, (_, _, ln) in enumerate(hrows):
        f = hfam.setdefault(ln.family, [0, 0])
        f[0] += 1
        f[1] += int(hhit[i])
    benign = _benign(model, threshold, tuple(attack_cols))
    nb = sum(b["n"] for b in benign.values())
    fb = sum(b["flagged"] for b in benign.values())
    return {
        "eval_set": eval_set, "threshold": threshold, "model": model.data_hash,
        "attack_prompts": len(rows), "recall_any": round(float(anyhit.mean()), 4),
        "families": families,
        **{f"by_{k}": {name: {"n": n, "caught": c, "recall": round(c / n, 4)} for name, (n, c) in sorted(v.items())}
           for k, v in by.items()},
        "missed": [r[0][:120] for r, h in zip(rows, anyhit, strict=True) if not h],
        "hard_negative_prompts": len(hrows), "hard_negative_fpr": round(float(hhit.mean()), 4),
        "hard_negative_families": {k: {"n": v[0], "flagged": v[1]} for k, v in hfam.items()},
        "hard_negatives_flagged": [r[0][:120] for r, h in zip(hrows, hhit, strict=True) if h],
        "benign_prompts": nb, "benign_fpr": round(fb / nb, 5), "benign": benign,
    }
