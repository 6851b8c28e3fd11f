"""What every chaos scenario needs: real processes to break, a load to send, and an honest count.

A scenario starts the bundled mock upstream and a `distillguard gateway` subprocess (so it can be
SIGKILLed), sends requests, injects its fault, lets the gateway recover, and counts:

* **sent**: requests sent;
* **accepted**: replies the client received complete with status 200 (each names its exchange id);
* **recorded**: of those, exchanges the store holds complete (status 200, not interrupted);
* **refused**: 503 ``recorder_unavailable`` replies (back-pressure; not accepted, so not owed a record);
* **restart**: whether a new gateway on the same store and spool became ready afterwards.

Scenarios are plain functions ``(env) -> Result`` in a dict per area module (recorder.py, ...);
run.py collects them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import psutil
import yaml

from distillguard.testing.net import free_port

ROOT = Path(__file__).resolve().parents[2]
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}


@dataclass
class Result:
    scenario: str
    sent: int = 0
    accepted: int = 0
    recorded: int = 0
    refused: int = 0
    quarantined: int = 0
    restart: bool | None = None
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    #: the most a scenario may lose and still meet its target (0 except under SIGKILL in batch mode)
    allowed_loss: int = 0
    notes: dict = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.accepted - self.recorded

    @property
    def ok(self) -> bool:
        return self.lost <= self.allowed_loss and self.restart is not False and self.accepted > 0

    def row(self) -> dict:
        return {"scenario": self.scenario, "sent": self.sent, "accepted": self.accepted, "recorded": self.recorded,
                "lost": self.lost, "refused": self.refused, "quarantined": self.quarantined,
                "restart": self.restart, "ok": self.ok, "seconds": round(self.seconds, 1),
                "peak_rss_mb": round(self.peak_rss_mb), "notes": self.notes}


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 60, status: int = 200) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=2).status_code == status:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


class Proc:
    """A subprocess with its peak RSS sampled (the gateway's memory under the fault is part of the result)."""

    def __init__(self, args: list[str], env: dict, log: Path):
        self.log = open(log, "ab")
        # cwd: `python -m` puts the working directory first on sys.path, ahead of PYTHONPATH (--code)
        self.p = subprocess.Popen(args, env=env, stdout=self.log, stderr=self.log, cwd=env["PYTHONPATH"],
                                  preexec_fn=lambda: os.nice(5))
        self.peak_rss = 0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        try:
            ps = psutil.Process(self.p.pid)
            while not self._stop.wait(0.1) and self.p.poll() is None:
                self.peak_rss = max(self.peak_rss, ps.memory_info().rss)
        except psutil.Error:
            pass

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        self._stop.set()
        self.log.close()
        return self.p.returncode


class Env:
    """Shared by all scenarios of a run: a work directory, the mock upstream, a key, the code under test."""

    def __init__(self, work: Path, code: Path = ROOT):
        self.work = work
        self.code = code
        self.work.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "PYTHONPATH": str(code), "DISTILLGUARD_KEY_PEPPER": "chaos-pepper"}
        from distillguard.gateway.identity import add_key

        self.keys_file = work / "keys.yaml"
        self.keys_file.unlink(missing_ok=True)
        self.key, _ = add_key(self.keys_file, "acct-chaos", "org-chaos", b"chaos-pepper")
        self.upstream_port = free_port()
        self.upstream = Proc([sys.executable, "-m", "distillguard", "mock-upstream", "--port", str(self.upstream_port),
                              "--reasoning-words", "30", "--answer-words", "20"], self.env, work / "upstream.log")
        if not wait_http(f"http://127.0.0.1:{self.upstream_port}/v1/models", self.upstream.p, status=200) and \
                self.upstream.p.poll() is not None:
            raise RuntimeError("mock upstream did not start")

    def close(self) -> None:
        self.upstream.stop()

    def gateway(self, name: str, recorder: dict | None = None, store: Path | None = None, **cfg) -> Gateway:
        d = self.work / name
        d.mkdir(parents=True, exist_ok=True)
        store = store or d / "store"
        data = {"upstream": {"url": f"http://127.0.0.1:{self.upstream_port}/v1"},
                "identity": {"keys_file": str(self.keys_file)}, "store": str(store),
                "limits": {"enabled": False}, "recorder": recorder or {}, **cfg}
        port = free_port()
        data["server"] = {"port": port, "graceful_timeout_s": 30}
        conf = d / f"gateway-{port}.yaml"
        conf.write_text(yaml.safe_dump(data))
        return Gateway(self, conf, port, store, d)


