"""Deterministic language id: the script decides where it can, seeded langdetect elsewhere.

- kana present (with Han) => ja; Hangul => ko; Han without kana => zh (never ja);
- Latin-script text: a common-word check says ``en`` quickly; anything else goes to langdetect with a
  fixed seed, so the same text always gets the same answer.
Only the first ``SAMPLE_CHARS`` characters are looked at.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import numpy as np
from langdetect.detector_factory import DetectorFactory, init_factory
from langdetect.lang_detect_exception import LangDetectException

SAMPLE_CHARS = 300
LANGDETECT_CHARS = 300
LANGDETECT_TRIALS = 3  # langdetect's default is 7; 3 is 2x faster at the same accuracy on our labelled lines

KANA = re.compile(r"[\u3041-\u3096\u309d\u309e\u30a1-\u30fa\u30fc-\u30fe\uff66-\uff9d]")
HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _script_table() -> np.ndarray:
    """SCRIPT[cp] for every code point: 1 kana, 2 Hangul, 3 Han, 4 Latin (the classes above, all in the
    BMP), 0 anything else."""
    table = np.zeros(0x110000, dtype=np.uint8)
    bmp = "".join(map(chr, range(0x10000)))
    for k, pattern in enumerate((KANA, HANGUL, HAN, LATIN), start=1):  # disjoint classes of one character
        table[[m.start() for m in pattern.finditer(bmp)]] = k
    return table


SCRIPT = _script_table()

# Frequent English words (function words and the verbs instructions start with).
EN_WORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her
    here hers him his how i if in into is it its itself just me more most my no nor not now of off on once
    only or other our out over own same she should so some such than that the their them then there these
    they this those through to too under until up very was we were what when where which while who whom why
    will with would you your yours one two three four five first new many much make made like use used using
    given give write list name describe explain find create generate provide identify suggest classify
    summarize translate rewrite answer following sentence word words text example examples people time way
    well may might must shall let get got us how's it's don't isn't can't""".split()
)

DETECT_MAP = {"zh-cn": "zh", "zh-tw": "zh"}

# languages written without spaces between words: word n-gram rules and word shingles do not apply
NO_SPACE_LANGS = frozenset({"ja", "zh", "ko", "th"})


_factory_lock = threading.Lock()


@lru_cache(maxsize=1)
def _factory() -> DetectorFactory:
    """langdetect's profiles, loaded once; the lock keeps a second thread from using a half-loaded
    factory (langdetect publishes its global before loading the profiles into it)."""
    from langdetect import detector_factory

    with _factory_lock:
        init_factory()
    return detector_factory._factory


def langdetect_lang(text: str, seed: int = 0) -> str:
    """langdetect with a fixed seed (its default is random per call)."""
    detector = _factory().create()
    detector.seed = seed
    detector.n_trial = LANGDETECT_TRIALS
    detector.set_max_text_length(LANGDETECT_CHARS)
    detector.append(text[:LANGDETECT_CHARS])
    try:
        code = detector.detect()
    except LangDetectException:
        return "und"
    return DETECT_MAP.get(code, code)


def script_lang(text: str) -> str | None:
    """ja / ko / zh when CJK script dominates, "latin" when Latin letters do, None when there are no letters."""
    sample = text[:SAMPLE_CHARS]
    if sample.isascii():
        return "latin" if LATIN.search(sample) else None
    # the four classes counted in one pass over the code points (four regex scans cost 4x as much)
    units = np.frombuffer(sample.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    _, kana, hangul, han, latin = np.bincount(SCRIPT[units], minlength=5).tolist()
    return script_of(kana, hangul, han, latin)


def script_of(kana: int, hangul: int, han: int, latin: int) -> str | None:
    """script_lang's decision from the counts of each class's characters."""
    cjk = kana + hangul + han
    if cjk == 0 and latin == 0:
        return None
    # One CJK character carries about as much as a short Latin word: weigh them 1:4.
    if cjk * 4 >= latin:
        if hangul > kana:
            return "ko"
        if kana and kana * 20 >= kana + han:
            return "ja"
        if han:
            return "zh"
        return "ja" if kana else "ko"
    return "latin"


# Frequent function words of other Latin-script languages: a text holding them is not judged English by the
# word check (langdetect decides).
OTHER_WORDS = frozenset(
    """de la le les des du et est une un que qui pas pour dans sur avec ce cette sont el los las del y en por
    con una es para se lo al su como más pero der die das und ist nicht mit den dem ein eine zu von auf sich
    het een van niet op dat zijn och att det som är för og er ikke på til il di che non per della sono gli
    nella ao não uma os em com mais da dos das pelo ke dan yang itu ini dengan untuk adalah ng sa mga na ang""".split()
)


def looks_english(text: str) -> bool:
    """Frequent English words make up enough of the first ``SAMPLE_CHARS`` characters: 1 in 4 of up to 4
    words, 1 in 5 of more; or, for technical prose with few function words, 3+ of them and 1 in 10 words
    while other languages' function words are absent (at most one, and no more than a quarter of the hits)."""
    words = WORD.findall(text[:SAMPLE_CHARS].lower())
    if not words:
        return False
    hits = sum(1 for w in words if w in EN_WORDS)
    if len(words) <= 4:
        return hits >= 1 and hits * 4 >= len(words)
    if hits >= 2 and hits * 5 >= len(words):
        return True
    if hits < 3 or hits * 10 < len(words):
        return False
    other = sum(1 for w in words if w in OTHER_WORDS)
    return other <= 1 and other * 4 <= hits


def detect_fast(text: str) -> str | None:
    """The language when the script or the English word check decides it, else None (langdetect needed)."""
    script = script_lang(text)
    if script is None:
        return "und"
    if script != "latin":
        return script
    return "en" if looks_english(text) else None


def detect(text: str, seed: int = 0) -> str:
    """ISO 639-1 code of ``text`` ("und" when it has no letters or cannot be told)."""
    return detect_fast(text) or langdetect_lang(text, seed)
