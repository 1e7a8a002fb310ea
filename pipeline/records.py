"""Records flowing through the stages are plain dicts whose keys are the columns of schemas/.

A data row has the lineage columns plus either instruction/input/output/task (table ``instruct``),
text (table ``text``) or messages/task (table ``chat``: a list of {role, content}). A reject has the
lineage columns plus stage/reason/detail/duplicate_of/record.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from schemas.columns import LINEAGE_NAMES

Row = dict[str, Any]


def make_id(source: str, source_file: str, source_index: int, part: int = 0) -> str:
    """Stable row id: a 128-bit hash of (source name, source file, position in that file); ``part`` tells
    apart the rows one record gives (a conversation tree's paths), 0 for the first or only one."""
    key = f"{source}\x1f{source_file}\x1f{source_index}" + (f"\x1f{part}" if part else "")
    return xxhash.xxh3_128_hexdigest(key.encode())


def lineage(
    source: str, source_file: str, source_index: int, license: str, lang: str | None = None, part: int = 0
) -> Row:
    return {
        "id": make_id(source, source_file, source_index, part),
        "source": source,
        "source_file": source_file,
        "source_index": source_index,
        "license": license,
        "lang": lang,
    }


def instruct_row(
    lin: Row,
    instruction: str,
    input: str,
    output: str,
    task: str = "general",
    generation: dict | None = None,
    meta: dict | None = None,
) -> Row:
    return {**lin, "instruction": instruction, "input": input, "output": output, **_task_fields(task, generation, meta)}


def _task_fields(task: str, generation: dict | None, meta: dict | None) -> Row:
    """The columns instruction and chat rows share: task, and generation and meta as JSON (null when absent)."""
    return {
        "task": task,
        "generation": None if generation is None else to_json(generation),
        "meta": None if not meta else to_json(meta),
    }


def text_row(lin: Row, text: str, meta: dict | str | None = None) -> Row:
    row = dict(lin)
    row.update(text=text, meta=meta if (meta is None or isinstance(meta, str)) else to_json(meta))
    return row


def chat_row(
    lin: Row,
    messages: list[dict],
    task: str = "chat",
    generation: dict | None = None,
    meta: dict | None = None,
) -> Row:
    """A conversation: ``messages`` is a list of {"role": system|user|assistant, "content": str}."""
    turns = [{"role": m["role"], "content": m["content"]} for m in messages]
    return {**lin, "messages": turns, **_task_fields(task, generation, meta)}


def is_reject(row: Row) -> bool:
    return "stage" in row


def table_of(row: Row) -> str:
    if "stage" in row:
        return "rejects"
    if "text" in row:
        return "text"
    return "chat" if "messages" in row else "instruct"


def reject(
    row: Row,
    stage: str,
    reason: str,
    detail: str | None = None,
    record: Any = None,
    duplicate_of: str | None = None,
) -> Row:
    """A reject row for ``row``: keeps its lineage and the record (verbatim raw text, or the row as JSON)."""
    if record is None:
        record = row.get(ORIGINAL) or {k: v for k, v in row.items() if k not in LINEAGE_NAMES and k[0] != "_"}
    out = {k: row.get(k) for k in LINEAGE_NAMES}
    out.update(
        stage=stage,
        reason=reason,
        detail=detail,
        duplicate_of=duplicate_of,
        record=record if isinstance(record, str) else to_json(record),
    )
    return out


BASE64_NOTE = "record: the raw bytes in base64"  # how a reject's detail ends when its record is base64 bytes

ORIGINAL = "_original"  # a cleaned row's pre-normalisation fields, kept so that a later reject is verbatim


def to_json(obj: Any) -> str:
    """Compact, key-sorted JSON; text as it is, except lone surrogates (which no UTF-8 file can hold),
    which make the whole string ASCII with \\u escapes."""
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if text.isascii():  # O(1) in CPython
        return text
    try:
        text.encode("utf-8")  # fails exactly on a surrogate code point, in C (the regex scan cost more)
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return text


# json.dumps's escapes of a str (ensure_ascii=False): backslash first, so that no escape is escaped again
_JSON_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"), ("\b", "\\b"), ("\f", "\\f"))
_JSON_CONTROLS = tuple(chr(c) for c in range(0x20) if chr(c) not in "\n\r\t\b\f")  # escaped as \u00XX


def json_strings(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``json.dumps(value, ensure_ascii=False)`` of every value of a string column, in Arrow (null:
    ``null``). Arrow strings are valid UTF-8, so none holds the lone surrogates that to_json escapes."""
    present = _bytes_present(column)  # each replacement is a pass and a copy: only for what occurs
    out = column
    for char, escaped in _JSON_ESCAPES:
        if present[ord(char)]:
            out = pc.replace_substring(out, char, escaped)
    for char in _JSON_CONTROLS:
        if present[ord(char)]:
            out = pc.replace_substring(out, char, f"\\u{ord(char):04x}")
    return pc.fill_null(pc.binary_join_element_wise('"', out, '"', ""), "null")


_SCAN_BYTES = 1 << 20  # a buffer is scanned a MB at a time (1 MB of scratch masks)


def _bytes_present(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Which of the byte values JSON escapes (controls, ``"``, ``\\``) occur in a string column's data
    buffers, as a 256-entry mask (a sliced array's whole buffer: a byte outside the slice only costs a
    replacement that finds nothing). Three comparisons a byte: half the time of a bincount, which widened
    every byte to int64."""
    present = np.zeros(256, dtype=bool)
    for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        data = chunk.buffers()[2]
        if data is None or not data.size:
            continue
        raw = np.frombuffer(data, dtype=np.uint8)
        for at in range(0, len(raw), _SCAN_BYTES):
            part = raw[at : at + _SCAN_BYTES]
            special = part < 0x20
            special |= part == 0x22
            special |= part == 0x5C
            present[part[special]] = True
    return present


def json_records(table: pa.Table) -> pa.Array | pa.ChunkedArray | None:
    """:func:`to_json` of every row of ``table`` as a dict of its columns, in Arrow, when every column is a
    string column (None otherwise: the caller serialises those rows one at a time)."""
    if not table.num_columns or not all(pa.types.is_string(f.type) for f in table.schema):
        return None
    parts: list = []
    for i, name in enumerate(sorted(table.column_names)):
        parts += [("{" if i == 0 else ",") + json.dumps(name) + ":", json_strings(table.column(name))]
    return pc.binary_join_element_wise(*parts, "}", "")


def _has_surrogate(text: str) -> bool:
    """``text`` holds a surrogate code point: exactly what UTF-8 cannot encode (isascii() is O(1) in
    CPython, and the encoder runs ~3x faster than a regex search)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def lone_surrogate_field(row: Row) -> str | None:
    """The first text column of ``row`` holding a lone surrogate (it cannot be written as UTF-8)."""
    for k, v in row.items():
        if isinstance(v, str) and _has_surrogate(v):
            return k
        if k == "messages" and isinstance(v, list):
            for i, m in enumerate(v):
                if _has_surrogate(m["content"]):
                    return f"messages[{i}]"
    return None


def record_text(row: Row) -> str:
    """The text a row is judged on: instruction + input + output, the text, or the turns' contents."""
    if "text" in row:
        return row["text"]
    if "messages" in row:
        return "\n".join(m["content"] for m in row["messages"] if m["content"])
    return "\n".join(x for x in (row["instruction"], row["input"], row["output"]) if x)


def answer_texts(row: Row) -> list[str]:
    """The model-written part of a row, which loop and repetition rules judge: the output, the text, or each
    assistant turn of a conversation."""
    if "text" in row:
        return [row["text"]]
    if "messages" in row:
        return [m["content"] for m in row["messages"] if m["role"] == "assistant"]
    return [row["output"]]
