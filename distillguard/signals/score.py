"""Scoring entry points: a record batch, a list of texts, one prompt, or a whole store.

``score_batch`` is the unit of work: a pure function from a batch of exchanges to a batch of
``exchange_signals`` rows (see docs/tables.md), so a distributed engine can map it over
partitions. ``run_signals`` streams the store through it in bounded memory.
"""

from __future__ import annotations

import functools
import inspect
import pickle
import time
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from distillguard.errors import DistillguardError
from distillguard.signals import lexical
from distillguard.signals.context import BatchContext, column
from distillguard.signals.memo import PromptMemo, process_memo
from distillguard.signals.registry import Detector
from distillguard.signals.registry import detectors as _detectors

TABLE = "exchange_signals"
_TS = pa.timestamp("ms", tz="UTC")
ID_COLUMNS = ("exchange_id", "account_id", "ts")


def output_schema(dets: list[Detector]) -> pa.Schema:
    fields = [pa.field("exchange_id", pa.string(), nullable=False), pa.field("account_id", pa.string(), nullable=False),
              pa.field("ts", _TS, nullable=False)]
    fields += [pa.field(f"sig_{d.name}", pa.float32(), nullable=False) for d in dets]
    fields += [pa.field("template_key", pa.string()), pa.field("task_item_key", pa.string())]
    return pa.schema(fields, metadata=signals_identity(dets) | {"distillguard.table": TABLE})


def signals_identity(dets: list[Detector]) -> dict[str, str]:
    """What decides a stored signal's value: the detectors (name@version) and the fitted lexical model
    (its training hash). Written into every part's schema metadata, so a scan can tell that a store was
    scored by another model (an upgrade, a retrained corpus) and score it again instead of mixing two
    models' scores with one set of thresholds."""
    return {"distillguard.detectors": ",".join(f"{d.name}@{d.version}" for d in dets),
            "distillguard.signal_model": _model_identity()}


@functools.lru_cache(maxsize=1)
def _model_identity() -> str:
    return f"lexical-{lexical.training_hash()}"


def stale_parts(store, dets: list[Detector] | None = None) -> list[str]:
    """Parts of ``exchange_signals`` that this install's signals stage wrote with other detectors or another
    model (parts from before the model was recorded count as another): a whole-table rescore is due. Parts
    without the stage's metadata were supplied from outside (a provider's own classifier scores, a test
    fixture) and are the supplier's to replace."""
    want = signals_identity(_resolve(dets))
    out = []
    for f, rel, _size, _mtime in store.file_infos(f"tables/{TABLE}/*.parquet"):
        meta = store.parquet_file(f).schema_arrow.metadata or {}
        got = {k.decode(): v.decode() for k, v in meta.items()}
        if "distillguard.detectors" in got and any(got.get(k) != v for k, v in want.items()):
            out.append(rel)
    return out


def input_columns(dets: list[Detector]) -> list[str]:
    cols = list(ID_COLUMNS) + ["prompt"]
    for d in dets:
        for c in d.columns:
            if c not in cols:
                cols.append(c)
    return cols


def _run(det: Detector, batch: pa.RecordBatch, ctx: BatchContext) -> np.ndarray:
    params = inspect.signature(det.score).parameters
    s = det.score(batch, ctx) if len(params) >= 2 else det.score(batch)
    s = np.asarray(s, dtype=np.float32)
    if s.shape != (batch.num_rows,):
        raise DistillguardError(f"detector {det.name!r} returned shape {s.shape} for {batch.num_rows} rows")
    # Contract: scores in [0, 1], never NaN (a plugin's NaN would poison every account aggregate).
    return np.clip(np.nan_to_num(s, nan=0.0), 0.0, 1.0)


