"""The instruction-pair rules, the repairs (mojibake, placeholder inputs, escapes), PII masking and legacy
encodings, on real sample rows: hits and near-misses, exact reasons."""

import json
from collections import Counter

import pytest
from conftest import SAMPLES

from pipeline.clean.filters import FilterContext
from pipeline.clean.stage import CleanStage
from pipeline.errors import PipelineError
from pipeline.records import instruct_row, is_reject, lineage
from pipeline.sources import SourceFile, read_file
from pipeline.sources._streams import file_encoding
from pipeline.text.mojibake import fix_mojibake
from pipeline.text.pii import mask_pii
from schemas.recipe import CleanSpec, LicensePolicy, SourceSpec

JA = json.loads((SAMPLES / "japanese_alpaca" / "alpaca_data_ja.sample.json").read_text())
EN = json.loads((SAMPLES / "alpaca_en" / "alpaca_data_original.sample.json").read_text())
EN_CLEANED = json.loads((SAMPLES / "alpaca_en" / "alpaca_data_cleaned.sample.json").read_text())
DOLLY_JA = json.loads((SAMPLES / "dolly_15k_ja" / "databricks-dolly-15k-ja.sample.json").read_text())
DOLLY = [json.loads(x) for x in (SAMPLES / "dolly_15k" / "databricks-dolly-15k.sample.jsonl").read_text().splitlines()]


def clean(r, **spec):
    stage = CleanStage(FilterContext(CleanSpec(**spec), frozenset({"ja", "en"})))
    row = instruct_row(lineage("s", "f.json", 0, "mit"), r["instruction"], r.get("input", ""), r["output"])
    return stage.clean_one(row), stage.counts


def reason(r, **spec):
    out, _ = clean(r, **spec)
    return out["reason"] if is_reject(out) else None


def test_rules_on_real_rows_hits():
    assert reason(JA[255]) == "unseen_media"  # ロゴをデザインしてください
    assert reason(EN_CLEANED[38]) == "unseen_media"  # Design a logo for a website about recycling.
    assert reason(EN[246]) == "unseen_media"  # Construct plumbing diagrams
    assert reason(EN[106]) == "placeholder_output"  # "<No output>"
    assert reason(JA[210]) == "translation_artifact"  # an English answer to a Japanese error-finding task
    dolly = DOLLY[64]  # "Classify each of the following as a primary color or a secondary color", no items
    assert reason({"instruction": dolly["instruction"], "output": dolly["response"]}) == "missing_input"


def test_rules_on_real_rows_near_misses_are_kept():
    for r in (JA[45], JA[93], JA[157], JA[32], JA[233], JA[90], JA[132], EN[46], EN[207], EN[174], EN[70], EN[125]):
        assert reason(r) is None, r["instruction"]


@pytest.mark.parametrize(
    "row, why",
    [
        ({"instruction": "写真にある以下の感情をラベルにしてください。", "output": "喜び"}, "unseen_media"),
        ({"instruction": "Describe this image in two sentences.", "output": "A cat on a mat."}, "unseen_media"),
        ({"instruction": "Summarize https://example.com/post/1", "output": "It is about cats."}, "unseen_media"),
        ({"instruction": "次の文章を要約してください。", "output": "要約です。"}, "missing_input"),
        ({"instruction": "Rewrite the following sentence in the passive voice.", "output": "It was done."}, "missing_input"),
        ({"instruction": "動詞を単純現在で活用する。", "output": "I walk, You walk, He walks, She walks, We walk"}, "translation_artifact"),
        ({"instruction": "1. 日本の首都はどこですか。\n2. 俳句を一つ書いてください。", "output": "東京です。"}, "merged_instruction"),
        ({"instruction": "空の色を答えてください。", "output": "該当なし"}, "placeholder_output"),
        ({"instruction": "Write a haiku.", "output": "```python\n```"}, "placeholder_output"),
        ({"instruction": "空はなぜ青いのですか。", "output": "光が\\\"散乱\\\"するからです。\n以上です。"}, "control_chars"),
        ({"instruction": "空はなぜ青いのですか。", "output": "光の散乱\ufffdによるものです。"}, "control_chars"),
    ],
)
def test_each_rule_reason(row, why):
    assert reason(row) == why
    assert reason(row, skip=[why]) != why  # every rule can be switched off


