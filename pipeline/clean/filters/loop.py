"""Texts that end in a loop (a pattern of 4+ characters repeated 3+ times up to the end): the signature of
a model that could not stop (an output, a text, each assistant turn). Reason ``repetition_loop``; detail gives the period and the loop's length."""

from pipeline.records import Row, answer_texts
from pipeline.text.repetition import FILTER_CHARS, loop_start, periodic_tail

NAME = "loop"
NEEDS_LANG = False
ORDER = 25


def check(row: Row, ctx) -> tuple[str, str] | None:
    for i, text in enumerate(answer_texts(row)):
        text = text.rstrip()
        p = periodic_tail(text, **FILTER_CHARS)
        if p is None:
            continue
        start = loop_start(text, p)
        where = f"assistant turn {i}: " if "messages" in row else ""
        return "repetition_loop", f"{where}period={p} loop_chars={len(text) - start} pattern={text[-p:]!r}"
    return None
