"""Translation artifacts in a Japanese row: an answer mostly in Latin letters when the instruction is not
about English, code, a spelling or a name and its material is not English (the English original left in
place, or a task that only made sense in English), an instruction left untranslated (quoted material
not counted), and a task about an English word (「Fortitude」の対義語) answered in Japanese, which translation
broke. Reason ``translation_artifact``; the detail gives
the Latin share of the letters. Thresholds: clean.max_latin_share_ja."""

import re

from pipeline.records import Row
from pipeline.text.instruct import (
    ABOUT_CODE,
    LATIN_WORD,
    QUOTED,
    about_latin,
    code_like,
    english_cue,
    latin_cues,
    latin_letters,
    latin_share,
    looks_like_code,
)
from pipeline.text.langid import EN_WORDS, HAN, KANA, WORD

NAME = "translation_artifact"
NEEDS_LANG = False  # judges scripts (kana, Latin letters), not the detected language
ORDER = 38  # before unseen_media and missing_input: an English instruction in a Japanese row says more
# a task about an English word itself (its antonym, synonym, rhyme, spelling, inflection): one that translation breaks
WORD_TASK = re.compile(
    r"[「『\"“']([A-Za-z][A-Za-z' -]{0,30})[」』\"”']\s*(?:という(?:単語|言葉|語))?\s*(?:の|に対する|と)?\s*"
    r"(?:対義語|反対語|反意語|同義語|類義語|類語|韻を踏|スペル|綴り|アナグラム|複数形|過去形|過去分詞|比較級|最上級)"
)
ABOUT_JAPANESE = re.compile(
    r"japanese|日本語|translat|kanji|hiragana|katakana|kana\b|chinese|mandarin|cantonese|hanzi", re.IGNORECASE
)
MIN_LATIN_LETTERS = 12  # shorter Latin runs (a name, a unit) say nothing
MAX_NAME_WORDS = 8  # a name, title or slogan asked for may be Latin up to this many words
MIN_ENGLISH_HITS = 2  # frequent English words that make a Latin text English, not a name ("What is a kite?")


def english_words(text: str) -> int:
    """How many of ``text``'s Latin words are frequent English words (EN_WORDS): "PlayStationとXbox" has
    none, "What is a kite?" three."""
    return sum(1 for w in WORD.findall(text.lower()) if w in EN_WORDS)


def english_enough(letters: int, text: str) -> bool:
    """Latin text long enough to say something (MIN_LATIN_LETTERS), or shorter but worded in English (an
    untranslated "What is a verb?", "I am tired."), not a name."""
    return letters >= MIN_LATIN_LETTERS or (letters > 0 and english_words(text) >= MIN_ENGLISH_HITS)


def english_prose(text: str) -> bool:
    """English sentences, whatever code they hold ("…list them in the format {Date} - {Description}"): five
    frequent English words at least, a third of the words."""
    words = WORD.findall(text.lower())
    hits = sum(1 for w in words if w in EN_WORDS)
    return hits >= 5 and hits * 3 >= len(words)


def japanese_side(text: str, limit: float) -> bool:
    """``text`` is in Japanese: kana, or Han characters outweighing its Latin letters ("人間、動物、植物")."""
    return bool(KANA.search(text)) or (bool(HAN.search(text)) and latin_share(text)[0] < limit)


def check(row: Row, ctx) -> tuple[str, str] | None:
    if "instruction" not in row or "ja" not in ctx.languages:  # instruction rows only
        return None
    limit = ctx.clean.max_latin_share_ja
    instruction, inp, output = row["instruction"], row["input"], row["output"]
    # a Japanese row: detected so, or one side in Japanese (kana) while the other is not
    ja = row.get("lang") == "ja"
    if ja or (japanese_side(output, limit) and not ABOUT_JAPANESE.search(instruction)):
        bare = QUOTED.sub("", instruction)  # quoted material may be English
        share, letters = latin_share(bare)
        if share >= limit and english_enough(letters, bare) and (english_prose(bare) or not looks_like_code(instruction)):
            return "translation_artifact", f"instruction untranslated: Latin share {share:.2f} of letters"
    if not (ja or KANA.search(instruction)):
        return None  # an English row: the rest judges Japanese instructions only
    word = WORD_TASK.search(instruction)
    if word and output.strip() and not latin_letters(output):
        # 「Fortitude」の対義語 -> 粘り強さ: a task about an English word, broken by translating its answer
        return "translation_artifact", f"word task on the English word {word.group(1)!r} answered in Japanese"
    share, letters = latin_share(output)  # first: most answers are Japanese, and the exemptions cost more
    if share < limit or not english_enough(letters, output):
        return None
    # the exemptions, their costly parts (is the answer code?) found once and only when one decides
    known: dict[str, bool] = {}

    def code() -> bool:
        if "code" not in known:
            known["code"] = looks_like_code(output)
        return known["code"]

    def code_ish() -> bool:
        if "code_ish" not in known:
            known["code_ish"] = code_like(output, code)
        return known["code_ish"]

    cues = latin_cues(instruction, inp)
    if english_cue(cues, code_answer=code_ish):
        return None
    if (ABOUT_CODE.search(instruction + "\n" + inp) or looks_like_code(inp)) and code():
        return None  # code for a task about code (code for a question about health is another row's answer)
    if about_latin(cues, code_answer=code_ish) and len(LATIN_WORD.findall(output)) <= MAX_NAME_WORDS:
        return None  # asked for a name, a title, a unit: a short Latin answer is fine
    text = instruction + "\n" + inp
    material, material_letters = latin_share(text)
    if material_letters >= MIN_LATIN_LETTERS and material >= limit / 2 and english_words(text) >= MIN_ENGLISH_HITS:
        return None  # the material is English (not a Japanese text naming an iPhone or PlayStation and Xbox)
    return "translation_artifact", f"output in Latin script: Latin share {share:.2f} of letters"
