"""An upstream that misbehaves on purpose, for the gateway's fault tests and chaos scenarios.

The bundled mock upstream is a well-behaved model; this one is the paid API on a bad day. It is
a raw asyncio HTTP/1.1 server (so it can break the protocol, not just the JSON), and the request
chooses the misbehaviour: a marker ``[mode:NAME]`` anywhere in the request body (the prompt, when a
test drives it through an SDK). It keeps the head of every request it received, so tests can see
exactly which headers the gateway forwarded.

Modes (the wire format follows the request path: chat completions, Responses or Messages):

* ``ok``               a small valid reply (stream or not, as asked)
* ``hang``             a stream that sends two valid events and then nothing, holding the connection
* ``cut``              a stream that sends two valid events and then closes mid-body
* ``bad-types``        a stream (or body) whose fields have the wrong JSON types, then a valid ending
* ``bad-usage``        a valid reply whose usage counts are strings, negative or absurd
* ``huge``             a non-streamed JSON reply of ``size`` bytes (``[size:N]``, default 50 MiB)
* ``endless``          a stream of valid events that never ends
* ``garbage``          bytes that are not HTTP
"""

from __future__ import annotations

import asyncio
import re
import threading

import orjson

_MODE = re.compile(rb"\[mode:([a-z-]+)\]")
_SIZE = re.compile(rb"\[size:(\d+)\]")


def _sse(obj, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(obj) + b"\n\n"


def events(api: str, n: int = 2) -> list[bytes]:
    """The first ``n`` text events of a valid stream for ``api`` (chat, responses, messages)."""
    if api == "messages":
        out = [_sse({"type": "message_start", "message": {"id": "msg_h", "type": "message", "role": "assistant",
                                                          "model": "hostile", "content": [], "stop_reason": None,
                                                          "usage": {"input_tokens": 5, "output_tokens": 0}}},
                    "message_start"),
               _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                    "content_block_start")]
        out += [_sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"part{i} "}},
                     "content_block_delta") for i in range(n)]
        return out
    if api == "responses":
        out = [_sse({"type": "response.created", "sequence_number": 0,
                     "response": {"id": "resp_h", "object": "response", "model": "hostile", "status": "in_progress",
                                  "output": []}}, "response.created")]
        out += [_sse({"type": "response.output_text.delta", "sequence_number": i + 1, "item_id": "msg_h",
                      "output_index": 0, "content_index": 0, "delta": f"part{i} "}, "response.output_text.delta")
                for i in range(n)]
        return out
    return [_sse({"id": "chatcmpl-h", "object": "chat.completion.chunk", "created": 0, "model": "hostile",
                  "choices": [{"index": 0, "delta": {"content": f"part{i} "}, "finish_reason": None}]})
            for i in range(n)]


