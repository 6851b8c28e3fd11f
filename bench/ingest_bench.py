"""Ingest throughput and memory: generate a large native JSONL log, ingest it in a subprocess, report.

Usage:
    PYTHONPATH=$PWD python bench/ingest_bench.py --size-mb 1024 --workdir /tmp/dg-ingest-bench

The log is written from a pool of pre-rendered realistic records (turns, system prompts, tool
lists, reasoning on some) with per-line ids, accounts and timestamps, so generation runs at disk
speed and the ingest, not the generator, is what is measured. The ingest runs as
`distillguard ingest` in a child process; its peak RSS comes from getrusage(RUSAGE_CHILDREN),
i.e. the whole process including Arrow's allocations. The generated file is deleted afterwards
unless --keep is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

_WORDS = ("the model should explain each step of the derivation carefully and list assumptions about inputs "
          "edge cases complexity proof lemma function returns value array index tree graph cache latency "
          "translate summarise rewrite grade score essay argument evidence policy answer question").split()
_MODELS = ["gpt-x-2026-02", "gpt-x-mini", "claude-x-2026-02", "reasoner-r2"]
_ENDPOINTS = ["chat.completions", "responses", "messages", "chat.completions"]
_UAS = [("OpenAI/Python 1.82.0", "openai-python", "1.82.0"), ("Anthropic/Python 0.52.0", "anthropic-python", "0.52.0"),
        ("python-requests/2.32.3", None, None), ("OpenAI/JS 4.98.0", "openai-js", "4.98.0")]
_TOOLS = [[], [], ["get_weather"], ["web_search", "run_code"], ["lookup_order", "refund", "escalate"]]


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n_words))


def _template(rng: random.Random) -> dict:
    """One realistic record without the per-line fields (id, ts, account, ip)."""
    n_prior = rng.choice([0, 0, 0, 1, 2])
    turns = []
    for _ in range(n_prior):
        turns += [{"role": "user", "text": _text(rng, rng.randint(8, 40))},
                  {"role": "assistant", "text": _text(rng, rng.randint(20, 80))}]
    prompt = _text(rng, rng.randint(10, 60))
    turns.append({"role": "user", "text": prompt})
    ua, sdk, ver = rng.choice(_UAS)
    i = rng.randrange(len(_MODELS))
    tools = rng.choice(_TOOLS)
    reasoning = _text(rng, rng.randint(30, 120)) if rng.random() < 0.3 else None
    rec = {
        "org_id": f"org-{rng.randrange(500):04d}", "api_key_id": f"key_{rng.randrange(1 << 24):06x}",
        "model": _MODELS[i], "endpoint": _ENDPOINTS[i], "user_agent": ua, "sdk_name": sdk, "sdk_version": ver,
        "system_prompt": "You are a helpful assistant." if rng.random() < 0.5 else None,
        "turns": turns, "prompt": prompt, "n_turns": len(turns), "tools_offered": tools,
        "max_tokens": rng.choice([None, 512, 1024, 4096]), "temperature": rng.choice([None, 0.0, 0.7, 1.0]),
        "stream": rng.random() < 0.4, "reasoning_requested": reasoning is not None,
        "response_text": _text(rng, rng.randint(30, 150)), "reasoning_text": reasoning,
        "tool_calls": tools[:1] if tools and rng.random() < 0.5 else [],
        "stop_reason": rng.choice(["stop", "end_turn", "length", "tool_calls"]),
        "input_tokens": rng.randint(10, 2000), "output_tokens": rng.randint(10, 1500),
        "http_status": rng.choice([200] * 20 + [429, 500]), "latency_ms": rng.randint(150, 40000),
        "source_format": "native",
    }
    return {k: v for k, v in rec.items() if v is not None}


def generate(path: Path, size_bytes: int, seed: int = 7) -> int:
    """Write ~size_bytes of native JSONL; returns the number of lines."""
    rng = random.Random(seed)
    # Each template is rendered once; lines splice in their own id/time/account/ip prefix.
    bodies = [json.dumps(_template(rng), separators=(",", ":"))[1:] for _ in range(2000)]
    t0 = datetime(2026, 2, 1, tzinfo=UTC)
    n = 0
    written = 0
    with open(path, "w", buffering=8 << 20) as fh:
        while written < size_bytes:
            chunk = []
            for _ in range(10_000):
                ts = (t0 + timedelta(milliseconds=n * 37)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                line = (f'{{"exchange_id":"ex-{n:010d}","ts":"{ts}","account_id":"acct-{(n * 7919) % 200_000:06d}",'
                        f'"client_ip":"198.51.{(n >> 8) & 255}.{n & 255}",{bodies[n % len(bodies)]}\n')
                chunk.append(line)
                n += 1
            s = "".join(chunk)
            fh.write(s)
            written += len(s)
    return n


def bench_readers(work: Path, records: int) -> None:
    """Row-wise readers: each sample file's lines repeated to `records` lines, ingested in this process."""
    from distillguard.ingest import ingest_paths
    from distillguard.store import Store

    data = Path(__file__).parents[1] / "tests" / "data"
    for fmt, name in (("openai", "openai_chat.jsonl"), ("anthropic", "anthropic_messages.jsonl"),
                      ("litellm", "litellm_payloads.jsonl"), ("otel", "otel_genai.jsonl")):
        lines = [ln for ln in (data / name).read_bytes().splitlines() if ln.strip()]
        path = work / f"{fmt}.jsonl"
        with open(path, "wb") as fh:
            for i in range(records):
                fh.write(lines[i % len(lines)] + b"\n")
        before = resource.getrusage(resource.RUSAGE_SELF)
        t = time.perf_counter()
        res = ingest_paths(Store(work / f"store-{fmt}", create=True), [path], fmt=fmt)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        print(json.dumps({"format": fmt, "records": records, "exchanges": res.records,
                          "seconds": round(wall, 1), "exchanges_per_s": round(res.records / wall),
                          "exchanges_per_cpu_s": round(res.records / cpu)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--workdir", default="/tmp/dg-ingest-bench")
    ap.add_argument("--keep", action="store_true", help="keep the generated log and store")
    ap.add_argument("--readers", type=int, default=0, metavar="N",
                    help="instead: time the provider-format readers on N records each (row-wise path)")
    args = ap.parse_args()
    if args.readers:
        work = Path(args.workdir)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        bench_readers(work, args.readers)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        return
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "native.jsonl"
    t = time.perf_counter()
    lines = generate(log, args.size_mb << 20)
    gen_s = time.perf_counter() - t
    size = log.stat().st_size
    print(f"generated {lines:,} exchanges, {size / 2**20:,.0f} MiB in {gen_s:.1f}s", flush=True)

    cmd = [sys.executable, "-m", "distillguard", "ingest", str(log), "--store", str(work / "store"), "--json"]
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    wall = time.perf_counter() - t
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kib = usage.ru_maxrss
    cpu = usage.ru_utime + usage.ru_stime  # all threads of the ingest process
    if proc.returncode not in (0, 3):
        sys.exit(f"ingest failed ({proc.returncode}): {proc.stderr[-2000:]}")
    res = json.loads(proc.stdout)
    out = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_implementation()} "
                   f"{platform.python_version()}",
        "file_mib": round(size / 2**20), "exchanges": res["ingested"], "quarantined": res["quarantined"],
        "seconds": round(wall, 1), "exchanges_per_s": round(res["ingested"] / wall),
        "mib_per_s": round(size / 2**20 / wall, 1), "peak_rss_mib": round(peak_kib / 1024),
        # On a shared machine wall time depends on the neighbours; CPU time per exchange does not.
        "cpu_seconds": round(cpu, 1), "exchanges_per_cpu_s": round(res["ingested"] / cpu),
        "loadavg_1m_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }
    print(json.dumps(out, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
