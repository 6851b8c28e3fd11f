"""Gateway fault injection: slow clients and a hostile upstream, against a real `distillguard gateway`.

    PYTHONPATH=. python bench/chaos/gateway.py [--scenario slow_clients] [--work /tmp/chaos] [--code DIR]

(or through bench/chaos/run.py, which finds ``SCENARIOS`` here). Each scenario starts the gateway as a
subprocess (its RSS is sampled), injects its fault while ordinary clients keep calling, stops the
gateway with SIGTERM (which compacts the spool) and counts:

* **sent** / **accepted**: requests sent, and responses that carry an exchange id (the gateway owes the store a
  record for each: the ordinary 200s in slow_clients; in hostile_upstream every reply or upstream-failure error);
* **recorded**: of the exchange ids the clients received, how many the store holds (every id the gateway
  hands out names a recorded exchange, so the target is recorded = all ids received);
* what the fault got: slow connections cut and after how long, or per upstream misbehaviour how many
  replies reached the client in the API's own format (a complete reply, a JSON error, or a stream that
  ends with an error event) versus broken ones (truncated, non-JSON 500s, hangs).

``--code DIR`` runs the gateway from another checkout (e.g. the commit before the fix); settings that
checkout does not know are left out, so the same scenario measures the "before" side.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.chaos.common import wait_http  # noqa: E402
from distillguard.gateway.identity import add_key  # noqa: E402
from distillguard.testing.hostile_upstream import HostileUpstream  # noqa: E402
from distillguard.testing.net import free_port  # noqa: E402

PEPPER = "chaos-gw-pepper"
MSG = [{"role": "user", "content": "hello there"}]


class Env:
    """Work directory, code under test, a key, the mock upstream (subprocess) and the hostile one (thread)."""

    def __init__(self, work: Path, code: Path = ROOT):
        self.work, self.code = work, Path(code)
        work.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "PYTHONPATH": str(self.code), "DISTILLGUARD_KEY_PEPPER": PEPPER}
        self.keys_file = work / "keys.yaml"
        self.keys_file.unlink(missing_ok=True)
        self.key, _ = add_key(self.keys_file, "acct-chaos", "org-chaos", PEPPER.encode())
        #: the checkout knows the limits this work added (else they are left out of its config)
        self.hardened = (self.code / "distillguard/gateway/server.py").exists()
        self.mock_port = free_port()
        self.mock = subprocess.Popen([sys.executable, "-m", "distillguard", "mock-upstream", "--port",
                                      str(self.mock_port), "--reasoning-words", "30", "--answer-words", "20"],
                                     env=self.env, cwd=str(self.code), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{self.mock_port}/v1/models", status=200)
        self.hostile = HostileUpstream().start()

    def close(self) -> None:
        self.hostile.stop()
        self.mock.terminate()
        self.mock.wait(10)


class Gateway:
    """`distillguard gateway` as a subprocess with its RSS sampled every 100 ms."""

    def __init__(self, env: Env, name: str, upstream: str, server: dict, upstream_cfg: dict,
                 store: Path | None = None):
        d = env.work / name
        d.mkdir(parents=True, exist_ok=True)
        self.store = store or d / "store"
        self.port = free_port()
        cfg = {"upstream": {"url": upstream, **(upstream_cfg if env.hardened else {})},
               "identity": {"keys_file": str(env.keys_file)}, "store": str(self.store),
               "limits": {"enabled": False},
               "server": {"port": self.port, "graceful_timeout_s": 20, **(server if env.hardened else {})}}
        conf = d / "gateway.yaml"
        conf.write_text(yaml.safe_dump(cfg))
        self.log = open(d / "gateway.log", "ab")
        self.p = subprocess.Popen([sys.executable, "-m", "distillguard", "gateway", "--config", str(conf)],
                                  env=env.env, cwd=str(env.code), stdout=self.log, stderr=self.log)
        self.base = f"http://127.0.0.1:{self.port}"
        if not wait_http(self.base + "/healthz", status=200):
            raise RuntimeError(f"gateway did not start (see {d / 'gateway.log'})")
        self.rss = [psutil.Process(self.p.pid).memory_info().rss]
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        ps = psutil.Process(self.p.pid)
        while not self._stop.wait(0.1):
            try:
                self.rss.append(ps.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> None:
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(90)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(10)
        self._stop.set()
        self.log.close()

    def restarts(self, env: Env, name: str) -> bool:
        """A new gateway on the same store (and spool) becomes ready and stops cleanly."""
        try:
            again = Gateway(env, name + "-restart", f"http://127.0.0.1:{env.mock_port}/v1", {}, {}, store=self.store)
        except RuntimeError:
            return False
        ready = wait_http(again.base + "/readyz", status=200, timeout=30)
        again.stop()
        return ready and again.p.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled

    def recorded(self, ids: list[str]) -> dict[str, dict]:
        from distillguard.store import Store

        rows = Store(self.store).exchanges().to_arrow_table().select(
            ["exchange_id", "http_status", "extra"]).to_pylist()
        want = set(ids)
        return {r["exchange_id"]: r for r in rows if r["exchange_id"] in want}

    def mem(self) -> dict:
        mb = [r / 2**20 for r in self.rss if r]  # 0 once the process has exited
        return {"rss_start_mb": round(mb[0]), "rss_peak_mb": round(max(mb)), "rss_end_mb": round(mb[-1])}


async def _ordinary(url: str, key: str, n: int, concurrency: int) -> list[tuple[int, str | None]]:
    """``n`` plain chat requests, ``concurrency`` at a time: [(status, exchange id)]."""
    sem = asyncio.Semaphore(concurrency)
    out = []
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=60) as c:
        async def one(i):
            async with sem:
                try:
                    r = await c.post("/v1/chat/completions", json={"model": "m", "messages": [
                        {"role": "user", "content": f"ordinary request {i}"}]})
                    out.append((r.status_code, r.headers.get("x-distillguard-exchange-id")))
                except httpx.HTTPError:
                    out.append((0, None))
                await asyncio.sleep(0.05)
        await asyncio.gather(*(one(i) for i in range(n)))
    return out


async def _slow(port: int, key: bytes, kind: str, hold_s: float) -> tuple[str, float]:
    """One slow client: ``header`` trickles a 1 MiB header, ``body`` a 4 MiB body, ``silent`` says nothing.
    Returns (what the server answered: status code or 'closed'/'held', seconds until it let go)."""
    t0 = time.monotonic()
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return "refused", 0.0
    if kind == "header":
        first = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-pad: "
        pieces = [first] + [b"p" * 16384] * 64
    elif kind == "body":
        first = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer " + key +
                 b"\r\ncontent-type: application/json\r\ncontent-length: 4194304\r\n\r\n")
        pieces = [first] + [b" " * 65536] * 64
    else:
        pieces = []
    answer = "held"
    reader = asyncio.ensure_future(r.read(64))
    try:
        deadline = t0 + hold_s
        for p in pieces + [None] * 10_000:
            if reader.done() or time.monotonic() > deadline:
                break
            if p is not None:
                if w.transport.is_closing():
                    break
                try:
                    w.write(p)
                    await w.drain()
                except (ConnectionError, OSError):
                    break
            await asyncio.wait([reader], timeout=0.5)
        if not reader.done() and time.monotonic() <= deadline:
            await asyncio.wait([reader], timeout=max(0.0, deadline - time.monotonic()))
        if reader.done():
            try:
                data = reader.result()
                answer = data[9:12].decode() if data.startswith(b"HTTP/1.1 ") else "closed"
            except (ConnectionError, OSError):
                answer = "closed"
    finally:
        if not reader.done():
            reader.cancel()
        w.close()
    return answer, time.monotonic() - t0


def slow_clients(env: Env, n_slow: int = 350, n_ordinary: int = 300, hold_s: float = 60.0) -> dict:
    """350 slow clients (1/3 trickling a 1 MiB header, 1/3 a 4 MiB body, 1/3 silent) for up to 60 s while 300
    ordinary requests are served."""
    gw = Gateway(env, "slow_clients", f"http://127.0.0.1:{env.mock_port}/v1",
                 {"header_timeout_s": 10, "body_timeout_s": 30}, {})
    t0 = time.monotonic()

    async def go():
        kinds = ["header", "body", "silent"]
        slow = [asyncio.ensure_future(_slow(gw.port, env.key.encode(), kinds[i % 3], hold_s)) for i in range(n_slow)]
        await asyncio.sleep(2)  # the slow clients are in before the ordinary ones start
        ordinary = await _ordinary(gw.base, env.key, n_ordinary, 8)
        return ordinary, await asyncio.gather(*slow)

    ordinary, slow = asyncio.run(go())
    seconds = time.monotonic() - t0
    gw.stop()
    ids = [x for st, x in ordinary if st == 200 and x]
    rec = gw.recorded(ids)
    restart = gw.restarts(env, "slow_clients")
    by_kind: dict = {}
    for i, (ans, held) in enumerate(slow):
        k = by_kind.setdefault(["header", "body", "silent"][i % 3], {"answers": {}, "held_max_s": 0.0})
        k["answers"][ans] = k["answers"].get(ans, 0) + 1
        k["held_max_s"] = round(max(k["held_max_s"], held), 1)
    cut = sum(1 for a, _ in slow if a != "held")
    # target: every ordinary request served and recorded, and every slow client cut off before the test gave up
    return {"scenario": "slow_clients", "sent": n_ordinary, "accepted": len(ids), "recorded": len(rec),
            "restart": restart, "fault": f"{n_slow} slow", "fault_answered": cut,
            "held_max_s": round(max(h for _, h in slow), 1),
            "ok": len(rec) == len(ids) == n_ordinary and cut == n_slow and restart,
            "seconds": round(seconds, 1), **gw.mem(), "notes": by_kind}


def long_keys(env: Env, n_huge: int = 300, n_unknown: int = 5000, n_ordinary: int = 100) -> dict:
    """300 requests with 1 MiB API keys, then 5,000 with distinct 500-character unknown keys, then 100 ordinary
    ones: what stays in the gateway's memory."""
    gw = Gateway(env, "long_keys", f"http://127.0.0.1:{env.mock_port}/v1", {}, {})
    t0 = time.monotonic()
    time.sleep(1)
    rss0 = psutil.Process(gw.p.pid).memory_info().rss
    answers: dict = {}

    async def go():
        sem = asyncio.Semaphore(8)
        async with httpx.AsyncClient(base_url=gw.base, timeout=60) as c:
            async def one(key: str):
                async with sem:
                    try:
                        r = await c.post("/v1/chat/completions", json={"model": "m", "messages": MSG},
                                         headers={"authorization": f"Bearer {key}"})
                        answers[str(r.status_code)] = answers.get(str(r.status_code), 0) + 1
                    except httpx.HTTPError as e:  # the server closed while the key was still being sent
                        answers[type(e).__name__] = answers.get(type(e).__name__, 0) + 1
            await asyncio.gather(*(one(f"k{i}-" + "x" * (1 << 20)) for i in range(n_huge)))
            await asyncio.gather(*(one(f"sk-{i:08d}-" + "y" * 488) for i in range(n_unknown)))
        return await _ordinary(gw.base, env.key, n_ordinary, 8)

    ordinary = asyncio.run(go())
    time.sleep(1)
    rss1 = psutil.Process(gw.p.pid).memory_info().rss
    seconds = time.monotonic() - t0
    gw.stop()
    ids = [x for st, x in ordinary if st == 200 and x]
    rec = gw.recorded(ids)
    retained = (rss1 - rss0) / 2**20
    return {"scenario": "long_keys", "sent": n_ordinary, "accepted": len(ids), "recorded": len(rec),
            "fault": f"{n_huge} x 1 MiB keys, {n_unknown} unknown keys", "fault_answered": sum(answers.values()),
            "retained_mb": round(retained, 1), "ok": len(rec) == len(ids) == n_ordinary and retained < 64,
            "seconds": round(seconds, 1), **gw.mem(), "notes": {"answers": answers}}


