"""Shared turn reading for the conversation readers (messages, sharegpt): one list of turns in, our
messages ([{role, content}], role system|user|assistant) or a parse reject with the turn named out."""

from __future__ import annotations

from typing import Any

from pipeline.records import Row, reject

Turns = list[dict]


def read_turns(
    lin: Row,
    raw: str,
    turns: Any,
    field: str,
    role_key: str,
    content_key: str,
    roles: dict[str, str],
    other: dict[str, str] | None = None,
) -> tuple[Turns | None, Row | None, list[str]]:
    """(messages, None, original role names) for a list of turn objects, or (None, reject, []).

    ``roles`` maps a turn's own role name to ours; ``other`` maps the extra turn types a caller keeps
    (e.g. ShareGPT's function_call -> assistant); any other role is a reject ``unknown_turn``. A content
    that is a list of OpenAI content parts keeps its text parts joined; any other part is a reject
    ``unsupported_content``."""
    if not isinstance(turns, list):
        return None, reject(lin, "parse", "missing_field", f"field {field!r} is not a list", raw), []
    out: Turns = []
    names: list[str] = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            return None, reject(lin, "parse", "missing_field", f"turn {i}: not an object", raw), []
        name = t.get(role_key)
        role = roles.get(name) if isinstance(name, str) else None
        if role is None and other and isinstance(name, str):
            role = other.get(name)
        if role is None:
            why = f"turn {i}: {role_key} {name!r} (known: {', '.join(sorted(roles))})"
            return None, reject(lin, "parse", "unknown_turn", why, raw), []
        content = t.get(content_key)
        if isinstance(content, list):
            parts = [
                p.get("text") if isinstance(p, dict) and p.get("type") == "text" else None for p in content
            ]
            if any(not isinstance(p, str) for p in parts):
                why = f"turn {i}: a content part that is not text"
                return None, reject(lin, "parse", "unsupported_content", why, raw), []
            content = "\n".join(parts)
        if not isinstance(content, str):
            why = f"turn {i}: no string {content_key!r}"
            return None, reject(lin, "parse", "missing_field", why, raw), []
        out.append({"role": role, "content": content})
        names.append(name)
    return out, None, names
