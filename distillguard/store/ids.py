"""The exchange-id index: which exchange ids the store already holds, so ingest stores each one once.

Why this shape: ingest must answer "which of these 50,000 ids are new?" once per batch, for stores
of tens of millions of exchanges, in bounded memory, and survive a kill at any instant.

* **Keys.** An id is kept as its 128-bit xxh3 hash (two uint64): fixed width, vectorisable, and a
  collision among 10^9 ids has probability ~10^-21, far below disk error rates.
* **Sorted runs (a small LSM tree).** The index is a set of immutable sorted runs under
  ``STORE/ids/``, each a pair of raw files ``<name>.hi`` / ``<name>.lo``. A lookup is a vectorised
  binary search per run over memory-mapped slices of ``PROBE_SEGMENT`` keys, mapped one at a time,
  so it touches O(batch · log n) pages, never loads the index, and keeps at most one slice resident. Each committed
  batch adds one small run; when ``FAN_IN`` runs share a size tier they are merged by a streaming
  k-way merge holding ``MERGE_CHUNK`` keys per input, so memory stays bounded and total work is
  O(n log n).
* **Derived, never authoritative.** The exchange Parquet parts are the truth. ``parts.log`` lists
  the parts whose ids are in the runs; a part missing from it (written by the gateway or the
  simulator, or by an ingest killed between writing a part and indexing it) is read back on
  ``open`` and indexed then. A run appears only by rename; a crash mid-merge leaves the inputs,
  which still answer correctly (duplicate keys across runs are harmless).
* **One writer.** An exclusive ``flock`` on ``ids/.lock`` is held while an index is open; a second
  ingest into the same store waits for the first.
* **Object storage.** For a store on ``s3://`` (etc.) the runs live in the store's local working
  directory (``Store.path``), copied from and back to ``STORE/ids/`` by ``Store.writer``, and the
  parts are listed and read through the store's filesystem (pass ``store=``).
"""

from __future__ import annotations

import fcntl
import os
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

#: Runs of the same size tier (tier = floor(log_FAN_IN(size))) merged into one when this many exist.
FAN_IN = 8
#: Keys of a run mapped at once during a lookup (16 bytes each): bounds the resident set of lookups.
PROBE_SEGMENT = 1 << 22
#: Keys held per input run during a merge (16 bytes each): bounds a merge's memory (8 runs × 4 MiB).
MERGE_CHUNK = 1 << 18
_HI, _LO = ".hi", ".lo"


