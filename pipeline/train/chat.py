"""Conversations for training: a chat row rendered turn by turn, the loss on the assistant turns only.

``train.chat_template``: ``auto`` uses the tokenizer's own chat template when it has one (rendered
conversation-prefix by conversation-prefix, so each assistant turn's text is exactly what the template
adds for it after its generation prompt), else ``rwkv`` for an RWKV model and ``chat-ja`` for the others;
or one of the named templates:

- ``chat-ja`` / ``chat-en``: "ユーザー: …" / "アシスタント: …" (User / Assistant), one turn per line;
- ``rwkv``: RWKV's chat style, "User: …\\n\\nAssistant: …\\n\\n" (RWKV-4 Raven / World);
- ``dolly``: Dolly-v2's "### Instruction:" / "### Response:" … "### End" per exchange.

A system turn is plain text at the top (``System: …`` for rwkv). The label of every token outside an
assistant turn's content (and its closing text) is IGNORE; the EOS token closes the conversation and
counts when the last turn is the assistant's.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import PipelineError
from pipeline.generate.templates import BLURB


@dataclass(frozen=True)
class ChatFormat:
    system: str  # "{c}" is the content
    user: str
    assistant_prefix: str  # before an answer: no loss
    assistant_suffix: str  # after an answer: loss (it teaches the model to stop)
    head: str = ""  # once, before everything


CHAT_TEMPLATES = {
    "chat-ja": ChatFormat("{c}\n\n", "ユーザー: {c}\n", "アシスタント: ", "\n"),
    "chat-en": ChatFormat("{c}\n\n", "User: {c}\n", "Assistant: ", "\n"),
    "rwkv": ChatFormat("System: {c}\n\n", "User: {c}\n\n", "Assistant: ", "\n\n"),
    "dolly": ChatFormat(
        "{c}\n\n", "### Instruction:\n{c}\n\n", "### Response:\n", "\n### End\n\n", head=BLURB["en"] + "\n\n"
    ),
}
CHAT_TEMPLATE_NAMES = ("auto", *CHAT_TEMPLATES)

Segment = tuple[str, bool]  # (text, in the loss)


def resolve(tok, name: str, model_type: str | None = None) -> str:
    """The template a run uses: ``auto`` is the tokenizer's own (``"tokenizer"``) when it has one, else RWKV's
    style for an RWKV model, else chat-ja."""
    if name != "auto":
        if name not in CHAT_TEMPLATES:
            raise PipelineError(f"unknown chat template {name!r} (known: {', '.join(CHAT_TEMPLATE_NAMES)})")
        return name
    if getattr(tok, "chat_template", None):
        return "tokenizer"
    return "rwkv" if model_type == "rwkv" else "chat-ja"


def segments(tok, name: str, messages: list[dict]) -> list[Segment]:
    """The conversation as text segments, each marked in or out of the loss."""
    if name == "tokenizer":
        return _tokenizer_segments(tok, messages)
    f = CHAT_TEMPLATES[name]
    out: list[Segment] = [(f.head, False)] if f.head else []
    for m in messages:
        if m["role"] == "assistant":
            out += [(f.assistant_prefix, False), (m["content"] + f.assistant_suffix, True)]
        else:
            out.append(((f.system if m["role"] == "system" else f.user).format(c=m["content"]), False))
    return out


def prompt_text(tok, name: str, messages: list[dict]) -> str:
    """What a model is given to write the next assistant turn after ``messages``."""
    if name == "tokenizer":
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "".join(t for t, _ in segments(tok, name, messages)) + CHAT_TEMPLATES[name].assistant_prefix


def _tokenizer_segments(tok, messages: list[dict]) -> list[Segment]:
    def render(ms, gen):
        return tok.apply_chat_template(ms, tokenize=False, add_generation_prompt=gen)

    out: list[Segment] = []
    done = ""
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            asked = render(messages[:i], True)
            whole = render(messages[: i + 1], False)
            if not (asked.startswith(done) and whole.startswith(asked)):
                raise PipelineError(
                    "the tokenizer's chat template does not render a conversation turn by turn; "
                    "set train.chat_template to one of " + ", ".join(CHAT_TEMPLATES)
                )
            out += [(asked[len(done) :], False), (whole[len(asked) :], True)]
        else:
            whole = render(messages[: i + 1], False)
            if not whole.startswith(done):
                raise PipelineError(
                    "the tokenizer's chat template does not render a conversation turn by turn; "
                    "set train.chat_template to one of " + ", ".join(CHAT_TEMPLATES)
                )
            out.append((whole[len(done) :], False))
        done = whole
    return out
