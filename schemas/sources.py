"""The options of the source kinds that take more than ``path`` and ``license``: one model per kind, keyed
by the kind's name. A source's extra keys are checked against its kind's model when the recipe is read
(an unknown key is an error that names it) and are left out of the recipe when unset, so a recipe
without them hashes as it did."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Strict


class OasstOptions(Strict):
    # best: one conversation per tree, along the best-ranked reply at each choice; all: one per leaf
    branches: Literal["best", "all"] = "best"
    # the message text field; null: "text", or for the Japanese editor threads "text_ja_audited"
    text_field: str | None = None


class SharegptOptions(Strict):
    # turns other than human/gpt/system (function_call, observation, ...): reject the conversation with
    # reason unknown_turn, or keep them as tool turns folded into the neighbouring assistant/user turn
    other_turns: Literal["reject", "keep"] = "reject"


class ScriptOptions(Strict):
    speaker_pattern: str | None = None  # a regex with groups "name" and "line"; null: detected
    assistant: list[str] = []  # the speakers who become the assistant; every other speaker is the user
    window: int = Field(default=8, ge=2)  # at most this many turns per conversation
    stage_directions: Literal["drop", "system"] = "drop"
    encoding: Literal["auto", "utf-8", "cp932"] = "auto"


class PersonaOptions(Strict):
    chat_rows: bool = True  # each self-thread as a conversation: the first post asks, the rest answers
    text_rows: bool = True  # each other post (and each thread, without chat_rows) as a text row (style)


KIND_OPTIONS: dict[str, type[Strict]] = {
    "oasst": OasstOptions,
    "sharegpt": SharegptOptions,
    "script": ScriptOptions,
    "persona": PersonaOptions,
}
