"""A tiny GPT-NeoX (Dolly's architecture) taught a few self-instruct answers and one loop, for tests."""

import json
from pathlib import Path

from conftest import SAMPLES

from pipeline.generate.templates import ask_new_tasks, render

NEW = [
    "好きな季節とその理由を説明してください。",
    "日本の伝統的な料理を三つ挙げてください。",
    "健康的な朝食の例を教えてください。",
    "短い自己紹介文を書いてください。",
]
ANSWERS = [
    "春が好きです。花が咲いて暖かいからです。",
    "寿司、天ぷら、味噌汁です。",
    "ご飯、味噌汁、焼き魚、納豆です。",
    "はじめまして。山田太郎です。よろしくお願いします。",
]
LOOP_INSTRUCTION = "挨拶を繰り返してください。"
LOOP_TEXT = "こんちには。" + "こんにちは。" * 12


def seeds() -> list[str]:
    path = SAMPLES / "seed_tasks" / "seed_tasks_jp_cleaned.jsonl"
    return [json.loads(line)["instruction"] for line in path.read_text().splitlines()]


def make_taught_model(out: Path) -> Path:
    from testkit.tiny_models import make_model, teach

    ja = json.loads((SAMPLES / "japanese_alpaca" / "alpaca_data_ja.sample.json").read_text())
    texts = [r["instruction"] + "\n" + r["output"] for r in ja] + seeds()
    make_model(out, texts, "gpt_neox", hidden=128, heads=2, layers=2)
    listed = "\n".join(f"{i + 1}. {x}" for i, x in enumerate(NEW))
    s = seeds()
    lessons = [ask_new_tasks(s[i : i + 8], 4, "dolly", "ja") + listed + "\n### End" for i in range(0, 40, 8)]
    lessons += [render("dolly", q, "", "ja") + a + "\n### End" for q, a in zip(NEW, ANSWERS, strict=True)]
    lessons.append(render("dolly", LOOP_INSTRUCTION, "", "ja") + LOOP_TEXT)
    teach(out, lessons, steps=150)
    return out
