"""Gateway overhead, our own numbers: direct to an upstream vs through `distillguard gateway`.

Starts a mock upstream — the repository's own (``distillguard/gateway/mock_upstream.py`` set to the side-by-side
run's shape: 300-word answer + 1,000-word reasoning), or with ``--peers-mock`` / ``$BENCH_PEERS`` the shared
peers' one (../shared/bench-peers/mock_upstream.py, 1,303-event streams) — and a gateway
subprocess in front of it with every check on (hashed-key auth, policy with enforcement table and
a rule, rate limits on account/org/cluster/ip24/pathway, reasoning binding) and the spool recorder
on. Then drives both with a small keep-alive HTTP/1.1 client (httptools parser) and reports
latency percentiles, throughput and the gateway's CPU per request (utime+stime from /proc).

    PYTHONPATH=. python bench/gateway_bench.py [--n 2000] [--cells ns:1,ns:32,st:1,st:32] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httptools
import orjson
import psutil

from distillguard.testing.net import free_port

ROOT = Path(__file__).resolve().parents[1]
#: The shared side-by-side benchmark's folder (outside this repository): used only when asked for.
PEERS = Path(os.environ.get("BENCH_PEERS", ROOT.parent.parent / "shared" / "bench-peers"))
PROMPT = " ".join(["explain step by step how to compute the total cost of the order"] * 16)
BODY = {"model": "mock-reasoner", "max_tokens": 2048,
        "messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": PROMPT}]}




class Conn:
    """One keep-alive connection; ``request`` returns (status, body bytes, ttfb)."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, path: str, body: bytes, key: str) -> tuple[int, int, float]:
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Type: application/json\r\nAccept-Encoding: gzip, deflate\r\nUser-Agent: dg-bench/1\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        done = asyncio.get_running_loop().create_future()
        state = {"n": 0, "ttfb": None}
        t0 = time.perf_counter()

        class P:
            def on_body(self_, b):
                if state["ttfb"] is None:
                    state["ttfb"] = time.perf_counter() - t0
                state["n"] += len(b)

            def on_message_complete(self_):
                if not done.done():
                    done.set_result(True)

        parser = httptools.HttpResponseParser(P())
        while not done.done():
            data = await self.reader.read(1 << 16)
            if not data:
                raise ConnectionError("closed")
            parser.feed_data(data)
        return parser.get_status_code(), state["n"], state["ttfb"] or 0.0


async def run_cell(port, path, body, key, conc, n, min_s=1.0):
    conns = [Conn("127.0.0.1", port) for _ in range(conc)]
    for c in conns:
        await c.open()
    for c in conns:  # warm
        await c.request(path, orjson.dumps({**body, "stream": False}), key)
    lat, errors = [], 0
    sent = 0
    t_start = time.perf_counter()
    payload = orjson.dumps(body)

    async def worker(c):
        nonlocal sent, errors
        while sent < n or time.perf_counter() - t_start < min_s:
            sent += 1
            t0 = time.perf_counter()
            st, _, _ = await c.request(path, payload, key)
            lat.append(time.perf_counter() - t0)
            if st != 200:
                errors += 1

    await asyncio.gather(*[worker(c) for c in conns])
    wall = time.perf_counter() - t_start
    for c in conns:
        c.writer.close()
    lat.sort()
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"n": len(lat), "errors": errors, "rps": len(lat) / wall, "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000}


def cpu_s(pid: int) -> float:
    p = psutil.Process(pid)
    total = sum(p.cpu_times()[:2])
    for ch in p.children(recursive=True):
        try:
            total += sum(ch.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def wait_up(port, path="/healthz", timeout=60):
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"port {port} did not come up")


