"""Mojibake repair: UTF-8 text that was decoded as Latin-1 / cp1252 on its way here ("ã“ã‚“ã«ã¡ã¯").

``ftfy.fix_encoding`` undoes the lossless forms. Japanese text decoded as cp1252 usually lost bytes as
well: cp1252 has no character for 0x81, 0x8D, 0x8F, 0x90 and 0x9D, and most tools drop them, so
"こんにちは" (e3 81 93 e3 82 93 …) comes out as "ã“ã‚“…" with the 0x81 after each "ã" gone. Where
ftfy leaves such a run, :func:`fix_mojibake` re-encodes it to cp1252 bytes and puts back the one dropped
byte of each 3-byte sequence, accepting the result only when every sequence decodes to Japanese (kana,
CJK, full-width forms). Text without a lead-byte/continuation pair (the only sign of mojibake) is
returned as it is without calling ftfy, so clean text costs one regex search.
"""

from __future__ import annotations

import re
import unicodedata

import ftfy

_CP1252_HIGH = "\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122"
SUSPECT = re.compile(f"[\u00c2-\u00f4][\u0080-\u00bf{_CP1252_HIGH}]")
_RUN = re.compile(f"[\u0080-\u00ff{_CP1252_HIGH}]+")
_DROPPED = (0x81, 0x8D, 0x8F, 0x90, 0x9D)  # the bytes cp1252 has no character for


def _byte(ch: str) -> int | None:
    cp = ord(ch)
    if 0x80 <= cp <= 0xFF:
        return cp  # Latin-1, and C1 controls kept by a "sloppy" decoder
    try:
        return ch.encode("cp1252")[0]
    except UnicodeEncodeError:
        return None


def _japanese(ch: str) -> bool:
    return "\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef" or "\uf900" <= ch <= "\ufaff"


_FREQUENT = frozenset("、。「」・ー（）！？『』〜")


def _rank(seq: bytes, pos: int) -> tuple:
    """How likely ``seq`` is the original character: frequent punctuation, hiragana, katakana and CJK
    punctuation, then JIS X 0208 kanji, then other Japanese forms; the dropped byte second (hiragana
    e3 81 xx) before third. (-1, ...) when it is not an assigned Japanese character."""
    ch = seq.decode("utf-8", "replace")
    if not _japanese(ch) or unicodedata.category(ch) == "Cn":
        return (-1, 0, ch)
    if ch in _FREQUENT:
        cls = 5
    elif "\u3041" <= ch <= "\u309f":
        cls = 4
    elif "\u3000" <= ch <= "\u30ff":
        cls = 3
    else:
        try:
            ch.encode("euc_jp")
            cls = 2
        except UnicodeEncodeError:
            cls = 0
    return (cls, -pos, ch)


def _cont(b: int) -> bool:
    return 0x80 <= b <= 0xBF


def _refill(run: str) -> str | None:
    """The run as UTF-8 with each 3-byte sequence's one dropped byte put back; a sequence that lost two
    bytes (a lead byte alone: "く" is e3 81 8f) cannot be told apart and becomes U+FFFD, which the
    control_chars rule rejects. None when the run is not Japanese UTF-8 at all."""
    data = [_byte(ch) for ch in run]
    if None in data:
        return None
    out, i, good = [], 0, 0
    while i < len(data):
        b = data[i]
        if not 0xE0 <= b <= 0xEF:
            return None  # only 3-byte (Japanese) sequences are refilled
        tail = data[i + 1 : i + 3]
        if len(tail) == 2 and _cont(tail[0]) and _cont(tail[1]):
            ch = bytes([b, *tail]).decode("utf-8", "replace")
            if _japanese(ch):
                out.append(ch)
                good += 1
                i += 3
                continue
        if not tail or not _cont(tail[0]):
            out.append("\ufffd")
            i += 1
            continue
        found = {
            r[-1]
            for x in _DROPPED
            for pos, c in enumerate((bytes([b, x, tail[0]]), bytes([b, tail[0], x])))
            if (r := _rank(c, pos))[0] >= 2
        }
        if len(found) != 1:  # no candidate, or several (、 e3 80 81 or 』 e3 80 8f): not guessed
            out.append("\ufffd")
            i += 2
            continue
        out.append(found.pop())
        good += 1
        i += 2
    return "".join(out) if good >= 2 else None  # one character alone ("é”") may be real Latin text


def fix_mojibake(text: str) -> str:
    """``text`` with UTF-8-read-as-Latin-1/cp1252 runs decoded; unchanged when there are none."""
    if not SUSPECT.search(text):
        return text
    fixed = ftfy.fix_encoding(text)
    if not SUSPECT.search(fixed):
        return fixed
    fixed = text  # ftfy left lossy runs: refill them in the text as it came

    def run(m: re.Match) -> str:
        s = m.group()
        if not SUSPECT.search(s):
            return s
        return _refill(s) or s

    return _RUN.sub(run, fixed)


# what is left of mojibake after repair: "Ã©", "â€", "ã“" (Â Ã â ã before a continuation character)
LEFTOVER = re.compile(f"[\u00c2\u00c3\u00e2\u00e3][\u0080-\u00bf{_CP1252_HIGH}]")
