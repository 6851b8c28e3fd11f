"""GCRA limits on requests and tokens, checked across every dimension a hydra cluster shares.

A cluster of 20,000 accounts each under its per-account limit is only stopped by a bucket they
all draw from, so one request is checked against account, org, cluster, IP /24 and sign-up
pathway buckets at once, all-or-nothing: a denied request consumes nothing anywhere. GCRA keeps
one number per bucket (the theoretical arrival time), which makes the Redis version one small
atomic Lua script and the in-process version a dict.

Tokens are only known after the reply, so a request is admitted against its estimated input
tokens and the actual usage is charged afterwards; a bucket may go into debt, which holds the
next requests back until it is paid off.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from distillguard.gateway.config import DimensionLimits, LimitsConfig, Rate

log = logging.getLogger("distillguard.gateway")


@dataclass(slots=True)
class Bucket:
    key: str
    interval: float  # seconds per unit (T)
    tolerance: float  # burst tolerance in seconds (tau)
    cost: float
    kind: str  # "requests" or "tokens"
    dim: str  # "account", "cluster", ...
    burst: float
    #: The throttle factor this bucket was planned with (1.0 = the configured limit).
    factor: float = 1.0


@dataclass(slots=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0
    denied: Bucket | None = None
    #: Per bucket: seconds of the tolerance used after this request (tat - now).
    used: list[float] | None = None
    buckets: list[Bucket] | None = None
    degraded: str | None = None  # "local" / "open" when Redis was unreachable

    def headers(self, disclose_throttle: bool = False) -> list[tuple[bytes, bytes]]:
        """OpenAI-style x-ratelimit-* headers for the tightest request and token bucket.

        A throttled subject's bucket is ``factor`` times smaller; unless ``disclose_throttle``, its
        headers are scaled back to the configured limit (same used share, same shape), because a
        limit ten times lower than a neighbour's tells a harvester it has been detected.
        """
        if not self.buckets or self.used is None:
            return []
        out = []
        for kind in ("requests", "tokens"):
            best = None
            for b, u in zip(self.buckets, self.used, strict=False):
                if b.kind != kind:
                    continue
                remaining = max(0.0, (b.tolerance - u) / b.interval)
                if best is None or remaining < best[1]:
                    best = (b, remaining, max(0.0, u))
            if best is None:
                continue
            b, remaining, reset = best
            limit = b.burst
            if not disclose_throttle and b.factor != 1.0:
                limit, remaining, reset = limit / b.factor, remaining / b.factor, reset * b.factor
            out += [(f"x-ratelimit-limit-{kind}".encode(), str(int(limit)).encode()),
                    (f"x-ratelimit-remaining-{kind}".encode(), str(int(remaining)).encode()),
                    (f"x-ratelimit-reset-{kind}".encode(), f"{reset:.3f}s".encode())]
        if not self.allowed:
            out.append((b"retry-after", str(max(1, math.ceil(self.retry_after))).encode()))
            out.append((b"retry-after-ms", str(int(self.retry_after * 1000)).encode()))
        return out


def _bucket(prefix: str, dim: str, subject: str, kind: str, rate: Rate, cost: float, factor: float) -> Bucket:
    interval = rate.per_seconds / (rate.rate * factor)
    burst = max(1.0, (rate.burst or rate.rate) * factor)
    return Bucket(f"{prefix}{dim}:{subject}:{kind[0]}", interval, burst * interval, min(cost, burst), kind, dim, burst,
                  factor)


def plan(cfg: LimitsConfig, subjects: list[tuple[str, str | None, DimensionLimits | None]], est_tokens: float,
         factor: float = 1.0) -> list[Bucket]:
    """Buckets one request draws from: (dimension, subject id, limits) with None subjects skipped."""
    out = []
    for dim, subject, lim in subjects:
        if subject is None or lim is None:
            continue
        if lim.requests is not None:
            out.append(_bucket(cfg.key_prefix, dim, subject, "requests", lim.requests, 1.0, factor))
        if lim.tokens is not None:
            out.append(_bucket(cfg.key_prefix, dim, subject, "tokens", lim.tokens, est_tokens, factor))
    return out


class MemoryLimiter:
    """In-process GCRA (the embedded default): exact within one gateway process."""

    is_async = False

    def __init__(self):
        self.tat: dict[str, float] = {}

    def acquire(self, buckets: list[Bucket], now: float | None = None) -> Verdict:
        now = time.monotonic() if now is None else now
        tat = self.tat
        news = []
        denied, retry = None, 0.0
        for b in buckets:
            t = tat.get(b.key, now)
            if t < now:
                t = now
            new = t + b.cost * b.interval
            news.append(new)
            if new - now > b.tolerance:
                r = new - b.tolerance - now
                if r > retry:
                    denied, retry = b, r
        if denied is None:
            for b, new in zip(buckets, news, strict=False):
                tat[b.key] = new
        return Verdict(denied is None, retry, denied, [n - now for n in news], buckets)

    def charge(self, buckets: list[Bucket], amount: float, now: float | None = None) -> None:
        """Add actual usage (e.g. output tokens) to token buckets, allowing debt."""
        if amount <= 0:
            return
        now = time.monotonic() if now is None else now
        for b in buckets:
            if b.kind == "tokens":
                t = self.tat.get(b.key, now)
                self.tat[b.key] = max(t, now) + amount * b.interval

    def sweep(self) -> int:
        """Forget buckets that are full again (keeps memory bounded for millions of subjects)."""
        now = time.monotonic()
        dead = [k for k, t in self.tat.items() if t <= now]
        for k in dead:
            del self.tat[k]
        return len(dead)


_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n = #KEYS
local news = {}
local deny = 0
local retry = 0
for i = 1, n do
  local T = tonumber(ARGV[3*i-2]); local tau = tonumber(ARGV[3*i-1]); local cost = tonumber(ARGV[3*i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local new = tat + cost * T
  news[i] = new
  if new - now > tau then
    local r = new - tau - now
    if r > retry then retry = r; deny = i end
  end
end
if deny == 0 then
  for i = 1, n do
    redis.call('SET', KEYS[i], tostring(news[i]), 'PX', math.ceil(news[i] - now) + 1000)
  end
end
local out = {deny, tostring(retry)}
for i = 1, n do out[#out + 1] = tostring(news[i] - now) end
return out
"""