def score_batch(batch: pa.RecordBatch | pa.Table, detectors: list[Detector] | list[str] | None = None,
                memo: PromptMemo | None = None) -> pa.RecordBatch:
    """The ``exchange_signals`` rows for one batch of exchanges (needs exchange_id, account_id, ts, prompt).

    ``memo`` (see ``signals.memo``) skips prompts scored in earlier batches: same rows, less work."""
    if isinstance(batch, pa.Table):
        batch = batch.combine_chunks().to_batches()[0] if batch.num_rows else pa.RecordBatch.from_pylist([], schema=batch.schema)
    dets = _resolve(detectors)
    missing = [c for c in ID_COLUMNS if batch.schema.get_field_index(c) < 0]
    if missing:
        raise DistillguardError(f"score_batch: batch lacks column(s) {', '.join(missing)}")
    ctx = BatchContext(batch, memo)
    arrays = [column(batch, "exchange_id"), column(batch, "account_id"), column(batch, "ts").cast(_TS)]
    arrays += [pa.array(_run(d, batch, ctx), type=pa.float32()) for d in dets]
    arrays += [ctx.template_keys, ctx.task_keys]
    return pa.RecordBatch.from_arrays(arrays, schema=output_schema(dets))


def _resolve(detectors) -> list[Detector]:
    if detectors is None:
        return _detectors()
    if detectors and isinstance(detectors[0], str):
        return _detectors(list(detectors))
    return list(detectors)


def score_texts(texts: list[str], system_prompts: list[str | None] | None = None,
                detectors: list[Detector] | list[str] | None = None) -> dict[str, np.ndarray]:
    """Every signal for bare prompt texts: ``{detector name: float32 scores}`` plus
    ``template_key`` and ``task_item_key`` (object arrays, None where absent)."""
    dets = _resolve(detectors)
    cols = {"prompt": pa.array(texts, type=pa.string())}
    if system_prompts is not None:
        if len(system_prompts) != len(texts):
            raise DistillguardError("score_texts: system_prompts must be as long as texts")
        cols["system_prompt"] = pa.array(system_prompts, type=pa.string())
    batch = pa.RecordBatch.from_pydict(cols)
    ctx = BatchContext(batch)
    out = {d.name: _run(d, batch, ctx) for d in dets}
    out["template_key"] = np.array(ctx.template_keys.to_pylist(), dtype=object)
    out["task_item_key"] = np.array(ctx.task_match.key.to_pylist(), dtype=object)
    return out


#: The lexical detectors and the tactic column each reads: the per-request path of score_prompt.
_PROMPT_PATH = {"cot_elicitation": "cot_elicitation", "reward_grading": "reward_grading",
                "policy_rewrite": "policy_rewrite", "synthetic_data": "synthetic_data", "cap_coding": "coding", "cap_agentic": "agentic",
                "cap_computer_use": "computer_use", "cap_vision": "vision", "cap_data_analysis": "data_analysis"}
#: The live per-request signals under the names policy rules and ``exchange_signals`` columns use.
PROMPT_SIGNALS = tuple(f"sig_{n}" for n in _PROMPT_PATH)


def score_prompt(text: str, system_prompt: str | None = None) -> dict[str, float]:
    """Lexical signals for one request, for the inline gateway (one hashing pass, one sparse product).

    Returns the text-only scores of the lexical detectors (no request fields, no task/template
    lookups, which need batch context and are the scan's job).
    """
    model = lexical.get_model()
    texts = [text or ""] if not system_prompt else [text or "", system_prompt]
    p = model.predict(texts)
    if len(texts) == 2:
        p = np.maximum(p[0], p[1])
    else:
        p = p[0]
    return {name: float(p[model.tactics.index(t)]) for name, t in _PROMPT_PATH.items()}


