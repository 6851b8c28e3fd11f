"""Training data and evaluation data are disjoint (issue 11).

- No text the simulator can emit (its corpora, task lists and template wording, normalised) is
  inside any training text of the lexical models, so benign false-positive rates measured on
  simulated worlds are not flattered by training on the same prompts.
- The independent held-out evaluation set (``data/eval/``) and the ``*.heldout.txt`` phrasings are
  never opened while the training set is built (an audit hook records every file opened), and no
  evaluation line appears inside a training text.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distillguard.signals import corpus, disjoint, evalset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def training_texts():
    texts, _ = corpus.training_set()
    return texts


def test_leak_finder_finds_a_planted_simulator_text():
    sim = disjoint.simulator_prompts()["corpora/benign_dolly_open_qa.jsonl"]
    long_q = next(t for t in sim if len(disjoint.words(t)) >= 12)
    short_q = next(t for t in sim if 4 <= len(disjoint.words(t)) < disjoint.SHINGLE)
    planted = [f"Rate this answer from 1 to 10.\n\n{long_q.upper()}  ", "unrelated text " + short_q]
    assert set(disjoint.leaks(planted, [long_q, short_q])) == {long_q, short_q}
    assert disjoint.leaks(["Rate this answer from 1 to 10."], [long_q, short_q]) == []


def test_simulator_texts_cover_corpora_tasks_and_templates():
    files = disjoint.simulator_prompts()
    assert "corpora/benign_dolly_open_qa.jsonl" in files and "attacks/tasks/math_synth.jsonl" in files
    assert sum(len(v) for v in files.values()) > 10_000
    assert len(disjoint.simulator_template_fragments()) > 100


def test_no_simulator_text_in_training(training_texts):
    leaked = disjoint.leaks(training_texts, disjoint.simulator_texts())
    assert leaked == [], f"{len(leaked)} simulator texts in training, e.g. {leaked[:3]}"


def test_no_eval_line_in_training(training_texts):
    files = sorted(evalset.EVAL_DIR.glob("*.txt"))
    assert {f for s in evalset.SETS.values() for f in s} <= {p.name for p in files}
    lines = [ln.text.replace("{task}", " ") for p in files for ln in evalset.read_eval(p)]
    # each slot-free stretch of an eval line is looked for, so a wrapper copied around a payload counts
    pieces = [p for t in lines for p in t.split("\n") if len(disjoint.words(p)) >= 4]
    leaked = disjoint.leaks(training_texts, pieces)
    assert leaked == [], leaked[:5]


def test_training_never_opens_eval_or_simulator_files(tmp_path):
    code = f"""
import sys, json
opened = []
sys.addaudithook(lambda ev, args: opened.append(str(args[0])) if ev == "open" and isinstance(args[0], str) else None)
from distillguard.signals import corpus
corpus.training_set()
json.dump(opened, open({str(tmp_path / 'opened.json')!r}, "w"))
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    opened = [Path(p).resolve() for p in json.loads((tmp_path / "opened.json").read_text())]
    data = [p for p in opened if corpus.DATA.resolve() in p.parents]
    assert any(p.name == "train_gsm8k.jsonl" for p in data)  # the hook does see the training reads
    eval_dir = evalset.EVAL_DIR.resolve()
    assert not [p for p in opened if eval_dir in p.parents or p.name.endswith(".heldout.txt")]
    assert not [p for p in opened if disjoint.SIM_DATA.resolve() in p.parents]
    assert not [p for p in corpus.training_files() if eval_dir in p.resolve().parents]
