"""Assembling the gateway: state, background upkeep and a few pure-ASGI pieces.

``build_app(config)`` wires the pieces explicitly rather than through a framework: the request
path is the hottest code in distillguard, and a plain dispatch on the path costs nothing next
to a middleware stack. Pieces: ``Lifespan`` (start/stop state), ``Router`` (exact paths, then the
``/v1/`` prefix), ``Ops`` (health, readiness, metrics) and ``Proxy`` (the API routes).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from pathlib import Path

import orjson

from distillguard.config import ref_name
from distillguard.errors import ConfigError
from distillguard.gateway.classifier import RequestClassifier
from distillguard.gateway.config import GatewayConfig
from distillguard.gateway.identity import ClientIP, KeyRing
from distillguard.gateway.metrics import Metrics
from distillguard.gateway.pepper import Pepper, check_pepper_ids, default_pepper_file, load_pepper, pepper_id
from distillguard.gateway.proxy import Proxy
from distillguard.gateway.ratelimit import RedisLimiter, make_limiter
from distillguard.gateway.reasoning import Binder
from distillguard.gateway.recorder import Recorder
from distillguard.gateway.signup import SignupDoor
from distillguard.gateway.upstream import make_upstream
from distillguard.policy import PolicyHolder
from distillguard.policy.enforcement import EnforcementSource, Snapshot, file_mtime

log = logging.getLogger("distillguard.gateway")


class Gateway:
    """Everything a request needs, created once; swapped-in snapshots keep reloads lock-free."""

    def __init__(self, cfg: GatewayConfig):
        self.cfg = cfg
        self.metrics = Metrics()
        self.policy = PolicyHolder(cfg.policy)
        self.source = EnforcementSource(cfg.store, cfg.enforcement_file, cfg.clusters_file,
                                        cfg.enforcement_redis_url, cfg.enforcement_redis_prefix)
        self.snapshot: Snapshot = self.source.load()
        self.keyring = KeyRing(cfg.identity, self._pepper())
        check_pepper_ids(self.snapshot.key_pepper_ids, self.keyring.pepper_info, "store table api_keys")
        if cfg.identity.keys_file is not None:  # without one, _pepper() already checked
            self._require_keys(self.keyring.file_keys)
        self.keyring.store_keys = self.snapshot.keys
        self._keys_stamp = file_mtime(cfg.identity.keys_file)
        self.client_ip = ClientIP(cfg.identity)
        self.limiter = make_limiter(cfg.limits)
        self.classifier = RequestClassifier()
        self.binder = Binder(secret_env=ref_name(cfg.binding.secret)) if cfg.binding.enabled else None
        if self.binder is not None and self.binder.ephemeral:
            log.warning("no reasoning-binding secret set; using a per-process secret",
                        extra={"env": ref_name(cfg.binding.secret)})
        store = None
        spool = cfg.recorder.spool_dir
        if cfg.store is not None:
            from distillguard.store import Store

            store = Store(cfg.store, create=True)
            spool = spool or Path(cfg.store) / "spool"
        self.recorder = Recorder(cfg.recorder, spool, store, self.metrics)
        self.signup = SignupDoor(self, cfg.signup)
        self.client = None
        self.draining = False
        self.ready = False
        self._task: asyncio.Task | None = None
        self._signup_task: asyncio.Task | None = None

    def _pepper(self) -> Pepper:
        idc = self.cfg.identity
        if idc.keys_file is None and self._require_keys({}):
            s = secrets.token_bytes(32)  # nothing to match against: any pepper will do, none is written anywhere
            return Pepper(s, pepper_id(s), "per-process (no keys configured)")
        return load_pepper(ref_name(idc.pepper), idc.pepper_file or default_pepper_file(idc.keys_file, self.cfg.store))

    def _require_keys(self, file_keys: dict) -> bool:
        """A gateway with no keys refuses every request with 401: say so at start, not in the client's logs.

        Returns True when there are no keys and that was allowed (``allow_no_keys``)."""
        idc = self.cfg.identity
        if idc.unknown_keys != "reject" or self.snapshot.keys or file_keys:
            return False
        if not self.cfg.identity.allow_no_keys:
            raise ConfigError("no API keys configured (no keys file with keys, no api_keys table in the store, "
                              "identity.unknown_keys is reject): every request would be refused with 401. Add keys "
                              "with `distillguard gateway-keys --keys-file F` and pass --keys-file F, or start with "
                              "--allow-no-keys (identity.allow_no_keys: true) if that is intended")
        log.warning("no API keys configured; every request will be refused with 401 until keys are added")
        return True

    async def startup(self) -> None:
        u = self.cfg.upstream
        self.client = make_upstream(u)
        if self.cfg.recorder.enabled:
            self.recorder.start()
        if self.policy.policy.needs_signals():
            self.classifier.load()  # import now (and say now if there is no classifier), not mid-request
        await asyncio.to_thread(self.signup.refresh, True)
        self._task = asyncio.create_task(self._upkeep())
        self._signup_task = asyncio.create_task(self._signup_upkeep())
        if self.cfg.replay_clock.enabled:
            log.warning("replay_clock is on: exchange times come from the %s header of %s (bench/test only)",
                        self.cfg.replay_clock.header, ", ".join(self.cfg.replay_clock.trusted_peers))
        self.ready = True
        log.info("gateway started", extra={"upstream": u.url, "limits": self.cfg.limits.backend,
                                           "recorder": self.cfg.recorder.mode if self.cfg.recorder.enabled else "off",
                                           "policy_mode": self.policy.policy.mode})

    async def shutdown(self) -> None:
        self.draining = True
        self.ready = False
        for task in (self._task, self._signup_task):
            if task:
                task.cancel()
        if self.client:
            await self.client.aclose()
        if self.cfg.recorder.enabled:
            await asyncio.to_thread(self.recorder.stop, self.cfg.server.graceful_timeout_s)
        if isinstance(self.limiter, RedisLimiter):
            await self.limiter.close()
        log.info("gateway stopped", extra={"recorded": self.recorder.accepted, "dropped": self.recorder.dropped})

    def reload_now(self) -> None:
        """Synchronous reload of everything that changed (the upkeep loop calls it in a thread)."""
        if self.policy.check():
            self.metrics.policy_reloads.labels("policy", "ok").inc()
        elif self.policy.last_error:
            self.metrics.policy_reloads.labels("policy", "refused").inc()
        if self.source.changed():
            try:
                snap = self.source.load()
            except Exception as e:  # noqa: BLE001 - keep the last good snapshot
                log.error("enforcement reload failed; keeping previous decisions", extra={"error": str(e)})
                self.metrics.policy_reloads.labels("enforcement", "refused").inc()
            else:
                try:
                    check_pepper_ids(snap.key_pepper_ids, self.keyring.pepper_info, "store table api_keys")
                except ConfigError as e:
                    log.error("store api_keys refused; keeping previous keys", extra={"error": str(e)})
                    snap.keys = self.snapshot.keys
                self.snapshot = snap
                self.keyring.store_keys = snap.keys
                self.metrics.policy_reloads.labels("enforcement", "ok").inc()
                log.info("enforcement reloaded", extra={"decisions": len(snap.decisions), "clusters": len(snap.clusters),
                                                        "accounts": len(snap.accounts)})
        stamp = file_mtime(self.cfg.identity.keys_file)
        if stamp != self._keys_stamp:
            self._keys_stamp = stamp
            try:
                self.keyring.reload_file()
            except Exception as e:  # noqa: BLE001
                log.error("keys file reload failed; keeping previous keys", extra={"error": str(e)})

    async def _signup_upkeep(self) -> None:
        """The sign-up door's index is rebuilt in its own loop: a rebuild reads the store (seconds on a busy
        machine) and must never hold back the next enforcement poll (decisions reach every replica within
        ``reload_seconds`` plus one load, whatever the door costs)."""
        while True:
            await asyncio.sleep(self.cfg.reload_seconds)
            try:
                await asyncio.to_thread(self.signup.refresh)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("sign-up index upkeep failed")

    async def _upkeep(self) -> None:
        n = 0
        while True:
            await asyncio.sleep(self.cfg.reload_seconds)
            n += 1
            try:
                await asyncio.to_thread(self.reload_now)
                self.metrics.recorder_pending.set(self.recorder.pending)
                if n % 30 == 0:
                    self.limiter.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("upkeep failed")


class Ops:
    """/healthz (process alive), /readyz (can serve: started, not draining, upstream answers), /metrics."""

    def __init__(self, gw: Gateway):
        self.gw = gw
        self._up: tuple[float, bool, str | None] | None = None

    async def upstream_ok(self) -> tuple[bool, str | None]:
        """Whether the upstream answers at all (any HTTP status below 500), cached for ``ready_cache_s``.

        Ready while the upstream is down would let a load balancer send traffic that can only fail. The probe
        uses its own connection, not the request pool, so a busy pool does not read as a dead upstream.
        """
        u = self.gw.cfg.upstream
        if not u.ready_check:
            return True, None
        now = time.monotonic()
        if self._up is not None and now - self._up[0] < u.ready_cache_s:
            return self._up[1], self._up[2]
        import httpx

        ok, err = False, None
        try:
            async with httpx.AsyncClient(timeout=u.ready_timeout_s) as c:
                r = await c.get(u.url + u.ready_path)
            ok = r.status_code < 500
            err = None if ok else f"upstream answered HTTP {r.status_code}"
        except httpx.TimeoutException:
            err = f"upstream did not answer within {u.ready_timeout_s}s"
        except httpx.HTTPError as e:
            err = f"upstream unreachable: {type(e).__name__}"
        self._up = (time.monotonic(), ok, err)
        return ok, err

    async def __call__(self, scope, receive, send) -> None:
        path = scope["path"]
        gw = self.gw
        if path == "/metrics":
            body, ctype = gw.metrics.render(), b"text/plain; version=0.0.4"
            status = 200
        elif path == "/healthz":
            body, ctype, status = b'{"ok":true}', b"application/json", 200
        else:
            lim_ok = not isinstance(gw.limiter, RedisLimiter) or gw.limiter.ok
            up_ok, up_err = await self.upstream_ok() if gw.ready else (False, None)
            detail = {"ready": gw.ready and not gw.draining and up_ok, "policy_version": gw.policy.version,
                      "enforcement_version": gw.source.redis_version,
                      "policy_error": gw.policy.last_error, "limiter_redis_ok": lim_ok,
                      "recorder_pending": gw.recorder.pending, "classifier": gw.classifier.available,
                      "upstream_ok": up_ok, "upstream_error": up_err,
                      "keys": len(gw.keyring.file_keys) + len(gw.snapshot.keys)}
            status = 200 if detail["ready"] else 503
            # A recorder that cannot write (full disk) or take more (full queue) makes the replica unready, so
            # a load balancer sends traffic to one that can record it.
            rec = gw.recorder
            rec_ok = not gw.cfg.recorder.enabled or (rec.healthy and rec.has_room())
            detail.update(recorder_ok=rec_ok, recorder_error=rec.error, recorder_redis_ok=rec.redis_ok)
            if not rec_ok:
                detail["ready"], status = False, 503
            body, ctype = orjson.dumps(detail), b"application/json"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class Router:
    def __init__(self, exact: dict, prefix: str, prefixed, fallback):
        self.exact = exact
        self.prefix = prefix
        self.prefixed = prefixed
        self.fallback = fallback

    async def __call__(self, scope, receive, send) -> None:
        path = scope["path"]
        h = self.exact.get(path)
        if h is None:
            h = self.prefixed if path.startswith(self.prefix) else self.fallback
        await h(scope, receive, send)


class Lifespan:
    def __init__(self, app, gw: Gateway):
        self.app = app
        self.gw = gw

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            return await self.app(scope, receive, send)
        if scope["type"] != "lifespan":
            return
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.gw.startup()
                except Exception as e:  # noqa: BLE001
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.gw.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _not_found(scope, receive, send) -> None:
    body = b'{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":"not_found"}}'
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def build_app(config: GatewayConfig):
    """The gateway ASGI app; ``app.gateway`` is its state (tests and the CLI reach in through it)."""
    gw = Gateway(config)
    ops = Ops(gw)
    router = Router({"/healthz": ops, "/readyz": ops, "/metrics": ops, "/v1/accounts/assess": gw.signup}, "/v1/",
                    Proxy(gw), _not_found)
    app = Lifespan(router, gw)
    app.gateway = gw
    return app