MODES = ["ok", "hang", "cut", "bad-types", "bad-usage", "huge", "endless", "garbage"]
PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}


def _request(api: str, mode: str, stream: bool, i: int) -> dict:
    text = f"req {i} [mode:{mode}]"
    if api == "responses":
        return {"model": "m", "input": text, "stream": stream}
    body = {"model": "m", "messages": [{"role": "user", "content": text}], "stream": stream}
    if api == "messages":
        body["max_tokens"] = 16
    return body


def _judge(api: str, status: int, ctype: str, data: bytes, stream: bool) -> str:
    """'reply' (200, complete), 'error' (an error in the API's format, as JSON or as a stream's last event)
    or 'broken' (anything else: truncated stream, non-JSON error, wrong shape)."""
    if status != 200:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return "broken"
        ok = (isinstance(obj.get("error"), dict) and "message" in obj["error"]) and (
            api != "messages" or obj.get("type") == "error")
        return "error" if ok else "broken"
    if not ctype.startswith("text/event-stream"):
        try:
            orjson.loads(data)
            return "reply"
        except orjson.JSONDecodeError:
            return "broken"
    last = data.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    if last.startswith(b"event: error") or last.startswith(b'data: {"error"'):
        return "error"
    ends = {"chat": b"data: [DONE]", "messages": b'"message_stop"', "responses": b"response.completed"}[api]
    return "reply" if ends in last else "broken"


