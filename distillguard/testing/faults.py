"""Fault injection helpers shared by the tests and bench/chaos: a Redis that may be killed, a disk that fills."""

from __future__ import annotations

import os
import shutil
import subprocess
import time


def start_private_redis(port: int, data_dir=None):
    """A throwaway redis-server on ``port`` that a test or chaos run may kill at will.

    The shared Redis on 6379 is never stopped; outages are injected on a private one. With ``data_dir`` it
    keeps an fsync-always append-only file there, so a kill and restart is an outage, not a data loss.
    Skips the calling test (pytest) or raises when redis-server is not installed.
    """
    import redis

    exe = shutil.which("redis-server")
    if exe is None:
        try:
            import pytest
        except ImportError:
            raise RuntimeError("redis-server not installed") from None
        pytest.skip("redis-server not installed")
    persist = ["--appendonly", "no"] if data_dir is None else ["--appendonly", "yes", "--appendfsync", "always",
                                                               "--dir", str(data_dir)]
    p = subprocess.Popen([exe, "--port", str(port), "--save", "", *persist, "--bind", "127.0.0.1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Ask only while our redis-server lives, with bounded timeouts and no client retries, and check that the
    # server answering is ours: if the port was taken meanwhile (another test's server, a JVM's callback
    # socket), redis-server exits at once and an unbounded ping to the other listener would hang the run.
    for _ in range(200):
        time.sleep(0.05)
        if p.poll() is not None:
            raise RuntimeError(f"private redis-server exited at start (code {p.returncode}): port {port} taken?")
        client = redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=0.5, retry=None)
        try:
            if int(client.info("server").get("process_id", -1)) == p.pid:
                return p
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            pass
        finally:
            client.close()
    p.kill()
    raise RuntimeError("private redis did not start")


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
