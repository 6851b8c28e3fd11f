"""The simulate driver: build the world, write accounts and labels, then every (day, shard) file.

Separate from world.py because this is the part that deals with processes, threads and the store;
world.py only turns a spec into tables.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq

from distillguard.errors import ConfigError
from distillguard.sim.config import WorldSpec
from distillguard.sim.world import LABELS_FILE, WORLD_FILE, World
from distillguard.store import Store

_WORKER: dict = {}


def _key(day: int, shard: int) -> str:
    return f"sim-{day:03d}-{shard:04d}"


def _work(day: int, shard: int) -> dict[int, int]:
    """One (day, shard) unit in a forked worker: generate and write its file, return rows per group."""
    world, store = _WORKER["world"], _WORKER["store"]
    t, counts = world.unit(day, shard)
    if t is not None:
        store.write_exchanges(t, key=_key(day, shard))
    return counts


def simulate(spec: WorldSpec, base: Path, out: Path, scale: float = 1.0, seed: int | None = None,
             on_progress: Callable[[int, int, int], None] | None = None, workers: int | None = None) -> dict:
    """Generate the world into store ``out``; returns the summary also written to ``out/world.json``.

    ``workers`` > 1 forks that many processes, each generating and writing whole (day, group) units;
    the output is identical to a single-process run because every unit has its own seeded stream.
    """
    t0 = time.perf_counter()
    world = World(spec, base, scale, seed)
    store = Store(out, create=True)
    if store.has_exchanges():
        raise ConfigError("output store already holds exchanges; choose an empty --out directory", source=str(out))
    if spec.account_facts:
        store.write_accounts(world.accounts_table(), key="00000000000000000000-sim")
    pq.write_table(world.labels_table(), out / LABELS_FILE, compression="zstd")
    total = 0
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    units = [(d, sh) for d in range(spec.days) for sh in range(world.n_shards)]

    def tally(counts: dict[int, int]) -> None:
        nonlocal total
        for gi, n in counts.items():
            world.counts[world.groups[gi].key] += n
            total += n

    if workers > 1 and "fork" in mp.get_all_start_methods():
        _WORKER.update(world=world, store=store)
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as ex:
                for i, counts in enumerate(ex.map(_work, *zip(*units, strict=True), chunksize=1)):
                    tally(counts)
                    if on_progress and (i + 1) % world.n_shards == 0:
                        on_progress((i + 1) // world.n_shards, spec.days, total)
        finally:
            _WORKER.clear()
    else:
        # Parquet encoding releases the GIL: one writer thread overlaps it with generation; at most two
        # files wait, which bounds memory.
        pending: deque[Future] = deque()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sim-writer") as pool:
            for i, (day, sh) in enumerate(units):
                t, counts = world.unit(day, sh)
                tally(counts)
                if t is not None:
                    while len(pending) >= 2:
                        pending.popleft().result()
                    pending.append(pool.submit(store.write_exchanges, t, _key(day, sh)))
                if on_progress and (i + 1) % world.n_shards == 0:
                    on_progress((i + 1) // world.n_shards, spec.days, total)
            while pending:
                pending.popleft().result()
    secs = time.perf_counter() - t0
    summary = {
        "name": spec.name, "seed": world.seed, "scale": scale, "start": spec.start.isoformat(), "days": spec.days,
        "responses": spec.responses, "exchanges": total, "accounts": sum(g.n for g in world.groups if g.relay_to is None),
        "seconds": round(secs, 2), "workers": workers, "files_per_day": world.n_shards, "exchanges_per_second": round(total / secs) if secs else None,
        "models": [{"name": m.name, "released": m.released.isoformat() if m.released else None} for m in spec.models],
        "groups": [{"key": g.key, "campaign_id": g.campaign_id, "persona": g.persona, "role": g.role,
                    "accounts": 0 if g.relay_to is not None else g.n, "exchanges": world.counts[g.key],
                    "end_users": g.n if g.relay_to is not None else None, "content": g.content,
                    "accounts_at_rate_cap": int(g.acc.get("capped", 0))} for g in world.groups],
        "campaigns": [{"id": c.id, "title": c.title, "content": c.content,
                       "pivot": c.models.model_dump() if c.models.pivot_share is not None else None}
                      for c in spec.campaigns],
    }
    (out / WORLD_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
