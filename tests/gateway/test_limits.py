"""GCRA limits: per account, and shared by a cluster so 200 accounts under their own limit still stop."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import orjson
import pytest

from distillguard.gateway.config import DimensionLimits, LimitsConfig, Rate
from distillguard.gateway.ratelimit import MemoryLimiter, RedisLimiter, plan
from distillguard.testing.faults import start_private_redis
from distillguard.testing.net import free_port
from tests.gateway.conftest import read_exchanges

BODY = orjson.dumps({"model": "mock-small", "messages": [{"role": "user", "content": "hi"}]})


def test_gcra_burst_then_rate_and_all_or_nothing():
    cfg = LimitsConfig(account=DimensionLimits(requests=Rate(rate=60, per_seconds=60, burst=5)),
                       cluster=DimensionLimits(requests=Rate(rate=60, per_seconds=60, burst=3)))
    lim = MemoryLimiter()
    a = plan(cfg, [("account", "a", cfg.account)], 0)
    assert [lim.acquire(a, now=100.0).allowed for _ in range(6)] == [True] * 5 + [False]
    v = lim.acquire(a, now=100.0)
    assert v.retry_after == pytest.approx(1.0) and v.denied.dim == "account"
    assert lim.acquire(a, now=101.01).allowed  # one emission interval later, one more
    # all-or-nothing: a request denied by the cluster bucket consumes nothing from the account bucket
    lim2 = MemoryLimiter()
    both = plan(cfg, [("account", "b", cfg.account), ("cluster", "c", cfg.cluster)], 0)
    assert [lim2.acquire(both, now=0.0).allowed for _ in range(4)] == [True, True, True, False]
    assert lim2.tat[both[0].key] == pytest.approx(3.0)
    hdrs = dict(lim2.acquire(both, now=0.0).headers())
    assert hdrs[b"retry-after"] == b"1" and hdrs[b"x-ratelimit-remaining-requests"] == b"0"


def test_token_limit_charges_actual_usage_as_debt():
    cfg = LimitsConfig(account=DimensionLimits(tokens=Rate(rate=1000, per_seconds=60)))
    lim = MemoryLimiter()
    b = plan(cfg, [("account", "a", cfg.account)], est_tokens=10)
    assert lim.acquire(b, now=0.0).allowed
    lim.charge(b, 5000, now=0.0)  # the reply used far more than the estimate
    v = lim.acquire(b, now=1.0)
    assert not v.allowed and v.denied.kind == "tokens" and v.retry_after > 200


def _limits(**dims):
    out = {"account": {"requests": {"rate": 5, "per_seconds": 60}}}
    out.update(dims)
    return out


async def _fire(url, keys, per_account):
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=16)) as c:
        sem = asyncio.Semaphore(16)

        async def one(k):
            async with sem:
                r = await c.post(url + "/chat/completions", content=BODY,
                                 headers={"authorization": f"Bearer {k}", "content-type": "application/json"})
                return r

        return await asyncio.gather(*[one(k) for k in keys for _ in range(per_account)])


@pytest.mark.slow
def test_200_accounts_of_one_cluster_are_throttled_as_a_cluster(make_gateway, tmp_path):
    accounts = [f"hydra-{i:03d}" for i in range(200)]
    clusters = tmp_path / "clusters.jsonl"
    clusters.write_bytes(b"".join(orjson.dumps({"account_id": a, "cluster_id": "cl-7"}) + b"\n" for a in accounts))
    gw = make_gateway(accounts=accounts, clusters_file=str(clusters),
                      limits=_limits(cluster={"requests": {"rate": 40, "per_seconds": 60}}))
    t0 = time.monotonic()
    res = asyncio.run(_fire(gw.url, list(gw.keys.values()), per_account=2))  # 2 each: under the per-account 5
    elapsed = time.monotonic() - t0
    ok = [r for r in res if r.status_code == 200]
    limited = [r for r in res if r.status_code == 429]
    assert len(ok) + len(limited) == 400
    assert 40 <= len(ok) <= 40 + int(elapsed * 40 / 60) + 1  # the cluster's burst plus what refilled meanwhile
    r = limited[0]
    assert r.json()["error"]["code"] == "rate_limit_exceeded" and int(r.headers["retry-after"]) >= 1
    assert r.headers["x-ratelimit-remaining-requests"] == "0" and "x-ratelimit-limit-requests" in r.headers
    assert "cluster" not in r.text  # the client is not told which accounts were linked
    gw.flush()
    gw.srv.stop()
    rows = read_exchanges(gw.tmp / "store")
    throttled = [x for x in rows if x["action"] == "rate_limited"]
    assert len(throttled) == len(limited) and all("rate limit: cluster requests" in x["action_reasons"]
                                                  for x in throttled)
    assert all(orjson.loads(x["extra"])["cluster_id"] == "cl-7" for x in rows)


def test_same_accounts_unlinked_are_not_throttled(make_gateway):
    accounts = [f"solo-{i:02d}" for i in range(30)]
    gw = make_gateway(accounts=accounts, limits=_limits(cluster={"requests": {"rate": 10, "per_seconds": 60}}))
    res = asyncio.run(_fire(gw.url, list(gw.keys.values()), per_account=2))
    assert all(r.status_code == 200 for r in res)
    res = asyncio.run(_fire(gw.url, [gw.keys["solo-00"]], per_account=4))  # 6th request of one account
    assert [r.status_code for r in res].count(429) == 1


@pytest.mark.redis
def test_redis_limiter_is_shared_between_replicas():
    prefix = f"dgtest:{uuid.uuid4().hex[:8]}:"
    cfg = LimitsConfig(backend="redis", key_prefix=prefix, redis_timeout_ms=500,
                       account=DimensionLimits(requests=Rate(rate=10, per_seconds=60)))

    async def go():
        r1, r2 = RedisLimiter(cfg), RedisLimiter(cfg)  # two gateway replicas
        b = plan(cfg, [("account", "shared", cfg.account)], 0)
        got = [(await (r1 if i % 2 else r2).acquire(b)).allowed for i in range(14)]
        await r1.redis.delete(*(x.key for x in b))
        await r1.close()
        await r2.close()
        return got

    got = asyncio.run(go())
    assert got.count(True) == 10 and got[-1] is False


def _start_redis(port):
    return start_private_redis(port)


@pytest.mark.parametrize("mode", ["local", "closed"])
def test_killing_redis_mid_run_gives_the_documented_behaviour(make_gateway, mode):
    port = free_port()
    proc = _start_redis(port)  # our own Redis: the shared one is never touched
    try:
        gw = make_gateway(limits={"backend": "redis", "redis_url": f"redis://127.0.0.1:{port}/0",
                                  "key_prefix": f"dgkill:{uuid.uuid4().hex[:6]}:", "on_redis_error": mode,
                                  "redis_timeout_ms": 200, "redis_retry_seconds": 0.5,
                                  "account": {"requests": {"rate": 3, "per_seconds": 60}}})
        key = gw.keys["acct-1"]
        h = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        before = [httpx.post(gw.url + "/chat/completions", content=BODY, headers=h).status_code for _ in range(4)]
        assert before == [200, 200, 200, 429]  # limits held in Redis
        proc.kill()
        proc.wait(5)
        after = [httpx.post(gw.url + "/chat/completions", content=BODY, headers=h) for _ in range(5)]
        ready = httpx.get(gw.srv.url + "/readyz").json()
        metrics = httpx.get(gw.srv.url + "/metrics").text
        if mode == "local":
            # fail over to the per-replica in-process limiter: still limited, fresh local budget
            assert [r.status_code for r in after] == [200, 200, 200, 429, 429]
            assert 'distillguard_gateway_limiter_degraded_total{mode="local"}' in metrics
        else:
            assert {r.status_code for r in after} == {503}
            assert after[0].json()["error"]["code"] == "limiter_unavailable"
        assert ready["limiter_redis_ok"] is False
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ip24_pathway_and_policy_throttle_dimensions(make_gateway, tmp_path):
    from datetime import UTC, datetime

    from distillguard.events.record import Account, accounts_to_table
    from distillguard.store import Store

    st = Store(tmp_path / "store", create=True)
    st.write_accounts(accounts_to_table([
        Account(account_id=a, org_id="o", created_at=datetime(2026, 1, 1, tzinfo=UTC), signup_pathway=p)
        for a, p in (("edu-1", "education"), ("edu-2", "education"), ("std-1", "standard"))]))
    enf = tmp_path / "enf.jsonl"
    enf.write_bytes(orjson.dumps({"subject_type": "account", "subject_id": "std-1", "action": "throttle",
                                  "reason": "suspicious volume", "source": "scan",
                                  "created_at": "2026-01-01T00:00:00Z"}) + b"\n")
    gw = make_gateway(accounts=("edu-1", "edu-2", "std-1"), enforcement_file=str(enf),
                      limits={"account": {"requests": {"rate": 20, "per_seconds": 60}},
                              "throttle_factor": 0.1,
                              "pathway": {"education": {"requests": {"rate": 3, "per_seconds": 60}}}})

    def send(acct):
        return httpx.post(gw.url + "/chat/completions", content=BODY,
                          headers={"authorization": f"Bearer {gw.keys[acct]}", "content-type": "application/json"})

    # the education pathway's shared bucket: 3 requests between both education accounts
    assert [send(a).status_code for a in ("edu-1", "edu-2", "edu-1", "edu-2")] == [200, 200, 200, 429]
    # throttled by the policy: account limit 20 × 0.1 = burst 2
    assert [send("std-1").status_code for _ in range(3)] == [200, 200, 429]
    gw.flush()
    gw.srv.stop()
    rows = read_exchanges(tmp_path / "store")
    limited = {r["account_id"]: r["action_reasons"] for r in rows if r["http_status"] == 429}
    assert "rate limit: pathway requests" in limited["edu-2"]
    assert "rate limit: account requests" in limited["std-1"]
    assert any("suspicious volume" in x for x in limited["std-1"])
    ip_gw = make_gateway(accounts=("x1", "x2"), limits={"ip24": {"requests": {"rate": 2, "per_seconds": 60}}})
    codes = [httpx.post(ip_gw.url + "/chat/completions", content=BODY,
                        headers={"authorization": f"Bearer {ip_gw.keys[a]}"}).status_code for a in ("x1", "x2", "x1")]
    assert codes == [200, 200, 429]  # two accounts, one /24
