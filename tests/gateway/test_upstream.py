"""The fast upstream pool against awkward servers: stale keep-alive, close-delimited bodies, garbage."""

from __future__ import annotations

import asyncio

import pytest

from distillguard.gateway.upstream import FastUpstream, UpstreamError, UpstreamTimeout


async def _server(handler):
    srv = await asyncio.start_server(handler, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


async def _read_request(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    n = int([ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0])
    return head, await reader.readexactly(n)


def test_reuses_connections_and_retries_a_stale_one():
    async def go():
        conns = []

        async def handler(reader, writer):
            conns.append(1)
            try:
                while True:
                    _, body = await _read_request(reader)
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
                    await writer.drain()
                    if body == b"close-after":
                        writer.close()  # the server drops the kept-alive connection
                        return
            except asyncio.IncompleteReadError:
                writer.close()

        srv, port = await _server(handler)
        up = FastUpstream(f"http://127.0.0.1:{port}/v1")
        out = []
        for body in (b"a", b"b", b"close-after", b"c"):
            r = await up.request("POST", "/x", [], body)
            out.append(await r.aread())
            await r.aclose()
            await asyncio.sleep(0.05)
        srv.close()
        return out, len(conns)

    out, n = asyncio.run(go())
    assert out == [b"a", b"b", b"close-after", b"c"] and n == 2


def test_close_delimited_body_and_errors():
    async def go():
        async def close_delimited(reader, writer):
            await _read_request(reader)
            writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it")
            await writer.drain()
            writer.close()

        async def garbage(reader, writer):
            await _read_request(reader)
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
            await writer.drain()

        async def silent(reader, writer):
            await _read_request(reader)
            await asyncio.sleep(5)

        s1, p1 = await _server(close_delimited)
        r = await FastUpstream(f"http://127.0.0.1:{p1}").request("POST", "/", [], b"{}")
        body = await r.aread()
        s2, p2 = await _server(garbage)
        with pytest.raises(UpstreamError):
            await FastUpstream(f"http://127.0.0.1:{p2}").request("POST", "/", [], b"{}")
        s3, p3 = await _server(silent)
        with pytest.raises(UpstreamTimeout):
            await FastUpstream(f"http://127.0.0.1:{p3}", read_timeout=0.2).request("POST", "/", [], b"{}")
        for s in (s1, s2, s3):
            s.close()
        return body

    assert asyncio.run(go()) == b"all of it"
