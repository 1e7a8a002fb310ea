"""Filters of generated instructions and responses; each returns None (keep) or a reason code.

The novelty filter is ROUGE-L F1 against the pool of known instructions, on characters for Japanese and
words for English (rouge_score's tokenizer keeps only [a-z0-9], which makes every Japanese text empty).
The longest common subsequence comes from rapidfuzz (C++), for the whole pool at once.
"""

from __future__ import annotations

import re

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from pipeline.text.langid import detect
from pipeline.text.normalize import signature_text

BLACKLIST = {
    "en": re.compile(
        r"\b(image|images|graph|graphs|picture|pictures|photo|photos|file|files|map|maps|draw|drawing|plot|"
        r"plots|video|videos|audio|music|flowchart|diagram|diagrams|go to|sketch)\b",
        re.I,
    ),
    "ja": re.compile(
        r"(画像|写真|グラフ|図を|図で|ファイル|地図|描いて|描く|描け|プロット|動画|音声|音楽|フローチャート|ダイアグラム|スケッチ)"
    ),
}

LENGTH = {"en": (3, 150), "ja": (5, 300)}  # words for en, characters for ja


def tokens(text: str, lang: str) -> list[str] | str:
    """ROUGE tokens: characters (letters and digits) for ja/zh/ko, lower-cased words otherwise."""
    if lang in ("ja", "zh", "ko"):
        return signature_text(text)
    return re.findall(r"\w+", text.lower())


def rouge_l(candidate, pool: list) -> np.ndarray:
    """ROUGE-L F1 of ``candidate`` against every item of ``pool`` (token sequences or strings)."""
    if not pool or not len(candidate):
        return np.zeros(len(pool))
    lcs = process.cdist([candidate], pool, scorer=LCSseq.similarity, dtype=np.int32)[0]
    lengths = np.fromiter(map(len, pool), dtype=np.float64, count=len(pool))
    return 2.0 * lcs / (len(candidate) + lengths)


def instruction_reason(text: str, lang: str) -> str | None:
    if not text.strip():
        return "empty_instruction"
    if BLACKLIST[lang].search(text):
        return "blacklisted"
    size = len(text.split()) if lang == "en" else len(signature_text(text))
    lo, hi = LENGTH[lang]
    if size < lo:
        return "too_short"
    if size > hi:
        return "too_long"
    got = detect(text)
    if got != lang:
        return f"lang:{got}"
    return None


def response_reason(instruction: str, response: str, finish_reason: str) -> str | None:
    if finish_reason == "loop":
        return "repetition_loop"
    if finish_reason == "length":
        return "truncated"
    if not response.strip():
        return "empty_output"
    if signature_text(response) == signature_text(instruction):
        return "response_is_instruction"
    return None


def backtranslation_reason(instruction: str, answer: str, finish_reason: str, lang: str) -> str | None:
    """Why a backtranslated instruction (the model's guess at what ``answer`` answers) is not kept."""
    if finish_reason == "loop":
        return "repetition_loop"
    if finish_reason == "length":
        return "truncated"
    if instruction.strip() and signature_text(instruction) == signature_text(answer):
        return "instruction_is_answer"
    return instruction_reason(instruction, lang)


class NoveltyPool:
    """Known instructions as ROUGE tokens; ``check`` says whether a new one is too close to any."""

    def __init__(self, lang: str, threshold: float = 0.7):
        self.lang, self.threshold = lang, threshold
        self.items: list = []

    def add(self, text: str) -> None:
        self.items.append(tokens(text, self.lang))

    def max_score(self, text: str) -> float:
        scores = rouge_l(tokens(text, self.lang), self.items)
        return float(scores.max()) if len(scores) else 0.0

    def check(self, text: str) -> str | None:
        return "not_novel" if self.max_score(text) > self.threshold else None
