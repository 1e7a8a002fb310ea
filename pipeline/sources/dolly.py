"""databricks-dolly-15k JSON lines: {instruction, context, response, category} -> instruction rows.

``context`` becomes the input, ``response`` the output; ``category`` is kept in ``meta``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.records import Row, instruct_row, is_reject
from pipeline.sources._io import iter_json_records, require_fields
from schemas.recipe import SourceSpec

KIND = "dolly"


def read(path: Path, rel: str, spec: SourceSpec, base_dir: Path) -> Iterator[Row]:
    for lin, obj, raw in iter_json_records(path, rel, spec):
        if is_reject(lin):
            yield lin
            continue
        bad = require_fields(lin, obj, raw, ("instruction", "response"), ("context", "category"))
        if bad:
            yield bad
            continue
        meta = {k: v for k, v in obj.items() if k not in ("instruction", "context", "response")}
        yield instruct_row(
            lin, obj["instruction"], obj.get("context") or "", obj["response"], "general", meta=meta
        )
