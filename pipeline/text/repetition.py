"""Repetition measures: the cleaning filters' Gopher-style fractions, and the one loop detector that
both the generation guard and the ``loop`` filter use.

All functions are pure and work on normalised text. Line/paragraph and word n-gram fractions follow
Rae et al. 2021 (Gopher). For text without spaces the word rules do nothing, so a character rule judges
every language: the share of character n-grams (n=10 by default) that repeat an earlier one. A loop
("こんちには。こんにちは。" again and again) scores near 1; natural text stays low.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from pipeline.text.langid import NO_SPACE_LANGS

_CHAR_RULE_SPAN = 3000  # characters the character n-gram rule reads: the first 2000 and the last 1000


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
    """Characters covered by the most frequent word n-gram, over all word characters (Gopher).

    Reference implementation; :func:`top_word_ngram_fractions` computes the same for several n at once.
    """
    if len(words) < n + 1:
        return 0.0
    counts = Counter(zip(*(words[i:] for i in range(n)), strict=False))
    freq = max(counts.values())
    if freq < 2:
        return 0.0
    total = sum(len(w) for w in words)
    chars = max(sum(len(w) for w in gram) for gram, f in counts.items() if f == freq)  # ties: the longest
    return freq * chars / max(total, 1)


_MIX = np.uint64(0x9E3779B97F4A7C15)


def top_word_ngram_fractions(words: list[str], ns: list[int]) -> dict[int, float]:
    """:func:`top_word_ngram_fraction` for each n in ``ns``, vectorised over 64-bit word hashes.

    n-grams are keyed by a 64-bit mix of their words' hashes; a collision could only merge two n-grams
    and raise a fraction, never hide a repeat (tests compare it with the reference).
    """
    if len(words) < 3:
        return dict.fromkeys(ns, 0.0)
    codes = np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)
    lens = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    return _top_fractions(codes, lens, ns)


def _top_fractions(
    codes: np.ndarray, lens: np.ndarray, ns: list[int], limits: dict[int, float] | None = None
) -> dict[int, float]:
    """The top n-gram fractions of words given as (hash, length) arrays.

    With ``limits`` (n -> the fraction a rule allows), an n whose fraction cannot exceed its limit is not
    computed and left out: an n-gram occurs at most as often as the (n-1)-gram it starts with, so the top
    frequency of a smaller n (exact, from its sort) times the longest n-gram's characters bounds the
    fraction. Every fraction given is exact; a left-out one is at most its limit."""
    out = dict.fromkeys(ns, 0.0)
    m0 = len(codes)
    if m0 < 3:
        return out
    cum = np.zeros(m0 + 1, dtype=np.int64)
    np.cumsum(lens, out=cum[1:])
    total = max(int(cum[-1]), 1)
    most = m0  # no n-gram occurs more often than this (the top frequency of the last n computed)
    for n in ns:
        m = m0 - n + 1
        if m < 2:
            continue
        if limits is not None and most * int((cum[n:] - cum[:-n]).max()) / total <= limits[n]:
            del out[n]  # at most the limit (the bound's product is exact; dividing by total keeps the order)
            continue
        key = codes[:m].copy()
        for k in range(1, n):
            key *= _MIX
            key += codes[k : k + m]
        srt = np.sort(key)
        change = srt[1:] != srt[:-1]
        if change.all():  # every n-gram once
            most = 1
            continue
        starts = np.flatnonzero(np.concatenate(([True], change)))
        runs = np.diff(np.append(starts, m))
        freq = int(runs.max())
        top = srt[starts[runs == freq]]  # the most frequent n-grams
        at = np.flatnonzero(key == top[0] if len(top) == 1 else np.isin(key, top))
        chars = int((cum[at + n] - cum[at]).max())  # ties: the longest
        out[n] = freq * chars / total
        most = freq
    return out


# Words straight from the code points, without a list of str: whitespace as str.split() has it (all of it
# lies at or below U+3000), each word hashed by a polynomial over its code points.
_WS_TOP = 0x3000
_IS_WS = np.zeros(_WS_TOP + 2, dtype=bool)  # one place more: every code point above _WS_TOP looks up that
_IS_WS[[c for c in range(_WS_TOP + 1) if chr(c).isspace()]] = True  # last place, which is False
_BASE = 0x100000001B3  # odd, so invertible modulo 2**64
_POW = np.ones(1, dtype=np.uint64)  # _POW[j] = _BASE**j, _INV[j] = _BASE**-j (mod 2**64), grown on demand
_INV = np.ones(1, dtype=np.uint64)


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    global _POW, _INV
    if len(_POW) < n:
        size = max(n, 2 * len(_POW), 4096)
        _POW = np.cumprod(np.full(size, _BASE, dtype=np.uint64), dtype=np.uint64)
        _POW = np.concatenate(([np.uint64(1)], _POW[:-1]))
        inv = pow(_BASE, -1, 1 << 64)
        _INV = np.cumprod(np.full(size, inv, dtype=np.uint64), dtype=np.uint64)
        _INV = np.concatenate(([np.uint64(1)], _INV[:-1]))
    return _POW[:n], _INV[:n]


def word_arrays(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(hash, length) of each of ``text.split()``'s words, as numpy arrays; equal words hash equal."""
    a = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    ws = np.zeros(len(a) + 2, dtype=bool)
    ws[0] = ws[-1] = True
    ws[1:-1] = _IS_WS[np.minimum(a, _WS_TOP + 1)]
    edge = np.flatnonzero(ws[1:] != ws[:-1])  # alternately a word's start and its end
    starts, ends = edge[0::2], edge[1::2]
    pw, inv = _powers(len(a))
    prefix = np.zeros(len(a) + 1, dtype=np.uint64)
    np.cumsum(a * pw, out=prefix[1:])  # uint32 times uint64: uint64
    codes = (prefix[ends] - prefix[starts]) * inv[starts]  # sum of a[j] * BASE**(j - start)
    return codes, ends - starts


