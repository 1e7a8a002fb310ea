"""Several numbered tasks merged into one instruction with one answer ("1. 詩を書いて 2. 首都を答えて"
answered once): reason ``merged_instruction``. Judged only when the instruction itself opens with item 1
(a numbered list after an introduction is material, not tasks) and the output does not number its answers."""

import re

from pipeline.records import Row

NAME = "merged_instruction"
NEEDS_LANG = False
ORDER = 42

# ① and ② are "1" and "2" after NFKC: a digit right before a letter stands for them
_ITEM = r"(?:{n}[.)．）、]|\({n}\)|（{n}）|{c}|{n}(?=[^\W\d_]))"
FIRST = re.compile(r"^\s*" + _ITEM.format(n="1", c="①"))
SECOND = re.compile(r"(?:^|\n|[。.?？!！]\s*)\s*" + _ITEM.format(n="2", c="②") + r"|\s\(2\)|（2）")
ANSWER_TWO = re.compile(r"(?:^|\n|\s)" + _ITEM.format(n="2", c="②"))


def check(row: Row, ctx) -> tuple[str, str] | None:
    if "instruction" not in row:  # instruction rows only
        return None
    instruction = row["instruction"]
    if not FIRST.match(instruction):
        return None
    second = SECOND.search(instruction, 2)
    if second is None or ANSWER_TWO.search(row["output"]):
        return None
    return "merged_instruction", f"numbered tasks in the instruction (item 2 at char {second.start()}), one answer"
