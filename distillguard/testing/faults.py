"""Fault injection helpers shared by the tests and bench/chaos."""

from __future__ import annotations

import os


def fill_filesystem(path) -> None:
    """Create ``path`` and grow it until its filesystem has no byte left (ENOSPC); delete it to give space back."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 512)  # small writes: nothing is left over, however little was free
    except OSError:
        pass
    finally:
        os.close(fd)
