"""The shape of a conversation: known roles, a system turn only first, user and assistant turns that
alternate, starting with the user and holding at least one assistant answer. Reasons ``bad_role``,
``misplaced_system``, ``starts_with_assistant``, ``not_alternating``, ``no_assistant_turn``; the detail names
the turn. Other rows pass."""

from pipeline.records import Row
from schemas.columns import ROLES

NAME = "conversation"
NEEDS_LANG = False
ORDER = 1


def check(row: Row, ctx) -> tuple[str, str] | None:
    if "messages" not in row:
        return None
    roles = [m["role"] for m in row["messages"]]
    for i, role in enumerate(roles):
        if role not in ROLES:
            return "bad_role", f"turn {i}: role {role!r}"
        if role == "system" and i > 0:
            return "misplaced_system", f"turn {i}: a system turn after the first"
    turns = roles[1:] if roles and roles[0] == "system" else roles
    offset = len(roles) - len(turns)
    if turns and turns[0] == "assistant":
        return "starts_with_assistant", f"turn {offset}: the first turn is the assistant's"
    for i in range(1, len(turns)):
        if turns[i] == turns[i - 1]:
            return "not_alternating", f"turns {offset + i - 1}-{offset + i}: two {turns[i]} turns in a row"
    if "assistant" not in turns:
        return "no_assistant_turn", f"{len(turns)} user turn(s), no answer"
    return None