_CHARGE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
for i = 1, #KEYS do
  local add = tonumber(ARGV[i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local new = tat + add
  redis.call('SET', KEYS[i], tostring(new), 'PX', math.ceil(new - now) + 1000)
end
return #KEYS
"""


class LimiterUnavailable(Exception):
    """Redis is unreachable and the configuration says fail closed."""


class RedisLimiter:
    """GCRA shared by every gateway replica through Redis (times from Redis's clock, so replicas agree).

    When Redis cannot be reached the configured ``on_redis_error`` applies, and Redis is not tried
    again for ``redis_retry_seconds`` so an outage does not add a timeout to every request.
    """

    is_async = True

    def __init__(self, cfg: LimitsConfig):
        import redis.asyncio as aioredis

        self.cfg = cfg
        t = cfg.redis_timeout_ms / 1000
        self.redis = aioredis.Redis.from_url(cfg.redis_url, socket_timeout=t, socket_connect_timeout=t,
                                             retry_on_timeout=False, health_check_interval=0)
        self._acquire = self.redis.register_script(_ACQUIRE_LUA)
        self._charge = self.redis.register_script(_CHARGE_LUA)
        self.local = MemoryLimiter()
        self.down_until = 0.0
        self.failures = 0
        #: outcome of the last Redis call (for /readyz); ``healthy`` only says whether to try Redis now
        self.ok = True
        self._warned = 0.0

    @property
    def healthy(self) -> bool:
        return time.monotonic() >= self.down_until

    def _fail(self, e: Exception) -> None:
        self.failures += 1
        self.ok = False
        now = time.monotonic()
        self.down_until = now + self.cfg.redis_retry_seconds
        if now - self._warned > 10:
            self._warned = now
            log.warning("rate-limit Redis unreachable", extra={"error": type(e).__name__,
                                                               "on_redis_error": self.cfg.on_redis_error})

    def _degraded(self, buckets: list[Bucket]) -> Verdict:
        mode = self.cfg.on_redis_error
        if mode == "closed":
            raise LimiterUnavailable("rate limiter unavailable")
        if mode == "open":
            return Verdict(True, degraded="open")
        v = self.local.acquire(buckets)
        v.degraded = "local"
        return v

    async def acquire(self, buckets: list[Bucket]) -> Verdict:
        if not buckets:
            return Verdict(True)
        if not self.healthy:
            return self._degraded(buckets)
        args = []
        for b in buckets:
            args += [b.interval * 1000, b.tolerance * 1000, b.cost]
        try:
            res = await self._acquire(keys=[b.key for b in buckets], args=args)
        except Exception as e:  # noqa: BLE001 - any Redis failure takes the documented fallback
            self._fail(e)
            return self._degraded(buckets)
        self.ok = True
        deny = int(res[0])
        used = [float(x) / 1000 for x in res[2:]]
        return Verdict(deny == 0, float(res[1]) / 1000, buckets[deny - 1] if deny else None, used, buckets)

    async def charge(self, buckets: list[Bucket], amount: float) -> None:
        tok = [b for b in buckets if b.kind == "tokens"]
        if amount <= 0 or not tok:
            return
        if not self.healthy:
            if self.cfg.on_redis_error == "local":
                self.local.charge(tok, amount)
            return
        try:
            await self._charge(keys=[b.key for b in tok], args=[amount * b.interval * 1000 for b in tok])
        except Exception as e:  # noqa: BLE001
            self._fail(e)

    def sweep(self) -> int:
        return self.local.sweep()

    async def close(self) -> None:
        await self.redis.aclose()


def make_limiter(cfg: LimitsConfig):
    return RedisLimiter(cfg) if cfg.backend == "redis" else MemoryLimiter()