def test_translation_artifact_lets_a_short_latin_name_pass_but_not_an_english_essay():
    essay = "The purpose of financial accounting is to provide relevant and reliable information to users."
    assert reason({"instruction": "グリーン・イニシアチブのスローガンを書く。", "output": essay}) == "translation_artifact"
    assert reason({"instruction": "教授へのメールの結末を書く", "output": essay}) == "translation_artifact"
    assert reason({"instruction": "グリーン・イニシアチブのスローガンを書く。", "output": "Go green, live clean!"}) is None
    assert reason({"instruction": "この文を英語に翻訳してください。", "input": "私は学生です。", "output": essay}) is None


def test_translation_artifact_code_cues_allow_code_not_english_prose():
    assert JA[157]["output"] == "int_num = 1"  # Pythonで整数型変数を作成するのに必要なコードを入力します。
    assert reason(JA[157]) is None
    prose = {**JA[157], "output": "Use kind words. Be grateful. Think of others before yourself."}
    assert reason(prose) == "translation_artifact"  # a code cue, an English essay: another row's answer
    # code answers a task about code, not a question about health (JA[51], answered with EN[142]'s code)
    assert reason({**JA[51], "output": EN[142]["output"]}) == "translation_artifact"
    assert reason({"instruction": "リストの平均を求める関数を作ってください。", "output": EN[142]["output"]}) is None
    # 戦略 (strategy) is not 略 (an abbreviation): no name cue, so a short English answer is an artifact
    assert reason({**JA[191], "output": EN[133]["output"]}) == "translation_artifact"
    assert reason({"instruction": "「人工知能」の略を英語で書いてください。", "output": "AI"}) is None


def test_translation_artifact_english_material_is_mostly_latin_not_a_name_in_japanese():
    answer = "The student enjoyed telling stories to the classmates in the classroom."
    assert reason({"instruction": JA[40]["instruction"], "output": answer}) is None  # editing an English sentence
    virgin = {**DOLLY_JA[0], "output": "Virgin Australia commenced services on 31 August 2000 as Virgin Blue."}
    assert "（Virgin Australia Airlines Pty Ltd）" in virgin["input"]
    assert reason(virgin) == "translation_artifact"  # Japanese material naming an airline in Latin letters


def test_translation_artifact_short_english_is_worded_english_not_a_name():
    # an English instruction left over a Japanese answer, even a short one or an answer in Han only
    assert reason({"instruction": "What is a kite?", "output": "辺が4と3の三角形の斜辺は5である。"}) == "translation_artifact"
    assert reason({"instruction": DOLLY[79]["instruction"], "output": "人間、動物、植物、菌類、細菌。"}) == "translation_artifact"
    dates = next(r for r in DOLLY if r["instruction"].endswith("in the format {Date} - {Description}"))
    assert reason({"instruction": dates["instruction"], "output": "1813年11月16日 - 誕生"}) == "translation_artifact"
    assert reason({"instruction": "SELECT name FROM users WHERE id = 1;", "output": "IDが1の名前を取得します。"}) is None
    assert reason({"instruction": "NumPy", "output": "Pythonの数値計算ライブラリです。"}) is None  # a name, no English words
    assert reason({"instruction": "What is the Chinese word for water?", "output": "水"}) is None
    # a short answer worded in English, not a name
    assert reason({"instruction": "就職面接のロールプレイングシナリオを作成する", "output": EN[104]["output"]}) == "translation_artifact"
    assert reason({"instruction": "日本で一番大きな都市は?", "output": "Tokyo"}) is None
    # material naming products in Latin letters is not English material: an English answer is another row's
    assert reason({**JA[239], "output": EN[208]["output"]}) == "translation_artifact"  # Microsoft Word
    assert reason({**JA[107], "output": EN[68]["output"]}) == "translation_artifact"  # iPhone 12 Pro Max


