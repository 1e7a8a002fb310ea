"""A planted near-duplicate set made from real texts of data/samples (used by tests and benchmarks).

Originals are real texts (Japanese: Alpaca-ja, Dolly-ja, JSQuAD Wikipedia paragraphs; English: Alpaca,
Dolly, C4). About half get one near-copy with a light edit: 1-3% of characters substituted, inserted or
deleted; a sentence appended or dropped (long texts); or a width/punctuation variant. The truth for each
pair is its exact character-5-gram Jaccard similarity after signature normalisation.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.dedup.minhash import char_jaccard
from pipeline.text.normalize import signature_text

SAMPLES = Path(__file__).resolve().parents[3] / "data" / "samples"  # the repository's samples
_SENT = re.compile(r"(?<=[。．.!?！？])\s*")


@dataclass
class PlantedDoc:
    id: str
    text: str
    lang: str
    origin: int  # index of the original it derives from (itself for originals)
    edit: str  # original | chars | sentence | width


def originals() -> dict[str, list[str]]:
    ja, en = [], []
    for r in json.loads((SAMPLES / "japanese_alpaca" / "alpaca_data_ja.sample.json").read_text()):
        ja.append("\n".join(x for x in (r["instruction"], r["input"], r["output"]) if x))
    for r in json.loads((SAMPLES / "dolly_15k_ja" / "databricks-dolly-15k-ja.sample.json").read_text()):
        ja.append("\n".join(x for x in (r["instruction"], r["input"], r["output"]) if x))
    ja += [
        p
        for p in (SAMPLES / "ja_prose" / "jsquad_valid_wikipedia_paragraphs.sample.txt")
        .read_text()
        .splitlines()
    ]
    for name in ("alpaca_data_cleaned.sample.json", "alpaca_data_original.sample.json"):
        for r in json.loads((SAMPLES / "alpaca_en" / name).read_text()):
            en.append("\n".join(x for x in (r["instruction"], r["input"], r["output"]) if x))
    for line in (SAMPLES / "dolly_15k" / "databricks-dolly-15k.sample.jsonl").read_text().splitlines():
        r = json.loads(line)
        en.append("\n".join(x for x in (r["instruction"], r["context"], r["response"]) if x))
    for line in (SAMPLES / "redpajama_format" / "c4_sample.jsonl").read_text().splitlines():
        en.append(json.loads(line)["text"])
    out = {}
    for lang, texts in (("ja", ja), ("en", en)):
        seen, keep = set(), []
        for t in texts:
            key = signature_text(t)
            if len(key) >= 60 and key not in seen:
                seen.add(key)
                keep.append(t)
        out[lang] = keep
    return out


_FULL = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}
_PUNCT_JA = str.maketrans({"。": ".", "、": ",", "「": '"', "」": '"', "(": "（", ")": "）"})
_PUNCT_EN = str.maketrans({".": "!", ",": ";", "'": "’", '"': "“"})


def edit_chars(text: str, rnd: random.Random) -> str:
    rate = rnd.uniform(0.01, 0.03)
    alphabet = sorted(set(text)) or ["x"]
    out = []
    for ch in text:
        u = rnd.random()
        if u < rate / 3:
            out.append(rnd.choice(alphabet))  # substitute
        elif u < 2 * rate / 3:
            continue  # delete
        elif u < rate:
            out.extend([ch, rnd.choice(alphabet)])  # insert
        else:
            out.append(ch)
    return "".join(out)


def edit_sentence(text: str, other: str, rnd: random.Random) -> str:
    sents = [s for s in _SENT.split(text) if s]
    if len(sents) > 3 and rnd.random() < 0.5:
        del sents[rnd.randrange(len(sents))]
        return "".join(sents) if text.count(" ") < len(text) / 20 else " ".join(sents)
    extra = [s for s in _SENT.split(other) if s][:1]
    return text + (" " if " " in text else "") + "".join(extra)


def edit_width(text: str, lang: str) -> str:
    if lang == "ja":
        return "".join(_FULL.get(c, c) for c in text).translate(_PUNCT_JA)
    return text.translate(_PUNCT_EN).upper()


def planted_set(seed: int = 0, copy_share: float = 0.5, limit: int | None = None) -> list[PlantedDoc]:
    rnd = random.Random(seed)
    docs: list[PlantedDoc] = []
    for lang, texts in originals().items():
        texts = texts[:limit] if limit else texts
        for i, t in enumerate(texts):
            base = len(docs)
            docs.append(PlantedDoc(f"{lang}-{i:05d}-o", t, lang, base, "original"))
            if rnd.random() >= copy_share:
                continue
            kind = rnd.choice(
                ["chars", "chars", "sentence", "width"] if len(t) >= 300 else ["chars", "chars", "width"]
            )
            if kind == "chars":
                copy = edit_chars(t, rnd)
            elif kind == "sentence":
                copy = edit_sentence(t, texts[(i + 1) % len(texts)], rnd)
            else:
                copy = edit_width(t, lang)
            docs.append(PlantedDoc(f"{lang}-{i:05d}-c", copy, lang, base, kind))
    return docs


def planted_pairs(docs: list[PlantedDoc]) -> list[tuple[int, int, float]]:
    """(original index, copy index, true character-5-gram Jaccard) for every planted copy."""
    pairs = []
    for j, d in enumerate(docs):
        if d.edit != "original":
            pairs.append(
                (d.origin, j, char_jaccard(signature_text(docs[d.origin].text), signature_text(d.text), 5))
            )
    return pairs
