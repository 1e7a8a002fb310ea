"""OpenAI chat format: JSON lines (or a JSON array) of {"messages": [{"role", "content"}, ...]}, roles
system / user / assistant (what the fine-tuning API takes). A content given as a list of parts keeps its
text parts. Other keys of the record (and a turn's ``weight``, ``name``) are kept in ``meta``.
Rejects: ``missing_field`` (no messages list, a turn without string content), ``unknown_turn`` (a role
such as tool or function), ``unsupported_content`` (an image part)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.records import Row, chat_row, is_reject
from pipeline.sources._chat import read_turns
from pipeline.sources._io import iter_json_records, require_object
from schemas.recipe import SourceSpec

KIND = "messages"
ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
TURN_META = ("weight", "name")


def read(path: Path, rel: str, spec: SourceSpec, base_dir: Path) -> Iterator[Row]:
    for lin, obj, raw in iter_json_records(path, rel, spec):
        bad = lin if is_reject(lin) else require_object(lin, obj, raw)
        if bad:
            yield bad
            continue
        messages, bad, _ = read_turns(lin, raw, obj.get("messages"), "messages", "role", "content", ROLES)
        if bad:
            yield bad
            continue
        meta = {k: v for k, v in obj.items() if k != "messages"}
        turn_meta = {
            k: [t.get(k) for t in obj["messages"]] for k in TURN_META if any(k in t for t in obj["messages"])
        }
        if turn_meta:
            meta["turns"] = turn_meta
        yield chat_row(lin, messages, meta=meta)