def hostile_upstream(env: Env, repeats: int = 3, concurrency: int = 12) -> dict:
    """Every misbehaviour of the hostile upstream x 3 APIs x streamed or not, 3 times each (50 MiB replies,
    endless streams, hangs, cuts, wrongly typed fields, garbage), with ordinary requests alongside."""
    gw = Gateway(env, "hostile_upstream", env.hostile.url + "/v1", {},
                 {"idle_timeout_s": 5, "read_timeout_s": 30, "max_response_bytes": 8 << 20,
                  "max_stream_bytes": 16 << 20})
    jobs = [(api, mode, stream, i) for i in range(repeats) for mode in MODES for api in PATHS
            for stream in (False, True)]
    t0 = time.monotonic()

    async def go():
        sem = asyncio.Semaphore(concurrency)
        out = []
        timeout = httpx.Timeout(60, read=60)
        async with httpx.AsyncClient(base_url=gw.base, headers={"authorization": f"Bearer {env.key}"},
                                     timeout=timeout) as c:
            async def one(job):
                api, mode, stream, i = job
                async with sem:
                    try:
                        # a client gives up after 90 s or 64 MiB: a reply that has not ended by then is broken
                        async with asyncio.timeout(90), c.stream("POST", PATHS[api],
                                                                 json=_request(api, mode, stream, i)) as r:
                            buf = bytearray()
                            async for b in r.aiter_bytes():
                                buf += b
                                if len(buf) > 64 << 20:
                                    raise OverflowError
                            data = bytes(buf)
                        verdict = _judge(api, r.status_code, r.headers.get("content-type", ""), data, stream)
                        out.append((job, r.status_code, r.headers.get("x-distillguard-exchange-id"), verdict))
                    except (httpx.HTTPError, TimeoutError, OverflowError) as e:
                        out.append((job, 0, None, f"broken ({type(e).__name__})"))
            await asyncio.gather(*(one(j) for j in jobs))
        return out

    results = asyncio.run(go())
    seconds = time.monotonic() - t0
    gw.stop()
    ids = [x for _, _, x, _ in results if x]
    rec = gw.recorded(ids)
    restart = gw.restarts(env, "hostile_upstream")
    per_mode: dict = {}
    for (_api, mode, _stream, _), _st, xid, verdict in results:
        m = per_mode.setdefault(mode, {})
        m[verdict] = m.get(verdict, 0) + 1
        if xid and xid not in rec:
            m["unrecorded"] = m.get("unrecorded", 0) + 1
    broken = sum(1 for *_, v in results if v.startswith("broken"))
    return {"scenario": "hostile_upstream", "sent": len(jobs), "accepted": len(ids), "recorded": len(rec),
            "restart": restart, "fault": "hostile upstream", "fault_answered": len(jobs) - broken, "broken": broken,
            "ok": broken == 0 and len(rec) == len(ids) and restart, "seconds": round(seconds, 1), **gw.mem(),
            "notes": per_mode}


