"""The check service: allow / deny / rate_limited for a gateway that stays in the request path itself.

Providers that already run Envoy, NGINX, Kong or LiteLLM should not have to put a second proxy in
front of their API. They ask this service "may this request go on?" and enforce the answer. The
decision is the inline gateway's own: the same key ring, enforcement snapshot, policy engine and
rate limiter (``distillguard.gateway.app.Gateway`` holds them and reloads them), so an account
blocked, throttled or sent to verification is treated the same whichever path its request took.

Two request shapes are served:

- ``/envoy/<original path>`` – Envoy's ``ext_authz`` HTTP service (``path_prefix: /envoy``). Envoy
  sends the original method and headers, and the body when ``with_request_body`` is set. 200 allows
  (``x-distillguard-*`` headers go upstream); any other status is returned to the client with our
  body, in the calling API's error format.
- ``/nginx/auth`` – NGINX ``auth_request``. The subrequest carries headers only (NGINX does not pass
  the body to it); the original URI comes in ``X-Original-URI``. NGINX only understands 2xx, 401 and
  403 from an auth subrequest, so a rate-limited request is answered 403 with ``x-distillguard-action: rate_limited``
  and ``retry-after``; the shipped NGINX snippet turns that into a 429 for the client.

Without a body the policy sees identity, network and account facts but not the model or whether
reasoning was asked for; the token estimate comes from ``Content-Length``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import orjson

from distillguard.gateway.apierrors import error_response
from distillguard.gateway.extract import CHAT, MESSAGES, RESPONSES, RequestInfo, parse_request
from distillguard.gateway.identity import CredentialError, credential
from distillguard.gateway.ratelimit import LimiterUnavailable, plan
from distillguard.policy import RequestFacts, evaluate
from distillguard.policy.enforcement import ip24 as ip24_of

log = logging.getLogger("distillguard.gateway")

_API_SUFFIX = (("/chat/completions", CHAT), ("/responses", RESPONSES), ("/messages", MESSAGES))


@dataclass
class CheckResult:
    """One answer: ``action`` is allow, deny or rate_limited (over a limit: retry later;
    "throttle" is only the policy action that lowers a subject's limits, docs/glossary.md); ``status``/``code`` are what the client should get."""

    action: str
    status: int = 200
    code: str | None = None
    message: str = ""
    decided: str = "allow"
    protect: bool = False
    account_id: str | None = None
    retry_after: float = 0.0
    reasons: list[str] = field(default_factory=list)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: The limiter buckets this request took from, so a caller that sees the reply can charge its tokens.
    buckets: list | None = None

    def to_dict(self) -> dict:
        return {"action": self.action, "status": self.status, "code": self.code, "decided": self.decided,
                "protect_reasoning": self.protect, "account_id": self.account_id, "reasons": self.reasons,
                "retry_after": self.retry_after}


def api_of(path: str) -> str:
    """The API a request path belongs to (query string ignored); 'other' for anything else."""
    p = path.split("?", 1)[0].rstrip("/")
    return next((api for suffix, api in _API_SUFFIX if p.endswith(suffix)), "other")


async def decide(gw, account_id: str, org_id: str | None, api: str, req: RequestInfo | None,
                 client_ip: str | None, est_tokens: float, country: str | None = None,
                 cluster_id: str | None = None) -> CheckResult:
    """Policy, then every rate-limit dimension at once: the inline gateway's steps 3-5 for a known caller."""
    snap = gw.snapshot
    acct = snap.accounts.get(account_id)
    org = org_id or (acct.org_id if acct else None)
    cluster = cluster_id or snap.clusters.get(account_id)
    net = ip24_of(client_ip)
    classifier = gw.classifier
    facts = RequestFacts(account_id, org, cluster, net, acct, country, api if api != "other" else None,
                         req.model if req else None, bool(req and req.reasoning_requested), None,
                         score=(lambda: classifier.score(req.prompt, req.system_prompt)) if req else None)
    decision = evaluate(gw.policy.policy, snap, facts)
    gw.metrics.decisions.labels(decision.decided, "false" if decision.shadow else "true").inc()
    res = CheckResult("allow", decided=decision.decided, protect=bool(decision.protect_enforced),
                      account_id=account_id, reasons=list(decision.reasons))
    res.headers.append((b"x-distillguard-account", account_id.encode()))
    lim_cfg = gw.cfg.limits
    verdict = None
    if lim_cfg.enabled:
        pathway = acct.pathway if acct else None
        plim = (lim_cfg.pathway.get(pathway) or lim_cfg.pathway.get("default")) if pathway is not None else None
        buckets = plan(lim_cfg, [("account", account_id, lim_cfg.account), ("org", org, lim_cfg.org),
                                 ("cluster", cluster, lim_cfg.cluster), ("ip24", net, lim_cfg.ip24),
                                 ("pathway", pathway, plim)], est_tokens,
                       lim_cfg.throttle_factor if decision.throttle_enforced else 1.0)
        res.buckets = buckets
        try:
            verdict = await gw.limiter.acquire(buckets) if gw.limiter.is_async else gw.limiter.acquire(buckets)
        except LimiterUnavailable:
            gw.metrics.limiter_degraded.labels("closed").inc()
            return _refuse(res, api, "deny", "limiter_unavailable", "rate limiter unavailable; retry")
        if verdict.degraded:
            gw.metrics.limiter_degraded.labels(verdict.degraded).inc()
        res.headers.extend(verdict.headers())
    if verdict is not None and not verdict.allowed:
        b = verdict.denied
        gw.metrics.limits_hit.labels(b.dim, b.kind).inc()
        res.reasons.append(f"rate limit: {b.dim} {b.kind}")
        res.retry_after = verdict.retry_after
        code = "tokens_limit_exceeded" if b.kind == "tokens" else "rate_limit_exceeded"
        return _refuse(res, api, "rate_limited", code, f"rate limit exceeded; retry after {verdict.retry_after:.1f}s")
    enforced = decision.enforced
    if enforced in ("block", "require_verification"):
        code = decision.error_code or ("account_blocked" if enforced == "block" else "verification_required")
        msg = ("this account must complete verification before using this API" if enforced == "require_verification"
               else "this request was refused by the provider's usage policy")
        return _refuse(res, api, "deny", code, msg, enforced)
    word = enforced if enforced != "allow" else ("protect_reasoning" if res.protect else "allow")
    res.headers.append((b"x-distillguard-action", word.encode()))
    return res


def _refuse(res: CheckResult, api: str, action: str, code: str, message: str, word: str | None = None) -> CheckResult:
    res.action, res.code, res.message = action, code, message
    res.status, _ = error_response(api, code, message)
    res.headers += [(b"x-distillguard-action", (word or action).encode()), (b"x-distillguard-error", code.encode())]
    return res


async def check_http(gw, scope, path: str, headers: dict[bytes, bytes], body: bytes | None) -> tuple[CheckResult, str]:
    """Identity from the API key, then ``decide``; ``body`` None when the gateway sent headers only."""
    api = api_of(path)
    try:  # exactly one credential, as the inline gateway demands (a blocked key beside a clean one is refused)
        key = credential(scope["headers"], gw.cfg.identity.max_key_chars)
    except CredentialError as e:
        return _refuse(CheckResult("deny"), api, "deny", e.code, str(e)), api
    ident = gw.keyring.resolve(key) if key else None
    if ident is None:
        return _refuse(CheckResult("deny"), api, "deny", "invalid_api_key", "missing or unknown API key"), api
    req = None
    if body:
        try:
            obj = orjson.loads(body)
            if not isinstance(obj, dict):
                raise ValueError
        except (orjson.JSONDecodeError, ValueError):
            return _refuse(CheckResult("deny", account_id=ident.account_id), api, "deny", "invalid_json",
                           "request body is not a JSON object"), api
        if api != "other":
            req = parse_request(api, obj)
    size = len(body) if body else _int(headers.get(b"content-length"))
    country = None
    hdr = gw.cfg.identity.country_header
    if hdr and headers.get(hdr.lower().encode()):
        country = headers[hdr.lower().encode()].decode("latin-1").upper()
    res = await decide(gw, ident.account_id, ident.org_id, api, req, gw.client_ip(scope, headers),
                       size / gw.cfg.limits.bytes_per_token, country)
    return res, api


def _int(v: bytes | None) -> int:
    try:
        return max(0, int(v)) if v else 0
    except ValueError:
        return 0


async def _read(receive, limit: int) -> bytes | None:
    chunks, n = [], 0
    while True:
        msg = await receive()
        chunk = msg.get("body", b"")
        n += len(chunk)
        if n > limit:
            return None
        chunks.append(chunk)
        if not msg.get("more_body"):
            return b"".join(chunks)


class CheckService:
    """ASGI: ``/envoy/...`` (ext_authz HTTP) and ``/nginx/auth`` (auth_request); health via the gateway's Ops."""

    def __init__(self, gw):
        self.gw = gw

    async def __call__(self, scope, receive, send) -> None:
        path = scope["path"]
        headers = dict(scope["headers"])
        if path.startswith("/envoy/"):
            body = await _read(receive, self.gw.cfg.server.max_request_bytes)
            if headers.get(b"x-envoy-auth-partial-body") == b"true":
                body = None  # a cut-off body is not JSON; decide on headers as NGINX does
            res, api = await check_http(self.gw, scope, path[len("/envoy"):], headers, body)
            if res.action == "allow":
                await _respond(send, 200, b"", res.headers)
            else:
                # Envoy hands a denial's headers to the client: like the inline gateway, say nothing about the
                # detection unless `disclosure.action_header` is set (the error code is in the body anyway).
                _, err = error_response(api, res.code, res.message)
                hdrs = [h for h in res.headers if self.gw.cfg.disclosure.action_header
                        or h[0] != b"x-distillguard-action"]
                await _respond(send, res.status, err, [(b"content-type", b"application/json"), *hdrs])
        elif path == "/nginx/auth":
            uri = (headers.get(b"x-original-uri") or b"").decode("latin-1")
            if b"x-original-content-length" in headers:  # NGINX clears Content-Length on the subrequest
                headers[b"content-length"] = headers[b"x-original-content-length"]
            res, _api = await check_http(self.gw, scope, uri, headers, None)
            log.debug("check", extra={"action": res.action, "account": res.account_id, "code": res.code})
            status = 200 if res.action == "allow" else (401 if res.code == "invalid_api_key" else 403)
            await _respond(send, status, b"", [*res.headers, (b"x-distillguard-status", str(res.status).encode())])
        else:
            await _respond(send, 404, b'{"error":"not found"}', [(b"content-type", b"application/json")])


async def _respond(send, status: int, body: bytes, headers: list) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def build_check_app(cfg):
    """The check service ASGI app; ``app.gateway`` holds the shared state (keys, snapshot, policy, limiter)."""
    from distillguard.gateway.app import Gateway, Lifespan, Ops, Router

    gw = Gateway(cfg)
    ops = Ops(gw)
    svc = CheckService(gw)
    app = Lifespan(Router({"/healthz": ops, "/readyz": ops, "/metrics": ops}, "/", svc, svc), gw)
    app.gateway = gw
    return app
