"""Shared record reading for the source modules: JSON lines and JSON documents, with rejects.

Every parse reject keeps the record as it was in the file: the raw line (undecodable bytes as \\x
escapes), or for an element of a JSON array its JSON text. Record-level problems never stop a file:
a line that is not JSON, not UTF-8, nested too deep, or that holds a lone UTF-16 surrogate escape
("\\ud800": valid JSON, but no text can be stored with it) is one reject.
"""

from __future__ import annotations

import base64
import codecs
import glob
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import InputFileError
from pipeline.records import BASE64_NOTE, Row, is_reject, lineage, reject, to_json
from pipeline.sources._streams import (
    _CHUNK,
    READ_ERRORS,
    decode_text,
    file_encoding,
    first_byte,
    iter_lines,
    open_binary,
    read_all,
)
from schemas.recipe import SourceSpec

# a whole-document JSON file that is not an array (a pretty-printed object) is parsed in memory: up to
# this; an array is parsed an element at a time, whatever its size
DOCUMENT_LIMIT = 1 << 30
_NOT_WS = re.compile(r"[^ \t\n\r]")  # what json.loads skips between tokens

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")

Parsed = tuple[Row, Any, str]  # (lineage or a parse reject, the parsed record or None, its raw text)


def metadata_files(spec: SourceSpec, base_dir: Path) -> list[Path]:
    """The files a source's ``metadata`` glob matches (relative to ``base_dir``), sorted; [] without one."""
    if not spec.metadata:
        return []
    pattern = spec.metadata if Path(spec.metadata).is_absolute() else str(base_dir / spec.metadata)
    return [Path(p) for p in sorted(glob.glob(pattern, recursive=True))]




def raw_text(line: bytes) -> str:
    """Bytes that are not UTF-8, for a reject's ``record``: base64 (ASCII), so that the reject keeps them
    byte for byte (an escaped form could not be told from text that holds a backslash); the reject's
    detail ends with BASE64_NOTE."""
    return base64.b64encode(line).decode("ascii")


def lone_surrogate(obj: Any) -> str | None:
    """The first string in ``obj`` (walked without recursion) holding a lone surrogate, escaped."""
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            if _LONE_SURROGATE.search(x):
                return ascii(_LONE_SURROGATE.search(x).group())
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return None