class Gateway:
    def __init__(self, env: Env, conf: Path, port: int, store: Path, d: Path):
        self.env, self.conf, self.port, self.store, self.dir = env, conf, port, store, d
        self.proc = Proc([sys.executable, "-m", "distillguard", "gateway", "--config", str(conf)], env.env,
                         d / "gateway.log")
        self.base = f"http://127.0.0.1:{port}"
        self.up = wait_http(self.base + "/healthz", self.proc.p)

    @property
    def url(self) -> str:
        return self.base + "/v1"

    def readyz(self) -> tuple[int, dict]:
        try:
            r = httpx.get(self.base + "/readyz", timeout=5)
            return r.status_code, r.json()
        except httpx.HTTPError as e:
            return 0, {"error": str(e)}

    def metric(self, name: str) -> float | None:
        try:
            text = httpx.get(self.base + "/metrics", timeout=5).text
        except httpx.HTTPError:
            return None
        total = None
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
        return total

    def wait_pending(self, timeout: float = 120) -> bool:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            st, d = self.readyz()
            if st and d.get("recorder_pending") == 0:
                return True
            time.sleep(0.25)  # the pending figure is refreshed every reload_seconds
        return False

    def stop(self, sig=signal.SIGTERM) -> int | None:
        return self.proc.stop(sig)


async def _drive(url: str, key: str, bodies: list[tuple[str, dict]], concurrency: int, pace: float) -> list[tuple]:
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    out: list[tuple] = []
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {key}"}, limits=limits,
                                 timeout=httpx.Timeout(60, connect=10)) as client:
        async def one(path, body):
            async with sem:
                t0 = time.perf_counter()
                try:
                    r = await client.post(path, content=orjson.dumps(body),
                                          headers={"content-type": "application/json"})
                    code = (r.headers.get("x-distillguard-error") or "") if r.status_code != 200 else ""
                    out.append((r.status_code, r.headers.get("x-distillguard-exchange-id"), code,
                                time.perf_counter() - t0))
                except (httpx.HTTPError, OSError) as e:
                    out.append((0, None, type(e).__name__, time.perf_counter() - t0))

        tasks = []
        for path, body in bodies:
            tasks.append(asyncio.create_task(one(path, body)))
            if pace:
                await asyncio.sleep(pace)
        await asyncio.gather(*tasks)
    return out


def drive(gw: Gateway, bodies: list[tuple[str, dict]], concurrency: int = 32, pace: float = 0.0) -> list[tuple]:
    """Send every body; (status, exchange id, error code, seconds) per request; 200 means the reply came whole."""
    return asyncio.run(_drive(gw.url, gw.env.key, bodies, concurrency, pace))


def count(res: Result, replies: list[tuple]) -> list[str]:
    """Fill sent/accepted/refused from the replies; the accepted exchange ids."""
    res.sent += len(replies)
    ids = [x for st, x, *_ in replies if st == 200 and x]
    res.accepted += len(ids)
    res.refused += sum(1 for st, _, code, _ in replies if st == 503 and code == "recorder_unavailable")
    return ids


def stored(store: Path) -> dict[str, dict]:
    """exchange_id -> {http_status, interrupted} of what the store holds."""
    from distillguard.store import Store

    if not (store / "store.json").exists():
        return {}
    st = Store(store)
    rows = st.exchanges(columns=["exchange_id", "http_status", "extra"]).fetchall()
    out = {}
    for xid, status, extra in rows:
        ex = orjson.loads(extra) if extra else {}
        out[xid] = {"http_status": status, "interrupted": bool(ex.get("interrupted")),
                    "invalid_fields": ex.get("invalid_fields")}
    return out


def quarantined(store: Path) -> int:
    q = store / "quarantine"
    return sum(len(p.read_bytes().splitlines()) for p in q.glob("*.jsonl")) if q.exists() else 0


def settle(res: Result, store: Path, ids: list[str]) -> None:
    """recorded = accepted ids the store holds complete."""
    rows = stored(store)
    res.recorded = sum(1 for x in ids if x in rows and rows[x]["http_status"] == 200 and not rows[x]["interrupted"])
    res.quarantined = quarantined(store)


def restart_check(env: Env, gw: Gateway, recorder: dict | None = None, **cfg) -> bool:
    """A fresh gateway on the same store/spool starts, becomes ready and stops cleanly (recovering the spool)."""
    g2 = env.gateway(gw.dir.name, recorder=recorder, store=gw.store, **cfg)
    ok = g2.up and wait_http(g2.base + "/readyz", g2.proc.p, timeout=60)
    rc = g2.stop()
    return bool(ok) and rc in (0, -signal.SIGTERM)
