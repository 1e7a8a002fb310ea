"""A large mixed ja/en corpus made by combining and perturbing the shipped samples (for benchmarks).

Clean documents: an instruction from one sample record with the output of another of the same language
(pairs drawn without replacement, so each is unique), and text documents of 1-4 joined Japanese Wikipedia
paragraphs or English contexts. Planted noise (label != "clean"): loops, Chinese and Korean lines, empty
outputs and exact copies of earlier documents.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from pipeline.records import instruct_row, lineage, text_row

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def _load():
    ja_inst, en_inst = [], []
    for r in json.loads((SAMPLES / "japanese_alpaca" / "alpaca_data_ja.sample.json").read_text()):
        ja_inst.append((r["instruction"], r["input"], r["output"]))
    for r in json.loads((SAMPLES / "dolly_15k_ja" / "databricks-dolly-15k-ja.sample.json").read_text()):
        ja_inst.append((r["instruction"], r["input"], r["output"]))
    for name in ("alpaca_data_cleaned.sample.json", "alpaca_data_original.sample.json"):
        for r in json.loads((SAMPLES / "alpaca_en" / name).read_text()):
            en_inst.append((r["instruction"], r["input"], r["output"]))
    for line in (SAMPLES / "dolly_15k" / "databricks-dolly-15k.sample.jsonl").read_text().splitlines():
        r = json.loads(line)
        en_inst.append((r["instruction"], r["context"], r["response"]))
    ja_paras = (
        (SAMPLES / "ja_prose" / "jsquad_valid_wikipedia_paragraphs.sample.txt").read_text().splitlines()
    )
    en_paras = [c for _, c, _ in en_inst if len(c) > 200]
    for line in (SAMPLES / "redpajama_format" / "c4_sample.jsonl").read_text().splitlines():
        en_paras.append(json.loads(line)["text"])
    zh = [
        x.split("\t")[1]
        for x in (SAMPLES / "cjk_lines" / "tatoeba_eng-cmn.sample.tsv").read_text().splitlines()
    ]
    ko = [
        x.split("\t")[1]
        for x in (SAMPLES / "cjk_lines" / "tatoeba_eng-kor.sample.tsv").read_text().splitlines()
    ]
    return ja_inst, en_inst, [p for p in ja_paras if p.strip()], en_paras, zh, ko


def make_corpus(n: int, seed: int = 0, noise: float = 0.10, text_share: float = 0.2):
    """``n`` rows as (row, label, lang): label is "clean" or the kind of planted noise."""
    rnd = random.Random(seed)
    ja_inst, en_inst, ja_paras, en_paras, zh, ko = _load()
    used: set[tuple] = set()
    out = []
    for i in range(n):
        lin = lineage("bench", "corpus.jsonl", i, "mit")
        lang = "ja" if i % 2 == 0 else "en"
        if rnd.random() < noise and out:
            kind = rnd.choice(["loop", "zh", "ko", "empty", "copy"])
            if kind == "copy":
                src = rnd.choice(out)[0]
                row = {**src, **{k: lin[k] for k in ("id", "source_index")}}
            elif kind == "loop":
                base = rnd.choice(ja_inst if lang == "ja" else en_inst)
                unit = base[2][: rnd.randint(8, 30)]
                row = instruct_row(lin, base[0], "", base[2][:40] + unit * rnd.randint(12, 40))
            elif kind in ("zh", "ko"):
                pool = zh if kind == "zh" else ko
                row = instruct_row(lin, rnd.choice(pool), "", " ".join(rnd.sample(pool, 3)))
            else:
                row = instruct_row(lin, rnd.choice(ja_inst if lang == "ja" else en_inst)[0], "", "")
            out.append((row, kind, lang))
            continue
        if rnd.random() < text_share:
            paras = ja_paras if lang == "ja" else en_paras
            while True:  # each combination of paragraphs once
                pick = tuple(rnd.sample(range(len(paras)), rnd.randint(1, 4)))
                if (lang, pick) not in used:
                    used.add((lang, pick))
                    break
            text = "\n\n".join(paras[j] for j in pick)
            row = text_row(lin, text, {"lang": lang})
            if len(text) < 100:  # too short to be a clean text document by our rules; not counted
                out.append((row, "short", lang))
                continue
        else:
            pool = ja_inst if lang == "ja" else en_inst
            while True:
                a, b = rnd.randrange(len(pool)), rnd.randrange(len(pool))
                if (lang, a, b) not in used:
                    used.add((lang, a, b))
                    break
            inst, inp, _ = pool[a]
            row = instruct_row(lin, inst, inp, pool[b][2])
            if not pool[b][2].strip():
                out.append((row, "empty", lang))
                continue
        out.append((row, "clean", lang))
    return out
