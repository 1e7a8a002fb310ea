"""Repetition measures shared by the cleaning filters and (later) the generation loop guard.

All functions are pure and work on normalised text. Line/paragraph and word n-gram fractions follow
Rae et al. 2021 (Gopher). For text without spaces the word rules do nothing, so a character rule judges
every language: the share of character n-grams (n=10 by default) that repeat an earlier one. A loop
("こんちには。こんにちは。" again and again) scores near 1; natural text stays low.
"""

from __future__ import annotations

from collections import Counter

_NO_SPACE_LANGS = frozenset({"ja", "zh", "ko", "th"})


def duplicate_fractions(parts: list[str]) -> tuple[float, float]:
    """(share of parts that repeat an earlier part, share of characters in those repeats).

    Parts shorter than 3 characters after stripping ("}", "-") are ignored.
    """
    parts = [p.strip() for p in parts]
    parts = [p for p in parts if len(p) >= 3]
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


def dup_char_ngram_fraction(text: str, n: int = 10) -> float:
    """Share of the character n-grams of ``text`` that repeat an earlier one (0 = none, ~1 = a loop)."""
    total = len(text) - n + 1
    if total <= 1:
        return 0.0
    return 1.0 - len({text[i : i + n] for i in range(total)}) / total


def repetition_reason(text: str, lang: str | None, c) -> str | None:
    """The first repetition rule ``text`` breaks, as "rule=value", or None. ``c`` is a CleanSpec."""
    if len(text) < c.dup_char_min_chars:
        return None
    frac = dup_char_ngram_fraction(text, c.dup_char_ngram)
    if frac > c.max_dup_char_ngram_frac:
        return f"dup_char_{c.dup_char_ngram}gram_frac={frac:.2f}"
    if len(text) < c.repetition_min_chars:
        return None
    if "\n" in text:
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
        return None
    words = text.split()
    if len(words) < c.ngram_min_words:
        return None
    for n, limit in sorted(c.max_top_ngram_frac.items()):
        frac = top_word_ngram_fraction(words, n)
        if frac > limit:
            return f"top_{n}gram_frac={frac:.2f}"
    return None
