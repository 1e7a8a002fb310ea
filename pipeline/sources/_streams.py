"""Opening input files: plain, .gz or .zst, as one binary stream, and their lines.

A damaged archive is a file error (InputFileError, exit status 2), never silence: gzip says so itself at
the cut; zstandard's stream reader returns end-of-file in the middle of a frame, so .zst files are read
here frame by frame and a frame left unfinished at the end of the file is reported. Multi-frame files
(concatenated .zst) are read whole. Memory is one read chunk plus one line, whatever the file size.
"""

from __future__ import annotations

import codecs
import functools
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


# the encodings a file that is not UTF-8 may be in, tried in this order: EUC-JP first, because EUC-JP
# bytes (0xA1-0xFE pairs) also decode as cp932 half-width katakana, while cp932's lead bytes 0x81-0x9F
# are not EUC-JP
LEGACY_ENCODINGS = ("euc_jp", "cp932")
SNIFF_BYTES = 1 << 16


@functools.lru_cache(maxsize=256)
def _sniff(path: Path, _size: int, _mtime: int) -> str:
    window = b""
    try:
        with open_binary(path) as f:
            while True:  # skip to the first non-ASCII byte (a JSON file may open with ASCII keys)
                chunk = f.read(_CHUNK)
                if not chunk:
                    return "utf-8"
                if not chunk.isascii():
                    start = next(i for i, b in enumerate(chunk) if b >= 0x80)
                    window = chunk[start:] + f.read(max(0, SNIFF_BYTES - (len(chunk) - start)))
                    window = window[:SNIFF_BYTES]
                    break
    except READ_ERRORS as err:
        raise InputFileError(path, f"unreadable archive: {err}") from None
    for encoding in ("utf-8", *LEGACY_ENCODINGS):
        try:
            text = codecs.getincrementaldecoder(encoding)("strict").decode(window, final=False)
        except UnicodeDecodeError:
            continue
        if encoding == "utf-8" or _japanese_share(text) >= 0.8:  # a legacy decode must read as Japanese
            return encoding
    return "utf-8"  # none fits: read as UTF-8, each bad record a bad_encoding reject


def _japanese_share(text: str) -> float:
    """The share of non-ASCII characters that are kana, CJK or full-width forms (not private-use
    characters, half-width katakana or C1 controls, which is what random bytes decode to)."""
    other = [ch for ch in text if ord(ch) > 0x7F]
    if not other:
        return 0.0
    return sum("\u3000" <= ch <= "\u9fff" or "\uff01" <= ch <= "\uff5e" for ch in other) / len(other)


def file_encoding(path: Path) -> str:
    """The text encoding of a (decompressed) file: "utf-8" unless its first 64 KiB of non-ASCII text
    are not UTF-8 but decode strictly as EUC-JP or cp932 (Shift_JIS with Microsoft's extensions). Records
    that do not decode in the chosen encoding are still per-record bad_encoding rejects."""
    st = path.stat()
    return _sniff(path, st.st_size, st.st_mtime_ns)


def decode_text(data: bytes, encoding: str) -> str:
    """``data`` in ``encoding`` (strict); a UTF-8 byte order mark is dropped."""
    if encoding == "utf-8":
        return data.decode("utf-8-sig")
    return data.decode(encoding)
