from collections import Counter

import pytest
from conftest import SAMPLES

from pipeline.clean.filters import FILTERS, Filter, FilterContext
from pipeline.clean.normalize import normalize_text
from pipeline.clean.stage import CleanStage
from pipeline.records import instruct_row, lineage, text_row
from pipeline.text.langid import detect, detect_fast, langdetect_lang
from pipeline.text.normalize import nfkc
from schemas.recipe import CleanSpec, LicensePolicy

JA_PARA = (SAMPLES / "ja_prose" / "jsquad_valid_wikipedia_paragraphs.sample.txt").read_text().splitlines()


def test_normalize_nfkc_width_and_whitespace_but_keeps_indentation():
    assert normalize_text("ｶﾀｶﾅ ＡＢＣ１２３") == "カタカナ ABC123"
    assert normalize_text("a\r\nb\rc") == "a\nb\nc"
    assert normalize_text("x  \t\ny\n\n\n\n\nz\u200b\x07") == "x\ny\n\nz"
    code = "def f():\n    return 1"
    assert normalize_text(code + "   \n") == code
    assert normalize_text("である") == "である"  # voicing marks survive


def test_the_printable_shortcut_skips_no_control_character():
    """normalize_text searches for control and zero-width characters only in a text that is not printable
    once its line breaks are spaces: no such character on any code point is printable."""
    from pipeline.text.normalize import _CONTROL

    found = [cp for cp in range(0x110000) if _CONTROL.match(chr(cp))]
    assert len(found) == 67  # C0 but \t \n \r, DEL and C1, three zero-width characters, the word joiner, the BOM
    assert not [cp for cp in found if chr(cp).replace("\n", " ").isprintable()]
    assert normalize_text("a\tb\u200bc\ufeff\x85d\u2060") == "a\tbcd"  # a tab is kept, the rest dropped


# contexts a character's NFKC depends on: composing with a mark after it (a + U+0301, か + U+3099), a Hangul
# jamo sequence, a mark before it, reordering of marks of different classes, a half-width voiced mark
NFKC_CONTEXTS = [("", ""), ("a", "\u0301"), ("か", "\u3099"), ("\u1100", "\u1161\u11a8"), ("\u0301", "\u0316\u0301"), ("ｶ", "ﾞ")]


def test_fast_nfkc_equals_unicodedata_on_every_code_point_in_context_and_on_the_samples():
    import unicodedata

    # every code point of the planes NFKC maps anything in (lone surrogates too), and variation selectors
    # and tags above, 4096 to a string
    for before, after in NFKC_CONTEXTS:
        for lo in [*range(0, 0x30000, 4096), 0xE0000]:
            text = "".join(before + chr(cp) + after for cp in range(lo, lo + 4096))
            assert nfkc(text) == unicodedata.normalize("NFKC", text), (hex(lo), before, after)
    assert all(unicodedata.is_normalized("NFKC", chr(cp)) for cp in range(0x30000, 0x110000))  # nothing mapped above
    cases = ["", "abc", "（注）：ｶﾀｶﾅ℃", "\u3000全角　スペース", "ｶﾞｷﾞ", "が\u3099", "\ud800（", "𠀋（x）", "\U0002f800"]
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(SAMPLES.rglob("*")) if p.is_file()]
    for text in cases + texts:
        assert nfkc(text) == unicodedata.normalize("NFKC", text)


