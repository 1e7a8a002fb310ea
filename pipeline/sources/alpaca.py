"""Alpaca format: a JSON array or JSON lines of {instruction, input, output}.

Also takes databricks-dolly-15k-ja's array form ({index, instruction, input, output, category}). Fields
other than the three are kept in ``meta``. The Alpaca placeholder inputs ("<noinput>", its Japanese
translations, "No input", "N/A": pipeline.text.instruct.NO_INPUT) become an empty input.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.records import Row, instruct_row, is_reject
from pipeline.sources._io import iter_json_records, require_fields
from pipeline.text.instruct import placeholder_input
from schemas.recipe import SourceSpec

KIND = "alpaca"


def read(path: Path, rel: str, spec: SourceSpec, base_dir: Path) -> Iterator[Row]:
    for lin, obj, raw in iter_json_records(path, rel, spec):
        if is_reject(lin):
            yield lin
            continue
        bad = require_fields(lin, obj, raw, ("instruction", "output"), ("input",))
        if bad:
            yield bad
            continue
        inp = obj.get("input") or ""
        if placeholder_input(inp):
            inp = ""
        meta = {k: v for k, v in obj.items() if k not in ("instruction", "input", "output")}
        yield instruct_row(lin, obj["instruction"], inp, obj["output"], "general", meta=meta)
