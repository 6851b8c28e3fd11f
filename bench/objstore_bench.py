"""Ingest + scan of the same world into a local store and into a store on S3 (a moto server on 127.0.0.1).

    python bench/objstore_bench.py [--benign-scale 4] [--days 7] [--signals always|never]

Builds the tiny labelled world (distillguard/testing/worlds.py) once, writes it out as native JSONL plus an
accounts file, then for each target — a local directory and ``s3://bench/store`` on a moto S3 server this
script starts (never the network) — runs ``distillguard ingest`` and ``distillguard scan`` as child
processes and records wall time, CPU (user + system of the child and its workers) and the child's peak RSS.
The inputs are also put in the bucket and ingested from there into a local store (inputs on object storage).
Prints Markdown rows for docs/benchmarks.md and checks the two scans flag the same accounts.

Moto is an in-process Python server, so the S3 numbers are an upper bound on the cost of the storage
layer (every request is a Python HTTP round trip on the same 2 cores), not a prediction of a real bucket's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _hwm_mb(pid: int) -> float:
    """The process's own peak RSS so far (VmHWM; wait4's ru_maxrss would include this script's memory,
    which the child inherits at fork and Linux carries across exec)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for ln in fh:
                if ln.startswith("VmHWM:"):
                    return int(ln.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _child(cmd: list[str], env: dict, work: Path) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MB, stdout) of one child process (CPU includes its workers; peak RSS is the
    main process's VmHWM, sampled every 0.1 s until it exits)."""
    out, err = work / "child.out", work / "child.err"
    t = time.perf_counter()
    peak = 0.0
    with open(out, "wb") as fo, open(err, "wb") as fe:
        p = subprocess.Popen([sys.executable, "-m", "distillguard", *cmd], stdout=fo, stderr=fe, env=env)
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _hwm_mb(p.pid))
            time.sleep(0.1)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        sys.stderr.write(err.read_text())
        raise SystemExit(f"failed ({code}): {' '.join(cmd)}")
    return wall, ru.ru_utime + ru.ru_stime, peak, out.read_text()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--benign-scale", type=int, default=4)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--signals", default="always")
    a = ap.parse_args()

    import orjson
    import s3fs
    from moto.server import ThreadedMotoServer

    from distillguard.store import Store
    from distillguard.store.export import export_native
    from distillguard.testing.worlds import build_tiny_world

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    work = Path(tempfile.mkdtemp(prefix="objstore-bench-"))
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work),
           "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_EC2_METADATA_DISABLED": "true",
           "DISTILLGUARD_SCRATCH": str(work / "scratch")}
    os.environ.update({k: v for k, v in env.items() if k.startswith(("AWS_", "DISTILLGUARD_"))})
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    fs.mkdir("bench")

    src = Store(work / "world", create=True)
    build_tiny_world(src, seed=5, days=a.days, benign_scale=a.benign_scale)
    logs = work / "logs"
    logs.mkdir()
    n = export_native(src, logs / "exchanges.jsonl")
    with open(logs / "accounts.jsonl", "wb") as fh:
        for r in src.accounts().to_arrow_table().to_pylist():
            fh.write(orjson.dumps(r, default=str) + b"\n")
    mb = sum(p.stat().st_size for p in logs.iterdir()) / 2**20
    for p in logs.iterdir():
        fs.put_file(str(p), f"bench/logs/{p.name}")

    load0 = os.getloadavg()[0]
    rows, flagged = [], {}
    targets = [("local store", str(work / "local"), [str(logs)]),
               ("s3 store (moto)", "s3://bench/store", [str(logs)]),
               ("s3 inputs → local store", str(work / "local-from-s3"), ["s3://bench/logs/"])]
    for name, store, inputs in targets:
        iw, ic, irss, ir = _child(["ingest", *inputs, "--store", store, "--json"], env, work)
        ingested = json.loads(ir)["ingested"]
        if name.startswith("s3 inputs"):
            rows.append((name, ingested, iw, ic, irss, None, None, None, None))
            continue
        out = work / f"out-{len(rows)}"
        sw, sc, srss, sr = _child(["scan", "--store", store, "--out", str(out), "--json", "--no-report",
                                   "--no-resume", "--signals", a.signals], env, work)
        s = json.loads(sr)
        flagged[name] = s["flagged_accounts"]
        rows.append((name, ingested, iw, ic, irss, sw, sc, srss, s["timings"]))
    load1 = os.getloadavg()[0]
    server.stop()

    print(f"machine: {platform.machine()} {os.cpu_count()} cores · python {platform.python_version()} · "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"command: python bench/objstore_bench.py --benign-scale {a.benign_scale} --days {a.days} "
          f"--signals {a.signals}")
    print(f"world: {n:,} exchanges, {mb:.1f} MiB of native JSONL · load average (1 min) before {load0:.2f}, "
          f"after {load1:.2f}")
    print()
    print("| target | exchanges | ingest wall s | ingest CPU s | ingest peak RSS | scan wall s | scan CPU s "
          "| scan peak RSS | signals / prepare / detect / campaigns wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, ing, iw, ic, irss, sw, sc, srss, tm in rows:
        scan = (f"{sw:.1f} | {sc:.1f} | {srss:,.0f} MB | " + " / ".join(f"{tm[k]:.1f}" for k in
                ("signals", "prepare", "detect", "campaigns"))) if sw is not None else "– | – | – | –"
        print(f"| {name} | {ing:,} | {iw:.1f} | {ic:.1f} | {irss:,.0f} MB | {scan} |")
    print()
    same = len(set(flagged.values())) == 1
    print(f"flagged accounts: {flagged} ({'same' if same else 'DIFFERENT'})")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