def test_script_lang_equals_the_regex_counts_on_samples_and_random_text():
    import random

    from pipeline.text.langid import HAN, HANGUL, KANA, LATIN, SAMPLE_CHARS, SCRIPT, script_lang, script_of

    bmp = "".join(map(chr, range(0x10000)))  # the table is each class's regex, character by character
    for k, pattern in enumerate((KANA, HANGUL, HAN, LATIN), start=1):
        assert [c for c in bmp if SCRIPT[ord(c)] == k] == pattern.findall(bmp)
    assert len(SCRIPT) == 0x110000 and not SCRIPT[0x10000:].any()  # no class above the BMP
    rng = random.Random(0)
    alphabet = "aZé\u00d7ɏ\u0250あァｦﾝー\u30fb가\u1100\u3131漢\u3400\uf900\U00020000\ud800 1。、"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 400))) for _ in range(3000)]
    texts += [line for p in sorted(SAMPLES.rglob("*")) if p.is_file() for line in p.read_text(errors="replace").splitlines()]
    decided = Counter()
    for text in texts:  # each decision is the one the four regex counts give
        sample = text[:SAMPLE_CHARS]
        decided[script_lang(text)] += 1
        if not sample.isascii():
            assert script_lang(text) == script_of(*(len(p.findall(sample)) for p in (KANA, HANGUL, HAN, LATIN))), text
    assert set(decided) == {"ja", "ko", "zh", "latin", None}


@pytest.mark.parametrize("pair, lang", [("jpn", "ja"), ("cmn", "zh"), ("kor", "ko")])
def test_language_id_on_tatoeba_lines(pair, lang):
    lines = (SAMPLES / "cjk_lines" / f"tatoeba_eng-{pair}.sample.tsv").read_text().splitlines()
    got = Counter(detect(line.split("\t")[1]) for line in lines)
    eng = Counter(detect(line.split("\t")[0]) for line in lines)
    assert got == {lang: len(lines)}
    assert eng == {"en": len(lines)}


def test_han_without_kana_is_not_japanese_and_langdetect_is_deterministic():
    assert detect("東京都庁") == "zh"
    assert detect("東京都に行きます") == "ja"
    text = "Ceci est une phrase en français, assez longue pour être reconnue."
    assert detect(text) == "fr"
    assert {langdetect_lang(text) for _ in range(5)} == {"fr"}
    assert detect("1234 + 5678") == "und"


def test_technical_english_is_told_by_its_words_and_other_languages_still_go_to_langdetect():
    import json

    lines = (SAMPLES / "dolly_15k" / "databricks-dolly-15k.sample.jsonl").read_text().splitlines()
    climbing = normalize_text(json.loads(lines[49])["context"])  # few frequent words: 8 of the 42 in its head
    assert climbing.startswith("Different types of climbing warrant particular features for harnesses.")
    assert detect_fast(climbing) == "en"  # no langdetect call
    assert langdetect_lang(climbing) == "en"  # and the same answer langdetect gives
    mixed = "Le projet utilise the data pipeline pour les modèles, and it est très rapide dans le cluster of servers."
    assert detect_fast(mixed) is None  # French function words: langdetect decides
    assert detect(mixed) == "fr"
    assert detect_fast("Ceci est une phrase en français, assez longue pour être reconnue.") is None


def row(instruction="Say hello in Japanese.", inp="", output="こんにちは。", **kw):
    return instruct_row(lineage("s", "f.json", 0, "mit"), instruction, inp, output)


def run(r, **clean):
    stage = CleanStage(FilterContext(CleanSpec(**clean), frozenset({"ja", "en"})))
    [out] = list(stage([r]))
    return out, stage.counts


def test_clean_row_is_normalised_and_lang_set():
    out, counts = run(row(output="ｺﾝﾆﾁﾊ！ hello"))
    assert out["output"] == "コンニチハ! hello" and out["lang"] == "en" and not counts


@pytest.mark.parametrize(
    "r, reason",
    [
        (row(instruction="  "), "empty_instruction"),
        (row(output="\n"), "empty_output"),
        (row(instruction="这是什么", output="这是一本书"), "lang:zh"),
        (row(instruction="は", output="い"), "too_short"),
        (row(instruction="長い文章を書いてください。", output="\n".join(JA_PARA * 2)), "too_long"),
    ],
)
def test_each_filter_reason(r, reason):
    out, counts = run(r)
    assert (out["stage"], out["reason"]) == ("filter", reason)
    assert sum(counts.values()) == 1


