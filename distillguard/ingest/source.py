"""Reading a log file's bytes without ever losing what is readable.

Two kinds of damage are handled here rather than in the loop:

* **A damaged compressed file** (truncated download, a disk that filled while gzip wrote,
  corrupt bytes). Python's ``gzip`` module raises on the read that reaches the damage and drops
  the up-to-one-buffer of data it had already decompressed in that read; this module decompresses
  with ``zlib`` directly, hands out every byte that decompressed, and records *where* and *why*
  the stream stopped (``SourceStream.error``) instead of raising.
* **A last line without a newline.** ``Blocks`` yields whole lines only and keeps the bytes after
  the last newline as ``tail``, so the loop can decide whether that is a complete record, a line
  still being written (left for the next run) or the remains of a truncation (quarantined).

``fingerprint`` identifies a file's prefix cheaply, so the next run can tell a log that grew
(resume after the last complete line) from one that was rewritten (read whole, deduplicated by id).
"""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import xxhash

COMPRESSED_SUFFIXES = (".gz",)
#: Bytes hashed at each end of the ingested prefix by ``fingerprint``.
FINGERPRINT_BYTES = 1 << 20
_READ = 1 << 18
_MAX_OUT = 1 << 20


def is_compressed(path: Path) -> bool:
    return path.name.endswith(COMPRESSED_SUFFIXES)


class _GzipRaw(io.RawIOBase):
    """gzip (any number of members) decompressed with zlib; damage ends the stream and is recorded."""

    def __init__(self, path: Path):
        self._fh = open(path, "rb")
        self._size = os.fstat(self._fh.fileno()).st_size
        self._d = zlib.decompressobj(31)
        self._in = b""
        self._out = b""
        self._member_open = False
        self._eof = False
        self.error: str | None = None
        self.decompressed = 0

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while not self._out and not self._eof:
            if not self._in:
                self._in = self._fh.read(_READ)
                if not self._in:
                    if self._member_open:
                        self.error = (f"compressed stream truncated: the file ends at compressed byte {self._size} "
                                      f"without an end-of-stream marker, after {self.decompressed} decompressed bytes")
                    self._eof = True
                    return
            if self._d.eof:
                self._d = zlib.decompressobj(31)
            if not self._member_open:
                self._in = self._in.lstrip(b"\x00")  # padding between members
                if not self._in:
                    continue
                self._member_open = True
            consumed_at = self._fh.tell() - len(self._in)
            saved = self._d.copy()
            try:
                self._out = self._d.decompress(self._in, _MAX_OUT)
            except zlib.error as e:
                # zlib drops the output of a failing call: replay it in small steps from the saved
                # state so every byte before the damage is still handed out.
                self._out, good = _salvage(saved, self._in[:_READ])
                self.error = (f"compressed stream corrupt at compressed byte ~{consumed_at + good} "
                              f"(after {self.decompressed + len(self._out)} decompressed bytes): {e}")
                self._eof = True
                return
            if self._d.eof:
                self._in = self._d.unused_data
                self._member_open = False
            else:
                self._in = self._d.unconsumed_tail

    def readinto(self, b) -> int:
        self._fill()
        n = min(len(b), len(self._out))
        if n:
            b[:n] = self._out[:n]
            self._out = self._out[n:]
            self.decompressed += n
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


def _salvage(d, data: bytes) -> tuple[bytes, int]:
    """Everything ``d`` decompresses from ``data`` before the first bad byte; and how many bytes were good."""
    out = []
    pos = 0
    for step in (512, 1):
        while pos < len(data):
            piece = data[pos: pos + step]
            trial = d.copy()
            try:
                out.append(trial.decompress(piece))
            except zlib.error:
                break
            d = trial
            pos += len(piece)
            if d.eof:
                return b"".join(out), pos
    return b"".join(out), pos


class SourceStream(io.BufferedReader):
    """A binary stream of a log file's (decompressed) bytes; ``error`` says why it ended early, if it did."""

    @property
    def error(self) -> str | None:
        return getattr(self.raw, "error", None)


def open_source(path: Path):
    """The file's bytes as a stream: plain files as they are, ``.gz`` decompressed without raising on damage."""
    if is_compressed(path):
        return SourceStream(_GzipRaw(path), buffer_size=1 << 20)
    return open(path, "rb", buffering=1 << 20)


def stream_error(fh) -> str | None:
    return getattr(fh, "error", None)


class Blocks:
    """Whole-line blocks of about ``block_bytes`` from a stream; the bytes after the last newline stay in ``tail``.

    Each block is read into a fresh buffer after the previous block's partial last line, so the
    only copy is that short tail. ``offset`` is the stream position just after the last whole line.
    ``limit`` stops reading after that many bytes (a run reads a growing log up to the size it had
    when the run began, so it ends even if the writer never stops); ``cut_short`` then says more
    bytes followed, i.e. ``tail`` is a line the limit cut, not the end of the file.
    """

    def __init__(self, fh, block_bytes: int, start_offset: int = 0, limit: int | None = None):
        self.fh = fh
        self.block_bytes = block_bytes
        self.offset = start_offset
        self.remaining = limit
        self.tail = b""
        self.cut_short = False

    def _fill(self, mv: memoryview) -> int:
        """Fill ``mv`` as far as the stream (and the limit) allows: a growing file returns short reads."""
        total = 0
        while total < len(mv):
            want = len(mv) - total if self.remaining is None else min(len(mv) - total, self.remaining)
            if want <= 0:
                break
            n = self.fh.readinto(mv[total: total + want])
            if not n:
                break
            total += n
            if self.remaining is not None:
                self.remaining -= n
        return total

    def __iter__(self):
        carry = b""
        while True:
            buf = bytearray(len(carry) + self.block_bytes)
            buf[: len(carry)] = carry
            n = self._fill(memoryview(buf)[len(carry):])
            if not n:
                self.tail = carry
                self.cut_short = self.remaining == 0 and bool(carry) and bool(self.fh.read(1))
                return
            end = len(carry) + n
            cut = buf.rfind(b"\n", 0, end) + 1
            if cut == 0:  # one enormous line: keep reading
                carry = bytes(buf[:end])
                continue
            carry = bytes(buf[cut:end])
            self.offset += cut
            yield buf, cut


def fingerprint(path: Path, end: int) -> str:
    """Identity of the file's bytes [0, end): their length and hashes of the first and last MiB.

    Cheap at any file size; two different prefixes share it only if they agree in length and in
    both end MiB, which a log rotation or a rewrite does not do (and ids still deduplicate if so).
    """
    h = xxhash.xxh3_128()
    h.update(str(end).encode())
    with open(path, "rb") as f:
        h.update(f.read(min(end, FINGERPRINT_BYTES)))
        if end > FINGERPRINT_BYTES:
            start = max(FINGERPRINT_BYTES, end - FINGERPRINT_BYTES)
            f.seek(start)
            h.update(f.read(end - start))
    return h.hexdigest()