def ending(api: str) -> bytes:
    if api == "messages":
        return (_sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
                + _sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
                       "message_delta") + _sse({"type": "message_stop"}, "message_stop"))
    if api == "responses":
        return _sse({"type": "response.completed", "sequence_number": 99,
                     "response": {"id": "resp_h", "object": "response", "model": "hostile", "status": "completed",
                                  "output": [], "usage": {"input_tokens": 5, "output_tokens": 2}}}, "response.completed")
    return (_sse({"id": "chatcmpl-h", "object": "chat.completion.chunk", "created": 0, "model": "hostile",
                  "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + b"data: [DONE]\n\n")


def bad_events(api: str) -> list[bytes]:
    """Events with wrongly typed fields, as a buggy or hostile upstream might send."""
    if api == "messages":
        return [_sse({"type": "content_block_start", "index": "zero", "content_block": "text"}, "content_block_start"),
                _sse({"type": "content_block_delta", "index": [1], "delta": {"type": "text_delta", "text": 42}},
                     "content_block_delta"),
                _sse({"type": "message_delta", "delta": "end", "usage": {"output_tokens": "many"}}, "message_delta"),
                _sse([1, 2, 3], "content_block_delta")]
    if api == "responses":
        return [_sse({"type": 7, "delta": None}, "response.output_text.delta"),
                _sse({"type": "response.output_text.delta", "delta": {"x": 1}}, "response.output_text.delta"),
                _sse({"type": "response.output_item.done", "item": "message"}, "response.output_item.done"),
                _sse({"type": "response.completed", "response": {"output": 5, "usage": {"input_tokens": "9"}}},
                     "response.completed")]
    return [_sse({"id": 5, "choices": "none"}), _sse({"choices": [7, {"delta": "text"}]}),
            _sse({"choices": [{"delta": {"content": 12, "tool_calls": [{"index": "a", "function": "f"}]}}]}),
            _sse({"choices": [], "usage": {"prompt_tokens": "12", "completion_tokens": -3}}), b"data: [1]\n\n"]


def body(api: str, bad_usage: bool = False) -> dict:
    usage = ({"prompt_tokens": "12", "completion_tokens": -3, "input_tokens": "9", "output_tokens": 1e300,
              "completion_tokens_details": "none"} if bad_usage else None)
    if api == "messages":
        return {"id": "msg_h", "type": "message", "role": "assistant", "model": "hostile",
                "content": [{"type": "text", "text": "hostile reply"}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": usage or {"input_tokens": 5, "output_tokens": 2}}
    if api == "responses":
        return {"id": "resp_h", "object": "response", "created_at": 0, "model": "hostile", "status": "completed",
                "output": [{"type": "message", "id": "msg_h", "role": "assistant", "status": "completed",
                            "content": [{"type": "output_text", "text": "hostile reply", "annotations": []}]}],
                "usage": usage or {"input_tokens": 5, "output_tokens": 2}}
    return {"id": "chatcmpl-h", "object": "chat.completion", "created": 0, "model": "hostile",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hostile reply"},
                         "finish_reason": "stop"}],
            "usage": usage or {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}


def _api(path: bytes) -> str:
    return "messages" if b"/messages" in path else "responses" if b"/responses" in path else "chat"


_SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _chunk(b: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(b), b)


class HostileUpstream:
    """``start()`` runs it on a thread (port 0 = any free port); ``heads`` holds every request head."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host, self.port = host, port
        self.heads: list[list[tuple[bytes, bytes]]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                path = lines[0].split(b" ")[1]
                hdrs = [(k.strip().lower(), v.strip()) for k, _, v in (ln.partition(b":") for ln in lines[1:] if ln)]
                self.heads.append(hdrs)
                n = int(dict(hdrs).get(b"content-length", b"0"))
                req = await reader.readexactly(n)
                await self._reply(_api(path), req, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # stop(): end quietly (3.11's stream callback chokes on a cancelled task)
            pass
        finally:
            writer.close()

    async def _reply(self, api: str, req: bytes, w: asyncio.StreamWriter) -> None:
        m = _MODE.search(req)
        mode = m.group(1).decode() if m else "ok"
        stream = b'"stream":true' in req.replace(b" ", b"")
        if mode == "garbage":
            w.write(b"THIS IS NOT HTTP\r\n\r\n")
            await w.drain()
            raise ConnectionError
        if mode == "huge":
            s = _SIZE.search(req)
            size = int(s.group(1)) if s else 50 << 20
            w.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % size)
            pad = b'{"pad":"' + b"x" * (size - 10) + b'"}'
            for i in range(0, size, 1 << 20):
                w.write(pad[i:i + (1 << 20)])
                await w.drain()
            return
        if not stream or mode == "bad-usage":
            data = orjson.dumps(body(api, bad_usage=mode == "bad-usage"))
            if mode == "bad-types":
                data = orjson.dumps({"id": 1, "choices": "x", "content": {"a": 1}, "output": 3, "usage": [1]})
            w.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                    % (len(data), data))
            await w.drain()
            return
        w.write(_SSE_HEAD)
        if mode == "bad-types":
            for ev in events(api, 1) + bad_events(api):
                w.write(_chunk(ev))
            w.write(_chunk(ending(api)) + b"0\r\n\r\n")
        elif mode in ("hang", "cut"):
            for ev in events(api, 2):
                w.write(_chunk(ev))
            await w.drain()
            if mode == "cut":
                raise ConnectionError
            await asyncio.sleep(3600)
        elif mode == "endless":
            evs = events(api, 64)
            i = 0
            while True:
                w.write(_chunk(evs[i % len(evs)]))
                i += 1
                if i % 64 == 0:
                    await w.drain()
        else:
            for ev in events(api, 3):
                w.write(_chunk(ev))
            w.write(_chunk(ending(api)) + b"0\r\n\r\n")
        await w.drain()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        srv = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = srv.sockets[0].getsockname()[1]
        self._ready.set()
        async with srv:
            await self._stop.wait()
        # end the connections still hanging on purpose, inside the loop, so none is left half-closed
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def start(self) -> HostileUpstream:
        def run():
            self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(self._main())

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("hostile upstream did not start")
        return self

    def stop(self) -> None:
        if self.loop and self._stop:
            self.loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(5)
