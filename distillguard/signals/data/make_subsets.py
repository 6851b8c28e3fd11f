"""Rebuild the shipped corpus subsets from the shared public prompt data (see README.md here).

    python distillguard/signals/data/make_subsets.py /work/shared/data

Deterministic: fixed selection rules, no randomness, so two runs write identical files.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent


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
    # Benign prompts (negatives and hard negatives for the lexical models).
    dolly = list(rows(src / "benign_dolly_open_qa.jsonl"))
    print("dolly", write(corp / "benign_dolly_open_qa.jsonl", every(dolly, 3, 1200)))
    chat = [dict(r, text=r["text"][:2000]) for r in rows(src / "benign_chatgpt_prompts.jsonl") if r["category"] == "text"]
    print("chatgpt", write(corp / "benign_chatgpt_prompts.jsonl", every(chat, 2, 500)))
    arena = list(rows(src / "benign_arena_hard.jsonl"))
    print("arena", write(corp / "benign_arena_hard.jsonl", every(arena, 2, 625)))
    bfcl = list(rows(src / "tools_bfcl.jsonl"))
    print("bfcl", write(corp / "tools_bfcl.jsonl", every(bfcl, 6, 600)))
    tf = list(rows(src / "tools_gpteacher_toolformer.jsonl"))
    print("toolformer", write(corp / "tools_gpteacher_toolformer.jsonl", every(tf, 15, 500)))
    # Task sets indexed by the task-item fingerprint: complete.
    for name in ("tasks_gsm8k", "tasks_humaneval", "tasks_code"):
        print(name, write(tasks / f"{name}.jsonl", rows(src / f"{name}.jsonl")))
    for lic in (src / "LICENSES").iterdir():
        shutil.copy(lic, HERE / "LICENSES" / lic.name)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"))
