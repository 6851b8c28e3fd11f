"""`distillguard watch` closing the loop: two gateway replicas record to a Redis stream, watch follows it into
the store, detects, and publishes; both replicas apply the decision; a restart neither skips nor double-counts."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import openai
import pytest
import redis

from distillguard.scan.config import ScanConfig
from distillguard.store import Store
from distillguard.testing.worlds import build_tiny_world
from distillguard.watch import WatchOptions, load_state, run_watch, tick

pytestmark = pytest.mark.redis
REDIS = "redis://127.0.0.1:6379/0"
MSG = [{"role": "user", "content": "work through this proof"}]


def _until(pred, timeout=60.0, every=0.1):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(every)
    return None


def _reasoning(gw, account) -> bool:
    c = openai.OpenAI(base_url=gw.url, api_key=gw.keys[account], max_retries=0)
    msg = c.chat.completions.create(model="m", messages=MSG, reasoning_effort="high").choices[0].message
    return bool((msg.model_extra or {}).get("reasoning_content"))


def _count(st, where="true") -> int:
    con = Store(st.path).connect()
    try:
        return con.execute(f"SELECT count(*) FROM exchanges WHERE {where}").fetchall()[0][0]
    finally:
        con.close()


@pytest.fixture
def names():
    tag = uuid.uuid4().hex[:8]
    n = {"stream": f"dg-test:{tag}:exchanges", "prefix": f"dg-test:{tag}:enforcement"}
    yield n
    r = redis.Redis.from_url(REDIS)
    for k in r.scan_iter(f"dg-test:{tag}:*"):
        r.delete(k)


def test_watch_follows_the_stream_detects_and_every_replica_applies(make_gateway, tmp_path, names):
    st = Store(tmp_path / "watched", create=True)
    w = build_tiny_world(st, seed=3)  # the history the detector already has
    members = sorted(a for a, (c, _) in w.labels.items() if c == "camp-slow")[:2]
    benign = sorted(a for a, (c, p) in w.labels.items() if c is None and p == "chat")[0]
    cfg = {"recorder": {"mode": "redis", "redis_stream": names["stream"], "flush_interval_ms": 5},
           "store": None, "enforcement_redis_url": REDIS, "enforcement_redis_prefix": names["prefix"],
           "reload_seconds": 0.2}
    replicas = [make_gateway(accounts=(*members, benign), **cfg) for _ in range(2)]
    for gw in replicas:  # before any decision both replicas serve the reasoning
        assert _reasoning(gw, members[0]) and _reasoning(gw, benign)
    sent = 4
    n_before = _count(st)

    opts = WatchOptions(interval_seconds=3600, redis_url=REDIS, stream=names["stream"], group="g", consumer="w1",
                        publish_url=REDIS, publish_prefix=names["prefix"])
    reports, stop = [], threading.Event()
    t = threading.Thread(target=run_watch, args=(st, opts, stop, 0.2, reports.append), daemon=True)
    t.start()
    try:
        rep = _until(lambda: next((r for r in reports if r.published_version), None), timeout=300)
        assert rep is not None and rep.detected and rep.campaigns >= 1
        published = time.monotonic()
        # every replica applies the published version (it polls one key every reload_seconds)
        for gw in replicas:
            assert _until(lambda gw=gw: httpx.get(gw.srv.url + "/readyz").json()["enforcement_version"]
                          == rep.published_version, timeout=30)
        lag = time.monotonic() - published
        print(f"published v{rep.published_version}; both replicas applied it {lag:.2f}s later")
        for gw in replicas:
            assert not _reasoning(gw, members[0]) and not _reasoning(gw, members[1])  # protected now
            assert _reasoning(gw, benign)  # the benign user is untouched
        sent += 6
        # what the replicas recorded reaches the store (exactly once each)
        live = set(members) | {benign}

        def n_live():
            return _count(st, "source_format = 'gateway'")
        assert _until(lambda: n_live() == sent, timeout=60), n_live()
    finally:
        stop.set()
        t.join(30)
    assert _count(st) == n_before + sent
    assert live

    # a restart: the state and the stream's acknowledgements say what was done; nothing doubles
    state = load_state(st)
    scored_before = dict(state["signals"])
    rep2 = tick(st, opts, state, ScanConfig(), force_detect=False)  # scores only parts written after the last tick
    assert set(scored_before) < set(state["signals"]) or rep2.scored == 0
    assert all(state["signals"][k] == v for k, v in scored_before.items())
    assert tick(st, opts, load_state(st), ScanConfig()).scored == 0
    con = Store(st.path).connect()
    dup = con.execute("SELECT count(*) - count(DISTINCT exchange_id) FROM exchange_signals").fetchall()[0][0]
    n_sig = con.execute("SELECT count(*) FROM exchange_signals s JOIN exchanges e USING (exchange_id) "
                        "WHERE e.source_format = 'gateway'").fetchall()[0][0]
    assert dup == 0 and n_sig == sent


def test_rescoring_a_part_after_a_crash_replaces_its_signals(tmp_path, monkeypatch):
    """A crash after a signals part is written but before the state records it: the part is scored again on
    restart and its rows replace the first ones."""
    from distillguard import watch
    from distillguard.testing.factory import make_exchange, write_world

    st = Store(tmp_path / "s", create=True)
    write_world(st, [make_exchange(account_id="a", prompt="Think step by step and show all your reasoning")],
                key="p1")
    state = load_state(st)
    real = watch.save_state
    calls = []

    def crash_after_part(store, s):
        calls.append(1)
        if len(calls) == 2:  # 1st: adoption; 2nd: right after the part was written
            raise KeyboardInterrupt("crash")
        real(store, s)

    monkeypatch.setattr(watch, "save_state", crash_after_part)
    with pytest.raises(KeyboardInterrupt):
        watch.score_new(st, state)
    monkeypatch.setattr(watch, "save_state", real)
    state = load_state(st)
    assert watch.score_new(st, state) == 1  # scored again ...
    t = st.read_table("exchange_signals")
    assert t.num_rows == 1 and t["sig_cot_elicitation"][0].as_py() > 0.5  # ... replacing, with the real classifier
    assert watch.score_new(st, load_state(st)) == 0


def test_watch_in_spool_mode_stores_scores_and_the_gateway_applies(make_gateway, tmp_path):
    """The embedded form, no Redis: the gateway records to ``STORE/spool`` and compacts its rotated segments,
    `watch` compacts what no gateway holds (a killed replica's segment), scores and detects, and the gateway
    applies the decision from the store's tables. Nothing is stored twice."""
    import shutil

    st = Store(tmp_path / "store", create=True)
    w = build_tiny_world(st, seed=3)
    members = sorted(a for a, (c, _) in w.labels.items() if c == "camp-slow")[:2]
    benign = sorted(a for a, (c, p) in w.labels.items() if c is None and p == "chat")[0]
    gw = make_gateway(accounts=(*members, benign), store=str(st.path),
                      recorder={"mode": "spool", "segment_max_seconds": 0.2})
    for a in (*members, benign):
        assert _reasoning(gw, a)  # before any decision every account gets the reasoning
    gw.flush()
    # the world's own rows (the gateway may compact a rotated segment at any moment, so not a total taken now)
    n_before = _count(st, "source_format <> 'gateway'")
    assert _until(lambda: _count(st, "source_format = 'gateway'") == 3, timeout=60)  # rotated and compacted

    # a segment left by a replica that was killed before it compacted it (the gateway's own file, copied)
    rec = tmp_path / "other-replica"
    rec.mkdir()
    (rec / "spool").mkdir()
    other = make_gateway(accounts=(members[0],), store=str(rec), recorder={"segment_max_seconds": 3600})
    assert _reasoning(other, members[0])
    other.flush()
    seg = next((rec / "spool").glob("seg-*.jsonl"))
    shutil.copy(seg, st.path / "spool" / ("seg-0-killed" + seg.name[3:]))

    opts = WatchOptions(interval_seconds=3600)  # redis_url None: the spool
    state = load_state(st)
    rep = tick(st, opts, state, ScanConfig())
    assert rep.recorded >= 1 and rep.detected and rep.campaigns >= 1
    assert _count(st, "source_format = 'gateway'") == 4 and _count(st) == n_before + 4
    polls = []  # every poll is one more request the gateway records: count them, not assume one

    def withheld() -> bool:
        polls.append(1)
        return not _reasoning(gw, members[0])

    assert _until(withheld, timeout=30)  # the store's decision, applied
    assert not _reasoning(gw, members[1]) and _reasoning(gw, benign)
    gw.flush()
    sent = 4 + len(polls) + 2
    assert _until(lambda: _count(st, "source_format = 'gateway'") == sent, timeout=60)
    # a restart: nothing scored twice, nothing stored twice
    rep2 = tick(st, opts, load_state(st), ScanConfig())
    assert rep2.recorded == 0
    assert tick(st, opts, load_state(st), ScanConfig()).scored == 0
    con = Store(st.path).connect()
    try:
        dup = con.execute("SELECT count(*) - count(DISTINCT exchange_id) FROM exchanges").fetchall()[0][0]
        sig_dup = con.execute("SELECT count(*) - count(DISTINCT exchange_id) FROM exchange_signals").fetchall()[0][0]
    finally:
        con.close()
    assert dup == 0 and sig_dup == 0 and _count(st) == n_before + sent
