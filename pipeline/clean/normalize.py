"""Unicode NFKC and whitespace normalisation of the text fields of a row.

Indentation inside lines is kept (outputs hold code); trailing spaces, control characters, zero-width
characters and runs of blank lines are removed; CRLF and CR become LF.
"""

from __future__ import annotations

import re
import unicodedata

from pipeline.records import Row

TEXT_FIELDS = ("instruction", "input", "output", "text")

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff]")
_TRAILING = re.compile(r"[ \t]+(?=\n)")
_BLANK_LINES = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    if " \n" in text or "\t\n" in text:
        text = _TRAILING.sub("", text)
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def normalize_row(row: Row) -> Row:
    """The row with every text field normalised (a new dict; the input is left as it was)."""
    out = dict(row)
    for key in TEXT_FIELDS:
        value = out.get(key)
        if value:
            out[key] = normalize_text(value)
    return out


def dedup_key_text(text: str) -> str:
    """Normalised text for exact dedup: case-folded, all whitespace runs as one space."""
    return " ".join(text.casefold().split())