def top_word_ngram_fractions_of_text(
    text: str, ns: list[int], min_words: int, limits: dict[int, float] | None = None
) -> dict[int, float] | None:
    """:func:`top_word_ngram_fractions` of ``text.split()``, or None for fewer than ``min_words`` words;
    ``limits``: see :func:`_top_fractions` (the n that cannot exceed their limit are left out)."""
    codes, lens = word_arrays(text)
    if len(codes) < min_words:
        return None
    return _top_fractions(codes, lens, ns, limits)


_FNV = 1099511628211
_SHORT = 100  # below this many characters a Python set is faster than numpy (the two cross at ~105 here)
# _FNV_POW[j] = FNV**j and _FNV_INV[j] = FNV**-j (mod 2**64; FNV is odd, so invertible), grown on demand
_FNV_POW = np.ones(1, dtype=np.uint64)
_FNV_INV = np.ones(1, dtype=np.uint64)


def _fnv_powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    global _FNV_POW, _FNV_INV
    if len(_FNV_POW) < n:
        size = max(n, 2 * len(_FNV_POW), 4096)
        for name, base in (("_FNV_POW", _FNV), ("_FNV_INV", pow(_FNV, -1, 1 << 64))):
            powers = np.cumprod(np.full(size - 1, base, dtype=np.uint64), dtype=np.uint64)
            globals()[name] = np.concatenate(([np.uint64(1)], powers))
    return _FNV_POW[:n], _FNV_INV[:n]


def char_ngram_hashes(text: str, n: int) -> np.ndarray:
    """The polynomial hash of each character n-gram of ``text`` (64 bits, wrapping): gram i hashes to
    a[i]*FNV**(n-1) + a[i+1]*FNV**(n-2) + ... + a[i+n-1] over its code points a (n - 1 multiply-adds).
    Computed from one prefix sum, Q[k] = sum of a[j]*FNV**-j for j < k: gram i is (Q[i+n] - Q[i]) *
    FNV**(i+n-1), the same value modulo 2**64, in four numpy passes whatever n is."""
    a = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    pw, inv = _fnv_powers(len(a))
    prefix = np.zeros(len(a) + 1, dtype=np.uint64)
    np.cumsum(a * inv, out=prefix[1:])
    grams = prefix[n:] - prefix[:-n]
    grams *= pw[n - 1 :]
    return grams


def dup_char_ngram_fraction(text: str, n: int = 10) -> float:
    """Share of the character n-grams of ``text`` that repeat an earlier one (0 = none, ~1 = a loop).

    Long texts hash their n-grams with numpy (:func:`char_ngram_hashes`, 64 bits) and count distinct values
    on the sorted hashes: 3x faster than pandas' hash table, which was 3x faster than a set of slices
    (benchmarks/build.py).
    """
    total = len(text) - n + 1
    if total <= 1:
        return 0.0
    if len(text) < _SHORT:
        return 1.0 - len({text[i : i + n] for i in range(total)}) / total
    srt = char_ngram_hashes(text, n)
    srt.sort()
    distinct = int(np.count_nonzero(srt[1:] != srt[:-1])) + 1
    return 1.0 - distinct / total


