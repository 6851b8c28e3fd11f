"""What the check service costs: per-check latency and CPU, and NGINX with vs without `auth_request`.

Starts the mock upstream and `distillguard gateway-check` as processes (policy, enforcement snapshot and
limits on; recording off, as in production), then NGINX with two listeners built from
examples/nginx/distillguard.conf: one with the auth_request and one plain proxy. One client, sequential
requests (c=1), so the numbers are latencies, not throughput. Run from the repository:

    python bench/check_bench.py [--n 2000]

Prints a JSON report (p50/p99 in ms, check-service CPU ms per check, peak RSS in MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distillguard.gateway.identity import add_key, pepper_from_env  # noqa: E402
from distillguard.testing.net import free_port  # noqa: E402


def _wait(url: str, proc: subprocess.Popen, what: str) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if proc.poll() is not None:
                raise SystemExit(f"{what} exited") from None
            time.sleep(0.05)
    raise SystemExit(f"{what} did not start")


def _timed(client: httpx.Client, n: int, method: str, url: str, **kw) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.request(method, url, **kw)
        out.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{url}: HTTP {r.status_code} {r.text[:200]}")
    return out


def _stats(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"p50_ms": round(statistics.median(xs), 3), "p99_ms": round(xs[int(len(xs) * 0.99) - 1], 3), "n": len(xs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        raise SystemExit("nginx not installed (apt-get install nginx-light)")
    os.environ.setdefault("DISTILLGUARD_KEY_PEPPER", "bench-pepper")
    tmp = Path(tempfile.mkdtemp(prefix="dg-check-bench-"))
    key, _ = add_key(tmp / "keys.yaml", "acct-1", "org-1", pepper_from_env("DISTILLGUARD_KEY_PEPPER"))
    (tmp / "policy.yaml").write_text("rules:\n  - {name: banned, when: {account_status_in: [banned]}, action: block}\n")
    (tmp / "gw.yaml").write_text(
        f"store: {tmp / 'store'}\npolicy: {tmp / 'policy.yaml'}\n"
        f"identity: {{keys_file: {tmp / 'keys.yaml'}, trusted_proxies: ['127.0.0.1/32']}}\n"
        "limits: {account: {requests: {rate: 1000000}, tokens: {rate: 1000000000}}}\n")
    up_port, chk_port, ng_auth, ng_plain = free_port(), free_port(), free_port(), free_port()
    dg = [sys.executable, "-m", "distillguard"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([*dg, "mock-upstream", "--port", str(up_port), "--reasoning-words", "20",
                               "--answer-words", "20"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    chk = subprocess.Popen([*dg, "gateway-check", "--config", str(tmp / "gw.yaml"), "--port", str(chk_port)],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(chk)
    try:
        _wait(f"http://127.0.0.1:{up_port}/v1/models", procs[0], "mock upstream")
        _wait(f"http://127.0.0.1:{chk_port}/healthz", chk, "gateway-check")
        site = (ROOT / "examples/nginx/distillguard.conf").read_text().replace("@CHECK@", f"127.0.0.1:{chk_port}") \
            .replace("@UPSTREAM@", f"127.0.0.1:{up_port}").replace("@LISTEN@", f"127.0.0.1:{ng_auth}")
        plain = (f"server {{ listen 127.0.0.1:{ng_plain}; location /v1/ {{ proxy_http_version 1.1; "
                 "proxy_set_header Connection \"\"; proxy_buffering off; proxy_pass http://model_api; } }")
        temps = "".join(f"{k}_temp_path {tmp}/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (tmp / "nginx.conf").write_text(f"worker_processes 1;\nerror_log {tmp}/error.log warn;\npid {tmp}/nginx.pid;\n"
                                        f"events {{ worker_connections 128; }}\nhttp {{ access_log off;\n{temps}"
                                        f"{site}\n{plain}\n}}\n")
        ng = subprocess.Popen([nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"])
        procs.append(ng)
        _wait(f"http://127.0.0.1:{ng_plain}/", ng, "nginx")
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hello there"}]}).encode()
        auth = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        report: dict = {"n": args.n, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        cp = psutil.Process(chk.pid)
        with httpx.Client(timeout=10) as c:
            _timed(c, 200, "POST", f"http://127.0.0.1:{chk_port}/envoy/v1/chat/completions", content=body,
                   headers=auth)  # warm-up
            cpu0 = sum(cp.cpu_times()[:2])
            report["check_envoy_with_body"] = _stats(_timed(
                c, args.n, "POST", f"http://127.0.0.1:{chk_port}/envoy/v1/chat/completions", content=body,
                headers=auth))
            report["check_cpu_ms_per_check"] = round((sum(cp.cpu_times()[:2]) - cpu0) * 1000 / args.n, 3)
            report["check_nginx_headers_only"] = _stats(_timed(
                c, args.n, "GET", f"http://127.0.0.1:{chk_port}/nginx/auth",
                headers={**auth, "x-original-uri": "/v1/chat/completions"}))
            report["nginx_plain_proxy"] = _stats(_timed(
                c, args.n, "POST", f"http://127.0.0.1:{ng_plain}/v1/chat/completions", content=body, headers=auth))
            report["nginx_with_auth_request"] = _stats(_timed(
                c, args.n, "POST", f"http://127.0.0.1:{ng_auth}/v1/chat/completions", content=body, headers=auth))
        report["added_p50_ms"] = round(report["nginx_with_auth_request"]["p50_ms"]
                                       - report["nginx_plain_proxy"]["p50_ms"], 3)
        report["check_peak_rss_mib"] = round(cp.memory_info().rss / 2**20, 1)
        print(json.dumps(report, indent=2))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
