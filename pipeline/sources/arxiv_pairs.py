"""arXiv/PubMed long-summarization pairs (Cohan et al. 2018 format) -> summarization rows.

Each JSON line has ``article_text`` (list of sentences) and ``abstract_text`` (list of "<S> ... </S>");
the Hugging Face form with plain ``article`` / ``abstract`` strings is taken too. Every other field of
the record is kept in ``meta`` (see _meta).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pipeline.records import Row, reject
from pipeline.sources._io import iter_jsonl_objects
from pipeline.sources._summarize import summarization_row
from schemas.recipe import SourceSpec

KIND = "arxiv_pairs"

_S_TAG = re.compile(r"</?S>")


def _join(value: object, tags: bool) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        parts = [(_S_TAG.sub("", x) if tags else x).strip() for x in value]
        return " ".join(p for p in parts if p)
    return None


def read(path: Path, rel: str, spec: SourceSpec, base_dir: Path) -> Iterator[Row]:
    for lin, obj, raw in iter_jsonl_objects(path, rel, spec):
        if obj is None:
            yield lin
            continue
        body = _join(obj.get("article_text", obj.get("article")), tags=False)
        abstract = _join(obj.get("abstract_text", obj.get("abstract")), tags=True)
        if body is None:
            yield reject(lin, "parse", "missing_field", "no field 'article_text'", raw)
            continue
        if abstract is None:
            yield reject(lin, "parse", "missing_field", "no field 'abstract_text'", raw)
            continue
        yield summarization_row(lin, body, abstract, spec.max_body_chars, _meta(obj))


_USED = ("article_text", "article", "abstract_text", "abstract")


def _meta(obj: dict) -> dict:
    """Every field the row does not use goes to meta. ``sections`` (the article again, split by section)
    is kept as ``section_lengths`` (sentences per section) when it is exactly ``article_text`` re-split,
    which saves a second copy of every article and loses nothing; otherwise it is kept as it is."""
    meta = {k: v for k, v in obj.items() if k not in _USED}
    sections, article = meta.get("sections"), obj.get("article_text")
    if (
        isinstance(sections, list)
        and isinstance(article, list)
        and all(isinstance(x, list) for x in sections)
        and [s for sec in sections for s in sec] == article
    ):
        meta["section_lengths"] = [len(sec) for sec in meta.pop("sections")]
    return meta