def iter_signals(store, detectors=None, batch_size: int = 32768, where: str | None = None,
                 on_rows: Callable[[int], None] | None = None, workers: int = 1) -> Iterator[pa.RecordBatch]:
    """``exchange_signals`` batches for the store's exchanges, in store order, in bounded memory.

    With ``workers > 1`` batches are scored in that many processes (the read and the write stay
    in this one); at most two batches per worker are in flight, so memory stays bounded.
    """
    dets = _resolve(detectors)
    cols = input_columns(dets)
    if workers <= 1 or not _all_registered(dets):
        for batch in store.exchange_batches(columns=cols, where=where, batch_size=batch_size):
            if batch.num_rows == 0:
                continue
            out = score_batch(batch, dets, process_memo())
            if on_rows:
                on_rows(batch.num_rows)
            yield out
        return
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    # Load the model and the task index here, then fork the workers before DuckDB starts its
    # threads: the children share both read-only (copy-on-write) instead of loading their own,
    # and no child inherits a lock held by a reader thread.
    _worker_init()
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
    names = [d.name for d in dets]
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_start) as pool:
        list(pool.map(_noop, range(workers)))  # start every worker now
        pending: deque = deque()
        for batch in store.exchange_batches(columns=cols, where=where, batch_size=batch_size):
            if batch.num_rows == 0:
                continue
            pending.append((batch.num_rows, pool.submit(_worker_score, batch, names)))
            while len(pending) >= 2 * workers:
                n, fut = pending.popleft()
                yield fut.result()
                if on_rows:
                    on_rows(n)
        while pending:
            n, fut = pending.popleft()
            yield fut.result()
            if on_rows:
                on_rows(n)


def _noop(_: int) -> None:
    return None


def _all_registered(dets: list[Detector]) -> bool:
    from distillguard.signals.registry import REGISTRY

    try:
        return all(type(REGISTRY.get(d.name)) is type(d) for d in dets)
    except DistillguardError:
        return False


def _worker_init() -> None:
    from distillguard.signals import tasks

    lexical.get_model()
    tasks.get_index()


#: A scoring worker keeps freed memory up to this many bytes for reuse (see ``keep_freed_memory``).
WORKER_KEEP_FREED_BYTES = 1 << 30


