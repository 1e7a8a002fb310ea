"""What the instruction-pair rules share: placeholder forms, "is this row about code or English", script
shares, inline payloads and escape debris (the rules themselves are pipeline/clean/filters/*).

The rule set follows the defect classes AlpacaDataCleaned fixed by hand in the original Alpaca data (and
so in its Japanese translations): instructions pointing at an input or a medium that is not there, N/A and
empty answers, placeholder inputs, merged instructions, escape debris, plus what machine translation adds
(answers left in English, instructions left untranslated).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

# an input that says "there is no input" (Alpaca's "<noinput>" and its translations): stored as ""
NO_INPUT = frozenset(
    {
        "<noinput>", "<no input>", "noinput", "no input", "no input.", "<none>", "n/a", "none", "(none)",
        "ノインプット", "<ノインプット>", "入力なし", "入力なし。", "<入力なし>", "該当なし", "(入力なし)",
    }
)

# an output that answers nothing (after stripping and case folding)
PLACEHOLDER_OUTPUTS = frozenset(
    {
        "n/a", "na", "none", "null", "nil", "-", "--", "...", "…", "<nooutput>", "<no output>", "no output",
        "nooutput", "<noanswer>", "tbd", "todo", "該当なし", "なし", "不明", "回答なし", "出力なし", "<出力なし>",
        "回答できません", "回答できません。", "答えられません", "答えられません。", "わかりません", "わかりません。",
        "i don't know", "i don't know.", "i cannot answer", "i cannot answer that.", "no answer",
        "ノーアウトプット", "<ノーアウトプット>",
    }
)
EMPTY_CODE_BLOCK = re.compile(r"^\s*```[\w+#.-]*\s*```\s*$")


def placeholder_input(text: str) -> bool:
    return text.strip().casefold() in NO_INPUT


def placeholder_output(text: str) -> str | None:
    """Why ``text`` is no answer ("placeholder 'N/A'", "empty code block"), or None."""
    s = text.strip()
    if s.casefold() in PLACEHOLDER_OUTPUTS:
        return f"placeholder {s!r}"
    if "```" in s and EMPTY_CODE_BLOCK.match(s):
        return "empty code block"
    return None


# the row is about code, English, spelling, names or formats: Latin letters and escapes are expected there
ABOUT_LATIN = re.compile(
    r"英語|英文|英単語|英訳|和訳|翻訳|訳し|訳す|英字|アルファベット|ローマ字|スペル|綴り|つづり|略語|略称|頭字語|頭文字"
    r"|コード|プログラム|関数|スクリプト|クエリ|アルゴリズム|変数|正規表現|コマンド|構文|擬似|疑似|メソッド|クラス"
    r"|ソフトウェア|ライブラリ|エスケープ|改行文字|文字列|パスワード|ユーザー名|ハッシュタグ|URL|メール|ドメイン"
    r"|学名|化学式|元素記号|記号|単位|数式|方程式|公式|型|タグ|JSON|XML|CSV|YAML"
    r"|名前|ブランド|タイトル|題名|商品名|社名|(?<![戦省侵計攻概簡中前後謀策経])略|キャッチフレーズ|スローガン|ダジャレ|回文|韻|ことわざ|諺|引用"
    r"|\b(?:code|program|function|script|query|sql|python|java|javascript|c\+\+|html|css|regex|json|xml"
    r"|english|spell|spelling|acronym|abbreviation|latin|password|username|url|email|hashtag)\b",
    re.IGNORECASE,
)
CODE_MARKERS = re.compile(
    r"```|^\s*(?:def|class|import|return|print|function|var|let|const|public|private|#include)\b"
    r"|^\s*(?:for|if|while|elif|else)\b[^\n]*:\s*$|[;{}]\s*$|\bSELECT\b|</?[a-z][a-z0-9]*(?:\s[^>]*)?>|=>|=="
    # a call with ASCII arguments (not "Time(リンクル・イン・タイム)"); a LaTeX command before { or [ (not a
    # literal \n before "[名前]")
    r"|[A-Za-z_][A-Za-z0-9_]*\([\x20-\x7e]*\)|\\(?:[a-zA-Z]{2,}|[a-mo-qsu-zA-Z])[{\[]|\$[^$\n]+\$"
    r"|\\(?:frac|sqrt|alpha|beta|gamma|delta|theta|lambda|sigma|mu|nu|pi|sum|int|times|cdot|leq|geq|neq|infty"
    r"|mathrm|mathbf|text|textbf|textit|emph|begin|end|left|right|nonumber|label|cite|ref|newline|item)\b",
    re.MULTILINE,
)


# cues that allow a short Latin answer (a name, a title, a slogan, a unit, a formula), not an English essay
NAME_CUES = frozenset(
    "名前 ブランド タイトル 題名 商品名 社名 略 キャッチフレーズ スローガン ダジャレ 回文 韻 ことわざ 諺 引用"
    " 学名 化学式 元素記号 記号 単位 数式 方程式 公式 型 タグ クラス"
    " メール ソフトウェア ライブラリ ドメイン url パスワード ユーザー名 ハッシュタグ email password username hashtag".split()
)
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


# cues about code or a data format: they allow Latin that looks like code, not English prose ("Pythonで…
# コードを入力します" answered "Use kind words. Be grateful." is the English original of another row)
CODE_CUES = frozenset(
    "コード プログラム 関数 スクリプト クエリ アルゴリズム 変数 正規表現 コマンド 構文 擬似 疑似 メソッド クラス"
    " ソフトウェア ライブラリ エスケープ 改行文字 文字列 json xml csv yaml code program function script query sql"
    " python java javascript c++ html css regex".split()
)
# what code has and English prose has not: an operator or bracket, an underscore, a call "f(" or "x["
_CODE_CHARS = re.compile(r"[=_{}\[\];<>#$\\|`]|[A-Za-z0-9]\(")


def code_like(text: str, code: bool | None | Callable[[], bool] = None) -> bool:
    """``text`` holds code (:func:`looks_like_code`, or ``code`` when the caller knows it, or a function
    giving it, called only when the characters do not decide) or at least its characters (``x = 5``,
    ``int_num``)."""
    if _CODE_CHARS.search(text):
        return True
    return looks_like_code(text) if code is None else code() if callable(code) else code


def latin_cues(*texts: str) -> list[str]:
    """The ABOUT_LATIN cues in ``texts``, lower-cased, in order: what :func:`english_cue` and
    :func:`about_latin` judge (found once for both)."""
    return [m.group().lower() for t in texts if t for m in ABOUT_LATIN.finditer(t)]


def _counts(cues: list[str], code_answer: bool | None | Callable[[], bool]) -> bool:
    """Some of ``cues`` counts: one that is not a code cue does; code cues count unless ``code_answer``
    (a bool, None: unknown, or a function giving it, called only when it decides) is False."""
    if not cues:
        return False
    if code_answer is None or any(c not in CODE_CUES for c in cues):
        return True
    return (code_answer() if callable(code_answer) else code_answer) is not False


def english_cue(cues: list[str], code_answer: bool | None | Callable[[], bool] = None) -> bool:
    """:func:`about_latin` by a cue that allows any amount of Latin (English, spelling, code, a format);
    ``cues``: :func:`latin_cues` of the row's instruction and input. With ``code_answer``
    (:func:`code_like` of the answer), a code cue counts only when it is True."""
    return _counts([c for c in cues if c not in NAME_CUES], code_answer)


def about_latin(cues: list[str], code_answer: bool | None | Callable[[], bool] = None) -> bool:
    """The row's instruction or input asks for code, English, a spelling, a name or a format (``cues``:
    :func:`latin_cues` of them). With ``code_answer`` (:func:`code_like` of the answer), a code cue counts
    only when it is True."""
    return _counts(cues, code_answer)


# CODE_MARKERS's alternatives one by one, each tried only where the characters it needs occur (the call
# pattern alone, tried at every letter of an English essay, cost 50 us a row); ``looks_like_code`` answers
# exactly what ``CODE_MARKERS.search`` does (tests/test_quality.py compares them on the samples)
_LITERAL_MARKERS = ("```", "=>", "==")
_KEYWORDS = ("def", "class", "import", "return", "print", "function", "var", "let", "const", "public", "private", "#include")
_LATEX_WORDS = (
    r"frac|sqrt|alpha|beta|gamma|delta|theta|lambda|sigma|mu|nu|pi|sum|int|times|cdot|leq|geq|neq|infty"
    r"|mathrm|mathbf|text|textbf|textit|emph|begin|end|left|right|nonumber|label|cite|ref|newline|item"
)
_GATED = [  # (the strings one of which must occur, or None; the alternative)
    (_KEYWORDS, rf"^\s*(?:{'|'.join(_KEYWORDS)})\b"),
    ((":",), r"^\s*(?:for|if|while|elif|else)\b[^\n]*:\s*$"),
    ((";", "{", "}"), r"[;{}]\s*$"),
    (("SELECT",), r"\bSELECT\b"),
    (("<",), r"</?[a-z][a-z0-9]*(?:\s[^>]*)?>"),
    (("\\",), r"\\(?:[a-zA-Z]{2,}|[a-mo-qsu-zA-Z])[{\[]"),
    (("$",), r"\$[^$\n]+\$"),
    (("\\",), rf"\\(?:{_LATEX_WORDS})\b"),
]
_GATED = [(gate, re.compile(p, re.MULTILINE)) for gate, p in _GATED]
# the call alternative, [A-Za-z_][A-Za-z0-9_]*\([\x20-\x7e]*\), is looked for from each "(" backwards: the
# regex tried it at every letter of the text and backtracked through every word
_IDENT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_DIGITS = frozenset("0123456789")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def _has_call(text: str) -> bool:
    j = text.find("(")
    while j != -1:
        i = j
        while i > 0 and text[i - 1] in _IDENT:
            i -= 1
        if any(c not in _DIGITS for c in text[i:j]):  # an identifier that starts with a letter or _
            end = _PRINTABLE.match(text, j + 1).end()
            if ")" in text[j + 1 : end]:
                return True
        j = text.find("(", j + 1)
    return False


def looks_like_code(text: str) -> bool:
    if not text:
        return False
    if any(m in text for m in _LITERAL_MARKERS):
        return True
    if any((gate is None or any(c in text for c in gate)) and pat.search(text) for gate, pat in _GATED):
        return True
    return "(" in text and _has_call(text)


ABOUT_CODE = re.compile(
    r"コード|プログラミング|(?<!ステップ)(?<!トレーニング)(?<!運動)(?<!研修)(?<!教育)(?<!学習)(?<!支援)プログラム|関数|スクリプト|クエリ|アルゴリズム|変数|正規表現|コマンド|構文|メソッド|エスケープ|改行文字|文字列"
    r"|\b(?:code|program|programming|function|script|query|sql|python|java|javascript|c\+\+|html|css|regex"
    r"|regular expression|json|xml|csv|yaml|string|escape|latex|markdown|shell|bash)\b",
    re.IGNORECASE,
)


def code_row(instruction: str, inp: str, output: str) -> bool:
    """Backslashes belong in this row: it is about code, escapes or a format, or its input or output is
    code or LaTeX."""
    return bool(ABOUT_CODE.search(instruction) or ABOUT_CODE.search(inp)) or looks_like_code(inp) or looks_like_code(output)


_LATIN_RUN = re.compile(r"[A-Za-z]+")
_JA_RUN = re.compile(r"[\u3041-\u309f\u30a0-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9d]+")


QUOTED = re.compile(r"\"[^\"\n]*\"|“[^”\n]*”|「[^」\n]*」|『[^』\n]*』|'[^'\n]{2,}'")


# every byte but the ASCII letters: deleting them with bytes.translate leaves the letters to count
_NOT_LETTERS = bytes(b for b in range(256) if not (65 <= b <= 90 or 97 <= b <= 122))


def latin_letters(text: str) -> int:
    """The ASCII letters in ``text`` (what ``[A-Za-z]+`` runs cover), counted in C: no list of runs."""
    return len(text.encode("ascii", "ignore").translate(None, _NOT_LETTERS))


def _ja_table() -> np.ndarray:
    """JA[u]: whether UTF-16 code unit u is a Japanese letter (what _JA_RUN matches; every range is in the
    BMP, and no surrogate is in one)."""
    table = np.zeros(1 << 16, dtype=bool)
    for lo, hi in re.findall(r"\\u(\w{4})-\\u(\w{4})", _JA_RUN.pattern):
        table[int(lo, 16) : int(hi, 16) + 1] = True
    return table


_JA = _ja_table()
JA_TABLE_FROM = 150  # from this many characters on, Japanese letters are counted through JA (regex: ~28 ns a
# character, the table ~3 us a text; benchmarks/clean_rules.py)


def japanese_letters(text: str) -> int:
    """The Japanese letters in ``text`` (what ``_JA_RUN`` runs cover)."""
    if len(text) < JA_TABLE_FROM:
        return sum(map(len, _JA_RUN.findall(text)))
    return int(np.count_nonzero(_JA[np.frombuffer(text.encode("utf-16-le", "surrogatepass"), np.uint16)]))


def latin_share(text: str) -> tuple[float, int]:
    """(Latin letters / (Latin + Japanese letters), Latin letters); digits, punctuation and spaces do not
    count. (0.0, 0) for a text with neither."""
    latin = latin_letters(text)
    if not latin:
        return 0.0, 0
    ja = japanese_letters(text)
    return latin / (latin + ja), latin


# material given inside the instruction itself: after a colon or a line break, or in quotes
_PAYLOAD = re.compile(r"[:：]\s*\S|[(（][^()（）]*[,、][^()（）]*[,、][^()（）]*[)）]|\n\s*\S{2}|[「」『』\"“”]|'[^']{2,}'|[-–—]\s+\S{2}")


def has_inline_payload(instruction: str) -> bool:
    return bool(_PAYLOAD.search(instruction))


# literal escape sequences left in text by a double JSON encoding or a broken export
ESCAPE_DEBRIS = re.compile(r"\\(?:u[0-9a-fA-F]{4}|[ntr\"])")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_NEWLINE_ESCAPE = re.compile(r"\\r\\n|\\[nr]")


def repair_escapes(text: str) -> str:
    """``\\uXXXX`` escapes decoded, and ``\\n`` / ``\\r\\n`` literals turned into line breaks in a text that
    has no real line break (a whole field exported with escaped newlines). Only called for rows that are
    not about code; surrogate escapes are left as they are (the control_chars rule then rejects them)."""
    if "\\" not in text:
        return text

    def unicode(m: re.Match) -> str:
        cp = int(m.group(1), 16)
        return m.group() if 0xD800 <= cp <= 0xDFFF else chr(cp)

    text = _UNICODE_ESCAPE.sub(unicode, text)
    if "\n" not in text:
        text = _NEWLINE_ESCAPE.sub("\n", text)
    return text
