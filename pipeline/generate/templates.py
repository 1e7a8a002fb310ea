"""Prompt formats: Dolly-v2 ("### Instruction:" / "### Response:", stop at "### End") and a plain one,
with English and Japanese wording, plus the self-instruct prompt that asks for new tasks."""

from __future__ import annotations

import re

BLURB = {
    "en": "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
    "ja": "以下は、タスクを説明する指示です。要求を適切に満たす応答を書きなさい。",
}
DOLLY_END = "### End"
STOP = {"dolly": [DOLLY_END, "### Instruction:"], "plain": ["\n\n\n", "Instruction:", "指示:"]}
TEMPLATES = ("dolly", "plain")


def render(template: str, instruction: str, input: str = "", lang: str = "en") -> str:
    """The prompt for one instruction (and optional input) in ``template``."""
    if template == "dolly":
        ctx = f"Input:\n{input}\n\n" if input else ""
        return f"{BLURB[lang]}\n\n### Instruction:\n{instruction}\n\n{ctx}### Response:\n"
    if template == "plain":
        label = ("指示", "入力", "応答") if lang == "ja" else ("Instruction", "Input", "Response")
        ctx = f"{label[1]}: {input}\n" if input else ""
        return f"{label[0]}: {instruction}\n{ctx}{label[2]}:"
    raise ValueError(f"unknown template {template!r} (known: {', '.join(TEMPLATES)})")


ASK_NEW = {
    "en": "Come up with {n} new, diverse task instructions that differ from the examples below. "
    "Write one instruction per line, numbered.\n\nExamples:\n{examples}",
    "ja": "以下の例とは異なる、新しく多様なタスクの指示を{n}個考えてください。"
    "1行に1つずつ、番号を付けて書いてください。\n\n例:\n{examples}",
}


def ask_new_tasks(examples: list[str], n: int, template: str, lang: str) -> str:
    """A self-instruct prompt: k example instructions in, ``n`` new numbered instructions wanted."""
    listed = "\n".join(f"{i + 1}. {e.strip()}" for i, e in enumerate(examples))
    return render(template, ASK_NEW[lang].format(n=n, examples=listed), "", lang)


ASK_INSTRUCTION = {
    "en": "Write the one question or instruction from a user to which the following text is the answer. "
    "Write only the question or instruction.\n\nText:\n{answer}",
    "ja": "次の文章が答えになるような、ユーザーからの質問または指示を一つ書いてください。"
    "質問または指示だけを書いてください。\n\n文章:\n{answer}",
}


def ask_instruction(answer: str, template: str, lang: str) -> str:
    """An instruction-backtranslation prompt (Humpback, Li et al. 2023): the instruction ``answer`` answers."""
    return render(template, ASK_INSTRUCTION[lang].format(answer=answer), "", lang)


_NUMBERED = re.compile(r"^\s*(?:\d{1,3}|[０-９]{1,3})\s*[.)．、:：]\s*(.+?)\s*$")


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def parse_instructions(text: str) -> list[str]:
    """New instructions from a generated numbered list; unnumbered non-empty lines when there is no list."""
    lines = [line for line in text.splitlines() if line.strip()]
    numbered = [m.group(1) for m in map(_NUMBERED.match, lines) if m]
    chosen = numbered if numbered else [line.strip() for line in lines]
    return [c.strip() for c in chosen if c.strip()]
