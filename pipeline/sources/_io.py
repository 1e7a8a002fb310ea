"""Shared file reading for the source modules: compressed line streams and JSON parsing with rejects."""

from __future__ import annotations

import glob
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zstandard

from pipeline.errors import InputFileError
from pipeline.records import Row, is_reject, lineage, reject
from schemas.recipe import SourceSpec


def metadata_files(spec: SourceSpec, base_dir: Path) -> list[Path]:
    """The files a source's ``metadata`` glob matches (relative to ``base_dir``), sorted; [] without one."""
    if not spec.metadata:
        return []
    pattern = spec.metadata if Path(spec.metadata).is_absolute() else str(base_dir / spec.metadata)
    return [Path(p) for p in sorted(glob.glob(pattern, recursive=True))]


def open_binary(path: Path) -> io.BufferedIOBase:
    """Open a plain, .gz or .zst file for binary reading; a wrong or unreadable archive is a file error."""
    try:
        if path.suffix == ".gz":
            f = gzip.open(path, "rb")
            f.peek(1)  # fails now on a file that is not gzip
            return f
        if path.suffix == ".zst":
            raw = open(path, "rb")
            f = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
            f.peek(1)
            return f
        return open(path, "rb")
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as err:
        raise InputFileError(path, f"unreadable file: {err}") from None


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield (0-based line number, raw line without the newline); blank lines are skipped but counted."""
    f = open_binary(path)
    try:
        with f:
            for i, line in enumerate(f):
                line = line.rstrip(b"\r\n")
                if line.strip():
                    yield i, line
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as err:
        raise InputFileError(path, f"unreadable archive: {err}") from None


def raw_text(line: bytes) -> str:
    """A raw line as text for a reject's ``record``: undecodable bytes become \\x escapes."""
    return line.decode("utf-8", errors="backslashreplace")


def iter_jsonl(path: Path, rel: str, spec: SourceSpec) -> Iterator[tuple[Row, Any]]:
    """Yield (lineage, parsed object) per JSON line, or (reject, None) for a line that cannot be parsed.

    ``source_index`` is the record's position among the file's non-blank lines.
    """
    for index, (_lineno, line) in enumerate(iter_lines(path)):
        lin = lineage(spec.name, rel, index, spec.license)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            yield reject(lin, "parse", "bad_encoding", f"line {index}: {err}", raw_text(line)), None
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            yield reject(lin, "parse", "parse_error", f"line {index}: {err}", text), None
            continue
        yield lin, obj


def iter_jsonl_objects(path: Path, rel: str, spec: SourceSpec) -> Iterator[tuple[Row, dict | None]]:
    """(lineage, object) per JSON line holding an object; (reject, None) for any other line."""
    for lin, obj in iter_jsonl(path, rel, spec):
        bad = lin if is_reject(lin) else require_object(lin, obj)  # a parse reject, or not an object
        yield (bad, None) if bad else (lin, obj)


def load_json_document(path: Path) -> Any:
    """A whole-file JSON document (e.g. an Alpaca array); malformed JSON is a file error."""
    with open_binary(path) as f:
        data = f.read()
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise InputFileError(path, f"not UTF-8: {err}") from None
    except json.JSONDecodeError as err:
        raise InputFileError(path, f"not valid JSON: {err}") from None


def first_char(path: Path) -> bytes:
    with open_binary(path) as f:
        head = f.read(4096)
    head = head.lstrip(b"\xef\xbb\xbf").lstrip()
    return head[:1]


def iter_json_records(path: Path, rel: str, spec: SourceSpec) -> Iterator[tuple[Row, Any]]:
    """A JSON array file (one element per record) or a JSON-lines file, chosen by the first character."""
    if first_char(path) == b"[":
        data = load_json_document(path)
        for index, obj in enumerate(data):
            yield lineage(spec.name, rel, index, spec.license), obj
    else:
        yield from iter_jsonl(path, rel, spec)


def require_object(lin: Row, obj: Any) -> Row | None:
    """A reject when a parsed record is not a JSON object, else None."""
    if isinstance(obj, dict):
        return None
    return reject(lin, "parse", "missing_field", f"record is {type(obj).__name__}, not an object", obj)


def require_fields(
    lin: Row, obj: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> Row | None:
    """Return a reject when ``obj`` is not an object with string ``required`` fields, else None."""
    bad = require_object(lin, obj)
    if bad:
        return bad
    for key in required:
        if key not in obj or obj[key] is None:
            return reject(lin, "parse", "missing_field", f"no field {key!r}", obj)
        if not isinstance(obj[key], str):
            return reject(lin, "parse", "missing_field", f"field {key!r} is not a string", obj)
    for key in optional:
        if key in obj and obj[key] is not None and not isinstance(obj[key], str):
            return reject(lin, "parse", "missing_field", f"field {key!r} is not a string", obj)
    return None
