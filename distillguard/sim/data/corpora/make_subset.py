"""Rebuild this folder's prompt subsets from the full corpora (see ATTRIBUTION.md).

Usage: python make_subset.py /path/to/shared/data
Keeps the source JSONL format (id, source, text, category) and row order; only filters and truncates
the row list, so every row is verbatim from the source file.
"""

import json
import shutil
import sys
from pathlib import Path

# file → (output name, max rows, max text chars, category filter or None)
PLAN = [
    ("benign_dolly_open_qa.jsonl", "benign_dolly_open_qa.jsonl", None, None, None),
    ("benign_chatgpt_prompts.jsonl", "benign_chatgpt_prompts.jsonl", 500, 1500, "text"),
    ("benign_arena_hard.jsonl", "benign_arena_hard.jsonl", 900, 2500, None),
    ("tasks_gsm8k.jsonl", "tasks_gsm8k_test.jsonl", None, None, "test"),
    ("tasks_gsm8k.jsonl", "tasks_gsm8k_train.jsonl", 2000, None, "train"),
    ("tasks_humaneval.jsonl", "tasks_humaneval.jsonl", None, None, None),
    ("tasks_code.jsonl", "tasks_code.jsonl", 1500, None, None),
    ("tools_bfcl.jsonl", "tools_bfcl.jsonl", 1500, 600, None),
    ("tools_gpteacher_toolformer.jsonl", "tools_gpteacher_toolformer.jsonl", 1000, None, None),
]


def main(src: Path, dest: Path) -> None:
    for name, out, rows, chars, cat in PLAN:
        kept = []
        for line in (src / name).open(encoding="utf-8"):
            rec = json.loads(line)
            if cat and rec["category"] != cat:
                continue
            if chars and len(rec["text"]) > chars:
                continue
            kept.append(line if line.endswith("\n") else line + "\n")
            if rows and len(kept) >= rows:
                break
        (dest / out).write_text("".join(kept), encoding="utf-8")
        print(f"{out}: {len(kept)} rows")
    shutil.copytree(src / "LICENSES", dest / "LICENSES", dirs_exist_ok=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).parent)
