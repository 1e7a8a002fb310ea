"""Normalisation of the text fields of a row (the text rules are in pipeline/text/normalize.py)."""

from __future__ import annotations

from pipeline.records import Row
from pipeline.text.normalize import normalize_text

TEXT_FIELDS = ("instruction", "input", "output", "text")


def normalize_row(row: Row) -> Row:
    """The row with every text field normalised (a new dict; the input is left as it was)."""
    out = dict(row)
    for key in TEXT_FIELDS:
        value = out.get(key)
        if value:
            out[key] = normalize_text(value)
    return out
