"""Length bounds in characters (instruction + input + output, or text): ``too_short`` / ``too_long``."""

from pipeline.records import Row, record_text

NAME = "length"
ORDER = 20


def check(row: Row, ctx) -> tuple[str, str] | None:
    n = len(record_text(row))
    c = ctx.clean
    lo, hi = (
        (c.min_chars_text, c.max_chars_text)
        if "text" in row
        else (c.min_chars_instruct, c.max_chars_instruct)
    )
    if n < lo:
        return "too_short", f"{n} < {lo} chars"
    if n > hi:
        return "too_long", f"{n} > {hi} chars"
    return None
