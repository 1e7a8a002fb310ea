"""PII masking: e-mail addresses, phone numbers, credit-card numbers, My Number, IP addresses and
Japanese postal addresses replaced by typed placeholders (``<EMAIL>``, ``<PHONE>``, ...).

One combined regex finds candidates in one pass; numbers are then checked before they are masked (a card
number must pass Luhn, a My Number its check digit, a phone number must have a plausible digit count, an
IP address must parse), so dates, prices, arXiv ids and version strings survive. ``\\d`` also matches
full-width digits, so raw (un-normalised) text is masked the same way as normalised text.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter

TYPES = ("EMAIL", "PHONE", "CREDIT_CARD", "MY_NUMBER", "IP_ADDRESS", "ADDRESS")

_SEP = r"[-‐ー－ 　]"
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9.+_%-])[A-Za-z0-9._%+-]+[@＠][A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9_-])"
)
_ADDRESS = re.compile(
    r"〒\s?\d{3}[-‐ー－]?\d{4}(?:[ 　]?[^\s、。,]{0,40}?[都道府県市区町村郡][^\n、。]{0,40}?\d+(?:[-‐ー－丁目番地号]+\d+)*(?:号|番地|番)?)?"
)
# a digit run (8+ characters with separators); the sign, bracket and boundaries are checked around it
_NUM = re.compile(r"\d[\d()\-‐ー－ 　.]{6,22}\d")
# later groups may be empty ("fe80::1"; not "::2", a slice); after "label:" too ("連絡先:2001:db8::1" once
# NFKC has made the colon ASCII); ipaddress validates every candidate
_IPV6 = re.compile(
    r"(?<![A-Za-z0-9_.])(?<![0-9A-Fa-f:]:)[0-9A-Fa-f]{1,4}:(?:[0-9A-Fa-f]{0,4}:){1,6}[0-9A-Fa-f:.]*[0-9A-Fa-f](?![A-Za-z0-9_:])"
)
_DIGITS8 = re.compile(r"\d[^\n]{0,3}\d[^\n]{0,3}\d\d")  # cheap test: a number worth looking at
_VERSION_BEFORE = re.compile(r"(?:v|ver\.?|version|バージョン|release|python|node|rev\.?)\s*$", re.IGNORECASE)


def _digits(s: str) -> str:
    return "".join(str(int(ch)) for ch in s if ch.isdigit())


def luhn(d: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(d)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def my_number_ok(d: str) -> bool:
    """The check digit of a 12-digit Japanese individual number (番号法施行令 第8条)."""
    if len(d) != 12:
        return False
    body = [int(c) for c in d[:11]]
    s = sum(p * (n + 1 if n <= 6 else n - 5) for n, p in zip(range(1, 12), reversed(body), strict=True))
    r = s % 11
    return int(d[11]) == (0 if r <= 1 else 11 - r)


_JP_PHONE = re.compile(r"^(?:\(0\d{1,4}\)|0\d{1,4})[-‐ー－ 　]?\d{1,4}[-‐ー－ 　]\d{3,4}$|^0[5789]0\d{8}$")
_INTL = re.compile(r"^[+＋]\d{1,3}[-‐ー－ 　(]*\d[\d\-‐ー－ 　()]{5,18}\d$")
_NANP = re.compile(r"^(?:\(\d{3}\)\s?|\d{3}[-. ])\d{3}[-. ]\d{4}$")
_IPV4 = re.compile(r"^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$")
_CARD = re.compile(r"^\d{4}([- 　]?)\d{4}\1\d{4}\1\d{1,7}$|^\d{4}[- ]\d{6}[- ]\d{5}$|^\d{13,19}$")
_MYNUM = re.compile(r"^\d{4}([- 　]?)\d{4}\1\d{4}$")


_ASCII_SEP = str.maketrans({"‐": "-", "ー": "-", "－": "-", "　": " ", "（": "(", "）": ")"})


def _number_type(s: str, before: str) -> str | None:
    """The PII type of a digit run, or None (a date, a price, a version, an id: left as it is)."""
    ascii_s = "".join(str(int(c)) if c.isdigit() else c for c in s).translate(_ASCII_SEP)
    d = _digits(ascii_s)
    if _IPV4.match(ascii_s):
        return None if _VERSION_BEFORE.search(before) else "IP_ADDRESS"
    if "." in ascii_s and not _NANP.match(ascii_s):
        return None
    if _MYNUM.match(ascii_s) and my_number_ok(d):
        return "MY_NUMBER"
    if _CARD.match(ascii_s) and 13 <= len(d) <= 19 and luhn(d):
        return "CREDIT_CARD"
    if ascii_s.startswith(("+", "＋")):
        return "PHONE" if _INTL.match(ascii_s) and 8 <= len(d) <= 15 else None
    if _JP_PHONE.match(ascii_s) and len(d) in (10, 11):
        return "PHONE"
    if _NANP.match(ascii_s):
        return "PHONE"
    return None


def _spans(text: str):
    """Candidate number spans: each digit run, split where an unclosed bracket opens inside it
    ("2. (3749 6311 0438 8055)" holds a sentence's number and a bracketed one)."""
    for m in _NUM.finditer(text):
        a, b = m.span()
        k = text.rfind("(", a + 1, b)
        if k > 0 and ")" not in text[k:b]:
            yield a, k
            a = k + 1
            while a < b and not text[a].isdigit():
                a += 1
        yield a, b


def _numbers(text: str, counts: Counter | None) -> str:
    out, last = [], 0
    for a, b in _spans(text):
        if a < last or b - a < 8:
            continue
        if a > 0 and text[a - 1] in "+＋(":
            a -= 1
        core = text[a:b]
        while core and core[-1] in ")(-‐ー－ 　." and not core.endswith(")"):
            core = core[:-1]
        if core.startswith("(") and ")" not in core:  # "(090-1234-5678)": the bracket is the text's
            a, core = a + 1, core[1:]
        b = a + len(core)
        before, after = text[a - 1 : a] if a else "", text[b : b + 2]
        if re.match(r"[A-Za-z0-9.+/_-]", before) or re.match(r"[A-Za-z0-9/_-]|\.\d", after):
            continue
        kind = _number_type(core, text[max(0, a - 12) : a])
        if kind is None:
            continue
        out.append(text[last:a])
        out.append(f"<{kind}>")
        last = b
        if counts is not None:
            counts[kind] += 1
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def mask_pii(text: str, counts: Counter | None = None) -> str:
    """``text`` with every PII span replaced by ``<TYPE>``; ``counts[TYPE]`` counts the spans masked."""
    if not text:
        return text

    def sub(pattern: re.Pattern, kind: str, text: str) -> str:
        def one(m: re.Match) -> str:
            if kind == "IP_ADDRESS":
                try:
                    ipaddress.IPv6Address(m.group())
                except ValueError:
                    return m.group()
            if counts is not None:
                counts[kind] += 1
            return f"<{kind}>"

        return pattern.sub(one, text)

    if "@" in text or "＠" in text:
        text = sub(_EMAIL, "EMAIL", text)
    if "〒" in text:
        text = sub(_ADDRESS, "ADDRESS", text)
    if "::" in text or text.count(":") >= 3:
        text = sub(_IPV6, "IP_ADDRESS", text)
    if _DIGITS8.search(text):
        text = _numbers(text, counts)
    return text