def test_repetition_duplicate_lines_english():
    tsv = (SAMPLES / "cjk_lines" / "tatoeba_eng-jpn.sample.tsv").read_text().splitlines()
    lines = [line.split("\t")[0] for line in tsv[:40:5]]  # 8 different English sentences
    mixed = [x for pair in zip(lines, ["OK then."] * 5 + [""] * 3, strict=True) for x in pair if x]
    out, _ = run(row(output="\n".join(mixed)))
    assert out["reason"] == "repetition" and out["detail"].startswith("dup_line_frac=")


def test_repetition_char_ngrams_japanese_loop_and_clean_paragraphs_kept():
    loop = "こんちには。こんにちは。" * 30 + "以上です。"  # repetitive, but it does not end in the loop
    out, _ = run(row(instruction="挨拶してください。", output=loop))
    assert out["reason"] == "repetition" and out["detail"] == "dup_char_10gram_frac=0.95"
    kept = [run(row(instruction="要約してください。", output=p))[0] for p in JA_PARA[:100]]
    assert [k.get("reason") for k in kept if "stage" in k] == []


def test_repetition_top_word_ngram_on_long_english_text():
    text = " ".join(["buy cheap watches now"] * 40 + ["and many other words that differ here"] * 2)
    r = text_row(lineage("s", "f", 0, "mit"), text)
    out, _ = run(r)
    assert out["reason"] == "repetition"


def test_short_answers_are_not_judged_for_repetition():
    out, _ = run(row(instruction="Repeat yes twice.", output="yes yes"))
    assert "stage" not in out


def test_license_policy_rejects_row_with_stage_license():
    stage = CleanStage(FilterContext(), LicensePolicy(allow=["apache-2.0"]))
    [out] = list(stage([row()]))
    assert (out["stage"], out["reason"], out["detail"]) == ("license", "license_not_allowed", "mit")


def test_filter_exception_rejects_the_row_not_the_run():
    def broken(r, ctx):
        raise ValueError("boom")

    stage = CleanStage(FilterContext(), filters=[Filter("broken", 0, broken), *FILTERS])
    out = list(stage([row(), row(output="fine")]))
    assert [o["reason"] for o in out] == ["filter_error:broken"] * 2
    assert out[0]["detail"] == "ValueError: boom"
    assert stage.counts == {"broken:filter_error:broken": 2}


def test_reject_keeps_the_original_record_verbatim():
    out, _ = run(row(instruction="ｱ", output="ｲ"))
    import json

    assert out["reason"] == "too_short"
    assert json.loads(out["record"])["instruction"] == "ｱ"


def test_vectorised_repetition_measures_equal_the_reference_on_samples():
    import json

    from pipeline.text import repetition as R

    texts = [
        json.loads(line)["text"] for line in (SAMPLES / "redpajama_format" / "wikipedia_sample.jsonl").open()
    ]
    texts += [
        json.loads(line)["context"]
        for line in (SAMPLES / "dolly_15k" / "databricks-dolly-15k.sample.jsonl").open()
    ]
    texts += ["buy cheap watches now " * 50, "こんちには。こんにちは。" * 40]
    # every kind of whitespace str.split() knows, a word of 5,000 characters, an astral character
    texts += ["a  b\u3000c\u2028d\u00a0e\x1cf\tg\u0085h " * 40, "x" * 5000 + " y z" * 200, "\U0001f600 ok " * 120]
    hit = left_out = 0
    for t in texts:
        n = len(t) - 9
        if n > 1:
            for k in (10, 5, 1):
                m = len(t) - k + 1
                assert R.dup_char_ngram_fraction(t, k) == pytest.approx(1 - len({t[i : i + k] for i in range(m)}) / m)
        words = t.split()
        ref = {k: pytest.approx(R.top_word_ngram_fraction(words, k)) for k in (2, 3, 4)}
        assert R.top_word_ngram_fractions(words, [2, 3, 4]) == ref
        _, lens = R.word_arrays(t)
        assert lens.tolist() == [len(w) for w in words]
        if len(words) >= 100:
            assert R.top_word_ngram_fractions_of_text(t, [2, 3, 4], 100) == ref
            hit += 1
            # with limits: the n left out are those whose fraction cannot exceed the limit; the rest exact
            for limits in ({2: 0.2, 3: 0.18, 4: 0.16}, {2: 0.0, 3: 0.0, 4: 0.0}, {2: 0.01, 3: 0.01, 4: 0.005}):
                got = R.top_word_ngram_fractions_of_text(t, [2, 3, 4], 100, limits)
                assert {k: ref[k] for k in got} == got
                assert all(R.top_word_ngram_fraction(words, k) <= limits[k] for k in (2, 3, 4) if k not in got)
                left_out += 3 - len(got)
        else:
            assert R.top_word_ngram_fractions_of_text(t, [2, 3, 4], 100) is None
    assert hit >= 4
    assert left_out >= 4  # the bound did leave some out


