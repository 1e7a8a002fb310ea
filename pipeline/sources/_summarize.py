"""Summarization rows (body -> abstract) shared by the arXiv readers."""

from __future__ import annotations

import re

import xxhash

from pipeline.records import Row, instruct_row
from pipeline.text.langid import detect

TEMPLATES = {
    "ja": (
        "次の論文の本文を読んで、要旨（アブストラクト）を書いてください。",
        "以下の論文本文を要約し、論文のアブストラクトを作成してください。",
        "この論文の内容を、アブストラクトとして簡潔にまとめてください。",
    ),
    "en": (
        "Write the abstract of the following paper.",
        "Summarize the following paper body as an abstract.",
        "Read the paper below and write a concise abstract for it.",
    ),
}

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s")


def truncate(body: str, budget: int) -> str:
    """Cut ``body`` to at most ``budget`` characters, at a paragraph or sentence end where one is near."""
    if len(body) <= budget:
        return body
    cut = body[:budget]
    para = cut.rfind("\n\n")
    if para >= budget * 0.8:
        return cut[:para].rstrip()
    ends = list(_SENTENCE_END.finditer(cut))
    if ends and ends[-1].start() >= budget * 0.8:
        return cut[: ends[-1].start()].rstrip()
    return cut.rstrip()


def summarization_row(lin: Row, body: str, abstract: str, budget: int, meta: dict | None = None) -> Row:
    """An instruction row whose instruction is a template in the abstract's language (English otherwise)."""
    lang = detect(abstract)
    options = TEMPLATES.get(lang, TEMPLATES["en"])
    pick = xxhash.xxh32_intdigest(lin["id"].encode()) % len(options)
    return instruct_row(
        lin, options[pick], truncate(body, budget), abstract.strip(), "summarization", meta=meta
    )
