"""Repetitive documents (Gopher line/paragraph/n-gram fractions; character n-grams without spaces).

Judged on the output of an instruction row (where loops and degenerate text show; an output that
restates its instruction is not repetition), on the whole text of a text row, and on each assistant turn
of a conversation.
"""

from pipeline.records import Row, answer_texts
from pipeline.text.repetition import repetition_reason

NAME = "repetition"
ORDER = 30


def check(row: Row, ctx) -> tuple[str, str] | None:
    texts = answer_texts(row)
    for i, text in enumerate(texts):
        detail = repetition_reason(text, row.get("lang"), ctx.clean)
        if detail is not None:
            return "repetition", (detail if "messages" not in row else f"assistant turn {i}: {detail}")
    return None
