"""Rows with nothing to learn from: an empty instruction, output or text."""

from pipeline.records import Row

NAME = "empty"
NEEDS_LANG = False
ORDER = 0


def check(row: Row, ctx) -> str | None:
    if "text" in row:
        return None if row["text"].strip() else "empty_text"
    if not row["instruction"].strip():
        return "empty_instruction"
    if not row["output"].strip():
        return "empty_output"
    return None
