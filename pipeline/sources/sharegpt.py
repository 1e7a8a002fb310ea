"""ShareGPT format (FastChat, LLaMA-Factory): a JSON array or JSON lines of {"conversations": [{"from",
"value"}, ...]}, ``from`` human / gpt / system (also user, assistant, chatgpt, bard, bing); a top-level
``system`` string is the system turn. ``id`` and other keys (LLaMA-Factory's ``tools``) are kept in ``meta``.

Other turn types (function_call, observation: tool use) follow the source option ``other_turns``:
``reject`` (default) rejects the conversation (``unknown_turn``, the turn named); ``keep`` keeps them, a
function_call as an assistant turn and an observation as a user turn, their original names in
``meta.turn_types`` so that an export can give them back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.records import Row, chat_row, is_reject, reject
from pipeline.sources._chat import read_turns
from pipeline.sources._io import iter_json_records, require_object
from schemas.recipe import SourceSpec

KIND = "sharegpt"
ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "system": "system",
}
TOOL_TURNS = {"function_call": "assistant", "observation": "user"}


def read(path: Path, rel: str, spec: SourceSpec, base_dir: Path) -> Iterator[Row]:
    keep = spec.options.other_turns == "keep"
    for lin, obj, raw in iter_json_records(path, rel, spec):
        bad = lin if is_reject(lin) else require_object(lin, obj, raw)
        if bad:
            yield bad
            continue
        if "conversations" not in obj:
            yield reject(lin, "parse", "missing_field", "no field 'conversations'", raw)
            continue
        messages, bad, names = read_turns(
            lin,
            raw,
            obj["conversations"],
            "conversations",
            "from",
            "value",
            ROLES,
            TOOL_TURNS if keep else None,
        )
        if bad:
            yield bad
            continue
        meta = {k: v for k, v in obj.items() if k != "conversations"}
        system = obj.get("system")
        if system is not None:
            if not isinstance(system, str):
                yield reject(lin, "parse", "missing_field", "field 'system' is not a string", raw)
                continue
            messages = [{"role": "system", "content": system}, *messages]
            del meta["system"]
        if any(n in TOOL_TURNS for n in names):
            meta["turn_types"] = names
        yield chat_row(lin, messages, meta=meta)
