"""Escape and control-character debris the stage could not repair: literal ``\\n``, ``\\t``, ``\\"`` or
``\\uXXXX`` sequences in a row that is not about code, or U+FFFD replacement characters (bytes lost in a
decoding). Reason ``control_chars``; detail: the field and the sequence. (Raw control characters are
removed by normalisation, and ``\\uXXXX`` / ``\\n`` in a text without line breaks are repaired first.)"""

from pipeline.records import Row
from pipeline.text.instruct import ESCAPE_DEBRIS, code_row

NAME = "control_chars"
NEEDS_LANG = False
ORDER = 6
FIELDS = ("instruction", "input", "output", "text")


def check(row: Row, ctx) -> tuple[str, str] | None:
    if "text" in row:  # documents: web text holds stray U+FFFD and backslashes of its own
        return None
    if "messages" in row:  # conversations: lost bytes only (chat about code is full of backslashes)
        for i, m in enumerate(row["messages"]):
            if "\ufffd" in m["content"]:
                return "control_chars", f"turn {i}: U+FFFD replacement character (lost bytes)"
        return None
    joined = row["instruction"] + row["input"] + row["output"]
    if "\\" not in joined and "\ufffd" not in joined:
        return None
    code = code_row(row["instruction"], row["input"], row["output"])
    for key in FIELDS:
        value = row.get(key)
        if not value:
            continue
        if "\ufffd" in value:
            return "control_chars", f"{key}: U+FFFD replacement character (lost bytes)"
        if not code and "\\" in value:
            m = ESCAPE_DEBRIS.search(value)
            if m:
                return "control_chars", f"{key}: literal escape {m.group()!r}"
    return None
