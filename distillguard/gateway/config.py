"""Gateway configuration: one validated document, so a typo fails at start-up naming the key.

Everything has a default that works embedded (in-process limiter, spool next to the store), so
`distillguard gateway --upstream URL` runs with no file at all; production deployments switch
`limits.backend` and `recorder.mode` to Redis.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from distillguard.config import EnvRef, load_section, renamed_env_key
from distillguard.gateway.signup import SignupConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rate(_Strict):
    """A GCRA limit: ``rate`` units per ``per_seconds``, allowing bursts of ``burst`` (default ``rate``)."""

    rate: float = Field(gt=0)
    per_seconds: float = Field(60.0, gt=0)
    burst: float | None = Field(None, gt=0)


class DimensionLimits(_Strict):
    """Request and token limits for one dimension (account, org, cluster, ip24, pathway)."""

    requests: Rate | None = None
    tokens: Rate | None = None


class LimitsConfig(_Strict):
    enabled: bool = True
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "dg:rl:"
    #: What to do when Redis cannot be reached: ``local`` falls back to the per-replica in-process limiter,
    #: ``open`` lets requests through unlimited, ``closed`` refuses them with 503.
    on_redis_error: Literal["local", "open", "closed"] = "local"
    redis_timeout_ms: int = Field(50, gt=0)
    redis_retry_seconds: float = Field(1.0, ge=0)
    account: DimensionLimits = DimensionLimits(requests=Rate(rate=600), tokens=Rate(rate=2_000_000))
    org: DimensionLimits = DimensionLimits()
    cluster: DimensionLimits = DimensionLimits()
    ip24: DimensionLimits = DimensionLimits()
    #: Per sign-up pathway name (``default`` applies to pathways not listed); the bucket is shared by all
    #: accounts that came in through that pathway.
    pathway: dict[str, DimensionLimits] = {}
    #: Multiplier applied to every limit for subjects the policy throttles.
    throttle_factor: float = Field(0.1, gt=0, le=1)
    #: Input tokens are estimated from the request size (bytes / this) until the reply reports usage.
    bytes_per_token: float = Field(4.0, gt=0)


class IdentityConfig(_Strict):
    _compat = renamed_env_key("pepper_env", "pepper")
    #: YAML/JSON file of hashed keys (see `distillguard gateway-keys`); or the store's ``api_keys`` table.
    keys_file: Path | None = None
    #: The pepper (HMAC key) that key hashes were made with, as an environment reference (wins when set).
    pepper: EnvRef = "${DISTILLGUARD_KEY_PEPPER}"
    #: File holding the pepper when the variable is unset (mode 600; `gateway-keys` generates it).
    #: Default: KEYS_FILE.pepper next to the keys file, else STORE/key_pepper.
    pepper_file: Path | None = None
    #: Start even when no API key is configured (no keys file, no store ``api_keys``, ``unknown_keys: reject``),
    #: i.e. when every request would be refused with 401.
    allow_no_keys: bool = False
    #: ``reject`` unknown keys with 401; ``hash`` admits them as account ``key-<hash prefix>`` (when the
    #: upstream does its own authentication and the gateway only needs a stable identity).
    unknown_keys: Literal["reject", "hash"] = "reject"
    #: CIDRs of proxies whose X-Forwarded-For is believed; the client IP is the right-most untrusted hop.
    trusted_proxies: list[str] = []
    forwarded_header: str = "x-forwarded-for"
    #: Header a trusted edge sets with the client's ISO country (used by region rules).
    country_header: str | None = None
    #: Header a TLS-terminating edge sets with the client's TLS fingerprint (JA4), recorded as the exchange's
    #: ``tls_ja4``; believed only from a ``trusted_proxies`` peer. Behind an edge the gateway never sees the
    #: client's TLS handshake, and the TLS fingerprint is client evidence an operation rotating IPs keeps
    #: (detection's ``ja4`` entity). None: not recorded.
    ja4_header: str | None = None
    #: Header a trusted edge sets with the client address's autonomous system number, recorded as
    #: ``client_asn`` (detection's ``asn`` entity); believed only from a ``trusted_proxies`` peer.
    asn_header: str | None = None
    #: Header clients may set to name the conversation (else it is derived from the first user turn).
    conversation_header: str = "x-conversation-id"
    #: Longest API key accepted (characters); longer ones are refused with 401 before they are hashed.
    max_key_chars: int = Field(512, gt=0)
    #: Memory for the presented-key -> key-hash cache (entries are a keyed digest of the key, never the
    #: key itself); when full it is emptied and refilled by the keys in use.
    key_cache_bytes: int = Field(4 << 20, ge=0)


class UpstreamConfig(_Strict):
    _compat = renamed_env_key("api_key_env", "api_key")
    url: str = "http://127.0.0.1:18000/v1"
    #: ``fast`` (asyncio + httptools pool, default) or ``httpx`` (httpx.AsyncClient pool).
    client: Literal["fast", "httpx"] = "fast"
    #: Replace the client's credential with this one (an environment reference, ``${OPENAI_API_KEY}``) when set.
    api_key: EnvRef | None = None
    connect_timeout_s: float = Field(5.0, gt=0)
    #: Longest wait for the upstream's response headers (a non-streamed reply is usually generated before
    #: its headers are sent, so this bounds the generation time).
    read_timeout_s: float = Field(600.0, gt=0)
    #: Longest pause once a reply has started (between stream events or body pieces); a stream that goes
    #: quiet for longer ends with an error event instead of hanging the client.
    idle_timeout_s: float = Field(120.0, gt=0)
    #: Largest non-streamed upstream reply (bytes) the gateway will hold; bigger ones get a 502.
    max_response_bytes: int = Field(32 << 20, gt=0)
    #: Largest streamed reply (bytes); a stream that goes on longer is ended with an error event.
    max_stream_bytes: int = Field(512 << 20, gt=0)
    max_connections: int = Field(512, gt=0)
    max_keepalive: int = Field(128, ge=0)
    keepalive_expiry_s: float = Field(30.0, gt=0)
    #: /readyz asks the upstream ``GET ready_path`` (any status below 500 counts as up), at most every
    #: ``ready_cache_s``, waiting up to ``ready_timeout_s``.
    ready_check: bool = True
    ready_path: str = "/models"
    ready_timeout_s: float = Field(2.0, gt=0)
    ready_cache_s: float = Field(2.0, ge=0)


class RecorderConfig(_Strict):
    enabled: bool = True
    mode: Literal["spool", "redis"] = "spool"
    #: Spool directory (default: STORE/spool).
    spool_dir: Path | None = None
    flush_interval_ms: int = Field(20, gt=0)
    batch_max: int = Field(512, gt=0)
    segment_max_bytes: int = Field(16 << 20, gt=0)
    segment_max_seconds: float = Field(60.0, gt=0)
    #: Compact closed spool segments into the store's exchanges as they rotate.
    compact: bool = True
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_stream: str = "distillguard:exchanges"
    redis_maxlen: int = Field(1_000_000, gt=0)
    #: Record prompt/response text in the store (the provider's own log). Lengths are always kept.
    record_text: bool = True
    #: In-memory queue bound (records). It bounds admission, not what is kept: when full, a new request waits
    #: up to ``full_wait_ms`` for room and is then refused with 503 ``recorder_unavailable``; the records of
    #: requests already admitted are always queued.
    queue_max: int = Field(100_000, gt=0)
    full_wait_ms: int = Field(2_000, ge=0)
    #: ``batch``: a record is durable one group-commit window (``flush_interval_ms`` + fsync) after it is
    #: queued, so a SIGKILL loses at most that window. ``sync``: a reply's last bytes are held until its
    #: record is durable (fsynced, or acknowledged by Redis), at a latency cost (docs/benchmarks.md).
    durability: Literal["batch", "sync"] = "batch"
    #: sync: the longest a reply is held for its record (then released, and counted in
    #: ``recorder_sync_timeouts_total``; the record stays queued).
    sync_timeout_ms: int = Field(30_000, gt=0)
    #: redis mode: how often an unreachable Redis is retried while batches go to the local spool.
    redis_retry_seconds: float = Field(1.0, gt=0)
    #: How often segments whose compaction failed (e.g. the store's disk was full) are retried.
    compact_retry_seconds: float = Field(30.0, gt=0)


class LoggingConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    #: One JSON line per request (ids, account, decision, status, timings; never keys or text).
    access_log: bool = False
    #: Allow prompt text in process logs (off: prompts go to the store only).
    log_prompts: bool = False


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, gt=0, lt=65536)
    max_request_bytes: int = Field(4 << 20, gt=0)
    #: Request line plus all header lines (bytes); above it the connection gets 431 and is closed
    #: while the headers are still arriving.
    max_header_bytes: int = Field(32 << 10, gt=0)
    #: Most header lines in one request (431 above).
    max_headers: int = Field(100, gt=0)
    #: A request's line and headers must arrive within this many seconds of its first byte (or of the
    #: connection opening): slow-header clients (slowloris) get 408 and are disconnected.
    header_timeout_s: float = Field(10.0, gt=0)
    #: The whole request body must arrive within this many seconds of the headers (408 otherwise).
    body_timeout_s: float = Field(60.0, gt=0)
    #: Memory all request bodies still being received may hold together; a request whose body would
    #: go over it gets 503 ``overloaded`` (many slow uploads at once cannot exhaust memory).
    max_pending_body_bytes: int = Field(256 << 20, gt=0)
    #: Open connections (and requests in flight) above which new requests get 503 at once (uvicorn's
    #: ``limit_concurrency``); null = unbounded.
    max_connections: int | None = Field(4096, gt=0)
    #: Idle keep-alive connections are closed after this many seconds.
    keepalive_timeout_s: float = Field(75.0, gt=0)
    graceful_timeout_s: float = Field(30.0, ge=0)


class ReasoningBindingConfig(_Strict):
    _compat = renamed_env_key("secret_env", "secret")
    enabled: bool = True
    #: The HMAC secret (environment reference); unset, a random per-process secret is used
    #: (signatures then do not survive a restart or cross replicas).
    secret: EnvRef = "${DISTILLGUARD_REASONING_SECRET}"


class DisclosureConfig(_Strict):
    """What responses may reveal about detection. Off by default: a harvester that can see it was
    flagged (a header, a limit ten times lower than before) rotates accounts before enforcement bites."""

    #: Send ``x-distillguard-action`` (block, throttle, protect_reasoning, ...) on responses the policy acted on.
    action_header: bool = False
    #: Report a throttled subject's real (``throttle_factor`` times lower) limits in ``x-ratelimit-*``;
    #: off: the configured limits, with remaining and reset scaled to the same used share.
    throttled_limits: bool = False


class ReplayClockConfig(_Strict):
    """Bench/test only (bench/loop_replay.py): record the exchange time a replay driver sends instead of the
    gateway's clock. Off by default; honoured only from ``trusted_peers`` (the socket peer, never a
    forwarded address). See distillguard/gateway/replayclock.py."""

    #: Honour the replay header from trusted peers (bench/test only; never in production).
    enabled: bool = False
    #: Header carrying the exchange time in epoch milliseconds.
    header: str = "x-distillguard-replay-ts"
    #: Socket peers whose header is honoured.
    trusted_peers: list[str] = ["127.0.0.1/32", "::1/128"]


class GatewayConfig(_Strict):
    server: ServerConfig = ServerConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    identity: IdentityConfig = IdentityConfig()
    limits: LimitsConfig = LimitsConfig()
    recorder: RecorderConfig = RecorderConfig()
    logging: LoggingConfig = LoggingConfig()
    binding: ReasoningBindingConfig = ReasoningBindingConfig()
    disclosure: DisclosureConfig = DisclosureConfig()
    #: ``POST /v1/accounts/assess``: the sign-up door (docs/gateway.md#the-sign-up-door).
    signup: SignupConfig = SignupConfig()
    #: Bench/test only: exchange times from a trusted replay driver (off by default).
    replay_clock: ReplayClockConfig = ReplayClockConfig()
    #: Store directory: accounts, api_keys, enforcement and account_clusters are read from it, and the
    #: spool is compacted into it.
    store: Path | None = None
    #: Policy YAML (see docs/gateway.md); hot-reloaded. None = built-in default policy.
    policy: Path | None = None
    #: Enforcement decisions and account clusters from files instead of (or before) the store tables.
    enforcement_file: Path | None = None
    clusters_file: Path | None = None
    #: Redis holding the enforcement snapshot `distillguard watch --publish-redis` publishes (replicas that do not
    #: share the store's disk); polled every ``reload_seconds`` (one GET of the version key).
    enforcement_redis_url: str | None = None
    enforcement_redis_prefix: str = "distillguard:enforcement"
    #: How often (s) policy, enforcement, clusters, keys and accounts are checked for changes.
    reload_seconds: float = Field(2.0, gt=0)

    @field_validator("upstream")
    @classmethod
    def _strip(cls, v: UpstreamConfig) -> UpstreamConfig:
        v.url = v.url.rstrip("/")
        return v


def load_config(path: str | os.PathLike | None = None, **overrides) -> GatewayConfig:
    """The ``gateway`` section: file, DISTILLGUARD_GATEWAY__* variables, then CLI overrides (dotted keys)."""
    return load_section(GatewayConfig, "gateway", path, what="gateway config", overrides=overrides)
