"""The disk a scan may spill to, and a clear error when it runs out.

A scan larger than ``memory_limit`` spills DuckDB blocks to disk. Left to itself DuckDB spills to
``.tmp`` in the working directory (or wherever the caller pointed it) until the disk is full, and the
operator learns of it from an ``IO Error`` deep inside a join. Here every scan connection spills to one
directory of its own under ``STORE/tmp/`` (or ``temp_directory`` of the scan config), bounded by
``max_temp_directory_size`` (default: the disk's free space minus ``temp_free_margin``, so the store and
the machine keep room to work), removed when the run ends. Running out at a stage becomes a
``ScanSpaceError`` naming the directory, the space that was free and what the stage had already spilled.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from distillguard.errors import ConfigError, DistillguardError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class ScanSpaceError(DistillguardError):
    """A scan stage needed more memory or temporary disk than it was allowed or the disk had."""


def parse_size(text: str, key: str) -> int:
    m = _SIZE.match(str(text))
    if not m:
        raise ConfigError(f"{key}: {text!r} is not a size like 500MB, 20GB or 8GiB")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "B").lower()])


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass  # DuckDB removed a block file while we walked
    return total


@dataclass
class TempSpace:
    """One run's spill directory (created lazily by DuckDB) and its size bound in bytes."""

    path: Path
    limit: int

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def free(self) -> int:
        return shutil.disk_usage(_existing(self.path)).free


def _sql_path(p: Path) -> str:
    return str(p).replace("'", "''")


def _existing(p: Path) -> Path:
    while not p.exists() and p.parent != p:
        p = p.parent
    return p


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_space(store_path: Path, temp_directory: str | None, max_size: str | None, margin: str) -> TempSpace:
    """A fresh spill directory for this run; spill directories of scans that died (their process is gone)
    are removed first, so a crash does not leave gigabytes behind for ever."""
    base = Path(temp_directory) if temp_directory else store_path / "tmp"
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ScanSpaceError(f"cannot create the scan's temporary directory: {e.strerror}", source=str(base)) from e
    for d in base.glob("scan-*-*"):
        parts = d.name.split("-")
        if len(parts) == 3 and parts[1].isdigit() and not _alive(int(parts[1])):
            shutil.rmtree(d, ignore_errors=True)
    path = base / f"scan-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if max_size:
        limit = parse_size(max_size, "temp_max_size")
    else:
        limit = shutil.disk_usage(base).free - parse_size(margin, "temp_free_margin")
    return TempSpace(path, max(limit, 2**20))


def _is_space_error(e: BaseException) -> bool:
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return True
    if isinstance(e, duckdb.OutOfMemoryException):
        return True
    msg = str(e)
    return isinstance(e, duckdb.IOException) and ("No space left" in msg or "temp" in msg.lower())


@contextmanager
def stage_guard(stage: str, space: TempSpace | None, memory_limit: str) -> Iterator[None]:
    """Turn DuckDB's out-of-memory / out-of-disk errors inside ``stage`` into one clear ScanSpaceError."""
    try:
        yield
    except Exception as e:
        if space is None or not _is_space_error(e):
            raise
        spilled = dir_size(space.path) if space.path.exists() else 0
        free = space.free()
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ScanSpaceError(
            f"scan stage '{stage}' ran out of room: memory_limit {memory_limit}, temporary directory bounded at "
            f"{human(space.limit)} ({human(free)} free on its disk; the stage had spilled {human(spilled)} and "
            f"needed more than that). Point temp_directory at a larger disk, raise temp_max_size or "
            f"memory_limit, or lower threads. DuckDB said: {first}", source=str(space.path)) from e
