"""A labelled instruction set for the quality rules, made from the real rows of data/samples (used by
tests/test_quality.py and benchmarks/quality.py).

Untouched rows: every Alpaca / Dolly row of the samples as it is (Japanese: Alpaca-ja, Dolly-ja;
English: Alpaca cleaned and original, Dolly). Planted defects: copies of real rows with one defect each,
of every class the rules claim, written the way the defect occurs in the wild:

- missing_input: a row whose instruction points at its input ("与えられた", "次の", "the following",
  "given", "this") with the input removed;
- unseen_media: a real instruction that now refers to a photo, chart, video, attachment or link, or asks
  for a drawing, logo or image;
- placeholder_output: a real instruction answered by "N/A", "該当なし", "<nooutput>", an empty code block...;
- merged_instruction: two real instructions numbered "1. ... 2. ..." with the first one's answer;
- translation_artifact (Japanese rows): the answer replaced by a real English answer (one with letters), or
  the instruction by a real English instruction (where the answer holds Japanese);
- control_chars: literal escapes (``\\"``, ``\\t``) or U+FFFD in a real answer; and, as repairs, an
  answer whose line breaks were exported as literal ``\\n`` (must come back as the original);
- PII: real rows with an e-mail, phone, card, My Number, IP address or postal address added, and
  near-misses (dates, prices, arXiv ids, versions) that must survive.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from pipeline.text.langid import HAN, KANA, LATIN
from pipeline.text.normalize import normalize_text
from testkit.planted import SAMPLES

CUES_JA = ("与えられた", "次の", "以下の", "この", "提供された", "指定された")
CUES_EN = ("given", "following", "this ", "these ", "provided", "below", "above")


@dataclass
class Labelled:
    instruction: str
    input: str
    output: str
    lang: str  # of the original row
    label: str  # "clean" or the planted class
    origin: str  # "sample:index" of the real row
    expect: dict = field(default_factory=dict)  # repairs: the fields as they must come out


def real_rows() -> dict[str, list[tuple[str, dict]]]:
    """{"ja": [(origin, {instruction, input, output})], "en": [...]} from the shipped samples."""
    out: dict[str, list] = {"ja": [], "en": []}

    def add(lang: str, name: str, rows):
        out[lang] += [(f"{name}:{i}", r) for i, r in enumerate(rows)]

    add("ja", "japanese_alpaca", json.loads((SAMPLES / "japanese_alpaca" / "alpaca_data_ja.sample.json").read_text()))
    add("ja", "dolly_15k_ja", json.loads((SAMPLES / "dolly_15k_ja" / "databricks-dolly-15k-ja.sample.json").read_text()))
    add("en", "alpaca_cleaned", json.loads((SAMPLES / "alpaca_en" / "alpaca_data_cleaned.sample.json").read_text()))
    add("en", "alpaca_original", json.loads((SAMPLES / "alpaca_en" / "alpaca_data_original.sample.json").read_text()))
    dolly = [json.loads(x) for x in (SAMPLES / "dolly_15k" / "databricks-dolly-15k.sample.jsonl").read_text().splitlines()]
    add("en", "dolly_15k", [{"instruction": d["instruction"], "input": d["context"], "output": d["response"]} for d in dolly])
    for lang in out:
        out[lang] = [(o, {k: r.get(k) or "" for k in ("instruction", "input", "output")}) for o, r in out[lang]]
    return out


MEDIA_JA = [
    "この写真を見て、{}", "添付の画像について、{}", "以下の動画の内容をもとに、{}", "図に示されたデータを使って、{}",
    "このリンク先の記事を読んで、{}", "写真に写っている人物について、{}", "次のグラフから読み取れることをもとに、{}",
    "音声を聞いて、{}",
]
MEDIA_EN = [
    "Looking at the attached image, {}", "Based on the video above, {}", "Using the chart below, {}",
    "Describe this photo, then: {}", "After reading the article at https://example.com/news/2023/04/story, {}",
    "Listen to the audio recording and {}", "Refer to the following picture. {}", "With the given screenshot in mind, {}",
]
MAKE_JA = ["「{}」をテーマにしたイラストを描いてください。", "「{}」を表すロゴをデザインしてください。", "「{}」の画像を生成してください。"]
MAKE_EN = ["Draw a picture that shows: {}", "Design a logo for this idea: {}", "Generate an image of the following scene: {}"]
PLACEHOLDERS_JA = ["該当なし", "N/A", "<出力なし>", "回答できません。", "なし", "```\n```", "<nooutput>"]
PLACEHOLDERS_EN = ["N/A", "<nooutput>", "None", "I cannot answer that.", "```python\n```", "n/a", "<No Output>"]
NO_INPUTS = ["<noinput>", "No input", "入力なし", "N/A", "<No Input>", "ノインプット"]
NUMBERING = [("1. ", "\n2. "), ("1) ", "\n2) "), ("(1) ", " (2) "), ("①", "\n②")]
DEBRIS = ['\\"', "\\t", "\ufffd"]


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:1].isupper() and not s[1:2].isupper() else s


def planted(seed: int = 0) -> list[Labelled]:
    """The untouched rows and the planted defects (deterministic for a seed)."""
    rng = random.Random(seed)
    rows = real_rows()
    out = [Labelled(**r, lang=lang, label="clean", origin=o) for lang, rs in rows.items() for o, r in rs]
    for lang, rs in rows.items():
        cues = CUES_JA if lang == "ja" else CUES_EN
        other = rows["en" if lang == "ja" else "ja"]
        for o, r in rs:
            ins, inp, outp = r["instruction"], r["input"], r["output"]
            inline = any(c in ins for c in (":", "：", '"', "「", "\n"))  # material inside the instruction
            if inp.strip() and any(c in ins.lower() for c in cues) and not inline:
                out.append(Labelled(ins, "", outp, lang, "missing_input", o))
            short = ins if lang == "ja" else _lower_first(ins)
            media = rng.choice(MEDIA_JA if lang == "ja" else MEDIA_EN)
            out.append(Labelled(media.format(short), inp, outp, lang, "unseen_media", o))
            if rng.random() < 0.3:
                topic = outp.split("\n")[0][:30]
                make = rng.choice(MAKE_JA if lang == "ja" else MAKE_EN)
                out.append(Labelled(make.format(topic), "", outp, lang, "unseen_media", o))
            ph = rng.choice(PLACEHOLDERS_JA if lang == "ja" else PLACEHOLDERS_EN)
            out.append(Labelled(ins, inp, ph, lang, "placeholder_output", o))
            o2, r2 = rng.choice(rs)
            if r2["instruction"] != ins and not inp.strip() and not r2["input"].strip():
                a, b = rng.choice(NUMBERING)
                out.append(Labelled(f"{a}{ins}{b}{r2['instruction']}", "", outp, lang, "merged_instruction", o))
            if lang == "ja":
                _, en = rng.choice(other)
                # an artifact leaves English in a Japanese row: not an "English" answer with no letters
                # ("22.3"), nor an English instruction over an answer with no Japanese in it (an English row)
                if LATIN.search(en["output"]):
                    out.append(Labelled(ins, inp, en["output"], lang, "translation_artifact", o))
                if KANA.search(outp) or HAN.search(outp):
                    out.append(Labelled(en["instruction"], "", outp, lang, "translation_artifact", o))
            words = outp.split(" " if lang == "en" else "、")
            code = any(m in ins + inp + outp for m in ("def ", "{", "<?php", "```", "SELECT", "コード", "code", "HTML"))
            if len(words) > 2 and not code:
                mid = len(words) // 2
                sep = " " if lang == "en" else "、"
                debris = rng.choice(DEBRIS)
                bad = sep.join(words[:mid]) + debris + sep.join(words[mid:])
                out.append(Labelled(ins, inp, bad, lang, "control_chars", o))
            if "\n" in outp.strip() and "\\" not in outp and not code:
                flat = normalize_text(outp).replace("\n", "\\n")
                out.append(Labelled(ins, inp, flat, lang, "repair:escapes", o, expect={"output": normalize_text(outp)}))
            if not inp.strip() and rng.random() < 0.3:
                out.append(Labelled(ins, rng.choice(NO_INPUTS), outp, lang, "repair:placeholder_input", o, expect={"input": ""}))
    return out


# PII: (type, value generator) planted in real rows, and near-misses that must survive
def _luhn_complete(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        n = int(ch)
        if i % 2 == 0:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return body + str((10 - total % 10) % 10)


def _my_number(rng: random.Random) -> str:
    body = [rng.randrange(10) for _ in range(11)]
    s = sum(p * (n + 1 if n <= 6 else n - 5) for n, p in zip(range(1, 12), reversed(body), strict=True))
    r = s % 11
    d = "".join(map(str, body)) + str(0 if r <= 1 else 11 - r)
    return rng.choice([d, f"{d[:4]} {d[4:8]} {d[8:]}", f"{d[:4]}-{d[4:8]}-{d[8:]}"])


_FULL = str.maketrans("0123456789-", "０１２３４５６７８９－")


def _phone(rng: random.Random) -> str:
    n = lambda k: "".join(str(rng.randrange(10)) for _ in range(k))  # noqa: E731
    forms = [
        f"0{rng.choice('789')}0-{n(4)}-{n(4)}", f"03-{n(4)}-{n(4)}", f"06-{n(4)}-{n(4)}", f"0{n(2)}-{n(3)}-{n(4)}",
        f"+81 {rng.choice('789')}0-{n(4)}-{n(4)}", f"+81-3-{n(4)}-{n(4)}", f"(03) {n(4)}-{n(4)}",
        f"0{rng.choice('789')}0{n(8)}", f"0120-{n(3)}-{n(3)}", f"+1 {n(3)} {n(3)} {n(4)}", f"+44 20 {n(4)} {n(4)}",
        f"({n(3)}) {n(3)}-{n(4)}", f"{rng.choice('23456789')}{n(2)}-{n(3)}-{n(4)}",
    ]
    v = rng.choice(forms)
    return v.translate(_FULL) if rng.random() < 0.15 and not v.startswith(("+", "(")) else v


def pii_value(kind: str, rng: random.Random) -> str:
    if kind == "EMAIL":
        user = rng.choice(["taro.yamada", "hanako_s", "j.smith", "info", "support+jp", "k-tanaka2024"])
        return f"{user}@{rng.choice(['example.co.jp', 'mail.example.com', 'gmail.com', 'univ.ac.jp'])}"
    if kind == "PHONE":
        return _phone(rng)
    if kind == "CREDIT_CARD":
        body = rng.choice(["4", "51", "37", "6011"]) + "".join(str(rng.randrange(10)) for _ in range(14))
        d = _luhn_complete(body[:15])
        return rng.choice([d, f"{d[:4]} {d[4:8]} {d[8:12]} {d[12:]}", f"{d[:4]}-{d[4:8]}-{d[8:12]}-{d[12:]}"])
    if kind == "MY_NUMBER":
        return _my_number(rng)
    if kind == "IP_ADDRESS":
        if rng.random() < 0.7:
            return ".".join(str(rng.randrange(1, 255)) for _ in range(4))
        return rng.choice(["2001:db8::1", "fe80::1ff:fe23:4567:890a", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"])
    if kind == "ADDRESS":
        return f"〒{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)} 東京都千代田区丸の内{rng.randrange(1, 4)}-{rng.randrange(1, 9)}-{rng.randrange(1, 20)}"
    raise KeyError(kind)


PII_TYPES = ("EMAIL", "PHONE", "CREDIT_CARD", "MY_NUMBER", "IP_ADDRESS", "ADDRESS")
FRAMES_JA = ["詳しくは{}までご連絡ください。", "連絡先：{}", "（{}）", "担当者の{}に問い合わせてください。"]
FRAMES_EN = ["For details, contact {}.", "Contact: {}", "({})", "Please reach the office at {} today."]
SURVIVORS = [
    "2023年4月1日", "2021-07-26", "¥12,800", "$1,299.99", "arXiv:2303.12345v2", "v1.2.3", "Python 3.10.4",
    "version 1.2.3.4", "ISBN 978-4-12-345678-9", "3.14159", "1,000,000人", "12:30:45", "第3章 2-4節", "2023/04/01",
    "令和5年", "全長 1,234 km", "TCP 443番ポート", "0.5%", "CVE-2021-44228", "10^9",
]


def planted_pii(seed: int = 0) -> list[tuple[Labelled, str | None, str]]:
    """(row, planted PII type or None for a near-miss, the planted value), on real rows' outputs."""
    rng = random.Random(seed)
    out = []
    for lang, rs in real_rows().items():
        frames = FRAMES_JA if lang == "ja" else FRAMES_EN
        for o, r in rs:
            kind = rng.choice(PII_TYPES)
            value = pii_value(kind, rng)
            text = r["output"].rstrip() + ("" if lang == "ja" else " ") + rng.choice(frames).format(value)
            out.append((Labelled(r["instruction"], r["input"], text, lang, f"pii:{kind}", o), kind, value))
            keep = rng.choice(SURVIVORS)
            text = r["output"].rstrip() + ("" if lang == "ja" else " ") + rng.choice(frames).format(keep)
            out.append((Labelled(r["instruction"], r["input"], text, lang, "pii:none", o), None, keep))
    return out
