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


def _nfkc_table() -> tuple[np.ndarray, dict[str, str]]:
    """CHANGES[cp]: whether NFKC changes code point cp on its own, and the NFKC form of each such
    character (full-width （）：？, ℃, U+3000...), for the code points below TABLE_SIZE (all of them in
    Unicode 15; one above would only miss the shortcut, the result stays right)."""
    forms = {}
    for cp in range(TABLE_SIZE):
        if 0xD800 <= cp < 0xE000:
            continue
        ch = chr(cp)
        form = unicodedata.normalize("NFKC", ch)
        if form != ch:
            forms[ch] = form
    changes = np.zeros(TABLE_SIZE, dtype=bool)
    changes[[ord(c) for c in forms]] = True
    return changes, forms


_CHANGES, _FORMS = _nfkc_table()


def nfkc(text: str) -> str:
    """``unicodedata.normalize("NFKC", text)``, faster on text with a few characters to map (Japanese:
    full-width brackets and colons in otherwise normalised text), where CPython's normaliser, past its
    quick check, rebuilds the whole string (~140 ns a character). Each such character is first replaced
    by its own NFKC form, found through a table over the text's code points; that leaves the NFKD of the
    text unchanged (NFKD of a character's NFKC form is its NFKD), so the NFKC of the result is the same,
    and usually passes the quick check at once. Equal to the plain call on every code point and sample
    (tests/test_text.py)."""
    if text.isascii():
        return text
    if unicodedata.is_normalized("NFKC", text):
        return text
    units = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    at = np.flatnonzero(_CHANGES[np.minimum(units, TABLE_SIZE - 1)] & (units < TABLE_SIZE))
    if len(at):
        parts, last = [], 0
        for i in at.tolist():
            parts.append(text[last:i])
            parts.append(_FORMS[text[i]])
            last = i + 1
        parts.append(text[last:])
        text = "".join(parts)
    return unicodedata.normalize("NFKC", text)


def normalize_text(text: str) -> str:
    text = nfkc(text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.replace("\n", " ").isprintable():  # isprintable() is False for every _CONTROL character
        text = _CONTROL.sub("", text)  # (Cc, Cf), and runs in C ~2x faster than the search
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
    return nfkc(text).casefold()


def signature_text(text: str) -> str:
    """Text as near dedup sees it: NFKC, case-folded, only letters, digits and combining marks.

    "て゛" and "で" are the same, and である never turns into てある. The MinHash shingler applies the
    same rule vectorised (the KEEP table) on folded text.
    """
    return "".join(ch for ch in folded(text) if ord(ch) < TABLE_SIZE and KEEP[ord(ch)])


def word_tokens(text: str) -> list[str]:
    """Words as near dedup sees them: NFKC, case-folded, punctuation removed."""
    return [w for w in (_DROP.sub("", t) for t in folded(text).split()) if w]