def repetition_reason(text: str, lang: str | None, c) -> str | None:
    """The first repetition rule ``text`` breaks, as "rule=value", or None. ``c`` is a CleanSpec."""
    if len(text) < c.dup_char_min_chars:
        return None
    # the character rule reads the head and the tail of long texts (loops run to the end)
    sample = (
        text
        if len(text) <= _CHAR_RULE_SPAN
        else text[: _CHAR_RULE_SPAN * 2 // 3] + text[-_CHAR_RULE_SPAN // 3 :]
    )
    frac = dup_char_ngram_fraction(sample, c.dup_char_ngram)
    if frac > c.max_dup_char_ngram_frac:
        return f"dup_char_{c.dup_char_ngram}gram_frac={frac:.2f}"
    if len(text) < c.repetition_min_chars:
        return None
    for unit, sep, max_frac, max_char_frac in (
        ("line", "\n", c.max_dup_line_frac, c.max_dup_line_char_frac),
        ("para", "\n\n", c.max_dup_para_frac, c.max_dup_para_char_frac),
    ):
        if sep in text:
            frac, char_frac = duplicate_fractions(text.split(sep))
            if frac > max_frac:
                return f"dup_{unit}_frac={frac:.2f}"
            if char_frac > max_char_frac:
                return f"dup_{unit}_char_frac={char_frac:.2f}"
    if lang in NO_SPACE_LANGS:
        return None
    limits = c.max_top_ngram_frac
    fracs = top_word_ngram_fractions_of_text(text, sorted(limits), c.ngram_min_words, limits)
    if fracs is None:
        return None
    for n, limit in sorted(limits.items()):
        if n in fracs and fracs[n] > limit:
            return f"top_{n}gram_frac={fracs[n]:.2f}"
    return None


# --- loops: the one detector used by the generation guard and by the repetition_loop filter ---------------


def periodic_tail(seq, min_size: int, max_size: int, min_count: int) -> int | None:
    """The smallest period p in [min_size, max_size] such that the last ``min_count * p`` items of ``seq``
    repeat with period p (the last copy may be partial), or None.

    Works on strings (characters) and on lists of token ids alike. With ``min_count=2`` it fires at the
    first repeat of a pattern: "こんちには。こんにちは。こんにちは。" is caught when the second
    "こんにちは。" is complete. Only periods p with seq[-1] == seq[-1 - p] are compared in full.
    """
    n = len(seq)
    hi = min(max_size, n // min_count)
    if hi < min_size:
        return None
    last = seq[n - 1]
    if isinstance(seq, str):  # candidate periods from the earlier occurrences of the last character
        j = seq.rfind(last, n - 1 - hi, n - 1 - min_size + 1)
        candidates = []
        while j >= 0:
            candidates.append(n - 1 - j)
            j = seq.rfind(last, n - 1 - hi, j)
    else:
        candidates = [p for p in range(min_size, hi + 1) if seq[n - 1 - p] == last]
    for p in candidates:
        span = p * min_count
        if seq[n - span : n - p] == seq[n - span + p : n]:
            return p
    return None


def loop_start(seq, period: int) -> int:
    """Where the periodic tail of ``seq`` with ``period`` begins (the first item of its first copy)."""
    i = len(seq) - period - 1
    while i >= 0 and seq[i] == seq[i + period]:
        i -= 1
    return i + 1


_ENDS = ("。．.!?！？\n", "、,;；:：")


def cut_loop(seq, min_size: int, max_size: int, min_count: int):
    """(``seq`` cut after the first copy of its looping tail, period) or (``seq``, None) without a loop.

    The cut keeps one whole copy of the pattern; for text it falls, within that copy's span, after a
    sentence end (else a comma) where there is one, so "こんちには。こんにちは。こんにちは。こんに"
    becomes "こんちには。こんにちは。", not "...こんにち".
    """
    p = periodic_tail(seq, min_size, max_size, min_count)
    if p is None:
        return seq, None
    start = loop_start(seq, p)
    cut = start + p
    if isinstance(seq, str):
        spaces = sum(ch.isspace() for ch in seq[start : start + p])  # a copy may lack its leading space
        for ends in _ENDS:
            at = [
                c for c in range(start + p - spaces, min(start + 2 * p, len(seq)) + 1) if seq[c - 1] in ends
            ]
            if at:
                cut = at[0]
                break
    return seq[:cut], p


# Defaults: the guard stops at the first repeat of a pattern of 6+ characters (3+ tokens); the data
# filter wants 3 copies of 4+ characters at the end of a text, which natural text does not have.
GUARD_CHARS = {"min_size": 6, "max_size": 200, "min_count": 2}
GUARD_TOKENS = {"min_size": 3, "max_size": 64, "min_count": 2}
FILTER_CHARS = {"min_size": 4, "max_size": 200, "min_count": 3}
