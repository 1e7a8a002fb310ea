"""Prompt templates for training: the prompt part gets no loss, the response part does."""

from __future__ import annotations

from pipeline.generate.templates import render

ALPACA = {
    "alpaca-en": (
        "Below is an instruction that describes a task{ctx}. Write a response that appropriately completes "
        "the request.\n\n### Instruction:\n{instruction}\n\n{input}### Response:\n",
        ", paired with an input that provides further context",
        "### Input:\n{input}\n\n",
    ),
    "alpaca-ja": (
        "以下は、タスクを説明する指示{ctx}です。要求を適切に満たす応答を書きなさい。\n\n"
        "### 指示:\n{instruction}\n\n{input}### 応答:\n",
        "と、文脈のある入力の組み合わせ",
        "### 入力:\n{input}\n\n",
    ),
}
TEMPLATES = ("alpaca-ja", "alpaca-en", "dolly")


def prompt(template: str, instruction: str, input: str = "") -> str:
    if template == "dolly":
        return render("dolly", instruction, input, "en")
    if template not in ALPACA:
        raise ValueError(f"unknown template {template!r} (known: {', '.join(TEMPLATES)})")
    head, ctx, inp = ALPACA[template]
    return head.format(
        ctx=ctx if input else "", instruction=instruction, input=inp.format(input=input) if input else ""
    )


def response_suffix(template: str) -> str:
    """What follows a response: Dolly-v2 ends with "### End"; Alpaca only with the EOS token."""
    return "\n### End" if template == "dolly" else ""
