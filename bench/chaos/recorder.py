"""Recorder fault scenarios: poison values, a full queue, a Redis outage, a full disk, SIGKILL under load.

Each is the longer form of a test in tests/gateway/test_recorder_faults.py, sized to show the failure
the adversarial run found (issue 12) and whether it is gone. Target: accepted = recorded and a clean
restart everywhere, except SIGKILL in batch durability, whose loss must stay within the documented
group-commit window (docs/gateway.md#durability).
"""

from __future__ import annotations

import math
import signal
import statistics
import subprocess
import sys
import threading
import time

from bench.chaos.common import CHAT, Env, Result, count, drive, restart_check, settle
from distillguard.testing.faults import fill_filesystem, start_private_redis
from distillguard.testing.net import free_port


def _timed(fn):
    def run(env: Env) -> Result:
        t0 = time.monotonic()
        res = fn(env)
        res.seconds = time.monotonic() - t0
        return res
    run.__doc__ = fn.__doc__
    return run


POISON_BODIES = [
    ("/chat/completions", {**CHAT, "max_tokens": 1e300}),
    ("/chat/completions", {**CHAT, "n": 1e300}),
    ("/chat/completions", {**CHAT, "max_tokens": "123456789012345678901234567890"}),
    ("/responses", {"model": "m", "input": "hello there", "max_output_tokens": 1e300}),
    ("/messages", {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hello there"}],
                   "thinking": {"type": "enabled", "budget_tokens": 1e300}}),
]


@_timed
def poison(env: Env) -> Result:
    """5 requests with out-of-range numbers among 400 clean ones, sharing group-commit batches."""
    res = Result("poison values (5 in 405)")
    gw = env.gateway("poison")
    bodies = [("/chat/completions", CHAT)] * 400
    for i, b in enumerate(POISON_BODIES):
        bodies.insert(50 + 80 * i, b)
    ids = count(res, drive(gw, bodies, concurrency=32))
    gw.wait_pending(20)
    res.peak_rss_mb = gw.proc.peak_rss / 2**20
    gw.stop()
    res.restart = restart_check(env, gw)
    settle(res, gw.store, ids)
    return res


@_timed
def queue_overflow(env: Env) -> Result:
    """400 clean requests, 64 at a time, into a recorder queue of 16 records."""
    res = Result("queue overflow (queue_max 16)")
    rec = {"queue_max": 16, "flush_interval_ms": 50}
    gw = env.gateway("overflow", recorder=rec)
    ids = count(res, drive(gw, [("/chat/completions", CHAT)] * 400, concurrency=64))
    gw.wait_pending(20)
    res.notes["dropped_metric"] = gw.metric("distillguard_gateway_recorder_dropped_total")
    res.peak_rss_mb = gw.proc.peak_rss / 2**20
    gw.stop()
    res.restart = restart_check(env, gw, recorder=rec)
    settle(res, gw.store, ids)
    return res


@_timed
def redis_outage(env: Env) -> Result:
    """recorder.mode redis; Redis killed for 6.5 s under load; a gateway-writer service runs throughout."""
    res = Result("Redis outage 6.5 s (mode redis)")
    port = free_port()
    data = env.work / "redis-data"
    data.mkdir(exist_ok=True)
    for f in data.iterdir():
        if f.is_file():
            f.unlink()
    url = f"redis://127.0.0.1:{port}/0"
    stream = "dg:chaos:exchanges"
    rproc = start_private_redis(port, data)  # persistent: the outage loses nothing already in Redis
    rec = {"mode": "redis", "redis_url": url, "redis_stream": stream}
    gw = env.gateway("redis", recorder=rec)
    store = gw.store
    writer_cmd = [sys.executable, "-m", "distillguard", "gateway-writer", "--store", str(store), "--redis-url", url,
                  "--stream", stream, "--consumer", "chaos-writer", "--batch-seconds", "1"]
    wlog = open(gw.dir / "writer.log", "ab")
    writer = subprocess.Popen(writer_cmd, env=env.env, stdout=wlog, stderr=wlog, cwd=env.code)
    box = {}
    load = threading.Thread(target=lambda: box.setdefault("r", drive(
        gw, [("/chat/completions", {**CHAT, "stream": i % 2 == 0}) for i in range(3000)], concurrency=32,
        pace=0.003)))
    load.start()
    time.sleep(1.0)
    rproc.kill()
    rproc.wait(10)
    time.sleep(6.5)
    res.notes["writer_alive_during_outage"] = writer.poll() is None
    rproc = start_private_redis(port, data)
    load.join()
    ids = count(res, box["r"])
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        st, d = gw.readyz()
        if d.get("recorder_redis_ok") and d.get("recorder_pending") == 0:
            break
        time.sleep(0.25)
    res.notes["spilled"] = gw.metric("distillguard_gateway_recorder_spilled_total")
    res.peak_rss_mb = gw.proc.peak_rss / 2**20
    gw.stop()
    res.notes["writer_alive_after_outage"] = writer.poll() is None
    writer.send_signal(signal.SIGINT)
    try:
        writer.wait(60)
    except subprocess.TimeoutExpired:
        writer.kill()
    once = subprocess.run(writer_cmd + ["--once"], env=env.env, stdout=wlog, stderr=wlog, timeout=300, cwd=env.code)
    wlog.close()
    res.notes["writer_once_rc"] = once.returncode
    res.restart = restart_check(env, gw, recorder=rec)
    rproc.kill()
    rproc.wait(10)
    settle(res, store, ids)
    return res


