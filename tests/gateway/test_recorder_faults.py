"""Fault injection for the recorder: what the gateway accepted is what the store holds.

Each test drives a real gateway (or the Recorder on a real spool) into one fault seen in an adversarial run
(issue 12): poison values, partial spool segments, a full queue, a Redis outage, a full disk, SIGKILL. The
longer versions of the same scenarios, with numbers, are in bench/chaos.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from distillguard.gateway.config import RecorderConfig
from distillguard.gateway.identity import add_key, pepper_from_env
from distillguard.gateway.recorder import Recorder, compact_spool
from distillguard.store import Store
from distillguard.testing.faults import fill_filesystem, start_private_redis
from distillguard.testing.net import free_port
from tests.gateway.conftest import read_exchanges
from tests.gateway.test_recorder import _rec, _wait_http

ROOT = Path(__file__).resolve().parents[2]
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


def _post(gw, path, body, key="acct-1"):
    r = httpx.post(gw.url + path, json=body, headers={"authorization": f"Bearer {gw.keys[key]}"}, timeout=30)
    return r.status_code, r.headers.get("x-distillguard-exchange-id"), r


def _quarantined(store_path: Path) -> list[dict]:
    out = []
    for p in sorted((store_path / "quarantine").glob("*.jsonl")):
        out += [orjson.loads(ln) for ln in p.read_bytes().splitlines() if ln.strip()]
    return out


POISON = [
    ("/chat/completions", {**CHAT, "max_tokens": 1e300}, "max_tokens"),
    ("/chat/completions", {**CHAT, "n": 1e300}, "n"),
    ("/chat/completions", {**CHAT, "max_tokens": "123456789012345678901234567890"}, "max_tokens"),
    ("/responses", {"model": "m", "input": "hi", "max_output_tokens": 10**40}, "max_tokens"),
    ("/messages", {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}],
                   "thinking": {"type": "enabled", "budget_tokens": 1e300}}, "thinking_budget"),
    ("/chat/completions", {**CHAT, "temperature": 1e300}, "temperature"),
]


def test_poison_values_are_nulled_with_a_reason_and_never_sink_their_batch(make_gateway):
    # a long group-commit window so poison and clean requests share batches
    gw = make_gateway(recorder={"flush_interval_ms": 100})
    jobs = [(p, b, f) for p, b, f in POISON] + [("/chat/completions", CHAT, None)] * 40
    with ThreadPoolExecutor(16) as ex:
        got = list(ex.map(lambda j: (_post(gw, j[0], j[1]), j[2]), jobs))
    assert all(st == 200 for (st, _, _), _ in got)
    gw.flush()
    assert gw.gateway.recorder.pending == 0
    gw.srv.stop()
    rows = {r["exchange_id"]: r for r in read_exchanges(gw.tmp / "store")}
    assert sorted(rows) == sorted(x for (_, x, _), _ in got)  # every accepted exchange, poisoned or not
    for (_, xid, _), field in got:
        row = rows[xid]
        assert row["http_status"] == 200 and row["response_text"]
        if field:
            assert row[field] is None
            assert field in orjson.loads(row["extra"])["invalid_fields"]


def test_recorder_isolates_a_record_its_encoder_or_the_schema_refuses(tmp_path):
    """Values that never came through extract (a hostile upstream's usage, a future bug) are still isolated."""
    st = Store(tmp_path / "store", create=True)
    rec = Recorder(RecorderConfig(flush_interval_ms=50), tmp_path / "spool", st)
    rec.start()
    for i in range(30):
        rec.begin(_rec(f"x{i}", prompt=f"p{i}", client_asn=2**70 if i == 4 else None))
    rec.end({"exchange_id": "x1", "http_status": 200, "input_tokens": 2**70})  # orjson cannot encode it
    rec.end({"exchange_id": "x2", "http_status": 200, "output_tokens": 2**40, "stop_reason": {"a": 1},
             "tool_calls": [1, None, "t"], "temperature": float("inf")})  # int32 overflow / wrong types
    rec.end({"exchange_id": "x3", "http_status": "two hundred", "latency_ms": "12"})
    for i in range(4, 30):
        rec.end({"exchange_id": f"x{i}", "http_status": 200, "extra": {"decided": "allow"}})  # as the proxy's
    assert rec.flush_wait(5)
    rec.stop()
    rows = {r["exchange_id"]: r for r in read_exchanges(st.path)}
    assert sorted(rows) == sorted(f"x{i}" for i in range(30))
    bad1 = orjson.loads(rows["x1"]["extra"])["invalid_fields"]
    assert rows["x1"]["input_tokens"] is None and "input_tokens" in bad1 and rows["x1"]["http_status"] == 200
    bad2 = orjson.loads(rows["x2"]["extra"])["invalid_fields"]
    assert rows["x2"]["output_tokens"] is None and "output_tokens" in bad2
    assert rows["x2"]["stop_reason"] == '{"a":1}' and rows["x2"]["tool_calls"] == ["1", "t"]
    assert rows["x3"]["http_status"] is None and rows["x3"]["latency_ms"] == 12
    assert all(rows[f"x{i}"]["http_status"] == 200 for i in range(4, 30))
    assert rows["x4"]["client_asn"] is None and "client_asn" in orjson.loads(rows["x4"]["extra"])["invalid_fields"]


def _segment(spool: Path, lines: list[bytes]) -> Path:
    spool.mkdir(parents=True, exist_ok=True)
    p = spool / f"seg-{1:020d}-1-abcdef.jsonl"
    p.write_bytes(b"\n".join(lines) + b"\n")
    return p


PARTIAL = [
    orjson.dumps({**_rec("begun-only", prompt="p1"), "_k": "b"}),  # the gateway died mid-request
    orjson.dumps({"exchange_id": "old-end", "_k": "e", "http_status": 200}),  # begin lost, no ts to store it by
    orjson.dumps({"exchange_id": "new-end", "_k": "e", "http_status": 200, "ts": 1767225600000,
                  "account_id": "a2", "response_text": "r"}),  # begin lost, end carries its identity
    b'{"exchange_id": "torn", "_k": "b", "ts": 17672',  # torn mid-segment (written before a crash)
    orjson.dumps({**_rec("whole", prompt="p2"), "_k": "b"}),
    orjson.dumps({"exchange_id": "whole", "_k": "e", "http_status": 200}),
    orjson.dumps({**_rec("badts"), "ts": "yesterday-ish", "_k": "b"}),
    orjson.dumps({"exchange_id": "badts", "_k": "e", "http_status": 200}),
]


def test_compaction_tolerates_partial_segments_and_quarantines_the_rest(tmp_path):
    st = Store(tmp_path / "store", create=True)
    seg = _segment(tmp_path / "spool", PARTIAL)
    compact_spool(tmp_path / "spool", st)
    assert not seg.exists()
    rows = {r["exchange_id"]: r for r in read_exchanges(st.path)}
    assert sorted(rows) == ["begun-only", "new-end", "whole"]
    assert orjson.loads(rows["begun-only"]["extra"])["interrupted"] is True
    assert orjson.loads(rows["new-end"]["extra"])["begin_missing"] is True and rows["new-end"]["account_id"] == "a2"
    assert rows["whole"]["http_status"] == 200 and rows["whole"]["prompt"] == "p2"
    q = _quarantined(st.path)
    assert {r["reason"].split(":")[0] for r in q} >= {"end line without its begin line", "unreadable spool line"}
    assert len(q) == 3 and all(r["path"].endswith(seg.name) and r["line"] >= 1 and r["raw"] for r in q)
    assert any("timestamp" in r["reason"] for r in q if "badts" in r["raw"])
    # compacting the same segment again (a crash between write and delete) neither duplicates rows nor quarantine
    _segment(tmp_path / "spool", PARTIAL)
    compact_spool(tmp_path / "spool", st)
    assert len(read_exchanges(st.path)) == 3 and len(_quarantined(st.path)) == 3


def test_an_end_line_alone_does_not_stop_compaction(tmp_path):
    """The exact shape of the reported failure: every value castable, but an end with no ts/account."""
    st = Store(tmp_path / "store", create=True)
    _segment(tmp_path / "spool", [orjson.dumps({**_rec("ok"), "_k": "b"}),
                                  orjson.dumps({"exchange_id": "ok", "_k": "e", "http_status": 200}),
                                  orjson.dumps({"exchange_id": "lost-begin", "_k": "e", "http_status": 200})])
    c = compact_spool(tmp_path / "spool", st)
    assert (c.exchanges, c.quarantined, c.failed) == (1, 1, [])
    assert [r["exchange_id"] for r in read_exchanges(st.path)] == ["ok"]


def test_gateway_and_gateway_compact_start_on_a_partial_spool(make_gateway, tmp_path):
    _segment(tmp_path / "store" / "spool", PARTIAL)
    gw = make_gateway()  # start-up recovery must not fail on it
    st, xid, _ = _post(gw, "/chat/completions", CHAT)
    assert st == 200
    gw.flush()
    gw.srv.stop()
    ids = {r["exchange_id"] for r in read_exchanges(tmp_path / "store")}
    assert {"begun-only", "new-end", "whole", xid} <= ids
    _segment(tmp_path / "store" / "spool", PARTIAL)
    out = subprocess.run([sys.executable, "-m", "distillguard", "gateway-compact", "--store", str(tmp_path / "store")],
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 3, out.stderr  # as ingest: finished, some records quarantined
    assert "compacted 3 exchanges" in out.stdout and "quarantined 3" in out.stdout


def test_full_queue_applies_back_pressure_instead_of_dropping(make_gateway):
    gw = make_gateway(recorder={"queue_max": 4, "flush_interval_ms": 10, "full_wait_ms": 10_000})
    with ThreadPoolExecutor(12) as ex:
        got = list(ex.map(lambda _: _post(gw, "/chat/completions", CHAT), range(40)))
    accepted = [x for st, x, _ in got if st == 200]
    gw.flush()
    metrics = httpx.get(gw.srv.url + "/metrics").text
    gw.srv.stop()
    rows = {r["exchange_id"]: r for r in read_exchanges(gw.tmp / "store")}
    assert len(accepted) == 40  # a 10 s wait is ample: nobody was refused
    assert sorted(rows) == sorted(accepted) and all(r["http_status"] == 200 for r in rows.values())
    assert "distillguard_gateway_recorder_dropped_total 0.0" in metrics


def test_full_queue_refuses_new_requests_rather_than_accepting_them_unrecorded(tmp_path):
    rec = Recorder(RecorderConfig(queue_max=3), tmp_path / "spool", Store(tmp_path / "store", create=True))
    # not started: nothing drains, so the queue fills
    assert rec.has_room()
    for i in range(3):
        rec.begin(_rec(f"q{i}"))
    assert not rec.has_room()
    for i in range(3):
        rec.end({"exchange_id": f"q{i}", "http_status": 200})  # ends of admitted exchanges are never refused
    assert rec.pending == 6 and rec.dropped == 0
    rec.start()
    assert rec.flush_wait(5)
    rec.stop()
    assert len(read_exchanges(tmp_path / "store")) == 3


@pytest.mark.redis
def test_redis_outage_spools_locally_and_drains_when_redis_returns(make_gateway, tmp_path):
    from distillguard.gateway.writer import run_writer

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    (tmp_path / "redis").mkdir()
    proc = start_private_redis(port, tmp_path / "redis")  # our own (persistent) Redis: stopping it disturbs no one
    stream = "dg:test:exchanges"
    try:
        gw = make_gateway(recorder={"mode": "redis", "redis_url": url, "redis_stream": stream,
                                    "flush_interval_ms": 5, "redis_retry_seconds": 0.2})
        ids = [_post(gw, "/chat/completions", {**CHAT, "stream": i % 2 == 0})[1] for i in range(6)]
        gw.flush()
        proc.kill()
        proc.wait(5)
        ids += [_post(gw, "/chat/completions", {**CHAT, "stream": i % 2 == 0})[1] for i in range(10)]
        gw.flush()
        assert gw.gateway.recorder.spilled > 0  # the outage went to the local spool, not into the void
        proc = start_private_redis(port, tmp_path / "redis")
        ids += [_post(gw, "/chat/completions", CHAT)[1] for _ in range(4)]
        assert gw.gateway.recorder.drained_wait(10)
        gw.flush()
        gw.srv.stop()
        out = Store(tmp_path / "writer-store", create=True)
        # an entry no gateway would write must not stop the writer (it is quarantined)
        import redis

        r = redis.Redis.from_url(url)
        r.xadd(stream, {b"d": b'{"exchange_id": "junk", "_k": "e"'})
        r.xadd(stream, {b"d": orjson.dumps({"exchange_id": "orphan-end", "_k": "e", "http_status": 200})})
        n = run_writer(out, url, stream, "w", "c1", batch_seconds=0.1, once=True)
    finally:
        proc.kill()
        proc.wait(5)
    rows = {r["exchange_id"]: r for r in read_exchanges(out.path)}
    assert n == 20 and sorted(rows) == sorted(ids)
    assert all(r["http_status"] == 200 and r["prompt"] == "hello" for r in rows.values())
    assert not list((tmp_path / "store" / "spool").glob("seg-*"))  # drained, nothing left behind
    assert {q["raw"][:40] for q in _quarantined(out.path)} == {'{"exchange_id": "junk", "_k": "e"',
                                                                '{"exchange_id":"orphan-end","_k":"e","ht'}


@pytest.mark.redis
def test_writer_survives_a_redis_outage_of_its_own(tmp_path):
    """The writer retries a lost connection instead of crashing; nothing is acknowledged that was not written."""
    import threading

    import redis

    from distillguard.gateway.writer import run_writer

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    proc = start_private_redis(port)
    r = redis.Redis.from_url(url)
    for i in range(5):
        r.xadd("s", {b"d": orjson.dumps({**_rec(f"w{i}"), "_k": "b"})})
        r.xadd("s", {b"d": orjson.dumps({"exchange_id": f"w{i}", "_k": "e", "http_status": 200})})
    st = Store(tmp_path / "store", create=True)
    result = {}
    stop = threading.Event()
    t = threading.Thread(target=lambda: result.setdefault("n", run_writer(
        st, url, "s", "g", "c", batch_seconds=0.1, stop=stop, retry_seconds=0.1)))
    try:
        t.start()
        import time

        t0 = time.monotonic()
        while len(read_exchanges(st.path)) < 5 and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        proc.kill()
        proc.wait(5)
        time.sleep(0.5)
        assert t.is_alive()  # still retrying, not crashed
        proc = start_private_redis(port)  # a fresh Redis: the stream is gone, the writer recreates its group
        r = redis.Redis.from_url(url)
        r.xadd("s", {b"d": orjson.dumps({**_rec("w9"), "_k": "b"})})
        r.xadd("s", {b"d": orjson.dumps({"exchange_id": "w9", "_k": "e", "http_status": 200})})
        t0 = time.monotonic()
        while len(read_exchanges(st.path)) < 6 and time.monotonic() - t0 < 10:
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(10)
        proc.kill()
        proc.wait(5)
    assert sorted(x["exchange_id"] for x in read_exchanges(st.path)) == [f"w{i}" for i in (0, 1, 2, 3, 4, 9)]


@pytest.fixture
def tiny_fs(tmp_path):
    """A 256 KiB tmpfs (root only): a disk that really fills up."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_spool_disk_is_visible_and_recovered_without_loss(make_gateway, tiny_fs):
    gw = make_gateway(recorder={"spool_dir": str(tiny_fs), "flush_interval_ms": 5})
    ids = [_post(gw, "/chat/completions", CHAT)[1] for _ in range(3)]
    gw.flush()
    filler = tiny_fs / "filler"
    fill_filesystem(filler)  # take every free byte
    got = [_post(gw, "/chat/completions", CHAT) for _ in range(20)]
    assert all(st == 200 for st, _, _ in got)  # the queue still has room: requests are served and held
    ids += [x for _, x, _ in got]
    import time

    t0 = time.monotonic()
    while gw.gateway.recorder.healthy and time.monotonic() - t0 < 5:
        time.sleep(0.02)
    ready = httpx.get(gw.srv.url + "/readyz")
    metrics = httpx.get(gw.srv.url + "/metrics").text
    assert ready.status_code == 503 and "No space left" in ready.json()["recorder_error"]
    assert 'distillguard_gateway_recorder_write_errors_total{kind="ENOSPC"}' in metrics
    assert "distillguard_gateway_recorder_healthy 0.0" in metrics
    filler.unlink()  # space returns
    gw.flush()
    assert httpx.get(gw.srv.url + "/readyz").status_code == 200
    gw.srv.stop()
    rows = {r["exchange_id"]: r for r in read_exchanges(gw.tmp / "store")}
    assert sorted(rows) == sorted(ids) and all(r["http_status"] == 200 for r in rows.values())
    assert not _quarantined(gw.tmp / "store")  # no torn line was left by the failed writes


def test_sync_durability_holds_the_reply_until_its_record_is_on_disk(make_gateway, tmp_path):
    # a window far longer than the test: in batch mode nothing would be on disk yet when the reply arrives
    gw = make_gateway(recorder={"durability": "sync", "flush_interval_ms": 60_000})
    for body in (CHAT, {**CHAT, "stream": True}):
        st, xid, _ = _post(gw, "/chat/completions", body)
        assert st == 200
        spool = b"".join(p.read_bytes() for p in (tmp_path / "store" / "spool").glob("seg-*.jsonl"))
        ends = [orjson.loads(ln) for ln in spool.splitlines() if b'"_k":"e"' in ln]
        assert any(e["exchange_id"] == xid and e["http_status"] == 200 for e in ends)


@pytest.mark.slow
def test_sigkill_loses_nothing_with_sync_durability(tmp_path, mock_upstream):
    keys = tmp_path / "keys.yaml"
    key, _ = add_key(keys, "acct-k", None, pepper_from_env("DISTILLGUARD_KEY_PEPPER"))
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("recorder: {durability: sync, flush_interval_ms: 60000}\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "distillguard", "gateway", "--upstream", mock_upstream.url + "/v1",
                             "--store", str(tmp_path / "store"), "--port", str(port), "--keys-file", str(keys),
                             "--config", str(cfg)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = []
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/v1", headers={"authorization": f"Bearer {key}"},
                          timeout=30) as c:
            for i in range(30):
                r = c.post("/chat/completions", json={**CHAT, "stream": i % 3 == 0})
                assert r.status_code == 200
                done.append(r.headers["x-distillguard-exchange-id"])
        os.kill(proc.pid, signal.SIGKILL)  # immediately after the last reply
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    compact_spool(tmp_path / "store" / "spool", Store(tmp_path / "store"))
    rows = {r["exchange_id"]: r for r in read_exchanges(tmp_path / "store")}
    assert sorted(rows) == sorted(done) and all(rows[x]["http_status"] == 200 for x in done)


def test_unknown_durability_is_a_config_error():
    from distillguard.errors import ConfigError
    from distillguard.gateway.config import load_config

    with pytest.raises(ConfigError, match="recorder.durability"):
        load_config(**{"recorder.durability": "eventually"})


def test_a_record_that_breaks_its_batch_is_quarantined_alone(tmp_path):
    """A failure that is not I/O (here: an exchange_id no dict can key on) falls back to record-by-record writes."""
    st = Store(tmp_path / "store", create=True)
    rec = Recorder(RecorderConfig(flush_interval_ms=50), tmp_path / "spool", st)
    rec.start()
    for i in range(10):
        rec.begin(_rec(f"k{i}"))
        if i == 5:
            rec.begin(_rec(["not", "an", "id"]))
        rec.end({"exchange_id": f"k{i}", "http_status": 200, "ts": 1767225600000, "account_id": "a"})
    assert rec.flush_wait(5)
    rec.stop()
    assert rec.quarantined == 1 and rec.dropped == 0
    assert sorted(r["exchange_id"] for r in read_exchanges(st.path)) == sorted(f"k{i}" for i in range(10))
    q = _quarantined(st.path)
    assert len(q) == 1 and "unhashable" in q[0]["reason"] and "not" in q[0]["raw"]


def test_a_queue_that_stays_full_refuses_with_503_and_loses_nothing_admitted(make_gateway, tiny_fs):
    gw = make_gateway(recorder={"spool_dir": str(tiny_fs), "flush_interval_ms": 5, "queue_max": 6,
                                "full_wait_ms": 300})
    filler = tiny_fs / "filler"
    fill_filesystem(filler)  # nothing can be written: the queue cannot drain
    got = [_post(gw, "/chat/completions", CHAT) for _ in range(5)]
    statuses = [st for st, _, _ in got]
    assert statuses == [200, 200, 200, 503, 503]  # 2 records each: the 4th finds 6 pending
    refused = got[3][2]
    assert refused.json()["error"]["code"] == "recorder_unavailable" and refused.headers["retry-after"] == "1"
    assert httpx.get(gw.srv.url + "/readyz").status_code == 503
    assert "distillguard_gateway_recorder_refused_total 2.0" in httpx.get(gw.srv.url + "/metrics").text
    filler.unlink()
    gw.flush()
    gw.srv.stop()
    rows = {r["exchange_id"] for r in read_exchanges(gw.tmp / "store")}
    assert rows == {x for st, x, _ in got if st == 200}


@pytest.mark.redis
def test_a_drain_interrupted_by_a_crash_resumes_after_its_mark(tmp_path):
    import redis

    from distillguard.gateway.recorder import drain_segment

    lines = [orjson.dumps({**_rec(f"d{i}"), "_k": "b"}) for i in range(2500)]
    seg = _segment(tmp_path / "spool", lines + [orjson.dumps({"_k": "carry", "ids": ["d1"]})])
    (seg.parent / (seg.name + ".sent")).write_text("1000")  # the first 1,000 lines went out before the crash
    stream = f"dgtest:drain:{os.getpid()}:{tmp_path.name}"
    r = redis.Redis()
    try:
        assert drain_segment(seg, r, stream, 1_000_000) == 1500
        got = [orjson.loads(f[b"d"])["exchange_id"] for _, f in r.xrange(stream)]
    finally:
        r.delete(stream)
    assert got == [f"d{i}" for i in range(1000, 2500)]  # in order, from the mark on, no carry trailer
    assert not seg.exists() and not (seg.parent / (seg.name + ".sent")).exists()
