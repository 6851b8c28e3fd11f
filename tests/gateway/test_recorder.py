"""Recording survives crashes: spool semantics, SIGKILL mid-stream, and the Redis-stream writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from distillguard.gateway.config import RecorderConfig
from distillguard.gateway.identity import add_key, pepper_from_env
from distillguard.gateway.recorder import Recorder, compact_spool, merge_records
from distillguard.store import Store
from distillguard.testing.net import free_port
from tests.gateway.conftest import read_exchanges

ROOT = Path(__file__).resolve().parents[2]


def _rec(xid, **kw):
    return {"exchange_id": xid, "ts": 1767225600000, "account_id": "a", "endpoint": "chat.completions", **kw}


def test_merge_begin_end_and_torn_line():
    lines = [orjson.dumps({**_rec("x1"), "_k": "b", "prompt": "p"}), orjson.dumps({"exchange_id": "x1", "_k": "e",
                                                                                    "http_status": 200}),
             orjson.dumps({**_rec("x2"), "_k": "b"}), b'{"exchange_id": "x3", "_k": "e", "http_sta']
    m = merge_records(lines)
    assert list(m.done.values()) == [{**_rec("x1"), "prompt": "p", "http_status": 200}] and list(m.begins) == ["x2"]
    assert [(p.line, p.reason.split(":")[0]) for p in m.problems] == [(4, "unreadable spool line")]


def test_recorder_spool_compacts_idempotently(tmp_path):
    st = Store(tmp_path / "store", create=True)
    rec = Recorder(RecorderConfig(flush_interval_ms=5), tmp_path / "spool", st)
    rec.start()
    for i in range(50):
        rec.begin(_rec(f"x{i}", prompt=f"p{i}"))
        rec.end({"exchange_id": f"x{i}", "http_status": 200, "extra": {"k": i}})
    rec.begin(_rec("open"))  # never ends: recorded as interrupted
    assert rec.flush_wait(5)
    seg = next((tmp_path / "spool").glob("seg-*.jsonl"))
    assert compact_spool(tmp_path / "spool", st).exchanges == 0  # held by a live writer: left alone
    copy = seg.read_bytes()
    rec.stop()
    rows = read_exchanges(st.path)
    assert len(rows) == 51 and not list((tmp_path / "spool").glob("seg-*"))
    (tmp_path / "spool" / seg.name).write_bytes(copy)  # as if the process died between write and delete
    compact_spool(tmp_path / "spool", st)
    rows = read_exchanges(st.path)
    assert len(rows) == 51  # same key: replaced, not duplicated
    assert orjson.loads([r for r in rows if r["exchange_id"] == "open"][0]["extra"]) == {"interrupted": True}


def _wait_http(url, proc, timeout=30):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode()[-2000:])
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("gateway did not come up")


@pytest.mark.slow
def test_sigkill_mid_stream_loses_no_accepted_exchange(tmp_path, mock_upstream):
    keys = tmp_path / "keys.yaml"
    key, _ = add_key(keys, "acct-k", "org-k", pepper_from_env("DISTILLGUARD_KEY_PEPPER"))
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("recorder: {flush_interval_ms: 10}\n")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "distillguard", "gateway", "--upstream", mock_upstream.url + "/v1",
                             "--store", str(tmp_path / "store"), "--port", str(port), "--keys-file", str(keys),
                             "--config", str(cfg)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(base + "/healthz", proc)
        h = {"authorization": f"Bearer {key}"}
        done_ids = []
        with httpx.Client(base_url=base + "/v1", headers=h, timeout=30) as c:
            for i in range(20):
                r = c.post("/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]})
                assert r.status_code == 200
                done_ids.append(r.headers["x-distillguard-exchange-id"])
            for i in range(3):
                r = c.post("/chat/completions", json={"model": "m", "stream": True,
                                                      "messages": [{"role": "user", "content": f"s{i}"}]})
                assert r.text.endswith("data: [DONE]\n\n")
                done_ids.append(r.headers["x-distillguard-exchange-id"])
            with c.stream("POST", "/chat/completions", json={"model": "m", "stream": True,
                                                             "messages": [{"role": "user", "content": "long [slow]"}]}) as s:
                cut_id = s.headers["x-distillguard-exchange-id"]
                got = 0
                chunks = s.iter_raw()  # kept referenced: dropping the iterator would close the connection
                while got < 5:
                    got += next(chunks).count(b"\n\n")
                time.sleep(0.3)  # > flush interval: everything above is acknowledged by the spool
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    segs = list((tmp_path / "store" / "spool").glob("seg-*.jsonl"))
    assert segs, "the killed gateway left its spool segment behind"
    n = compact_spool(tmp_path / "store" / "spool", Store(tmp_path / "store")).exchanges
    rows = {r["exchange_id"]: r for r in read_exchanges(tmp_path / "store")}
    assert n == len(rows) == 24
    assert all(rows[x]["http_status"] == 200 and rows[x]["response_text"] for x in done_ids)
    cut = rows[cut_id]
    assert cut["http_status"] is None and orjson.loads(cut["extra"])["interrupted"] is True
    assert cut["prompt"] == "long [slow]" and cut["stream"] is True


@pytest.mark.redis
def test_redis_stream_recording_and_writer(make_gateway, tmp_path):
    from distillguard.gateway.writer import run_writer

    stream = f"dgtest:exchanges:{uuid.uuid4().hex[:8]}"
    gw = make_gateway(recorder={"mode": "redis", "redis_stream": stream, "flush_interval_ms": 5})
    h = {"authorization": f"Bearer {gw.keys['acct-1']}"}
    ids = []
    for i in range(5):
        r = httpx.post(gw.url + "/chat/completions", headers=h,
                       json={"model": "m", "stream": i % 2 == 0, "messages": [{"role": "user", "content": f"r{i}"}]})
        ids.append(r.headers["x-distillguard-exchange-id"])
    gw.flush()
    gw.srv.stop()
    out = Store(tmp_path / "writer-store", create=True)
    try:
        n = run_writer(out, "redis://127.0.0.1:6379/0", stream, "w", "c1", batch_seconds=0.1, once=True)
    finally:
        import redis

        redis.Redis().delete(stream)
    rows = read_exchanges(out.path)
    assert n == 5 and sorted(r["exchange_id"] for r in rows) == sorted(ids)
    assert all(r["http_status"] == 200 and r["prompt"].startswith("r") for r in rows)
    assert not read_exchanges(gw.tmp / "store")  # nothing fell back to the local spool


def test_client_disconnect_mid_stream_is_recorded(make_gateway):
    gw = make_gateway()
    with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {gw.keys['acct-1']}"}) as c:
        with c.stream("POST", "/chat/completions", json={"model": "m", "stream": True,
                                                         "messages": [{"role": "user", "content": "bye [slow]"}]}) as s:
            xid = s.headers["x-distillguard-exchange-id"]
            for _ in s.iter_raw():
                break
    t0 = time.monotonic()
    while gw.gateway.metrics.inflight._value.get() > 0 and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    gw.flush()
    gw.srv.stop()
    row = [r for r in read_exchanges(gw.tmp / "store") if r["exchange_id"] == xid][0]
    assert "client disconnected mid-stream" in row["action_reasons"]


def test_segments_rotate_and_compact_while_running(tmp_path):
    st = Store(tmp_path / "store", create=True)
    rec = Recorder(RecorderConfig(flush_interval_ms=5, segment_max_bytes=4000), tmp_path / "spool", st)
    rec.start()
    for i in range(200):
        rec.begin(_rec(f"r{i}", prompt="p" * 50))
        rec.end({"exchange_id": f"r{i}", "http_status": 200})
        if i % 20 == 0:
            time.sleep(0.01)
    assert rec.flush_wait(5)
    t0 = time.monotonic()
    while not st.has_exchanges() and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert st.has_exchanges()  # earlier segments were compacted while the recorder kept running
    rec.stop()
    rows = read_exchanges(st.path)
    assert sorted(r["exchange_id"] for r in rows) == sorted(f"r{i}" for i in range(200))
    assert all(r["http_status"] == 200 for r in rows)  # no begin/end pair split across segments was lost


@pytest.mark.slow
def test_sigterm_finishes_in_flight_streams_then_exits(tmp_path):
    import threading

    from distillguard.gateway.mock_upstream import MockUpstream
    from tests.gateway.conftest import ServerThread

    up = ServerThread(MockUpstream(reasoning_words=20, answer_words=10)).start()  # ~1.6 s paced stream
    keys = tmp_path / "keys.yaml"
    key, _ = add_key(keys, "acct-t", None, pepper_from_env("DISTILLGUARD_KEY_PEPPER"))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "distillguard", "gateway", "--upstream", up.url + "/v1",
                             "--store", str(tmp_path / "store"), "--port", str(port), "--keys-file", str(keys)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    got = {}
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", proc)

        def client():
            r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                           json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "t [slow]"}]},
                           timeout=30)
            got["text"], got["id"] = r.text, r.headers["x-distillguard-exchange-id"]

        t = threading.Thread(target=client)
        t.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        t.join(30)
        # uvicorn re-raises the captured SIGTERM after its graceful shutdown, hence -15 rather than 0
        assert proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
        up.stop()
    assert got["text"].endswith("data: [DONE]\n\n")  # the stream in flight was finished, not cut
    rows = read_exchanges(tmp_path / "store")  # shutdown drained the recorder and compacted the spool
    assert [(r["exchange_id"], r["http_status"]) for r in rows] == [(got["id"], 200)]
    assert not list((tmp_path / "store" / "spool").glob("seg-*"))