def test_translation_artifact_a_word_task_broken_by_translation():
    broken = {"instruction": "「Fortitude」の対義語を答えてください。", "output": "粘り強さ"}  # a synonym, in Japanese
    assert reason(broken) == "translation_artifact"
    assert clean(broken)[0]["detail"] == "word task on the English word 'Fortitude' answered in Japanese"
    assert reason({"instruction": "「Fortitude」の対義語を答えてください。", "output": "Cowardice"}) is None
    assert reason({"instruction": "「幸せ」の対義語を答えてください。", "output": "不幸"}) is None


def test_merged_near_miss_and_answered_items():
    assert reason({"instruction": "次の手順を並べ替えてください。\n1. 卵を割る\n2. 焼く", "output": "1, 2"}) is None
    assert reason({"instruction": "1. 首都は?\n2. 人口は?", "output": "1. 東京\n2. 約1400万人"}) is None
    # a numbered list that answers the first task alone is not one answer per task
    camping = "(1) Generate a list of items for a camping trip (2) Construct a timeline for the outbreak."
    assert reason({"instruction": camping, "output": "1. Tent\n2. Sleeping bag\n3. Flashlight"}) == "merged_instruction"
    assert reason({"instruction": camping, "output": "1. Tent, stove\n2. 2019: first cases; 2020: spread"}) is None


def test_missing_input_any_given_noun_and_code_cues_that_are_not_code():
    assert reason({"instruction": "Generate a story with the given keywords.", "output": "Once upon a time."}) == "missing_input"
    assert reason({"instruction": "Find the area of a circle given its radius.", "output": "12.57"}) == "missing_input"
    assert reason({"instruction": "この寓話の道徳を一文で教えてください。", "output": "急がば回れ。"}) == "missing_input"
    assert reason({"instruction": "Given enough time, can water erode rock?", "output": "Yes."}) is None
    # "\n[名前]" is an escaped line break before a placeholder, not a LaTeX command: the row is repaired
    out, _ = clean({"instruction": "お詫びのメールを書く。", "output": "申し訳ありません。\\n\\n敬具\\n[名前]"})
    assert out["output"] == "申し訳ありません。\n\n敬具\n[名前]"
    out, _ = clean({"instruction": "12ステッププログラムを作成する。", "output": "1. 休む\\n2. 歩く"})
    assert out["output"] == "1. 休む\n2. 歩く"


def test_repairs_placeholder_input_escapes_and_mojibake():
    out, counts = clean({"instruction": "挨拶を書いてください。", "input": "No input", "output": "こんにちは。"})
    assert out["input"] == "" and counts["repair:placeholder_input"] == 1
    out, counts = clean({"instruction": "手順を書いてください。", "output": "1. 卵を割る\\n2. 焼く"})
    assert out["output"] == "1. 卵を割る\n2. 焼く" and counts["repair:escapes"] == 1
    code = {"instruction": "Pythonで改行を出力するコードを書いてください。", "output": 'print("a\\nb")'}
    out, counts = clean(code)
    assert out["output"] == 'print("a\\nb")' and not counts  # code keeps its escapes
    out, counts = clean({"instruction": "挨拶して", "output": "ã“ã‚“ã«ã¡ã¯"})  # cp1252, 0x81 bytes lost
    assert out["output"] == "こんにちは" and counts["repair:mojibake"] == 1
    assert fix_mojibake("CafÃ© au lait") == "Café au lait"
    for fine in ("Café – “quotes” naïve", "普通の文です。", "Café”"):
        assert fix_mojibake(fine) == fine


def test_pii_masked_with_types_and_near_misses_survive():
    counts = Counter()
    text = (
        "連絡先はtaro.yamada@example.co.jp、電話は090-1234-5678か０３－１２３４－５６７８、"
        "+1 415 555 2671、カード4111 1111 1111 1111、IP 192.168.0.1 と 2001:db8::1、〒100-0001 東京都千代田区千代田1-1"
    )
    assert mask_pii(text, counts) == (
        "連絡先は<EMAIL>、電話は<PHONE>か<PHONE>、<PHONE>、カード<CREDIT_CARD>、IP <IP_ADDRESS> と <IP_ADDRESS>、<ADDRESS>"
    )
    assert counts == {"EMAIL": 1, "PHONE": 3, "CREDIT_CARD": 1, "IP_ADDRESS": 2, "ADDRESS": 1}
    assert mask_pii("番号 1234 5678 9018") == "番号 <MY_NUMBER>"
    keep = "2021-07-26 ¥1,234,567 arXiv:2303.12345v2 version 1.2.3.4 Python 3.10.4 4111-1111-1111-1112 std::vector a[::2] 12:30:45"
    assert mask_pii(keep) == keep