def setup(work: Path, code: Path = ROOT) -> Env:
    return Env(work, code)


def teardown(env: Env) -> None:
    env.close()


SCENARIOS = {"slow_clients": slow_clients, "long_keys": long_keys, "hostile_upstream": hostile_upstream}


def _main() -> int:
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description="gateway fault injection (slow clients, hostile upstream)")
    ap.add_argument("--scenario", action="append", choices=list(SCENARIOS))
    ap.add_argument("--work", type=Path)
    ap.add_argument("--code", type=Path, default=ROOT)
    a = ap.parse_args()
    env = setup(a.work or Path(tempfile.mkdtemp(prefix="chaos-gw-")), a.code)
    rows = []
    try:
        for name in a.scenario or list(SCENARIOS):
            print(f"-- gateway/{name}", file=sys.stderr, flush=True)
            rows.append(SCENARIOS[name](env))
            print(f"   {rows[-1]}", file=sys.stderr, flush=True)
    finally:
        teardown(env)
    cols = ["scenario", "sent", "accepted", "recorded", "restart", "fault", "fault_answered", "held_max_s",
            "retained_mb", "broken", "ok", "seconds", "rss_start_mb", "rss_peak_mb", "rss_end_mb"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    for r in rows:
        print(f"- {r['scenario']}: {orjson.dumps(r['notes']).decode()}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(_main())
