"""Rows whose detected language is not one the recipe asks for: reason ``lang:<code>``."""

from pipeline.records import Row

NAME = "language"
ORDER = 10


def check(row: Row, ctx) -> str | None:
    lang = row.get("lang") or "und"
    return None if lang in ctx.languages else f"lang:{lang}"
