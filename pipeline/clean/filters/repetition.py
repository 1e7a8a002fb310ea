"""Repetitive documents (Gopher line/paragraph/n-gram fractions; character n-grams without spaces).

Judged on the output of an instruction row (where loops and degenerate text show; an output that
restates its instruction is not repetition) and on the whole text of a text row.
"""

from pipeline.records import Row
from pipeline.text.repetition import repetition_reason

NAME = "repetition"
ORDER = 30


def check(row: Row, ctx) -> tuple[str, str] | None:
    text = row["text"] if "text" in row else row["output"]
    detail = repetition_reason(text, row.get("lang"), ctx.clean)
    return None if detail is None else ("repetition", detail)