def test_pii_in_brackets_after_a_number_and_compressed_ipv6():
    # each of these was missed before: a bracket glued to the run, a sentence's number before the bracket,
    # a full-width separator, an IPv6 address with an empty group
    cases = {
        "Two examples of liquids are water and oil. (０９０－７６７８－４７３６)": "(<PHONE>)",
        "The number 278 in hexadecimal is 112. (7020 2818 7950)": "(<MY_NUMBER>)",
        "giving x = 2/4, which is equal to 2. (3749631104388055)": "(<CREDIT_CARD>)",
        "- Huracán GT3 Evo 2 (239.236.168.77)": "(<IP_ADDRESS>)",
        "For details, contact ４７１－１９０－６３３３.": "contact <PHONE>.",
        "詳しくはfe80::1ff:fe23:4567:890aまでご連絡ください。": "詳しくは<IP_ADDRESS>まで",
        "連絡先:2001:db8::1": "連絡先:<IP_ADDRESS>",  # NFKC made "連絡先：" ASCII
    }
    for text, want in cases.items():
        assert want in mask_pii(text), text
    assert "278" in mask_pii("The number 278 in hexadecimal is 112. (7020 2818 7950)")
    for keep in ("(2023年4月1日)", "(v1.2.3)", "(ISBN 978-4-12-345678-9)", "(CVE-2021-44228)", "第3章 (2-4節)"):
        assert mask_pii(keep) == keep


def test_pii_never_reaches_a_reject():
    out, counts = clean({"instruction": "この写真の人に連絡して", "output": "連絡は a.b@example.com"})
    assert is_reject(out) and "example.com" not in out["record"] and "<EMAIL>" in out["record"]
    assert counts["pii:EMAIL"] == 1


def test_pii_is_masked_in_parse_encoding_and_licence_rejects_too(tmp_path):
    import base64

    from pipeline.records import BASE64_NOTE, reject

    stage = CleanStage(FilterContext(CleanSpec(), frozenset({"ja", "en"})))
    lin = lineage("s", "f.jsonl", 0, "mit")
    line = '{"instruction": "連絡先", "output": "a.b@example.com に 090-1234-5678"'  # not JSON: a parse reject
    [out] = stage([reject(lin, "parse", "parse_error", "line 0: ...", line)])
    assert out["record"] == '{"instruction": "連絡先", "output": "<EMAIL> に <PHONE>"'
    raw = "返信は c.d@example.org へ\udcff".encode("utf-8", "surrogateescape")  # invalid UTF-8: kept as base64
    [out] = stage([reject(lin, "parse", "bad_encoding", f"line 0: ...; {BASE64_NOTE}", base64.b64encode(raw).decode())])
    assert base64.b64decode(out["record"]) == "返信は <EMAIL> へ".encode() + b"\xff"  # the other bytes as they were
    assert stage.counts["pii:EMAIL"] == 2 and stage.counts["pii:PHONE"] == 1
    policy = LicensePolicy(deny=["cc-by-nc-4.0"], keep_rejected_text=True)
    lic = CleanStage(FilterContext(CleanSpec(), frozenset({"ja"})), policy)
    row = instruct_row(lineage("s", "f.json", 1, "cc-by-nc-4.0"), "メールを教えて", "", "e.f@example.net です")
    out = lic.clean_one(row)
    assert out["reason"] == "license_denied" and json.loads(out["record"])["output"] == "<EMAIL> です"


