"""The request path: identify, decide, limit, forward, relay, record.

Everything here runs on the event loop for every request, so it does only dict lookups, one
JSON parse of the request, and (for replies) one parse per event or body. Disk, DuckDB and
Redis streams are reached only from background threads (recorder, snapshot reloads).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import os
import time

import orjson

from distillguard.config import ref_value
from distillguard.gateway.apierrors import CODES, error_response, stream_error
from distillguard.gateway.extract import (
    CHAT,
    MESSAGES,
    RESPONSES,
    RequestShapeError,
    parse_request,
    reply_from_body,
)
from distillguard.gateway.identity import (
    CREDENTIAL_HEADERS,
    CredentialError,
    credential,
    edge_client_facts,
    fingerprint,
)
from distillguard.gateway.ratelimit import LimiterUnavailable, plan
from distillguard.gateway.reasoning import WITHHELD_NOTICE, check_carried, rewrite_reply
from distillguard.gateway.replayclock import ReplayClock
from distillguard.gateway.server import HEADS_CHECKED
from distillguard.gateway.streams import make_relay
from distillguard.gateway.upstream import UpstreamError, UpstreamTimeout, UpstreamTooLarge
from distillguard.policy import RECORD_WORD, RequestFacts, evaluate
from distillguard.policy.enforcement import ip24 as ip24_of

log = logging.getLogger("distillguard.gateway")
_perf = time.perf_counter
_loads = orjson.loads
_dumps = orjson.dumps
#: sync durability: the end-record futures of the request being handled (awaited before its last bytes go out)
_durable_waits: contextvars.ContextVar[list | None] = contextvars.ContextVar("durable_waits", default=None)

ROUTES = {"/v1/chat/completions": CHAT, "/v1/responses": RESPONSES, "/v1/messages": MESSAGES}
_HOP = {b"host", b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer",
        b"upgrade", b"proxy-authorization", b"proxy-connection", b"accept-encoding", b"x-forwarded-for",
        b"x-conversation-id"}
_RESP_DROP = {b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"content-encoding", b"date",
              b"server"}
_JSON_CT = (b"content-type", b"application/json")
#: Sent on errors that leave a request body unread: the connection cannot be reused for the next request.
_CLOSE = (b"connection", b"close")
#: Dropped from upstream requests when the gateway holds the upstream key: the client's credentials and
#: the OpenAI account selectors that belong with them.
_CLIENT_CREDENTIALS = frozenset(CREDENTIAL_HEADERS) | {b"openai-organization", b"openai-project"}


class BodyTooLarge(Exception):
    pass


class BodyBudgetExceeded(Exception):
    """All bodies being received together would hold more than ``server.max_pending_body_bytes``."""


class BodyBudget:
    """Bytes held by request bodies still arriving, across all requests (one event loop: no lock needed)."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0


async def read_body(receive, limit: int, timeout: float, budget: BodyBudget | None = None) -> bytes:
    """The request body, at most ``limit`` bytes, all of it within ``timeout`` seconds (slow-body clients),
    within the shared ``budget`` of bytes held by bodies still arriving."""
    chunks = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    raise ConnectionError("client went away")
                b = msg.get("body", b"")
                if b:
                    size += len(b)
                    if size > limit:
                        raise BodyTooLarge
                    if budget is not None:
                        budget.used += len(b)
                        if budget.used > budget.limit:
                            raise BodyBudgetExceeded
                    chunks.append(b)
                if not msg.get("more_body"):
                    break
    finally:
        if budget is not None and size:
            budget.used -= size if size <= limit else size - len(b)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _headers_over(raw_headers, max_bytes: int, max_count: int) -> str | None:
    """Why the headers are over the limits (for servers other than the gateway's own protocol), or None."""
    if len(raw_headers) > max_count:
        return f"more than {max_count} header lines"
    if sum(len(k) + len(v) + 4 for k, v in raw_headers) > max_bytes:
        return f"request headers over {max_bytes} bytes"
    return None