def hash_ids(ids: list[str] | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo) uint64 arrays of the xxh3-128 hash of each id."""
    if not isinstance(ids, list):
        ids = ids.to_pylist()
    digest = xxhash.xxh3_128_digest
    raw = b"".join(digest(s.encode()) for s in ids)
    both = np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(-1, 2)
    return np.ascontiguousarray(both[:, 0]), np.ascontiguousarray(both[:, 1])


def _tier(n: int) -> int:
    t = 0
    while n >= FAN_IN:
        n //= FAN_IN
        t += 1
    return t


class IdIndex:
    """An open index on one store (use as a context manager: it holds the store's ingest lock)."""

    def __init__(self, store_path: str | os.PathLike, store=None):
        self.root = Path(store_path)
        #: A store on object storage: its exchange parts are listed and read through its filesystem.
        self.store = store if store is not None and store.fs is not None else None
        self.dir = self.root / "ids"
        self.dir.mkdir(exist_ok=True)
        self._lock_fh = None
        self._runs: list[str] = []

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> IdIndex:
        self._lock_fh = open(self.dir / ".lock", "a+b")
        fcntl.flock(self._lock_fh, fcntl.LOCK_EX)
        self._cleanup()
        self._runs = sorted(p.name[: -len(_LO)] for p in self.dir.glob(f"run-*{_LO}"))
        self.reconcile()
        return self

    def __exit__(self, *exc) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def _cleanup(self) -> None:
        """Remove leftovers of a killed write: temp files and a ``.hi`` whose ``.lo`` never arrived."""
        for p in self.dir.glob(".*.tmp"):
            p.unlink(missing_ok=True)
        for p in self.dir.glob(f"run-*{_HI}"):
            if not p.with_suffix(_LO).exists():
                p.unlink(missing_ok=True)

    # ------------------------------------------------------------------ parts bookkeeping
    def _entry(self, part: Path | str) -> str:
        # The size is part of the entry: a part rewritten under the same name (the gateway re-compacting
        # a segment) no longer matches and is indexed again.
        if self.store is not None:
            return f"{str(part)[len(self.store.root) + 1:]}\t{self.store.fs.size(str(part))}"
        return f"{part.relative_to(self.root)}\t{part.stat().st_size}"

    def _indexed_parts(self) -> set[str]:
        log = self.dir / "parts.log"
        if not log.exists():
            return set()
        return {ln for ln in log.read_text().splitlines() if ln}

    def mark_parts(self, parts: list[Path | str]) -> None:
        """Record that these parts' ids are in the runs (after the run holding them is in place)."""
        self._mark_entries([self._entry(p) for p in parts])

    def _mark_entries(self, entries: list[str]) -> None:
        if not entries:
            return
        with open(self.dir / "parts.log", "a") as fh:
            fh.write("".join(f"{e}\n" for e in entries))
            fh.flush()
            os.fsync(fh.fileno())

    def reconcile(self) -> int:
        """Index every exchange part not yet in ``parts.log``; returns how many ids were added."""
        done = self._indexed_parts()
        if self.store is not None:
            listed = [(loc, f"{rel}\t{size}") for loc, rel, size, _ in self.store.file_infos("exchanges/**/*.parquet")]
        else:
            listed = [(p, self._entry(p)) for p in sorted((self.root / "exchanges").glob("**/*.parquet"))]
        todo = [(p, e) for p, e in listed if e not in done]
        added = 0
        batch: list[str] = []
        his, los = [], []
        for p, entry in todo:
            if self.store is not None:
                ids = self.store.read_parquet(p, columns=["exchange_id"])["exchange_id"]
            else:
                ids = pq.read_table(p, columns=["exchange_id"])["exchange_id"]
            hi, lo = hash_ids(ids)
            his.append(hi)
            los.append(lo)
            batch.append(entry)
            added += len(hi)
            if sum(len(h) for h in his) >= MERGE_CHUNK:
                self.add(np.concatenate(his), np.concatenate(los))
                self._mark_entries(batch)
                batch, his, los = [], [], []
        if batch:
            self.add(np.concatenate(his), np.concatenate(los))
            self._mark_entries(batch)
        return added

    # ------------------------------------------------------------------ lookups
    def _segments(self, name: str):
        """The run as memory-mapped slices of PROBE_SEGMENT keys, each unmapped once the caller moves on."""
        hi_p, lo_p = self.dir / f"{name}{_HI}", self.dir / f"{name}{_LO}"
        n = lo_p.stat().st_size // 8
        for start in range(0, n, PROBE_SEGMENT):
            m = min(PROBE_SEGMENT, n - start)
            yield (np.memmap(hi_p, dtype=np.uint64, mode="r", offset=start * 8, shape=(m,)),
                   np.memmap(lo_p, dtype=np.uint64, mode="r", offset=start * 8, shape=(m,)))

    def contains(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """A boolean mask: which (hi, lo) keys are already indexed."""
        found = np.zeros(len(hi), dtype=bool)
        if not len(hi):
            return found
        order = np.argsort(hi, kind="stable")  # sorted probes walk each run's pages in order
        shi, slo = hi[order], lo[order]
        sfound = np.zeros(len(hi), dtype=bool)
        for name in self._runs:
            # One segment mapped at a time: a probe touches the pages it needs, and they leave the
            # process's resident set with the segment, so RSS stays bounded whatever the index size.
            for rhi, rlo in self._segments(name):
                a = int(np.searchsorted(shi, rhi[0], "left"))
                b = int(np.searchsorted(shi, rhi[-1], "right"))
                if b > a:
                    _probe(rhi, rlo, shi[a:b], slo[a:b], sfound[a:b])  # sfound[a:b] is a view
                del rhi, rlo
        found[order] = sfound
        return found

    def __len__(self) -> int:
        return sum((self.dir / f"{n}{_LO}").stat().st_size // 8 for n in self._runs)

    @property
    def runs(self) -> int:
        return len(self._runs)

    # ------------------------------------------------------------------ adding and merging
    def add(self, hi: np.ndarray, lo: np.ndarray) -> None:
        """Add keys as a new run (sorted and de-duplicated), then merge tiers that are full."""
        if not len(hi):
            return
        self._write_run(*_sort_unique(hi, lo))
        self._maybe_merge()

    def _new_name(self, tier: int) -> str:
        return f"run-{tier:02d}-{uuid.uuid4().hex[:12]}"

    def _write_run(self, hi: np.ndarray, lo: np.ndarray) -> str:
        name = self._new_name(_tier(len(hi)))
        for arr, suffix in ((hi, _HI), (lo, _LO)):  # .lo last: a run exists once its .lo does
            tmp = self.dir / f".{name}{suffix}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(np.ascontiguousarray(arr, dtype=np.uint64).tobytes())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.dir / f"{name}{suffix}")
        self._runs.append(name)
        return name

    def _sizes(self) -> dict[str, int]:
        return {n: (self.dir / f"{n}{_LO}").stat().st_size // 8 for n in self._runs}

    def _maybe_merge(self) -> None:
        while True:
            by_tier: dict[int, list[str]] = {}
            for name, n in self._sizes().items():
                by_tier.setdefault(_tier(n), []).append(name)
            full = [names for names in by_tier.values() if len(names) >= FAN_IN]
            if not full:
                return
            self._merge(full[0][:FAN_IN])

    def _merge(self, names: list[str]) -> None:
        """Merge sorted runs into one, holding at most MERGE_CHUNK keys per input run in memory.

        Inputs are read with plain file reads into per-run windows (not memory-mapped), so a merge
        of runs larger than RAM keeps a bounded resident set.
        """
        runs = [_RunReader(self.dir / f"{n}{_HI}", self.dir / f"{n}{_LO}") for n in names]
        name = self._new_name(0)
        tmp_hi, tmp_lo = self.dir / f".{name}{_HI}.tmp", self.dir / f".{name}{_LO}.tmp"
        last: tuple[int, int] | None = None
        written = 0
        with open(tmp_hi, "wb") as fh_hi, open(tmp_lo, "wb") as fh_lo:
            while True:
                for r in runs:
                    r.refill()
                live = [r for r in runs if len(r.hi)]
                if not live:
                    break
                # Everything <= the smallest window-end key can be emitted now, in order.
                cut = min((int(r.hi[-1]), int(r.lo[-1])) for r in live)
                hi = np.concatenate([r.take_upto(cut)[0] for r in live])
                lo = np.concatenate([r.taken_lo for r in live])
                hi, lo = _sort_unique(hi, lo)
                if last is not None and len(hi) and (int(hi[0]), int(lo[0])) == last:
                    hi, lo = hi[1:], lo[1:]
                if len(hi):
                    last = (int(hi[-1]), int(lo[-1]))
                    fh_hi.write(hi.tobytes())
                    fh_lo.write(lo.tobytes())
                    written += len(hi)
            for fh in (fh_hi, fh_lo):
                fh.flush()
                os.fsync(fh.fileno())
        for r in runs:
            r.close()
        final = f"run-{_tier(written):02d}-{name.split('-')[-1]}"
        os.replace(tmp_hi, self.dir / f"{final}{_HI}")
        os.replace(tmp_lo, self.dir / f"{final}{_LO}")
        self._runs.append(final)
        for n in names:  # the merged run is in place: the inputs are redundant
            self._runs.remove(n)
            (self.dir / f"{n}{_LO}").unlink(missing_ok=True)
            (self.dir / f"{n}{_HI}").unlink(missing_ok=True)


class _RunReader:
    """A window of up to MERGE_CHUNK keys of one run, refilled from disk as the merge consumes it."""

    def __init__(self, hi_path: Path, lo_path: Path):
        self._fh_hi, self._fh_lo = open(hi_path, "rb"), open(lo_path, "rb")
        self.hi = self.lo = self.taken_lo = np.empty(0, np.uint64)

    def refill(self) -> None:
        if len(self.hi):
            return
        self.hi = np.frombuffer(self._fh_hi.read(MERGE_CHUNK * 8), dtype=np.uint64)
        self.lo = np.frombuffer(self._fh_lo.read(MERGE_CHUNK * 8), dtype=np.uint64)

    def take_upto(self, cut: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Remove and return the window's keys <= cut (they are a prefix: the window is sorted)."""
        a = int(np.searchsorted(self.hi, np.uint64(cut[0]), "left"))
        b = int(np.searchsorted(self.hi, np.uint64(cut[0]), "right"))
        n = a + int(np.searchsorted(self.lo[a:b], np.uint64(cut[1]), "right"))
        out = self.hi[:n], self.lo[:n]
        self.hi, self.lo = self.hi[n:], self.lo[n:]
        self.taken_lo = out[1]
        return out

    def close(self) -> None:
        self._fh_hi.close()
        self._fh_lo.close()


def _sort_unique(hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (hi, lo) keys in sorted order."""
    order = np.lexsort((lo, hi))
    hi, lo = hi[order], lo[order]
    keep = np.ones(len(hi), dtype=bool)
    keep[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
    return hi[keep], lo[keep]


def _probe(rhi: np.ndarray, rlo: np.ndarray, hi: np.ndarray, lo: np.ndarray, found: np.ndarray) -> None:
    """Set found[i] where (hi[i], lo[i]) is in the sorted run; hi is sorted (probes in page order)."""
    n = len(rhi)
    idx = np.searchsorted(rhi, hi, "left")
    cand = np.flatnonzero(~found & (idx < n))
    step = 0
    while cand.size:  # walk runs of equal hi (almost always length 1)
        j = idx[cand] + step
        inb = j < n
        cand, j = cand[inb], j[inb]
        same = np.asarray(rhi[j]) == hi[cand]
        cand, j = cand[same], j[same]
        hit = np.asarray(rlo[j]) == lo[cand]
        found[cand[hit]] = True
        cand = cand[~hit]
        step += 1
