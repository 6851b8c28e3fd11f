"""Rebuild the shipped corpus subsets from the shared public prompt data (see README.md here).

    python distillguard/signals/data/make_subsets.py /work/shared/data

Training subsets (``corpora/``) leave out every row the simulator can emit (its corpora and task
lists, ``distillguard/sim/data``): the simulator's benign traffic is the signals' held-out benign
evaluation, so no row of it may be trained on (tests/signals/test_disjoint.py checks the result).
The task-item index (``tasks/``) is a lookup of public task sets, not training data, and stays
complete. Deterministic: fixed selection rules, no randomness, so two runs write identical files.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[2]))

from distillguard.signals.disjoint import leaking_rows, simulator_texts  # noqa: E402


def rows(path: Path):
    with path.open(encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def write(path: Path, items) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for r in items:
            f.write(json.dumps({"id": r["id"], "text": r["text"], "category": r["category"]}, ensure_ascii=False) + "\n")
            n += 1
    return n


def every(items, step: int, limit: int):
    return [r for i, r in enumerate(items) if i % step == 0][:limit]


def main(src: Path) -> None:
    corp = HERE / "corpora"
    tasks = HERE / "tasks"
    sim = simulator_texts()

    def unseen(name: str):
        # Rows containing any simulator text (the row itself, a near-duplicate of it, or a
        # template's wording) are left out, as tests/signals/test_disjoint.py requires.
        rs = list(rows(src / name))
        drop = leaking_rows([r["text"] for r in rs], sim)
        return [r for i, r in enumerate(rs) if i not in drop]

    for old in corp.glob("*.jsonl"):
        old.unlink()
    # Benign prompts (negatives for the lexical models). Dolly's open_qa subset is not shipped:
    # the simulator emits every one of its rows.
    chat = [dict(r, text=r["text"][:2000]) for r in unseen("benign_chatgpt_prompts.jsonl") if r["category"] != "image"]
    print("chatgpt", write(corp / "benign_chatgpt_prompts.jsonl", chat))
    print("arena", write(corp / "benign_arena_hard.jsonl", unseen("benign_arena_hard.jsonl")))
    print("bfcl", write(corp / "tools_bfcl.jsonl", every(unseen("tools_bfcl.jsonl"), 2, 1200)))
    print("toolformer", write(corp / "tools_gpteacher_toolformer.jsonl",
                              every(unseen("tools_gpteacher_toolformer.jsonl"), 6, 1000)))
    # Task payloads and task-item negatives for training (HumanEval is left out: all of it is simulated).
    gsm = [r for r in unseen("tasks_gsm8k.jsonl") if r["category"] == "train"]
    print("train_gsm8k", write(corp / "train_gsm8k.jsonl", gsm[:4500]))
    print("train_code", write(corp / "train_code.jsonl", unseen("tasks_code.jsonl")[:3000]))
    # Task sets indexed by the task-item fingerprint: complete.
    for name in ("tasks_gsm8k", "tasks_humaneval", "tasks_code"):
        print(name, write(tasks / f"{name}.jsonl", rows(src / f"{name}.jsonl")))
    for lic in (src / "LICENSES").iterdir():
        shutil.copy(lic, HERE / "LICENSES" / lic.name)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"))
