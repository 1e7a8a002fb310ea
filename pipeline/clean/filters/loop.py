"""Texts that end in a loop (a pattern of 4+ characters repeated 3+ times up to the end): the signature of
a model that could not stop. Reason ``repetition_loop``; detail gives the period and the loop's length."""

from pipeline.records import Row
from pipeline.text.repetition import FILTER_CHARS, loop_start, periodic_tail

NAME = "loop"
NEEDS_LANG = False
ORDER = 25


def check(row: Row, ctx) -> tuple[str, str] | None:
    text = (row["text"] if "text" in row else row["output"]).rstrip()
    p = periodic_tail(text, **FILTER_CHARS)
    if p is None:
        return None
    start = loop_start(text, p)
    return "repetition_loop", f"period={p} loop_chars={len(text) - start} pattern={text[-p:]!r}"