def test_unknown_skip_name_is_an_error():
    from pipeline.clean.stage import check_skip
    from schemas.recipe import Recipe

    with pytest.raises(PipelineError, match="clean.skip': unknown rule 'no_such_rule'"):
        check_skip(Recipe(name="r", clean=CleanSpec(skip=["no_such_rule"])))


@pytest.mark.parametrize("encoding", ["cp932", "euc_jp"])
def test_legacy_encoded_alpaca_file_reads_the_same_rows(tmp_path, encoding):
    def encodable(r):
        try:
            json.dumps(r, ensure_ascii=False).encode("cp932")
            json.dumps(r, ensure_ascii=False).encode("euc_jp")
            return True
        except UnicodeEncodeError:
            return False

    rows = [r for r in JA if encodable(r)]
    assert len(rows) > 250
    text = json.dumps(rows, ensure_ascii=False)
    (tmp_path / "utf8.json").write_text(text, encoding="utf-8")
    (tmp_path / "legacy.json").write_bytes(text.encode(encoding))
    spec = SourceSpec(name="a", kind="alpaca", path="*.json", license="mit")

    def read(name):
        f = SourceFile("a", tmp_path / name, name, name)
        return [{k: v for k, v in r.items() if k not in ("id", "source_file")} for r in read_file(f, spec, tmp_path)]

    assert file_encoding(tmp_path / "legacy.json") == encoding
    assert file_encoding(tmp_path / "utf8.json") == "utf-8"
    assert read("legacy.json") == read("utf8.json")


def test_the_fast_code_latin_and_japanese_checks_answer_what_the_patterns_do_on_every_sample_field():
    import re

    from pipeline.text.instruct import (
        CODE_MARKERS,
        JA_TABLE_FROM,
        japanese_letters,
        latin_letters,
        looks_like_code,
    )

    texts = []
    for path in sorted(SAMPLES.rglob("*.json*")):
        raw = path.read_text(encoding="utf-8", errors="replace")
        lines = path.suffix == ".jsonl" or path.name.startswith("arxiv-metadata")  # the snapshot is JSON lines
        docs = [json.loads(x) for x in raw.splitlines() if x.strip()] if lines else [json.loads(raw)]
        stack = docs
        while stack:
            x = stack.pop()
            if isinstance(x, str):
                texts.append(x)
            elif isinstance(x, dict):
                stack += list(x.values())
            elif isinstance(x, list):
                stack += x
    texts += ["x = f(1)", "print 'a'", "\\frac{1}{2}", "$x$", "if a:\n  b", "a;\n", "<br>", "SELECT *", "==", "a => b"]
    # calls: an identifier that starts with a letter or _, printable ASCII up to the ")"
    texts += ["1(x)", "12a(x)", "a1(", "a1()", "x (y)", "_()", "(a)", "ab(\u3042)", "ab(c)\u3042", "aé(x)", "f(\n)"]
    code = [bool(CODE_MARKERS.search(t)) for t in texts]
    assert [looks_like_code(t) for t in texts] == code
    assert (sum(code), len(texts)) == (241, 12489)  # both answers, many times
    assert [latin_letters(t) for t in texts] == [sum(map(len, re.findall(r"[A-Za-z]+", t))) for t in texts]
    # Japanese letters: the regex below JA_TABLE_FROM characters, a code-unit table from there on (texts
    # around the cut, with kana, kanji, half-width katakana and a character beyond the BMP)
    ends = "".join(chr(c) for lo, hi in ((0x3041, 0x309F), (0x30A0, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0xFF66, 0xFF9D)) for c in (lo - 1, lo, hi, hi + 1))
    mixed = ("日本語のテキストｶﾀｶﾅ and English 𠀋〜ー・。" + ends) * 6
    texts += [mixed[:n] for n in range(JA_TABLE_FROM - 3, JA_TABLE_FROM + 3)] + [mixed]
    ja = [sum(map(len, re.findall(r"[\u3041-\u309f\u30a0-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9d]+", t))) for t in texts]
    assert [japanese_letters(t) for t in texts] == ja
    assert sum(len(t) >= JA_TABLE_FROM for t in texts) > 100 and sum(ja) > 10_000  # both ways taken, on Japanese
