"""Speaker-labelled plays and replays as utterances: Aozora Bunko plays (「名前　　台詞」, continuation lines
without a name), 名前「台詞」, 名前：台詞, and Project Gutenberg plays (``NAME.`` on its own line).

Pure text in, a :class:`Play` out (the source module ``script`` reads files and makes conversations):

- Aozora's header (title, author, the 【テキスト中に現れる記号について】 block) and its 底本 credits footer are
  taken off (kept as the play's title, author and credits); ruby 《…》 and ｜ and ［＃…］ notes are removed;
- the ［＃ここから…］ blocks of an Aozora play tell speech (改行天付き) from a speaker's continuation lines
  (１字下げ) and from pauses and directions (deeper indents); elsewhere a line is speech when it has the
  dialect's shape and its speaker speaks at least MIN_LINES times (a one-off match is narrative), or when it
  matches the recipe's own ``speaker_pattern``;
- stage directions: whole lines in （…） / (…), Gutenberg's indented lines (`` Enter Romeo.``, `` [_Exit._]``),
  and a speech's inline （…） / [_…_]; they are taken out of the speech and listed with the utterance they
  precede;
- scenes: Gutenberg's ``ACT`` / ``SCENE`` heads, Aozora's 第N場 lines.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

MIN_LINES = 2

RUBY = re.compile(r"《[^》]*》")
NOTE = re.compile(r"［＃[^］]*］")
INLINE_DIRECTION = re.compile(r"（[^（）]*）|\([^()]*\)|\[_[^\]]*_\]")
LEADING_DIRECTION = re.compile(r"^（[^（）]*）\s*[^（\s]")  # a direction with speech after it on its line
WHOLE_DIRECTION = re.compile(r"^\s*(?:（[^（）]*）|\([^()]*\)|\[_[^\]]*_\])\s*$")
NAME = r"[^\s　「」『』（）()：:［］《》｜、。！？!?…]{1,10}"
DIALECTS = {
    "aozora": re.compile(rf"^(?P<name>{NAME})　+(?P<line>\S.*)$"),
    "kagi": re.compile(rf"^(?P<name>{NAME})「(?P<line>.*)」$"),
    "colon": re.compile(rf"^(?P<name>{NAME})[：:][ 　]*(?P<line>\S.*)$"),
}
GUTENBERG_NAME = re.compile(r"^(?P<name>[A-Z][A-Z’'&. -]*[A-Z])\.$")
SCENE_HEAD = re.compile(r"^(?:ACT [IVXLC]+\b.*|SCENE [IVXLC]+\..*|[ 　]*第[一二三四五六七八九十０-９\d]+場.*)$")
HEADER_RULE = re.compile(r"^-{10,}$")


@dataclass
class Utterance:
    speaker: str
    lines: list[str]
    directions: list[str] = field(default_factory=list)  # the directions just before it (and inline in it)
    line_no: int = 0  # 0-based line of the file where it starts

    @property
    def text(self) -> str:
        return "\n".join(x for x in self.lines if x)


@dataclass
class Scene:
    title: str
    utterances: list[Utterance] = field(default_factory=list)
    trailing: list[str] = field(default_factory=list)  # directions after the last utterance


@dataclass
class Play:
    title: str | None
    author: str | None
    credits: str | None
    front: list[str]  # cast, time and place: the lines before the first speech
    scenes: list[Scene]
    dialect: str


def _strip_aozora(lines: list[str]) -> tuple[list[str], int, str | None, str | None, str | None]:
    """(body lines, offset of the body's first line, title, author, credits) of an Aozora text."""
    rules = [i for i, x in enumerate(lines[:60]) if HEADER_RULE.match(x.strip())]
    footer = max((i for i, x in enumerate(lines) if x.startswith("底本：")), default=None)
    if len(rules) < 2 and footer is None:
        return lines, 0, None, None, None
    title = lines[0].strip() or None if lines else None
    author = lines[1].strip() or None if len(lines) > 1 else None
    start = rules[1] + 1 if len(rules) >= 2 else 2
    end = footer if footer is not None else len(lines)
    credits = "\n".join(lines[end:]).strip() or None
    return lines[start:end], start, title, author, credits


def _speaker_counts(lines: list[str], pattern: re.Pattern) -> Counter:
    return Counter(m.group("name") for m in map(pattern.match, lines) if m and m.group("line").strip())


def parse_play(text: str, speaker_pattern: str | None = None) -> Play:
    raw_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    body, offset, title, author, credits = _strip_aozora(raw_lines)
    aozora_blocks = any("［＃ここから改行天付き" in x for x in body)
    gutenberg = speaker_pattern is None and sum(bool(GUTENBERG_NAME.match(x)) for x in body) >= MIN_LINES
    if speaker_pattern is not None:
        pattern, dialect = re.compile(speaker_pattern), "pattern"
    elif gutenberg:
        pattern, dialect = GUTENBERG_NAME, "gutenberg"
    else:
        cleaned = [NOTE.sub("", RUBY.sub("", x)).replace("｜", "") for x in body]
        dialect = max(DIALECTS, key=lambda d: sum(_speaker_counts(cleaned, DIALECTS[d]).values()))
        pattern = DIALECTS[dialect]
    known = None if dialect in ("gutenberg", "pattern") else {
        n for n, c in _speaker_counts([NOTE.sub("", RUBY.sub("", x)) for x in body], pattern).items() if c >= MIN_LINES
    }
    scenes = [Scene("")]
    front: list[str] = []
    pending: list[str] = []  # directions waiting for the next utterance
    cur: Utterance | None = None
    block = "neutral"  # Aozora: speech | continue | direction | neutral
    started = False

    def direction(x: str) -> None:
        (pending if started else front).append(x)

    for i, line in enumerate(body):
        if "［＃" in line:
            if "ここから改行天付き" in line:
                block = "speech"
            elif re.search(r"ここから[1１]字下げ", line):
                block = "continue"
            elif "ここから" in line and "字下げ" in line:
                block = "direction"
            elif "字下げ終わり" in line:
                block = "neutral"
        line = NOTE.sub("", RUBY.sub("", line)).replace("｜", "")
        s = line.strip()
        if not s:
            if dialect == "gutenberg":
                cur = None  # a blank line ends a Gutenberg speech
            continue
        if SCENE_HEAD.match(s) and (dialect == "gutenberg" or s.startswith("第")):
            if started or scenes[-1].title:
                scenes.append(Scene(s))
            else:
                scenes[-1].title = s
            cur = None
            continue
        if s.startswith("――") and s.endswith("――"):  # ――幕―― (curtain)
            direction(s)
            cur = None
            continue
        if dialect == "gutenberg":
            m = pattern.match(s)
            if m and line == s:
                cur = Utterance(m.group("name"), [], pending, offset + i)
                pending = []
                scenes[-1].utterances.append(cur)
                started = True
            elif line.startswith(" ") or WHOLE_DIRECTION.match(s):
                direction(s)
            elif cur is not None:
                _add_line(cur, s)
            else:
                direction(s)
            continue
        if block == "direction" and cur is not None and LEADING_DIRECTION.match(s):
            _add_line(cur, s)  # "（藤作を見送った後）さあ義！…": a direction, then the speaker goes on
            continue
        if block == "direction" or (WHOLE_DIRECTION.match(s) and block != "speech"):
            direction(s)
            continue
        m = pattern.match(s) if block != "continue" else None
        if m and (block == "speech" or known is None or m.group("name") in known):
            cur = Utterance(m.group("name"), [], pending, offset + i)
            pending = []
            _add_line(cur, m.group("line"))
            scenes[-1].utterances.append(cur)
            started = True
        elif cur is not None and (block in ("continue", "speech") or not aozora_blocks):
            if WHOLE_DIRECTION.match(s):
                cur.directions.append(s)
            else:
                _add_line(cur, s)
        else:
            direction(s)
    scenes[-1].trailing = pending
    scenes = [sc for sc in scenes if sc.utterances]
    return Play(title, author, credits, front, scenes, dialect)


def _add_line(u: Utterance, text: str) -> None:
    """Add a line of speech, its inline directions moved to the utterance's directions."""
    u.directions += [m.group() for m in INLINE_DIRECTION.finditer(text)]
    spoken = INLINE_DIRECTION.sub("", text).strip()
    if spoken:
        u.lines.append(spoken)
