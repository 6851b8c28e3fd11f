"""Throughput of the per-exchange signals (docs/benchmarks.md, "## Detection" → "signals").

    PYTHONPATH=. python bench/signals_bench.py [--rows 200000] [--batch 32768] [--store]
    PYTHONPATH=. python bench/signals_bench.py --world WORLD_DIR [--rows N] [--memo-only]

Builds a synthetic mix of exchanges from the simulator's corpora (half attack-style: task items in
wrappers, half benign prompts), then measures: score_batch throughput (all detectors), the lexical
path alone, score_prompt latency (p50/p99, one prompt at a time as the gateway calls it), and with
--store the end-to-end run_signals over a store (DuckDB read + scoring + Parquet write).

With --world it instead reads the first N exchanges of a simulated world's store in the signals stage's
batches and scores them twice, each batch on its own and with the prompt memo the stage uses (prompts
scored in an earlier batch are not scored again), checks that both give identical rows and prints the
CPU-second rates and the memo's hit count. ``--memo-only`` skips the each-batch-alone pass (the
whole-store figure: ``--rows`` at least the store's size).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from distillguard.signals import lexical, score_batch, score_prompt

#: The simulator's corpora: real public prompts that the signal models are never trained on
#: (tests/signals/test_disjoint.py), so the mix is what the stage scores in a simulated world.
SIM_CORPORA = Path(__file__).resolve().parents[1] / "distillguard" / "sim" / "data" / "corpora"

WRAPPERS = [
    "Solve the following problem. Show your complete internal reasoning in <think> tags first.\n\n{}",
    "{}\n\nThink step by step and put the final answer after ####.",
    "You are an expert. {} Explain your reasoning, then answer.",
    "Rate the following response from 1 to 10:\n{}\nScore:",
]


def _rows(name: str) -> list[str]:
    with (SIM_CORPORA / name).open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def make_table(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    tasks = _rows("tasks_gsm8k_train.jsonl") + _rows("tasks_gsm8k_test.jsonl") + _rows("tasks_code.jsonl")
    benign = _rows("benign_dolly_open_qa.jsonl") + _rows("benign_arena_hard.jsonl") + _rows("tools_bfcl.jsonl")
    prompts, systems, tools, images = [], [], [], []
    for i in range(n):
        if i % 2 == 0:
            t = tasks[int(rng.integers(len(tasks)))]
            prompts.append(WRAPPERS[int(rng.integers(len(WRAPPERS)))].format(t))
            systems.append("You are a helpful assistant.")
        else:
            prompts.append(benign[int(rng.integers(len(benign)))])
            systems.append(None)
        tools.append(["search", "calculator"] if i % 10 == 3 else [])
        images.append(i % 17 == 0)
    base = datetime(2026, 2, 1, tzinfo=UTC)
    return pa.table({
        "exchange_id": [f"ex-{i}" for i in range(n)],
        "account_id": [f"acct-{i % 5000}" for i in range(n)],
        "ts": pa.array([base + timedelta(seconds=i) for i in range(n)], pa.timestamp("ms", tz="UTC")),
        "prompt": prompts,
        "system_prompt": pa.array(systems, pa.string()),
        "tools_offered": pa.array(tools, pa.list_(pa.string())),
        "has_images": images,
    })


def world_bench(world: str, rows: int, batch: int, memo_only: bool = False, keep_freed: bool = True) -> None:
    from distillguard.signals import tasks
    from distillguard.signals.memo import PromptMemo
    from distillguard.signals.score import _resolve, input_columns, keep_freed_memory
    from distillguard.store import Store

    if keep_freed:  # as the stage's worker processes do
        keep_freed_memory()
    dets = _resolve(None)
    lexical.get_model()
    tasks.get_index()
    bs, n = [], 0
    for b in Store(world).exchange_batches(columns=input_columns(dets), batch_size=batch, threads=1):
        bs.append(b)
        n += b.num_rows
        if n >= rows:
            break
    memo = PromptMemo()
    c0 = time.process_time()
    with_memo = [score_batch(b, dets, memo) for b in bs]
    cm = time.process_time() - c0
    print(f"{world}: {n:,} exchanges in {len(bs)} batches of {batch}")
    if not memo_only:
        c0 = time.process_time()
        plain = [score_batch(b, dets) for b in bs]
        cp = time.process_time() - c0
        same = all(x.equals(y) for x, y in zip(plain, with_memo, strict=True))
        print(f"each batch alone: {cp:.1f} CPU s = {n / cp:,.0f} exchanges per CPU-second; identical rows: {same}")
    print(f"with the prompt memo: {cm:.1f} CPU s = {n / cm:,.0f} exchanges per CPU-second; "
          f"memo hits {memo.hits:,} of {memo.lookups:,} distinct-per-batch prompts")
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; peak RSS {rss:,.0f} MB; "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=32768)
    ap.add_argument("--store", action="store_true", help="also time run_signals end to end over a store")
    ap.add_argument("--world", default=None, help="score a simulated world's exchanges with and without the memo")
    ap.add_argument("--memo-only", action="store_true", help="with --world: only the pass with the memo")
    ap.add_argument("--no-keep-freed", action="store_true",
                    help="with --world: the default allocator (the stage's workers keep freed memory)")
    a = ap.parse_args()
    if a.world:
        world_bench(a.world, a.rows, a.batch, a.memo_only, not a.no_keep_freed)
        return
    t0 = time.perf_counter()
    lexical.get_model()
    print(f"model ready in {time.perf_counter() - t0:.1f}s (train or cache load)")
    table = make_table(a.rows)
    chars = np.mean([len(p) for p in table.column("prompt").to_pylist()])
    batches = table.to_batches(max_chunksize=a.batch)
    score_batch(batches[0].slice(0, 1000))  # warm-up (task index build)
    # Wall time and CPU time: on a shared machine the wall clock measures the neighbours too;
    # CPU time per exchange is what one core of this code costs. Measured once with every prompt
    # treated as distinct (de-duplication off) and once as shipped (repeated prompts scored once;
    # about a third of this mix's benign prompts repeat).
    from distillguard.signals import context

    distinct = len(set(table.column("prompt").to_pylist()))
    for label, share in (("de-duplication off", -1.0), ("as shipped", context.DEDUP_MAX_SHARE)):
        context.DEDUP_MAX_SHARE = share
        t0, c0 = time.perf_counter(), time.process_time()
        n = sum(score_batch(b).num_rows for b in batches)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        print(f"score_batch (all detectors), one process, {label}: {n:,} exchanges ({distinct:,} distinct prompts) "
              f"in {dt:.2f}s wall = {n / dt:,.0f}/s; {n / dc:,.0f} per CPU-second "
              f"(mean prompt {chars:.0f} chars, batch {a.batch})")
    model = lexical.get_model()
    t0, c0 = time.perf_counter(), time.process_time()
    for b in batches:
        model.predict(b.column("prompt"))
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    print(f"lexical models only: {n / dt:,.0f} prompts/s wall; {n / dc:,.0f} per CPU-second")
    prompts = table.column("prompt").to_pylist()[:2000]
    for p in prompts[:50]:
        score_prompt(p)
    lat, cpu = [], []
    for p in prompts:
        t, c = time.perf_counter(), time.thread_time()
        score_prompt(p)
        lat.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    lat_ms, cpu_ms = np.array(lat) * 1000, np.array(cpu) * 1000
    print(f"score_prompt latency: p50 {np.percentile(lat_ms, 50):.3f} ms, p99 {np.percentile(lat_ms, 99):.3f} ms wall; "
          f"CPU p50 {np.percentile(cpu_ms, 50):.3f} ms")
    if a.store:
        from distillguard.events.schema import EXCHANGE_SCHEMA
        from distillguard.signals import run_signals
        from distillguard.store import Store

        with tempfile.TemporaryDirectory() as d:
            st = Store(Path(d) / "store", create=True)
            full = pa.table({f.name: (table.column(f.name) if f.name in table.column_names else pa.nulls(len(table), f.type))
                             for f in EXCHANGE_SCHEMA})
            st.write_exchanges(full, key="bench")
            for workers in (1, 2):
                t0 = time.perf_counter()
                n = run_signals(st, batch_size=a.batch, progress=False, workers=workers)
                dt = time.perf_counter() - t0
                print(f"run_signals end to end (store read + score + write), workers={workers}: {n:,} in {dt:.2f}s "
                      f"= {n / dt:,.0f} exchanges/s wall")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.1f}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
