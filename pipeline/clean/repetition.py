"""Repetition measures (Gopher-style and character n-gram) shared by the filters and, later, generation.

All functions are pure and work on normalised text. Fractions follow Rae et al. 2021 (Gopher):
duplicate lines / paragraphs (by count and by characters) and the share of characters covered by the most
frequent word n-gram; for text without spaces, the HojiChar-style share of the top-k character n-grams.
"""

from __future__ import annotations

import math
from collections import Counter

_NO_SPACE_LANGS = frozenset({"ja", "zh", "ko", "th"})


def duplicate_fractions(parts: list[str]) -> tuple[float, float]:
    """(share of parts that repeat an earlier part, share of characters in those repeats)."""
    parts = [p for p in parts if p.strip()]
    if len(parts) < 2:
        return 0.0, 0.0
    seen: set[str] = set()
    dup = dup_chars = total_chars = 0
    for p in parts:
        total_chars += len(p)
        if p in seen:
            dup += 1
            dup_chars += len(p)
        else:
            seen.add(p)
    return dup / len(parts), dup_chars / max(total_chars, 1)


def top_word_ngram_fraction(words: list[str], n: int) -> float:
    """Characters covered by the most frequent word n-gram, over all word characters (Gopher)."""
    if len(words) < n + 1:
        return 0.0
    counts = Counter(zip(*(words[i:] for i in range(n)), strict=False))
    gram, freq = counts.most_common(1)[0]
    if freq < 2:
        return 0.0
    total = sum(len(w) for w in words)
    return freq * sum(len(w) for w in gram) / max(total, 1)


def char_ngram_top_fraction(text: str, n: int = 5) -> float:
    """Share of all character n-gram occurrences taken by the top sqrt(#distinct) n-grams (HojiChar)."""
    if len(text) < n:
        return 0.0
    counts = Counter(map("".join, zip(*(text[i:] for i in range(n)), strict=False)))
    total = len(text) - n + 1
    k = max(1, int(math.sqrt(len(counts))))
    top = sum(f for _, f in counts.most_common(k))
    if top <= k:  # every top n-gram occurs once: nothing repeats
        return 0.0
    return top / total


def repetition_reason(text: str, lang: str | None, c) -> str | None:
    """The first repetition rule ``text`` breaks, as "rule=value", or None. ``c`` is a CleanSpec."""
    if len(text) < c.repetition_min_chars:
        return None
    frac, char_frac = duplicate_fractions(text.split("\n"))
    if frac > c.max_dup_line_frac:
        return f"dup_line_frac={frac:.2f}"
    if char_frac > c.max_dup_line_char_frac:
        return f"dup_line_char_frac={char_frac:.2f}"
    if "\n\n" in text:
        frac, char_frac = duplicate_fractions(text.split("\n\n"))
        if frac > c.max_dup_para_frac:
            return f"dup_para_frac={frac:.2f}"
        if char_frac > c.max_dup_para_char_frac:
            return f"dup_para_char_frac={char_frac:.2f}"
    if lang in _NO_SPACE_LANGS:
        ratio = char_ngram_top_fraction(text, c.char_ngram)
        if ratio >= c.max_char_ngram_top_frac:
            return f"char_{c.char_ngram}gram_top_frac={ratio:.2f}"
        return None
    words = text.split()
    if len(words) < c.ngram_min_words:
        return None
    for n, limit in sorted(c.max_top_ngram_frac.items()):
        frac = top_word_ngram_fraction(words, n)
        if frac > limit:
            return f"top_{n}gram_frac={frac:.2f}"
    return None