def _mount_tmpfs(path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["umount", "-l", str(path)], capture_output=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@_timed
def disk_full(env: Env) -> Result:
    """The spool on an 8 MiB tmpfs filled to the last byte while 2,000 requests arrive; then space returns."""
    res = Result("spool disk full (8 MiB tmpfs)")
    mnt = env.work / "tiny-spool"
    if not _mount_tmpfs(mnt, "8m"):
        res.notes["skipped"] = "cannot mount a tmpfs (needs root)"
        return res
    try:
        rec = {"spool_dir": str(mnt), "segment_max_bytes": 1 << 20}
        gw = env.gateway("diskfull", recorder=rec)
        ids = count(res, drive(gw, [("/chat/completions", CHAT)] * 50))
        gw.wait_pending(20)
        fill_filesystem(mnt / "filler")
        box, seen = {}, {"unready": False, "error": None}
        load = threading.Thread(target=lambda: box.setdefault("r", drive(
            gw, [("/chat/completions", CHAT)] * 2000, concurrency=32, pace=0.002)))
        load.start()
        while load.is_alive():
            st, d = gw.readyz()
            if st == 503:
                seen["unready"] = True
                seen["error"] = seen["error"] or d.get("recorder_error")
            time.sleep(0.2)
        load.join()
        ids += count(res, box["r"])
        res.notes["readyz_503_while_full"] = seen["unready"]
        res.notes["recorder_error"] = seen["error"]
        res.notes["write_errors_metric"] = gw.metric("distillguard_gateway_recorder_write_errors_total")
        (mnt / "filler").unlink()  # space returns
        res.notes["recovered"] = gw.wait_pending(120)
        res.notes["ready_after"] = gw.readyz()[0] == 200
        res.peak_rss_mb = gw.proc.peak_rss / 2**20
        gw.stop()
        res.restart = restart_check(env, gw, recorder=rec)
        settle(res, gw.store, ids)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    return res


def _sigkill(env: Env, name: str, rec: dict) -> Result:
    res = Result(name)
    gw = env.gateway(name.split()[0] + "-" + rec.get("durability", "batch"), recorder=rec)
    box = {}
    t_load = time.monotonic()
    load = threading.Thread(target=lambda: box.setdefault("r", drive(
        gw, [("/chat/completions", {**CHAT, "stream": i % 4 == 0}) for i in range(4000)], concurrency=32)))
    load.start()
    time.sleep(4.0)
    res.peak_rss_mb = gw.proc.peak_rss / 2**20
    gw.proc.stop(signal.SIGKILL)
    killed_after = time.monotonic() - t_load
    load.join()
    ids = count(res, box["r"])
    res.restart = restart_check(env, gw, recorder=rec)
    settle(res, gw.store, ids)
    rate = res.accepted / killed_after
    window_ms = rec.get("flush_interval_ms", 20)
    res.notes["rate_per_s"] = round(rate)
    res.notes["loss_equals_ms_of_traffic"] = round(1000 * res.lost / rate, 1) if rate else None
    if rec.get("durability") != "sync":
        # documented window: what was queued in the last flush interval plus the batch being written
        res.allowed_loss = math.ceil(rate * 2 * window_ms / 1000)
    return res


@_timed
def sigkill_batch(env: Env) -> Result:
    """SIGKILL after 4 s of 32-way load, durability batch (group commit, 20 ms)."""
    return _sigkill(env, "SIGKILL under load (batch)", {})


@_timed
def sigkill_sync(env: Env) -> Result:
    """The same with durability sync: every reply waits for its record."""
    return _sigkill(env, "SIGKILL under load (sync)", {"durability": "sync"})


def _latency(replies) -> dict:
    lat = sorted(t for st, _, _, t in replies if st == 200)
    if not lat:
        return {}
    return {"p50_ms": round(1000 * statistics.median(lat), 1),
            "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1)}


@_timed
def sync_cost(env: Env) -> Result:
    """Latency of batch vs sync durability: 300 sequential requests, then 1,500 at 32 in parallel."""
    res = Result("durability latency (batch vs sync)")
    for mode in ("batch", "sync"):
        rec = {"durability": mode} if mode == "sync" else {}
        gw = env.gateway(f"cost-{mode}", recorder=rec)
        drive(gw, [("/chat/completions", CHAT)] * 50, concurrency=8)  # warm-up
        seq = drive(gw, [("/chat/completions", CHAT)] * 300, concurrency=1)
        t0 = time.monotonic()
        par = drive(gw, [("/chat/completions", CHAT)] * 1500, concurrency=32)
        secs = time.monotonic() - t0
        ids = count(res, seq + par)
        gw.wait_pending(20)
        res.peak_rss_mb = max(res.peak_rss_mb, gw.proc.peak_rss / 2**20)
        gw.stop()
        before = res.recorded
        settle(res, gw.store, ids)
        res.recorded += before
        res.notes[mode] = {"c1": _latency(seq), "c32": {**_latency(par), "req_per_s": round(len(par) / secs)}}
    res.restart = True
    return res


def setup(work, code) -> Env:
    """One mock upstream and key for all recorder scenarios of a run."""
    return Env(work, code)


def teardown(env: Env) -> None:
    env.close()


SCENARIOS = {
    "poison": poison,
    "queue_overflow": queue_overflow,
    "redis_outage": redis_outage,
    "disk_full": disk_full,
    "sigkill_batch": sigkill_batch,
    "sigkill_sync": sigkill_sync,
    "sync_cost": sync_cost,
}
