import json
import re
from pathlib import Path

import pyarrow as pa

from distillguard.signals import score_texts
from distillguard.signals.tasks import build_index, match
from distillguard.signals.template import masked_tokens

TASKS = Path(__file__).parents[2] / "distillguard" / "signals" / "data" / "tasks"


def _items(name, n, step=97):
    rows = [json.loads(line) for line in (TASKS / name).open()]
    return rows[::step][:n]


WRAPPERS = [
    "Solve the following problem. Think step by step and show all of your reasoning.\n\n{}",
    "{}\n\nPut your final answer after ####.",
    "Problem: {}\nWrite the hidden chain of thought first, then the answer.",
    "Here is a task from my list, please do it carefully:\n---\n{}\n---\nThanks!",
]


def test_wrapped_gsm8k_items_match_their_key():
    items = _items("tasks_gsm8k.jsonl", 40)
    texts = [WRAPPERS[i % len(WRAPPERS)].format(r["text"]) for i, r in enumerate(items)]
    res = score_texts(texts, detectors=["task_dataset"])
    hits = sum(k == r["id"] for k, r in zip(res["task_item_key"], items, strict=True))
    assert hits >= 36, hits
    assert (res["task_dataset"] >= 0.5).sum() >= 36


def test_renumbered_and_renamed_items_still_match():
    items = _items("tasks_gsm8k.jsonl", 20, step=131)
    changed = [re.sub(r"\d+", lambda m: str(int(m.group()) + 3), r["text"]) for r in items]
    res = score_texts(["Answer with reasoning: " + t for t in changed], detectors=["task_dataset"])
    assert sum(k == r["id"] for k, r in zip(res["task_item_key"], items, strict=True)) >= 16


def test_humaneval_and_code_items_match():
    he = _items("tasks_humaneval.jsonl", 10, step=16)
    code = _items("tasks_code.jsonl", 10, step=401)
    res = score_texts(["Complete this function:\n" + r["text"] for r in he]
                      + ["You are an expert programmer. " + r["text"] + "\nExplain your reasoning first." for r in code],
                      detectors=["task_dataset"])
    ids = [r["id"] for r in he + code]
    assert sum(k == i for k, i in zip(res["task_item_key"], ids, strict=True)) >= 17


def test_unrelated_math_does_not_match():
    own = [
        "A cyclist rides 18 km uphill at 9 km/h and returns downhill at 27 km/h. What is her average speed?",
        "If 3 pumps empty a pool in 12 hours, how long would 4 identical pumps take?",
        "What is the sum of all two-digit numbers divisible by 7?",
        "A rectangle's length is twice its width and its perimeter is 54 cm. Find its area.",
        "Sam has twice as many marbles as Leo. Together they have 63. How many does Leo have?",
        "My grandmother knits 3 scarves a week. How many scarves will she knit in a year?",
        "How many ways can 5 books be arranged on a shelf if two must stay together?",
        "Compute the derivative of x^3 * sin(x).",
    ]
    res = score_texts(own, detectors=["task_dataset"])
    assert all(k is None for k in res["task_item_key"])
    assert (res["task_dataset"] < 0.5).all()


def test_extra_task_set(tmp_path):
    p = tmp_path / "mine.jsonl"
    p.write_text(json.dumps({"id": "acme/eval/1", "text": "Describe the migration path of the arctic tern between "
                                                          "Greenland and the Weddell Sea across one full year."}) + "\n")
    idx = build_index([p])
    mt = masked_tokens(pa.array(["Please answer: describe the migration path of the arctic tern between Greenland "
                                 "and the Weddell Sea across one full year. Be brief.", "unrelated text here"]))
    m = match(mt, idx)
    assert m.key.to_pylist() == ["acme/eval/1", None]


def test_bucket_lookup_is_a_lower_bound_over_all_keys():
    import numpy as np

    from distillguard.signals.tasks import _lower_bound, get_index

    index = get_index()
    rng = np.random.default_rng(5)
    probe = np.concatenate([index.keys[rng.integers(0, len(index.keys), 500)],
                            rng.integers(0, 2**63, 500, dtype=np.uint64) * np.uint64(2), index.keys[:1], index.keys[-1:],
                            np.array([0, 2**64 - 1], dtype=np.uint64)])
    assert (_lower_bound(index, probe) == np.searchsorted(index.keys, probe)).all()