def test_char_ngram_hashes_are_the_horner_polynomial_of_each_gram():
    """The prefix-sum form gives each gram exactly its n - 1 multiply-adds modulo 2**64 (so the distinct
    counts, and every repetition verdict, are those of the plain loop), astral characters included."""
    from pipeline.text import repetition as R

    texts = ["こんちには。こんにちは。" * 30, "a  b\u3000c\u2028d\u00a0e " * 30, "\U0001f600 ok " * 40, "x" * 5000]
    for t in texts:
        for n in (1, 2, 5, 10, 13):
            want = []
            for i in range(len(t) - n + 1):
                h = 0
                for ch in t[i : i + n]:
                    h = (h * R._FNV + ord(ch)) % (1 << 64)
                want.append(h)
            assert R.char_ngram_hashes(t, n).tolist() == want


def test_loop_filter_rejects_outputs_ending_in_a_loop_and_keeps_clean_ones():
    out, counts = run(row(instruction="挨拶して", output="こんちには。" + "こんにちは。" * 3))
    assert (out["reason"], out["detail"]) == (
        "repetition_loop",
        "period=6 loop_chars=20 pattern='こんにちは。'",
    )
    out, _ = run(row(instruction="Say it", output="Well, " + "I like it. " * 3))
    assert out["reason"] == "repetition_loop"
    out, _ = run(row(instruction="Greet twice", output="Hello there. Hello there."))  # two copies are fine
    assert "stage" not in out


def test_guard_cuts_at_the_first_repeat_for_text_and_tokens():
    from pipeline.text.repetition import GUARD_CHARS, GUARD_TOKENS, cut_loop

    assert cut_loop("こんちには。こんにちは。こんにちは。こんに", **GUARD_CHARS) == (
        "こんちには。こんにちは。",
        6,
    )
    assert cut_loop("Answer: I like it. I like it. I like", **GUARD_CHARS) == ("Answer: I like it.", 11)
    assert cut_loop([7, 1, 2, 3, 1, 2, 3], **GUARD_TOKENS) == ([7, 1, 2, 3], 3)
    assert cut_loop("no loop here at all", **GUARD_CHARS) == ("no loop here at all", None)


def test_periodic_tail_equals_brute_force_on_random_sequences():
    import random

    from pipeline.text.repetition import periodic_tail

    def brute(seq, lo, hi, k):
        n = len(seq)
        for p in range(lo, min(hi, n // k) + 1):
            if seq[n - p * k : n - p] == seq[n - p * k + p : n]:
                return p
        return None

    rnd = random.Random(0)
    for _ in range(3000):
        unit = "".join(rnd.choice("abc。") for _ in range(rnd.randint(1, 6)))
        text = "".join(rnd.choice("abc。") for _ in range(rnd.randint(0, 12))) + unit * rnd.randint(1, 4)
        text += unit[: rnd.randint(0, len(unit))]
        for lo, hi, k in ((1, 10, 2), (2, 8, 3), (4, 200, 3)):
            assert periodic_tail(text, lo, hi, k) == brute(text, lo, hi, k), (text, lo, hi, k)
            ids = [ord(c) for c in text]
            assert periodic_tail(ids, lo, hi, k) == brute(ids, lo, hi, k)
