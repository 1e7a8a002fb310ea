"""RedPajama text shards: .jsonl / .jsonl.gz / .jsonl.zst lines of {"text", "meta"} -> text rows.

``meta`` may be an object or a JSON string (the Hugging Face loader writes it as a string); other top-level
keys (e.g. ``red_pajama_subset``) are folded into meta. RedPajama-V2 documents ({"raw_content", ...}) are
taken too: raw_content is the text and every other field goes to meta.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pipeline.records import Row, reject, text_row
from pipeline.sources._io import iter_jsonl_objects
from schemas.recipe import SourceSpec

KIND = "redpajama"


def parse_meta(meta: object) -> dict | str | None:
    """Meta as an object where it is one or a JSON string of one; other strings stay as they are."""
    if isinstance(meta, str):
        try:
            parsed = json.loads(meta)
        except json.JSONDecodeError:
            return meta
        return parsed if isinstance(parsed, dict) else meta
    return meta if isinstance(meta, dict) else None


def text_record(lin: Row, obj: dict, raw: str) -> Row:
    """The text row of one parsed RedPajama record, or a reject (keeping the raw line)."""
    key = "text" if "text" in obj else "raw_content" if "raw_content" in obj else None
    if key is None or not isinstance(obj[key], str):
        return reject(lin, "parse", "missing_field", "no string field 'text'", raw)
    meta = parse_meta(obj.get("meta"))
    extra = {k: v for k, v in obj.items() if k not in (key, "meta")}
    if extra:
        meta = {
            **(meta if isinstance(meta, dict) else {"meta": meta} if meta is not None else {}),
            **extra,
        }
    return text_row(lin, obj[key], meta)


def read(path: Path, rel: str, spec: SourceSpec, base_dir: Path) -> Iterator[Row]:
    for lin, obj, raw in iter_jsonl_objects(path, rel, spec):
        yield lin if obj is None else text_record(lin, obj, raw)
