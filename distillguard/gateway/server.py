"""The HTTP server side: uvicorn's httptools protocol with limits on what a client may make it hold.

uvicorn's httptools protocol has no limit on header size (httptools accumulates a header value of
any length before handing it over) and no deadline for a request's headers: a client that sends
one byte every few seconds holds a connection and its buffers for ever. The gateway faces the
internet, so the protocol here counts header bytes and lines as they arrive and gives each
request's head a deadline, answering 431 / 408 and closing the connection. Body deadlines are
enforced in the request path (``proxy.read_body``), where the body is read.
"""

from __future__ import annotations

import logging

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from distillguard.gateway.config import ServerConfig

log = logging.getLogger("distillguard.gateway")

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
#: Scope key this server sets on requests whose headers it already held to the limits (the request path
#: then skips its own check, which exists for other ASGI servers).
HEADS_CHECKED = "distillguard.headers_checked"


def _plain(status: int, msg: str) -> bytes:
    body = msg.encode()
    return (b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body))


class GuardedHttpTools(HttpToolsProtocol):
    """HttpToolsProtocol plus header byte/line limits and a per-request header deadline.

    Class attributes are set per server by ``protocol_class``; uvicorn builds one instance per
    connection.
    """

    max_header_bytes = 32 << 10
    max_headers = 100
    header_timeout_s = 10.0
    refused = None  # callable(reason) for metrics, set by protocol_class

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._in_head = True
        self._head_bytes = 0
        self._head_lines = 0
        self._too_big = False
        # The first request's head is due from the moment the connection opens: a client that
        # connects and says nothing is a slowloris too.
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timeout)

    def connection_lost(self, exc) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _cancel_head_timer(self) -> None:
        t = getattr(self, "_head_timer", None)
        if t is not None:
            t.cancel()
            self._head_timer = None

    def _refuse(self, status: int, msg: str, reason: str) -> None:
        self._cancel_head_timer()
        if self.refused is not None:
            self.refused(reason)
        if not self.transport.is_closing():
            self.transport.write(_plain(status, msg))
            self.transport.close()

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            # Only while a head is pending; between requests uvicorn's keep-alive timeout applies.
            self._refuse(408, "request headers not received in time", "header_timeout")

    def data_received(self, data: bytes) -> None:
        if not self._in_head and self.cycle is not None and self.cycle.response_complete and not self.pipeline:
            self._begin_head()  # bytes of the next request on a kept-alive connection
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_header_bytes and not self.transport.is_closing():
            # Still no end of headers after max_header_bytes: refuse now instead of buffering more.
            self._refuse(431, f"request headers over {self.max_header_bytes} bytes", "header_bytes")

    def _begin_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._head_lines = 0
        self._too_big = False
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timeout)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[HEADS_CHECKED] = True
        if not self._in_head:
            self._begin_head()
        self._head_lines = 0
        self._line_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._line_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_lines += 1
        self._line_bytes += len(name) + len(value) + 4
        if self._head_lines > self.max_headers or self._line_bytes > self.max_header_bytes:
            self._too_big = True
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        if self._too_big:
            what = (f"more than {self.max_headers} header lines" if self._head_lines > self.max_headers
                    else f"request headers over {self.max_header_bytes} bytes")
            self._refuse(431, what, "header_lines" if self._head_lines > self.max_headers else "header_bytes")
            # the parser may go on into a body; with the transport closing and no cycle, nothing of it
            # reaches the app
            self.cycle = None
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self.cycle is None:
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self.cycle is None:
            return
        super().on_message_complete()


def protocol_class(cfg: ServerConfig, refused=None) -> type[GuardedHttpTools]:
    """A GuardedHttpTools subclass carrying this server's limits."""
    return type("GatewayHttpProtocol", (GuardedHttpTools,), {
        "max_header_bytes": cfg.max_header_bytes, "max_headers": cfg.max_headers,
        "header_timeout_s": cfg.header_timeout_s, "refused": staticmethod(refused) if refused else None})


def uvicorn_config(app, cfg: ServerConfig, *, host: str | None = None, port: int | None = None,
                   loop: str = "uvloop", **kw) -> uvicorn.Config:
    """The uvicorn settings the gateway runs with (the CLI and the tests share them)."""
    gw = getattr(app, "gateway", None)
    refused = gw.metrics.refused_conn.labels if gw is not None else None
    opts = dict(
        host=host or cfg.host, port=port or cfg.port, loop=loop,
        http=protocol_class(cfg, (lambda r: refused(r).inc()) if refused else None),
        lifespan="on", access_log=False, proxy_headers=False,  # client IP: identity.trusted_proxies
        log_level="warning", server_header=False, date_header=False,
        timeout_keep_alive=int(cfg.keepalive_timeout_s) or 1,
        timeout_graceful_shutdown=int(cfg.graceful_timeout_s) or None,
        limit_concurrency=cfg.max_connections, backlog=4096)
    opts.update(kw)
    return uvicorn.Config(app, **opts)