def keep_freed_memory(limit: int = WORKER_KEEP_FREED_BYTES) -> bool:
    """Have glibc's allocator serve large arrays from the heap and keep freed memory (up to ``limit``
    bytes) instead of returning it to the system. Why: scoring a batch allocates dozens of
    per-byte arrays of tens of MB each; by default each is a fresh ``mmap`` whose pages fault in
    one by one (about half the CPU of a pass over such an array) and is unmapped when freed. A
    worker scores batch after batch of similar size, so reusing the memory removes those faults;
    its RSS then stays near its peak batch. For processes that score batch after batch: the stage's own
    worker processes, and a `watch` process, which scores each tick's traffic itself (scan config
    ``watch_keep_freed_bytes``); never a scan's main process. Returns False where there is no glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, int(limit)) and mallopt(m_trim_threshold, int(limit)))


def _worker_start() -> None:
    keep_freed_memory()
    _worker_init()


def _worker_score(batch: pa.RecordBatch, names: list[str]) -> pa.RecordBatch:
    return score_batch(batch, names, process_memo())


def run_signals(store, detectors=None, batch_size: int = 32768, where: str | None = None,
                progress: bool = True, console=None, workers: int = 1) -> int:
    """Score every exchange in the store and (re)write table ``exchange_signals``. Returns rows written.

    With ``workers > 1`` the store is split by exchange part (file): ``workers`` threads of one worker
    process each read a part, score it and write its own Parquet part of the table, sharing one prompt
    memo (see ``_run_partitioned``), so no exchange text crosses a pipe and the reading, scoring and
    writing run in parallel. The table's parts follow the exchange parts' order; memory is one batch per
    thread plus the memo.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    dets = _resolve(detectors)
    lexical.get_model()  # train/load before the clock starts, so the bar shows scoring speed
    con = store.connect()
    total = con.sql("SELECT count(*) FROM exchanges" + (f" WHERE {where}" if where else "")).fetchall()[0][0]
    con.close()
    written = 0
    with Progress(TextColumn("[bold]signals[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
                  disable=not progress) as prog:
        task = prog.add_task("", total=total, rate="")
        t0 = time.perf_counter()

        def advance(n: int) -> None:
            nonlocal written
            written += n
            el = max(time.perf_counter() - t0, 1e-9)
            prog.update(task, advance=n, rate=f"{written / el:,.0f} ex/s")

        files = store.exchange_files()
        if workers > 1 and len(files) > 1 and _all_registered(dets):
            _run_partitioned(store, dets, files, batch_size, where, advance, workers)
        else:
            store.write_table(TABLE, iter_signals(store, dets, batch_size, where, advance, workers),
                              schema=output_schema(dets))
    return written


def _run_partitioned(store, dets: list[Detector], files: list, batch_size: int, where: str | None,
                     on_rows: Callable[[int], None], workers: int) -> None:
    """Score the store's parts into one table part each: one worker process, ``workers`` threads, one memo.

    Why threads in one process rather than one process per core (the design until issue 13's sig16 round):
    a prompt is scored once per *memo*, and two processes with a memo each scored every prompt both of
    them met (on the scale-0.1 world 1.18M prompts scored for 838k distinct ones). One memo shared by the
    threads scores each distinct prompt once while it stays in the memo; the heavy steps (Parquet read and
    write, Arrow compute, numpy over whole batches, the sparse product) release the GIL, so two threads
    still use about one and a half cores. The worker is a child process, as before, so the allocator
    setting (``keep_freed_memory``) and the memo never touch the scan's own process (DuckDB)."""
    import multiprocessing as mp
    import queue

    import pyarrow.parquet as pq

    names = [d.name for d in dets]
    cols = input_columns(dets)
    schema = output_schema(dets)
    # As in iter_signals: load the model and task index, then fork before any DuckDB thread exists.
    _worker_init()
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
    from distillguard.signals import memo as prompt_memo

    bounds = (prompt_memo._settings["capacity"], prompt_memo._settings["max_chars"])
    with store.new_table(TABLE) as tmp:
        q = ctx.Queue()
        proc = ctx.Process(target=_score_parts_threaded, name="distillguard-signals",
                           args=(pickle.dumps(store), files, names, cols, where, batch_size, str(tmp), workers, bounds,
                                     q))
        proc.start()
        try:
            done = 0
            while done < len(files):
                try:
                    kind, value = q.get(timeout=1.0)
                except queue.Empty:
                    if proc.exitcode is not None:
                        raise DistillguardError(f"signals worker exited with code {proc.exitcode}") from None
                    continue
                if kind == "error":
                    raise value
                on_rows(value)
                done += 1
            proc.join()
            if proc.exitcode:
                raise DistillguardError(f"signals worker exited with code {proc.exitcode}")
        except BaseException:
            if proc.is_alive():
                proc.terminate()  # a failed part fails the table: do not score the rest
            proc.join()
            raise
        if not any(tmp.glob("*.parquet")):
            pq.write_table(schema.empty_table(), tmp / "part-00000.parquet")


#: The hash power tables are grown before the scoring threads start, to cover batches of up to this many
#: bytes of text: growing them is two dictionary stores another thread could see half done.
PREWARM_BYTES = 1 << 32


def _score_parts_threaded(store, files: list, names: list[str], cols: list[str], where: str | None,
                          batch_size: int, tmp: str, threads: int, bounds: tuple[int, int], q) -> None:
    """The worker process of ``_run_partitioned``: ``threads`` threads score the parts in order, one memo
    (bounded by ``threads`` times the per-worker bounds, the memory the per-process memos had), one row
    count per finished part on ``q`` in the parts' order, or the first error."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from distillguard.signals import hashing
    from distillguard.signals import memo as prompt_memo

    try:
        keep_freed_memory()
        prompt_memo.configure(bounds[0] * threads, bounds[1] * threads)
        _worker_init()
        hashing._chunk_pows((PREWARM_BYTES >> hashing._CHUNK_BITS) + 1)
        process_memo().bind((id(lexical.get_model()), id(_task_index())), len(lexical.get_model().tactics))
        # A forked child inherits the parent's objects as they are, and an object store's filesystem client
        # (s3fs: an event loop and sessions) is not fork-safe: the child works on a copy made from the pickled
        # store, which opens clients of its own (as the process pool's pickled arguments did before).
        store = pickle.loads(store) if isinstance(store, bytes) else store
        with ThreadPoolExecutor(max(threads, 1), thread_name_prefix="signals") as ex:
            futs = [ex.submit(_score_part, store, [f], names, cols, where, batch_size, Path(tmp) / f"part-{i:05d}.parquet")
                    for i, f in enumerate(files)]
            try:
                for fut in futs:
                    q.put(("rows", fut.result()))
            except BaseException:
                for fut in futs:
                    fut.cancel()
                raise
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
        try:
            pickle.dumps(e)  # the queue pickles in a background thread, where a failure would be lost
            q.put(("error", e))
        except Exception:  # noqa: BLE001 - an exception that does not pickle
            q.put(("error", DistillguardError(f"signals worker failed: {e!r}")))
    finally:
        q.close()
        q.join_thread()


def _task_index():
    from distillguard.signals import tasks

    return tasks.get_index()


def _score_part(store, files: list, names: list[str], cols: list[str], where: str | None, batch_size: int,
                dest) -> int:
    """Score the exchanges of some parts of the store into one Parquet file (nothing when none match)."""
    import pyarrow.parquet as pq

    dets = _resolve(names)
    schema = output_schema(dets)
    writer = None
    n = 0
    try:
        for batch in part_batches(store, files, cols, where, batch_size):
            if batch.num_rows == 0:
                continue
            if writer is None:
                writer = pq.ParquetWriter(dest, schema, compression="zstd")
            writer.write_batch(score_batch(batch, dets, process_memo()))
            n += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return n


def part_batches(store, files: list, cols: list[str], where: str | None, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The exchanges of ``files`` in batches of ``batch_size`` rows, as ``store.exchange_batches`` gives them.

    Why not always DuckDB: a worker reads one local part without a filter, and DuckDB's scan, its conversion
    to Arrow and the per-part connection (views over every table) cost about 4 CPU-seconds per million
    exchanges, a fifth of a signals worker's CPU; pyarrow reads the same columns from the part in about half.
    The rows, their order and the batch boundaries are the same (batches are cut at every ``batch_size`` rows,
    not at row-group ends). Anything else — a filter, object storage, several parts, a part that lacks a
    column or stores one with another type than the exchange contract (older parts) — goes through DuckDB,
    which fills and casts such columns."""
    direct = _direct_part(store, files, cols) if where is None else None
    if direct is None:
        yield from store.exchange_batches(columns=cols, where=where, batch_size=batch_size, files=files, threads=1)
        return
    yield from _rechunk(direct.iter_batches(batch_size=batch_size, columns=cols, use_threads=False), batch_size)


def _direct_part(store, files: list, cols: list[str]):
    """A ``pq.ParquetFile`` for the one local part in ``files`` when it holds every column in ``cols`` with
    the exchange contract's type; None otherwise."""
    import pyarrow.parquet as pq

    from distillguard.events.schema import EXCHANGE_SCHEMA

    if store.fs is not None or len(files) != 1:
        return None
    pf = pq.ParquetFile(files[0])
    schema = pf.schema_arrow
    for c in cols:
        i = schema.get_field_index(c)
        j = EXCHANGE_SCHEMA.get_field_index(c)
        if i < 0 or j < 0 or not schema.field(i).type.equals(EXCHANGE_SCHEMA.field(j).type):
            return None
    return pf


def _rechunk(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly ``size`` rows (the last one shorter) from batches of any size."""
    rest: list[pa.RecordBatch] = []
    n = 0
    for b in batches:
        if b.num_rows == 0:
            continue
        if not rest and b.num_rows == size:
            yield b
            continue
        rest.append(b)
        n += b.num_rows
        while n >= size:
            t = pa.Table.from_batches(rest)
            yield t.slice(0, size).combine_chunks().to_batches()[0]
            tail = t.slice(size)
            rest = tail.combine_chunks().to_batches() if tail.num_rows else []
            n = tail.num_rows
    if n:
        yield pa.Table.from_batches(rest).combine_chunks().to_batches()[0]
