"""Opening input files: plain, .gz or .zst, as one binary stream, and their lines.

A damaged archive is a file error (InputFileError, exit status 2), never silence: gzip says so itself at
the cut; zstandard's stream reader returns end-of-file in the middle of a frame, so .zst files are read
here frame by frame and a frame left unfinished at the end of the file is reported. Multi-frame files
(concatenated .zst) are read whole. Memory is one read chunk plus one line, whatever the file size.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path

import zstandard

from pipeline.errors import InputFileError

READ_ERRORS = (OSError, EOFError, zlib.error, zstandard.ZstdError)
_CHUNK = 1 << 20


class ZstdFrames(io.RawIOBase):
    """Decompressed bytes of every zstd frame in ``raw``; EOFError when the last frame is cut short."""

    def __init__(self, raw):
        self._raw, self._buf, self._open_frame, self._done = raw, b"", False, False
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while not self._buf and not self._done:
            chunk = self._raw.read(_CHUNK)
            if not chunk:
                self._done = True
                if self._open_frame:
                    raise EOFError("zstd stream ended in the middle of a frame (truncated file)")
                return
            out = [self._obj.decompress(chunk)]
            self._open_frame = True
            while self._obj.eof:  # a frame ended: the rest of the chunk starts the next one
                rest = self._obj.unused_data
                self._obj = self._dctx.decompressobj()
                self._open_frame = bool(rest)
                if not rest:
                    break
                out.append(self._obj.decompress(rest))
            self._buf = b"".join(out)

    def readinto(self, b) -> int:
        self._fill()
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_binary(path: Path) -> io.BufferedIOBase:
    """Open a plain, .gz or .zst file for binary reading; a wrong or unreadable archive is a file error."""
    try:
        if path.suffix == ".gz":
            f = gzip.open(path, "rb")
            f.peek(1)  # fails now on a file that is not gzip
            return f
        if path.suffix == ".zst":
            f = io.BufferedReader(ZstdFrames(open(path, "rb")), buffer_size=_CHUNK)
            f.peek(1)
            return f
        return open(path, "rb")
    except READ_ERRORS as err:
        raise InputFileError(path, f"unreadable file: {err}") from None


def read_all(path: Path, limit: int | None = None) -> bytes:
    """The whole (decompressed) file; a damaged archive or one over ``limit`` bytes is a file error."""
    try:
        with open_binary(path) as f:
            data = f.read(-1 if limit is None else limit + 1)
    except READ_ERRORS as err:
        raise InputFileError(path, f"unreadable archive: {err}") from None
    if limit is not None and len(data) > limit:
        raise InputFileError(path, f"larger than {limit >> 20} MiB as one JSON document: use JSON lines")
    return data


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield (0-based line number, raw line without the newline); blank lines are skipped but counted.

    A UTF-8 byte order mark at the start of the file is not part of the first line.
    """
    f = open_binary(path)
    try:
        with f:
            for i, line in enumerate(f):
                if i == 0 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                line = line.rstrip(b"\r\n")
                if line.strip():
                    yield i, line
    except READ_ERRORS as err:
        raise InputFileError(path, f"unreadable archive: {err}") from None


def first_byte(path: Path) -> bytes:
    """The first byte that is not a byte order mark, white space or NUL (b"" for an empty file)."""
    try:
        with open_binary(path) as f:
            head = f.read(3)
            if head.startswith(b"\xef\xbb\xbf"):
                head = b""
            while True:
                rest = head.lstrip(b" \t\r\n\x00")
                if rest:
                    return rest[:1]
                head = f.read(_CHUNK)
                if not head:
                    return b""
    except READ_ERRORS as err:
        raise InputFileError(path, f"unreadable archive: {err}") from None