def parse_json_text(lin: Row, text: str, where: str) -> tuple[Row, Any]:
    """(lin, object) for JSON ``text``, or (reject, None) keeping ``text`` as the record."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        return reject(lin, "parse", "parse_error", f"{where}: {err}", text), None
    except RecursionError:
        return reject(lin, "parse", "parse_error", f"{where}: nested too deep", text), None
    if _SURROGATE_ESCAPE.search(text):
        bad = lone_surrogate(obj)
        if bad:
            return reject(lin, "parse", "bad_encoding", f"{where}: lone surrogate {bad}", text), None
    return lin, obj


def iter_jsonl(path: Path, rel: str, spec: SourceSpec) -> Iterator[Parsed]:
    """(lineage, parsed object, raw line) per JSON line; (reject, None, raw line) for a line that
    cannot be parsed. ``source_index`` is the record's position among the file's non-blank lines.

    A file whose first line opens a pretty-printed document ("{" or "[" alone) is read as one JSON
    document instead: an object is one record, an array one record per element.
    """
    encoding = file_encoding(path)
    lines = iter_lines(path)
    for index, (_lineno, line) in enumerate(lines):
        if index == 0 and line.strip() in (b"{", b"["):
            lines.close()
            yield from iter_document(path, rel, spec)
            return
        lin = lineage(spec.name, rel, index, spec.license)
        try:
            text = line.decode(encoding)
        except UnicodeDecodeError as err:
            raw = raw_text(line)
            yield reject(lin, "parse", "bad_encoding", f"line {index}: {err}; {BASE64_NOTE}", raw), None, raw
            continue
        lin, obj = parse_json_text(lin, text, f"line {index}")
        yield lin, obj, text


def iter_jsonl_objects(path: Path, rel: str, spec: SourceSpec) -> Iterator[Parsed]:
    """As :func:`iter_jsonl`, with records that are not JSON objects turned into rejects."""
    for lin, obj, raw in iter_jsonl(path, rel, spec):
        bad = lin if is_reject(lin) else require_object(lin, obj, raw)
        yield (bad, None, raw) if bad else (lin, obj, raw)


def load_json_document(path: Path) -> Any:
    """A whole-file JSON document (e.g. an Alpaca array); malformed JSON is a file error."""
    data = read_all(path, DOCUMENT_LIMIT)
    encoding = file_encoding(path)
    try:
        return json.loads(decode_text(data, encoding))
    except UnicodeDecodeError as err:
        raise InputFileError(path, f"not {'UTF-8' if encoding == 'utf-8' else encoding}: {err}") from None
    except json.JSONDecodeError as err:
        raise InputFileError(path, f"not valid JSON: {err}") from None
    except RecursionError:
        raise InputFileError(path, "not valid JSON: nested too deep") from None


class _NotOneArray(Exception):
    """The file is not exactly one JSON array (an object, malformed, cut short): parse it whole."""


class _ArrayStream:
    """The elements of a JSON array file, parsed one at a time from a window of decoded text (memory: one
    element and a read chunk, not the file). Only what json.loads would accept passes; anything else
    raises _NotOneArray, and the caller parses the file whole, so that errors read exactly as before."""

    def __init__(self, path: Path):
        self.path = path
        encoding = file_encoding(path)
        self.dec = codecs.getincrementaldecoder("utf-8-sig" if encoding == "utf-8" else encoding)()
        self.json = json.JSONDecoder()
        self.buf, self.pos, self.eof = "", 0, False

    def _fill(self) -> bool:
        """Read more (as much again as is waiting, so a large element is parsed O(size) times); False at
        the end of the file."""
        if self.eof:
            return False
        chunk = self.f.read(max(_CHUNK, len(self.buf) - self.pos))
        self.buf = self.buf[self.pos :] + self.dec.decode(chunk, final=not chunk)
        self.pos = 0
        self.eof = not chunk
        return True

    def _peek(self) -> str:
        """The next character that is not white space ("" at the end of the file)."""
        while True:
            m = _NOT_WS.search(self.buf, self.pos)
            if m:
                self.pos = m.start()
                return self.buf[self.pos]
            self.pos = len(self.buf)
            if not self._fill():
                return ""

    def _value(self):
        while True:
            try:
                obj, end = self.json.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:  # a value at the window's edge may go on (a number)
                    self.pos = end
                    return obj
            except json.JSONDecodeError:
                if self.eof:
                    raise _NotOneArray from None
            except RecursionError:
                raise _NotOneArray from None
            self._fill()

    def __iter__(self) -> Iterator[Any]:
        with open_binary(self.path) as self.f:
            if self._peek() != "[":
                raise _NotOneArray
            self.pos += 1
            if self._peek() == "]":
                self.pos += 1
            else:
                while True:
                    yield self._value()
                    c = self._peek()
                    self.pos += 1
                    if c == "]":
                        break
                    if c != "," or self._peek() == "]":
                        raise _NotOneArray
            if self._peek() != "":
                raise _NotOneArray


def iter_document_elements(path: Path) -> Iterator[Any]:
    """The records of a whole-file JSON document: an array's elements (streamed), or one object."""
    done = 0
    try:
        for obj in _ArrayStream(path):
            yield obj
            done += 1
        return
    except (_NotOneArray, UnicodeDecodeError, *READ_ERRORS):
        pass
    # parsed whole: an object, or a file error worded as json.loads and the archive readers word it
    try:
        data = load_json_document(path)
    except InputFileError as err:
        if done and "larger than" in str(err):  # a long array that breaks after element ``done``
            raise InputFileError(path, f"not valid JSON after element {done - 1}") from None
        raise
    yield from (data if isinstance(data, list) else [data])[done:]


def iter_document(path: Path, rel: str, spec: SourceSpec) -> Iterator[Parsed]:
    """The records of a whole-file JSON document: the elements of an array, or one object."""
    for index, obj in enumerate(iter_document_elements(path)):
        lin = lineage(spec.name, rel, index, spec.license)
        bad = lone_surrogate(obj)
        try:  # the element's JSON text (surrogates as \u escapes, where they can only be escaped)
            raw = json.dumps(obj, ensure_ascii=True, sort_keys=True) if bad else to_json(obj)
        except RecursionError:  # parsed, yet too deep to write again: say so rather than crash
            raw = '"<element nested too deep to serialise>"'
        if bad:
            yield reject(lin, "parse", "bad_encoding", f"element {index}: lone surrogate {bad}", raw), None, raw
            continue
        yield lin, obj, raw


def iter_json_records(path: Path, rel: str, spec: SourceSpec) -> Iterator[Parsed]:
    """A JSON array file (one element per record) or a JSON-lines file, chosen by the first character."""
    if first_byte(path) == b"[":
        yield from iter_document(path, rel, spec)
    else:
        yield from iter_jsonl(path, rel, spec)


def require_object(lin: Row, obj: Any, raw: str) -> Row | None:
    """A reject when a parsed record is not a JSON object, else None."""
    if isinstance(obj, dict):
        return None
    return reject(lin, "parse", "missing_field", f"record is {type(obj).__name__}, not an object", raw)


def require_fields(
    lin: Row, obj: Any, raw: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> Row | None:
    """Return a reject when ``obj`` is not an object with string ``required`` fields, else None."""
    bad = require_object(lin, obj, raw)
    if bad:
        return bad
    for key in required:
        if key not in obj or obj[key] is None:
            return reject(lin, "parse", "missing_field", f"no field {key!r}", raw)
        if not isinstance(obj[key], str):
            return reject(lin, "parse", "missing_field", f"field {key!r} is not a string", raw)
    for key in optional:
        if key in obj and obj[key] is not None and not isinstance(obj[key], str):
            return reject(lin, "parse", "missing_field", f"field {key!r} is not a string", raw)
    return None
