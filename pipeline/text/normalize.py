"""Normalised forms of a text, each for one purpose.

- :func:`normalize_text`: what a cleaned row holds (NFKC, line ends, no control or zero-width
  characters, no trailing spaces or runs of blank lines; indentation kept: outputs hold code);
- :func:`dedup_key_text`: what exact dedup compares (case-folded, whitespace runs as one space);
- :func:`folded` / :func:`signature_text` / :func:`word_tokens`: what near dedup and the generation
  filters compare (NFKC and case folding, then letters, digits and combining marks only).
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff]")
_TRAILING = re.compile(r"[ \t]+(?=\n)")
_BLANK_LINES = re.compile(r"\n{3,}")
_DROP = re.compile(r"[\W_]+")

TABLE_SIZE = 0x30000  # BMP and the supplementary ideographic planes; code points above are dropped


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


def dedup_key_text(text: str) -> str:
    """Normalised text for exact dedup: case-folded, all whitespace runs as one space."""
    return " ".join(text.casefold().split())


def _keep_table() -> np.ndarray:
    """KEEP[cp]: whether code point cp stays in signature text (letters, digits and combining marks)."""
    keep = np.zeros(TABLE_SIZE, dtype=bool)
    for cp in range(TABLE_SIZE):
        ch = chr(cp)
        if ch.isalnum() or unicodedata.category(ch) in ("Mn", "Mc"):
            keep[cp] = True
    return keep


KEEP = _keep_table()


def folded(text: str) -> str:
    """NFKC and case folding (spacing voicing marks first made combining, so that NFKC joins them)."""
    if text.isascii():
        return text.lower()
    if "\u309b" in text or "\u309c" in text:
        text = text.replace("\u309b", "\u3099").replace("\u309c", "\u309a")
    return unicodedata.normalize("NFKC", text).casefold()


def signature_text(text: str) -> str:
    """Text as near dedup sees it: NFKC, case-folded, only letters, digits and combining marks.

    "て゛" and "で" are the same, and である never turns into てある. The MinHash shingler applies the
    same rule vectorised (the KEEP table) on folded text.
    """
    return "".join(ch for ch in folded(text) if ord(ch) < TABLE_SIZE and KEEP[ord(ch)])


def word_tokens(text: str) -> list[str]:
    """Words as near dedup sees them: NFKC, case-folded, punctuation removed."""
    return [w for w in (_DROP.sub("", t) for t in folded(text).split()) if w]
