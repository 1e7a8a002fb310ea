"""Rows with nothing to learn from: an empty instruction, output or text; a conversation without turns or
with an empty turn."""

from pipeline.records import Row

NAME = "empty"
NEEDS_LANG = False
ORDER = 0


def check(row: Row, ctx) -> str | None:
    if "text" in row:
        return None if row["text"].strip() else "empty_text"
    if "messages" in row:
        if not row["messages"]:
            return "empty_conversation"
        return "empty_turn" if any(not m["content"].strip() for m in row["messages"]) else None
    if not row["instruction"].strip():
        return "empty_instruction"
    if not row["output"].strip():
        return "empty_output"
    return None
