"""Outputs that answer nothing: "N/A", "<nooutput>", "該当なし", "回答できません" alone, an empty code
block. Reason ``placeholder_output``. (Placeholder *inputs* such as "<noinput>" are not rejects: the stage
turns them into an empty input, see pipeline.text.instruct.NO_INPUT.)"""

from pipeline.records import Row
from pipeline.text.instruct import placeholder_output

NAME = "placeholder_output"
NEEDS_LANG = False
ORDER = 5


def check(row: Row, ctx) -> tuple[str, str] | None:
    if "text" in row:
        return None
    if "messages" in row:
        for i, m in enumerate(row["messages"]):
            why = placeholder_output(m["content"]) if m["role"] == "assistant" else None
            if why is not None:
                return "placeholder_output", f"turn {i}: {why}"
        return None
    why = placeholder_output(row["output"])
    return None if why is None else ("placeholder_output", why)
