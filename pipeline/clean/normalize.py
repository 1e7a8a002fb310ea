"""Normalisation of the text fields of a row (the text rules are in pipeline/text/normalize.py)."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.records import Row
from pipeline.text.normalize import normalize_text

TEXT_FIELDS = ("instruction", "input", "output", "text")
TEXT_KEYS = (*TEXT_FIELDS, "messages")  # the keys whose values map_text rewrites


def map_text(row: Row, fn: Callable[[str], str]) -> Row:
    """The row with ``fn`` applied to every non-empty text field and to each conversation turn's content
    (a new dict; the input is left as it was)."""
    out = dict(row)
    for key in TEXT_FIELDS:
        value = out.get(key)
        if value and isinstance(value, str):
            out[key] = fn(value)
    if isinstance(out.get("messages"), list):
        out["messages"] = [
            {**m, "content": fn(m["content"])} if isinstance(m, dict) and isinstance(m.get("content"), str)
            and m["content"] else m
            for m in out["messages"]
        ]
    return out


def normalize_row(row: Row) -> Row:
    """The row with every text field normalised (a new dict; the input is left as it was)."""
    return map_text(row, normalize_text)
