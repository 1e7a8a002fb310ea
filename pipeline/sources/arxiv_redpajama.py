"""RedPajama arXiv rows joined with arXiv metadata records by arXiv id -> summarization rows.

Rows are RedPajama-1T arXiv lines ({"text", "meta": {"arxiv_id", ...}}); the abstract comes from arXiv
metadata records (OAI snapshot JSON lines: {"id", "abstract", "license", ...}) named by the source's
``metadata`` glob. A row whose id has no metadata record is a reject (reason no_abstract). A row's
``license`` is its paper's licence from the metadata record (as an SPDX-style id, pipeline/licenses.py;
the URL as given stays in ``meta.paper_license``), the source's licence when the record has none.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from pipeline.errors import InputFileError, PipelineError
from pipeline.licenses import licence_id
from pipeline.records import Row, is_reject, reject
from pipeline.sources._io import iter_jsonl_objects, metadata_files
from pipeline.sources._streams import iter_lines
from pipeline.sources._summarize import summarization_row
from pipeline.sources.redpajama import text_record
from schemas.recipe import SourceSpec

KIND = "arxiv_redpajama"

_VERSION = re.compile(r"v\d+$")


def normalise_id(arxiv_id: str) -> str:
    """'arXiv:2305.01582v2' -> '2305.01582'."""
    arxiv_id = arxiv_id.strip()
    if arxiv_id.lower().startswith("arxiv:"):
        arxiv_id = arxiv_id[6:]
    return _VERSION.sub("", arxiv_id)


def load_metadata(spec: SourceSpec, base_dir: Path) -> dict[str, dict]:
    """arXiv id -> metadata record, from every JSON-lines file the ``metadata`` glob matches (later
    files win)."""
    files = [str(f) for f in metadata_files(spec, base_dir)]
    if not files:
        raise PipelineError(f"arxiv metadata: no file matches {base_dir / spec.metadata}")
    stamp = tuple((f, os.stat(f).st_mtime_ns, os.stat(f).st_size) for f in files)
    return _load(stamp)


@lru_cache(maxsize=8)
def _load(stamp: tuple[tuple[str, int, int], ...]) -> dict[str, dict]:
    index: dict[str, dict] = {}
    for f, _mtime, _size in stamp:
        for lineno, line in iter_lines(Path(f)):
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise InputFileError(f, f"line {lineno}: not a JSON metadata record: {err}") from None
            if (
                isinstance(rec, dict)
                and isinstance(rec.get("id"), str)
                and isinstance(rec.get("abstract"), str)
            ):
                index[normalise_id(rec["id"])] = rec
    return index


def read(path: Path, rel: str, spec: SourceSpec, base_dir: Path) -> Iterator[Row]:
    if not spec.metadata:
        raise PipelineError(f"source {spec.name!r}: kind arxiv_redpajama needs a 'metadata' glob")
    metadata = load_metadata(spec, base_dir)
    for lin, obj, raw in iter_jsonl_objects(path, rel, spec):
        row = lin if obj is None else text_record(lin, obj, raw)
        if is_reject(row):
            yield row
            continue
        meta = _meta_dict(row["meta"])
        arxiv_id = meta.get("arxiv_id")
        if not isinstance(arxiv_id, str):
            yield reject(row, "parse", "missing_field", "no meta.arxiv_id", raw)
            continue
        rec = metadata.get(normalise_id(arxiv_id))
        if rec is None:
            yield reject(row, "parse", "no_abstract", f"no metadata record for arXiv id {arxiv_id}", raw)
            continue
        info = {  # the RedPajama line's own meta and extra fields, then what the join adds
            **meta,
            "arxiv_id": normalise_id(arxiv_id),
            "paper_license": rec.get("license"),
            "title": rec.get("title"),
        }
        paper = rec.get("license")
        if isinstance(paper, str) and paper.strip():  # the paper's own licence; the recipe's otherwise
            lin = {**lin, "license": licence_id(paper)}
        yield summarization_row(lin, row["text"], rec["abstract"], spec.max_body_chars, info)


def _meta_dict(meta: str | None) -> dict:
    if not meta:
        return {}
    try:
        parsed = json.loads(meta)
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
