"""Several numbered tasks merged into one instruction with one answer ("1. 詩を書いて 2. 首都を答えて"
answered once): reason ``merged_instruction``. Judged only when the instruction itself opens with item 1
(a numbered list after an introduction is material, not tasks) and the output does not number one answer
per task: an output numbered 1..m answers k numbered tasks only when m == k (a list of ten tents and
lanterns under two tasks answers the first alone)."""

import re

from pipeline.records import Row

NAME = "merged_instruction"
NEEDS_LANG = False
ORDER = 42

# ① and ② are "1" and "2" after NFKC: a digit right before a letter stands for them
_ITEM = r"(?:{n}[.)．）、]|\({n}\)|（{n}）|{c}|{n}(?=[^\W\d_]))"
FIRST = re.compile(r"^\s*" + _ITEM.format(n="1", c="①"))
SECOND = re.compile(r"(?:^|\n|[。.?？!！]\s*)\s*" + _ITEM.format(n="2", c="②") + r"|\s\(2\)|（2）")
CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩"


def _count(text: str, start: str) -> int:
    """How many items 1, 2, 3, ... follow one another in ``text`` (``start``: what may come before one)."""
    n, at = 0, 0
    while n < 10:
        m = re.compile(start + _ITEM.format(n=n + 1, c=CIRCLED[n])).search(text, at)
        if m is None:
            break
        n, at = n + 1, m.end()
    return n


def check(row: Row, ctx) -> tuple[str, str] | None:
    if "instruction" not in row:  # instruction rows only
        return None
    instruction = row["instruction"]
    if not FIRST.match(instruction):
        return None
    second = SECOND.search(instruction, 2)
    if second is None:
        return None
    tasks = max(2, _count(instruction, r"(?:^|\n|[。.?？!！]\s*|\s)\s*"))
    answers = _count(row["output"], r"(?:^|\n|\s)")
    if answers == tasks:
        return None
    return "merged_instruction", f"{tasks} numbered tasks in the instruction, answers numbered {answers}"