def write_gateway_files(tmp: Path, key: str) -> Path:
    """Every check on: keys file, enforcement + clusters, a policy with rules, limits on every dimension."""
    env_pepper = os.environ.setdefault("DISTILLGUARD_KEY_PEPPER", "bench-pepper")
    os.environ.setdefault("DISTILLGUARD_REASONING_SECRET", "bench-secret")
    from distillguard.gateway.identity import add_key, pepper_from_env

    add_key(tmp / "keys.yaml", "bench-acct", "bench-org", pepper_from_env("DISTILLGUARD_KEY_PEPPER"), key=key)
    assert env_pepper
    rows = [{"subject_type": "account", "subject_id": f"other-{i}", "action": "block", "reason": "bench",
             "source": "scan", "created_at": "2026-01-01T00:00:00Z"} for i in range(1000)]
    rows.append({"subject_type": "cluster", "subject_id": "cl-bench", "action": "allow", "reason": "bench",
                 "source": "scan", "created_at": "2026-01-01T00:00:00Z"})
    (tmp / "enforcement.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    (tmp / "clusters.jsonl").write_bytes(orjson.dumps({"account_id": "bench-acct", "cluster_id": "cl-bench"}) + b"\n")
    (tmp / "policy.yaml").write_text(
        "mode: enforce\nrules:\n"
        "  - name: replay\n    when: {reasoning_binding_in: [altered, foreign]}\n    action: block\n"
        "  - name: cot\n    when: {signal: {name: sig_cot_elicitation, above: 0.9}, verification_below: 1}\n"
        "    action: protect_reasoning\n"
        "  - name: region\n    when: {region_in: [XX]}\n    action: block\n")
    big = {"requests": {"rate": 1e9}, "tokens": {"rate": 1e12}}
    cfg = {"enforcement_file": str(tmp / "enforcement.jsonl"), "clusters_file": str(tmp / "clusters.jsonl"),
           "policy": str(tmp / "policy.yaml"), "identity": {"keys_file": str(tmp / "keys.yaml")},
           "limits": {"account": big, "org": big, "cluster": big, "ip24": big, "pathway": {"default": big}},
           "recorder": {"enabled": True, "mode": "spool"}}
    (tmp / "gateway.yaml").write_text(orjson.dumps(cfg).decode())
    return tmp / "gateway.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--cells", default="ns:1,ns:32,st:1,st:32")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--peers-mock", action="store_true",
                    help="use the shared peers' mock upstream (../shared/bench-peers; default: the repository's own)")
    ap.add_argument("--write-config", type=Path, metavar="DIR",
                    help="only write the every-check-on gateway config for key $BENCH_API_KEY into DIR "
                         "(used by bench/gateway_peers.sh) and exit")
    args = ap.parse_args()
    if args.write_config:
        args.write_config.mkdir(parents=True, exist_ok=True)
        print(write_gateway_files(args.write_config, os.environ["BENCH_API_KEY"]))
        return
    tmp = Path(tempfile.mkdtemp(prefix="dg-gwbench-"))
    key = "sk-bench-" + os.urandom(12).hex()
    cfg = write_gateway_files(tmp, key)
    mport, gport = free_port(), free_port()
    py = sys.executable
    if args.peers_mock or "BENCH_PEERS" in os.environ:
        if not (PEERS / "mock_upstream.py").is_file():
            sys.exit(f"--peers-mock: no mock_upstream.py in {PEERS} (set BENCH_PEERS)")
        mock_cmd = [py, str(PEERS / "mock_upstream.py"), "--port", str(mport)]
    else:  # the repository alone: the bundled mock, shaped like the peers' one
        mock_cmd = [py, "-c", "from distillguard.gateway.mock_upstream import serve; "
                    f"serve({mport}, reasoning_words=1000, answer_words=300)"]
    mock = subprocess.Popen(mock_cmd, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gw = subprocess.Popen([py, "-m", "distillguard", "gateway", "--upstream", f"http://127.0.0.1:{mport}/v1",
                           "--config", str(cfg), "--store", str(tmp / "store"), "--port", str(gport)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                          stderr=open(tmp / "gateway.log", "wb"))
    results = []
    try:
        wait_up(mport, "/health")
        wait_up(gport)
        for cell in args.cells.split(","):
            mode, conc = cell.split(":")
            conc = int(conc)
            body = {**BODY, "stream": mode == "st"}
            n = args.n if mode == "ns" else max(50, args.n // 10)
            row = {"cell": f"{'stream' if mode == 'st' else 'non-stream'} c={conc}"}
            for name, port, pid in (("direct", mport, mock.pid), ("gateway", gport, gw.pid)):
                c0 = cpu_s(pid)
                r = asyncio.run(run_cell(port, "/v1/chat/completions", body, key, conc, n))
                time.sleep(0.3)  # let the recorder finish its batch: its CPU counts too
                r["cpu_ms_per_req"] = (cpu_s(pid) - c0) * 1000 / r["n"]
                row[name] = r
            row["added_p50_ms"] = row["gateway"]["p50_ms"] - row["direct"]["p50_ms"]
            row["added_p99_ms"] = row["gateway"]["p99_ms"] - row["direct"]["p99_ms"]
            results.append(row)
            print(f"{row['cell']:>16}: direct {row['direct']['rps']:8.0f} req/s p50 {row['direct']['p50_ms']:.2f} ms | "
                  f"gateway {row['gateway']['rps']:8.0f} req/s p50 {row['gateway']['p50_ms']:.2f} ms "
                  f"p99 {row['gateway']['p99_ms']:.2f} ms | added p50 {row['added_p50_ms']:.2f} ms "
                  f"p99 {row['added_p99_ms']:.2f} ms | gateway CPU {row['gateway']['cpu_ms_per_req']:.2f} ms/req "
                  f"(errors {row['gateway']['errors']})", flush=True)
    finally:
        for p in (gw, mock):
            p.send_signal(signal.SIGTERM)
        for p in (gw, mock):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    from distillguard.store import Store

    n_rec = Store(tmp / "store").exchanges().aggregate("count(*)").fetchall()[0][0]
    print(f"recorded exchanges in the store after shutdown: {n_rec:,}")
    if args.json:
        args.json.write_bytes(orjson.dumps({"cells": results, "recorded": n_rec}, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