class Proxy:
    """Holds nothing of its own: ``gw`` is the Gateway (state, config, limiter, recorder, client)."""

    def __init__(self, gw):
        self.gw = gw
        cfg = gw.cfg
        self.upstream_base = cfg.upstream.url
        self.upstream_key = ref_value(cfg.upstream.api_key)
        self.max_body = cfg.server.max_request_bytes
        self.body_timeout = cfg.server.body_timeout_s
        self.body_budget = BodyBudget(cfg.server.max_pending_body_bytes)
        self.max_header_bytes = cfg.server.max_header_bytes
        self.max_headers = cfg.server.max_headers
        self.max_key_chars = cfg.identity.max_key_chars
        self.max_response = cfg.upstream.max_response_bytes
        self.max_stream = cfg.upstream.max_stream_bytes
        self.idle_timeout = cfg.upstream.idle_timeout_s
        self.conv_header = cfg.identity.conversation_header.lower().encode()
        self.country_header = cfg.identity.country_header.lower().encode() if cfg.identity.country_header else None
        self.ja4_header = cfg.identity.ja4_header.lower().encode() if cfg.identity.ja4_header else None
        self.asn_header = cfg.identity.asn_header.lower().encode() if cfg.identity.asn_header else None
        self.record_text = cfg.recorder.record_text
        self.recording = cfg.recorder.enabled
        self.sync_recording = cfg.recorder.enabled and cfg.recorder.durability == "sync"
        self.access_log = cfg.logging.access_log
        self.log_prompts = cfg.logging.log_prompts
        self.action_header = cfg.disclosure.action_header
        self.disclose_throttle = cfg.disclosure.throttled_limits
        # Exchange ids: a random per-process prefix plus a counter (a getrandom syscall per request is
        # measurable on small VMs; uniqueness only needs the prefix to differ between processes).
        self.id_prefix = os.urandom(6).hex()
        self.id_seq = itertools.count(1)
        rc = cfg.replay_clock
        self.replay_clock = ReplayClock(rc.header, rc.trusted_peers) if rc.enabled else None

    # ------------------------------------------------------------------ helpers
    async def _send_json(self, send, status: int, body: bytes, extra=()) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [_JSON_CT, (b"content-length", str(len(body)).encode()), *extra]})
        await send({"type": "http.response.body", "body": body})

    async def _error(self, send, api: str, code: str, message: str, extra=(), status: int | None = None) -> int:
        st, body = error_response(api, code, message, status)
        await self._send_json(send, st, body, [(b"x-distillguard-error", code.encode()), *extra])
        self.gw.metrics.requests.labels(api, str(st)).inc()
        return st

    def _upstream_headers(self, raw_headers) -> list[tuple[bytes, bytes]]:
        out = []
        key = self.upstream_key
        for k, v in raw_headers:
            if k in _HOP:
                continue
            if key is not None and k in _CLIENT_CREDENTIALS:
                continue
            out.append((k, v))
        if key is not None:
            out.append((b"authorization", b"Bearer " + key.encode()))
            out.append((b"x-api-key", key.encode()))
        out.append((b"accept-encoding", b"identity"))
        return out

    # ------------------------------------------------------------------ entry
    async def __call__(self, scope, receive, send) -> None:
        path = scope["path"]
        api = ROUTES.get(path)
        gw = self.gw
        if api is None:
            if path in ("/v1/models", "/models") and scope["method"] == "GET":
                return await self._models(scope, send)
            kind = MESSAGES if "messages" in path else CHAT
            await self._error(send, kind, "not_found", f"no route {path}")
            return
        if scope["method"] != "POST":
            await self._error(send, api, "method_not_allowed", "use POST")
            return
        over = None if HEADS_CHECKED in scope else _headers_over(scope["headers"], self.max_header_bytes,
                                                                 self.max_headers)
        if over:
            await self._error(send, api, "headers_too_large", over, [_CLOSE])
            return
        if gw.draining:
            await self._error(send, api, "shutting_down", "gateway is shutting down; retry")
            return
        # back-pressure: a request is admitted only if the recorder can take its records (never dropped after)
        if self.recording and not gw.recorder.has_room() and not await gw.recorder.wait_room():
            gw.metrics.recorder_refused.inc()
            await self._error(send, api, "recorder_unavailable", "the gateway cannot record requests right now; "
                              "retry shortly", [(b"retry-after", b"1")])
            return
        gw.metrics.inflight.inc()
        started = False
        sync = self.sync_recording
        held = None  # sync durability: the reply's last body bytes, sent once its record is durable
        waits: list = []

        async def tracked_send(msg):
            nonlocal started, held
            if msg["type"] == "http.response.start":
                started = True
            elif sync:
                # One message behind: the final event of a stream ([DONE], message_stop) is in the last
                # non-empty chunk, so that one waits for the record too, not only the empty closing one.
                if msg.get("more_body"):
                    prev, held = held, msg
                    if prev is not None:
                        await send(prev)
                    return
                if held is not None:
                    msg = {"type": "http.response.body", "body": held.get("body", b"") + msg.get("body", b"")}
                held = msg
                return
            await send(msg)

        token = _durable_waits.set(waits) if sync else None
        try:
            await self._handle(scope, receive, tracked_send, api)
        except Exception:  # noqa: BLE001 - a gateway bug must still answer in the API's format
            log.exception("request failed inside the gateway", extra={"api": api})
            if not started:
                await self._error(send, api, "internal_error", "the gateway failed on this request")
        finally:
            if token is not None:
                _durable_waits.reset(token)
            if held is not None:
                if waits:
                    await gw.recorder.durable(waits)
                await send(held)
            gw.metrics.inflight.dec()

    async def _models(self, scope, send) -> None:
        try:
            key = credential(scope["headers"], self.max_key_chars)
        except CredentialError as e:
            await self._error(send, CHAT, e.code, str(e))
            return
        if key is None or self.gw.keyring.resolve(key) is None:
            await self._error(send, CHAT, "invalid_api_key", "missing or unknown API key")
            return
        try:
            up = await self.gw.client.request("GET", "/models", self._upstream_headers(scope["headers"]), b"")
            try:
                data = await up.aread(self.max_response)
            finally:
                await up.aclose()
        except (UpstreamError, UpstreamTimeout) as e:
            self.gw.metrics.upstream_errors.labels(type(e).__name__).inc()
            await self._error(send, CHAT, "upstream_unavailable", "upstream unreachable")
            return
        await self._send_json(send, up.status_code, data)

    async def _handle(self, scope, receive, send, api: str) -> None:  # noqa: C901 - the request path, in order
        gw = self.gw
        t0 = _perf()
        ts_ms = time.time_ns() // 1_000_000
        raw_headers = scope["headers"]
        if self.replay_clock is not None:  # bench/test only (off by default)
            ts_ms, raw_headers = self.replay_clock.take(scope, raw_headers, ts_ms)
        headers = dict(raw_headers)
        # Refusals before the request is understood (credentials, body) are not recorded, so they carry
        # no exchange id: the id names a row in the store (they are counted in requests_total).
        # 1. identity
        try:
            key = credential(raw_headers, self.max_key_chars, headers)
        except CredentialError as e:
            await self._error(send, api, e.code, str(e), [_CLOSE])
            return
        ident = gw.keyring.resolve(key) if key else None
        if ident is None:
            await self._error(send, api, "invalid_api_key", "missing or unknown API key", [_CLOSE])
            return
        # 2. body
        cl = headers.get(b"content-length")
        try:
            if cl is not None and int(cl) > self.max_body:
                raise BodyTooLarge
            raw_body = await read_body(receive, self.max_body, self.body_timeout, self.body_budget)
        except BodyBudgetExceeded:
            await self._error(send, api, "overloaded", "too many request bodies arriving at once; retry", [_CLOSE])
            return
        except BodyTooLarge:
            await self._error(send, api, "request_too_large", f"request body over {self.max_body} bytes", [_CLOSE])
            return
        except TimeoutError:
            await self._error(send, api, "request_timeout",
                              f"request body not received within {self.body_timeout:g}s", [_CLOSE])
            return
        except (ConnectionError, ValueError):
            return
        try:
            body = _loads(raw_body)
            if not isinstance(body, dict):
                raise ValueError
        except (orjson.JSONDecodeError, ValueError):
            await self._error(send, api, "invalid_json", "request body is not a JSON object")
            return
        try:
            req = parse_request(api, body)
        except RequestShapeError as e:
            await self._error(send, api, "invalid_request", str(e))
            return
        xid = f"dg-{self.id_prefix}{next(self.id_seq):x}"
        xid_h = (b"x-distillguard-exchange-id", xid.encode())

        # 3. who, where from
        snap = gw.snapshot
        acct = snap.accounts.get(ident.account_id)
        org = ident.org_id or (acct.org_id if acct else None)
        cluster = snap.clusters.get(ident.account_id)
        client_ip = gw.client_ip(scope, headers)
        net = ip24_of(client_ip)
        conv_hdr = headers.get(self.conv_header)
        conv_hdr = conv_hdr.decode("latin-1") if conv_hdr else None
        conv = req.conversation_key(conv_hdr)
        binding = None
        body_changed = False
        if req.carried and gw.binder is not None:
            binding, drop = check_carried(req, gw.binder, ident.account_id, conv)
            body_changed = True
            if drop:
                ids = {id(b) for b in drop}
                for m in body.get("messages") or []:
                    if isinstance(m.get("content"), list):
                        m["content"] = [b for b in m["content"] if id(b) not in ids]
            gw.metrics.binding.labels(binding).inc()
        country = None
        if self.country_header:
            c = headers.get(self.country_header)
            country = c.decode("latin-1").upper() if c else None

        # 4. policy
        classifier = gw.classifier
        facts = RequestFacts(ident.account_id, org, cluster, net, acct, country, api, req.model,
                             req.reasoning_requested, binding,
                             score=lambda: classifier.score(req.prompt, req.system_prompt))
        policy = gw.policy.policy
        decision = evaluate(policy, snap, facts)
        reasons = decision.reasons
        enforced = decision.enforced
        gw.metrics.decisions.labels(decision.decided, "false" if decision.shadow else "true").inc()

        rec = self._begin_record(xid, ts_ms, ident, org, req, api, headers, raw_headers, client_ip, conv_hdr, cluster,
                                 decision, binding) if self.recording else None
        if rec is not None and (self.ja4_header or self.asn_header) and gw.client_ip.from_trusted_peer(scope):
            rec.update(edge_client_facts(headers, self.ja4_header, self.asn_header))

        # 5. rate limits (all dimensions at once)
        lim_cfg = gw.cfg.limits
        verdict = None
        buckets = None
        rl_headers: list = []
        if lim_cfg.enabled:
            pathway = acct.pathway if acct else None
            plim = None
            if pathway is not None:
                plim = lim_cfg.pathway.get(pathway) or lim_cfg.pathway.get("default")
            est = len(raw_body) / lim_cfg.bytes_per_token
            buckets = plan(lim_cfg, [("account", ident.account_id, lim_cfg.account), ("org", org, lim_cfg.org),
                                     ("cluster", cluster, lim_cfg.cluster), ("ip24", net, lim_cfg.ip24),
                                     ("pathway", pathway, plim)], est,
                           lim_cfg.throttle_factor if decision.throttle_enforced else 1.0)
            try:
                verdict = await gw.limiter.acquire(buckets) if gw.limiter.is_async else gw.limiter.acquire(buckets)
            except LimiterUnavailable:
                st = await self._error(send, api, "limiter_unavailable", "rate limiter unavailable; retry", [xid_h])
                gw.metrics.limiter_degraded.labels("closed").inc()
                self._finish(rec, t0, st, "rate_limited", reasons + ["rate limiter unavailable (closed)"], None)
                return
            if verdict.degraded:
                gw.metrics.limiter_degraded.labels(verdict.degraded).inc()
            rl_headers = verdict.headers(self.disclose_throttle)
        if verdict is not None and not verdict.allowed:
            b = verdict.denied
            gw.metrics.limits_hit.labels(b.dim, b.kind).inc()
            code = "tokens_limit_exceeded" if b.kind == "tokens" else "rate_limit_exceeded"
            reasons = reasons + [f"rate limit: {b.dim} {b.kind}"]
            st = await self._error(send, api, code, f"rate limit exceeded; retry after {verdict.retry_after:.1f}s",
                                   [xid_h, *rl_headers])
            self._finish(rec, t0, st, "rate_limited", reasons, None)
            return
        if enforced in ("block", "require_verification"):
            code = decision.error_code or ("account_blocked" if enforced == "block" else "verification_required")
            msg = ("this account must complete verification before using this API" if enforced == "require_verification"
                   else "this request was refused by the provider's usage policy")
            act_h = [(b"x-distillguard-action", enforced.encode())] if self.action_header else []
            # A rule's own error code is still a refusal: 403, not the 400 of an unknown code.
            st = await self._error(send, api, code, msg, [xid_h, *act_h], status=None if code in CODES else 403)
            self._finish(rec, t0, st, RECORD_WORD[enforced], reasons, None)
            return

        # 6. forward
        protect = decision.protect_enforced
        # Recorded: what the policy decided (in shadow mode too, flagged), so a roll-out can be measured.
        action_word = "protect" if decision.protect and decision.decided == "allow" else RECORD_WORD[decision.decided]
        try:
            out_body = _dumps(body) if body_changed else raw_body
        except TypeError:  # orjson's nesting limit (254) is below its parser's (1024)
            st = await self._error(send, api, "invalid_request", "request body nested too deeply", [xid_h])
            self._finish(rec, t0, st, action_word, reasons + ["request body nested too deeply"], None)
            return
        if rec is not None:
            gw.recorder.begin(rec)
        extra_h = [xid_h, *rl_headers]
        if self.action_header and (enforced != "allow" or protect):
            extra_h.append((b"x-distillguard-action", (enforced if enforced != "allow" else "protect_reasoning").encode()))
        gw.metrics.added.observe(_perf() - t0)
        try:
            up = await gw.client.request("POST", scope["path"][3:], self._upstream_headers(raw_headers), out_body)
        except UpstreamTimeout:
            gw.metrics.upstream_errors.labels("timeout").inc()
            st = await self._error(send, api, "upstream_timeout", "upstream timed out", extra_h)
            self._finish(rec, t0, st, action_word, reasons, None, begun=True)
            return
        except UpstreamError:
            gw.metrics.upstream_errors.labels("connect").inc()
            st = await self._error(send, api, "upstream_unavailable", "upstream unreachable", extra_h)
            self._finish(rec, t0, st, action_word, reasons, None, begun=True)
            return
        if up.status_code >= 500:
            gw.metrics.upstream_errors.labels("http_5xx").inc()
        resp_headers = [(k, v) for k, v in up.raw_headers if k not in _RESP_DROP]
        is_sse = (up.header(b"content-type") or b"").startswith(b"text/event-stream")
        rp = policy.reasoning
        account_id = ident.account_id
        binder = gw.binder

        def sign(text, upstream_sig, protected):
            if binder is None:
                return upstream_sig
            return binder.sign(account_id, conv, text, upstream_sig, protected)

        failure = None  # (code, message) when the upstream failed after answering
        try:
            if is_sse and up.status_code == 200:
                relay = make_relay(api, protect, rp, sign)
                failure = await self._relay(send, receive, up, relay, api, resp_headers + extra_h)
                info, rw = relay.fold.finish(), relay
                if relay.client_gone:
                    reasons = reasons + ["client disconnected mid-stream"]
            else:
                try:
                    data = await up.aread(self.max_response)
                except (UpstreamError, UpstreamTimeout) as e:
                    code, msg = self._failure(e)
                    st = await self._error(send, api, code, msg, extra_h)
                    self._finish(rec, t0, st, action_word, reasons + [f"upstream failed: {msg}"], None, begun=True,
                                 upstream_error=code)
                    return
                info, rw = None, None
                if up.status_code == 200 and data[:1] == b"{":
                    try:
                        obj = _loads(data)
                    except orjson.JSONDecodeError:
                        obj = None
                    if isinstance(obj, dict):
                        info = reply_from_body(api, obj)
                        if info.reasoning or (protect and "<think>" in data.decode("utf-8", "replace")):
                            try:
                                rw = rewrite_reply(api, obj, protect, rp, sign)
                                data = _dumps(obj)
                            except Exception:  # noqa: BLE001 - a reply the rewrite cannot handle is not relayed half-done
                                log.exception("could not rewrite the upstream reply", extra={"api": api})
                                gw.metrics.upstream_errors.labels("bad_response").inc()
                                msg = "the upstream's reply could not be processed"
                                st = await self._error(send, api, "upstream_bad_response", msg, extra_h)
                                self._finish(rec, t0, st, action_word, reasons + [f"upstream failed: {msg}"], info,
                                             begun=True, upstream_error="upstream_bad_response")
                                return
                await send({"type": "http.response.start", "status": up.status_code,
                            "headers": resp_headers + extra_h + [(b"content-length", str(len(data)).encode())]})
                await send({"type": "http.response.body", "body": data})
        finally:
            await up.aclose()
        gw.metrics.requests.labels(api, str(up.status_code)).inc()
        if failure is not None:
            reasons = reasons + [f"upstream failed mid-stream: {failure[1]}"]
        if rw is not None:
            if rw.redacted:
                gw.metrics.reasoning.labels("redacted").inc()
            if rw.withheld:
                gw.metrics.reasoning.labels("answer_withheld").inc()
                reasons = reasons + [f"answer withheld: repeated hidden reasoning ({rw.leak_matches} matching "
                                     f"{rp.leak_check.ngram}-word sequences)"]
        if info is not None and buckets:
            used = (info.output_tokens or 0) + max(0, (info.input_tokens or 0) - len(raw_body) / lim_cfg.bytes_per_token)
            if used > 0:
                if gw.limiter.is_async:
                    await gw.limiter.charge(buckets, used)
                else:
                    gw.limiter.charge(buckets, used)
        self._finish(rec, t0, up.status_code, action_word, reasons, info, rw=rw, begun=True,
                     upstream_error=failure[0] if failure else None)

    def _failure(self, e: Exception) -> tuple[str, str]:
        """(error code, message) for an upstream that failed after it answered; counted by kind."""
        if isinstance(e, UpstreamTooLarge):
            kind, out = "too_large", ("upstream_response_too_large", str(e))
        elif isinstance(e, UpstreamTimeout):
            kind, out = "timeout", ("upstream_timeout", f"upstream sent nothing for {self.idle_timeout:g}s")
        else:
            kind, out = "broken", ("upstream_unavailable", "upstream broke the connection")
        self.gw.metrics.upstream_errors.labels(kind).inc()
        return out

    async def _relay(self, send, receive, up, relay, api, headers) -> tuple[str, str] | None:
        """Relay an SSE reply; returns (code, message) if the upstream failed (the stream then ends with an
        error event in the API's format), else None."""
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        # uvicorn drops writes to a closed socket silently; watching receive() for http.disconnect lets
        # the gateway stop reading (and paying for) a stream nobody is listening to any more.
        watch = asyncio.ensure_future(receive())
        buf = b""
        total = 0
        limit = self.max_stream
        passthrough = relay.passthrough
        segment = relay.segment
        failure = None
        try:
            async for chunk in up.aiter_raw():
                if watch.done():
                    if watch.result().get("type") == "http.disconnect":
                        relay.client_gone = True
                        break
                    watch = asyncio.ensure_future(receive())
                total += len(chunk)
                if total > limit:
                    raise UpstreamTooLarge(f"upstream stream over {limit} bytes")
                buf = buf + chunk if buf else chunk
                cut = buf.rfind(b"\n\n")
                if cut < 0 and b"\r" in buf:  # CRLF-framed SSE (allowed by the spec)
                    cut = buf.rfind(b"\r\n\r\n")
                    cut = cut + 2 if cut >= 0 else -1
                if cut < 0:
                    if len(buf) > 1 << 20:  # no event boundary in 1 MiB: not SSE as we know it; pass it on
                        await send({"type": "http.response.body", "body": buf, "more_body": True})
                        buf = b""
                    continue
                cut += 2
                seg = buf if cut == len(buf) else buf[:cut]
                buf = b"" if cut == len(buf) else buf[cut:]
                if b"\r" in seg:  # raw CR only ever frames lines (JSON escapes it): relay as LF
                    seg = seg.replace(b"\r\n", b"\n")
                out = segment(seg)
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                if passthrough:
                    relay.after(seg)
        except (UpstreamError, UpstreamTimeout) as e:
            failure = self._failure(e)
        except Exception:  # noqa: BLE001 - an event the relay could not process: end the stream cleanly
            log.exception("could not relay an upstream stream event", extra={"api": api})
            self.gw.metrics.upstream_errors.labels("bad_response").inc()
            failure = ("upstream_bad_response", "the upstream sent a stream event the gateway could not process")
        finally:
            if not watch.done():
                watch.cancel()
        if failure is not None:
            # What was relayed stays relayed; what the leak guard still holds back is not released.
            await send({"type": "http.response.body", "body": stream_error(api, *failure, relay.seq + 1)})
            return failure
        tail = b"" if relay.client_gone else relay.finish(buf)
        await send({"type": "http.response.body", "body": tail})
        return None

    # ------------------------------------------------------------------ records
    def _begin_record(self, xid, ts_ms, ident, org, req, api, headers, raw_headers, client_ip, conv_hdr, cluster,
                      decision, binding) -> dict:
        fp, sdk, sdk_v = fingerprint(raw_headers, headers)
        ua = headers.get(b"user-agent")
        rec = {"exchange_id": xid, "ts": ts_ms, "account_id": ident.account_id, "org_id": org,
               "api_key_id": ident.key_id, "model": req.model, "endpoint": api,
               "conversation_id": conv_hdr or req.conversation_id, "client_ip": client_ip,
               "user_agent": ua.decode("latin-1") if ua else None, "sdk_name": sdk, "sdk_version": sdk_v,
               "header_order_fp": fp, "n_turns": len(req.turns), "tools_offered": req.tools_offered,
               "has_images": req.has_images, "max_tokens": req.max_tokens, "temperature": req.temperature,
               "top_p": req.top_p, "n": req.n, "stream": req.stream, "reasoning_requested": req.reasoning_requested,
               "reasoning_effort": req.reasoning_effort, "thinking_budget": req.thinking_budget,
               "action": RECORD_WORD[decision.decided], "action_reasons": decision.reasons,
               "source_format": "gateway"}
        if self.record_text:
            rec["system_prompt"] = req.system_prompt
            rec["turns"] = req.turns
            rec["prompt"] = req.prompt
        extra = {"decided": decision.decided}
        if decision.shadow:
            extra["shadow"] = True
        if cluster:
            extra["cluster_id"] = cluster
        if binding:
            extra["reasoning_binding"] = binding
        if req.invalid:
            extra["invalid_fields"] = req.invalid
        rec["extra"] = extra
        return rec

    def _finish(self, rec, t0, status, action, reasons, info, rw=None, begun=False, upstream_error=None) -> None:
        gw = self.gw
        latency_ms = int((_perf() - t0) * 1000)
        if rec is not None:
            end = {"exchange_id": rec["exchange_id"], "http_status": status, "latency_ms": latency_ms,
                   "action": action, "action_reasons": reasons,
                   "extra": {**rec["extra"], "upstream_error": upstream_error} if upstream_error else rec["extra"]}
            if not begun:
                end = {**rec, **end}
            else:  # ts and account_id ride along: an end line whose begin was lost can still be stored by them
                end["ts"], end["account_id"] = rec["ts"], rec["account_id"]
            if info is not None:
                answer = info.answer
                returned = rw.returned_reasoning if rw is not None else (info.reasoning_text or None)
                end.update(response_chars=len(answer), tool_calls=info.tool_calls, stop_reason=info.stop_reason,
                           input_tokens=info.input_tokens, output_tokens=info.output_tokens,
                           reasoning_tokens=info.reasoning_tokens,
                           reasoning_chars=rw.reasoning_chars if rw is not None and rw.reasoning_chars
                           else len(info.reasoning_text) or None,
                           reasoning_redacted=bool(rw.redacted) if rw is not None else False)
                if self.record_text:
                    end["response_text"] = answer
                    end["reasoning_text"] = returned
                if rw is not None and rw.withheld:
                    end["extra"] = {**end["extra"], "answer_withheld": True, "leak_matches": rw.leak_matches}
                    if self.record_text:
                        end["response_text"] = WITHHELD_NOTICE
            fut = gw.recorder.end(end)
            if fut is not None:
                waits = _durable_waits.get()
                if waits is not None:
                    waits.append(fut)
        if self.access_log:
            fields = {"exchange_id": rec["exchange_id"] if rec else None, "status": status, "action": action,
                      "latency_ms": latency_ms, "account_id": rec["account_id"] if rec else None}
            if self.log_prompts and rec is not None:
                fields["prompt"] = rec.get("prompt")
            log.info("request", extra=fields)
