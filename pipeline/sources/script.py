"""Plays and TRPG replays (speaker-labelled lines) as conversations; the parsing is pipeline.text.play.

Options (recipe keys beside ``path``): ``assistant: [NAME, ...]`` names the speakers who become the assistant
(e.g. the GM; default: the speaker with the most lines), every other speaker is the user; ``window: N``
(default 8) cuts each scene into conversations of at most N user/assistant turns, each starting with a user
turn; ``stage_directions: drop`` (default) or ``system`` (the title, the scene, the cast and place before
the first speech, and the directions inside the window, as the conversation's system turn);
``speaker_pattern:`` a regex with groups ``name`` and ``line`` (default: detected); ``encoding: auto``
(UTF-8, else Shift_JIS/cp932 or EUC-JP as sniffed) or ``utf-8`` / ``cp932``.

Consecutive lines of one side merge into one turn; each speech in a turn starts with its speaker's name
("夫: …"; its continuation lines follow on their own lines), and ``meta.speakers`` lists them per turn. A scene that opens with the assistant gives that
opening to the first conversation's system turn (a conversation starts with the user). ``meta`` also keeps
the title, author, scene, the line the conversation starts on and the Aozora credits (底本 …), which its
licence asks to keep. A scene's last turn, when it is the user's, has no answer to learn: a reject ``unanswered`` (trainers such as LLaMA-Factory drop a conversation that ends on
the user). A file with no speech line is one reject ``no_speech``; one that does not decode,
``bad_encoding``. Memory: one file (plays are small; the file is read whole).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from pipeline.records import Row, chat_row, lineage, reject
from pipeline.sources._io import BASE64_NOTE, DOCUMENT_LIMIT, raw_text
from pipeline.sources._streams import decode_text, file_encoding, read_all
from pipeline.text.play import Play, Scene, parse_play
from schemas.recipe import SourceSpec

KIND = "script"


def read(path: Path, rel: str, spec: SourceSpec, base_dir: Path) -> Iterator[Row]:
    opts = spec.options
    data = read_all(path, DOCUMENT_LIMIT)
    encoding = file_encoding(path) if opts.encoding == "auto" else opts.encoding
    lin = lineage(spec.name, rel, 0, spec.license)
    try:
        text = decode_text(data, encoding)
    except UnicodeDecodeError as err:
        yield reject(lin, "parse", "bad_encoding", f"not {encoding}: {err}; {BASE64_NOTE}", raw_text(data))
        return
    play = parse_play(text, opts.speaker_pattern)
    lines = Counter(u.speaker for sc in play.scenes for u in sc.utterances if u.text)
    if not lines:
        yield reject(lin, "parse", "no_speech", f"no speaker-labelled line ({play.dialect} shape)", text)
        return
    assistant = set(opts.assistant) or {max(lines, key=lambda n: (lines[n], n))}
    index = 0
    for scene_no, scene in enumerate(play.scenes):
        for conv, meta in _windows(play, scene, scene_no, assistant, opts):
            lin = lineage(spec.name, rel, index, spec.license)
            if conv is None:  # a scene's last line, by the user, with no answer after it
                yield reject(lin, "parse", "unanswered", f"line {meta['line']}: the scene ends on the user", meta["text"])
            else:
                yield chat_row(lin, conv, task="roleplay", meta=meta)
            index += 1


def _turns(scene: Scene, assistant: set[str]) -> list[dict]:
    """The scene's utterances merged into alternating turns: role, content, speakers, directions, line."""
    turns: list[dict] = []
    carried: list[str] = []  # directions of utterances with no spoken text, for the next turn
    for u in scene.utterances:
        if not u.text:
            carried += u.directions
            continue
        role = "assistant" if u.speaker in assistant else "user"
        said = f"{u.speaker}: {u.text}"
        if turns and turns[-1]["role"] == role:
            t = turns[-1]
            t["content"] += "\n" + said
            t["speakers"].append(u.speaker)
            t["directions"] += carried + u.directions
        else:
            turns.append({"role": role, "content": said, "speakers": [u.speaker],
                          "directions": carried + u.directions, "line": u.line_no})
        carried = []
    if turns:
        turns[-1]["directions"] += carried + scene.trailing
    return turns


def _windows(play: Play, scene: Scene, scene_no: int, assistant: set[str], opts) -> Iterator[tuple[list, dict]]:
    turns = _turns(scene, assistant)
    opening = turns.pop(0) if turns and turns[0]["role"] == "assistant" else None
    size = opts.window - opts.window % 2  # an even number of turns: every window starts with the user
    chunks = [turns[i : i + size] for i in range(0, len(turns), size)]
    unanswered = None
    if chunks and len(turns) > 1 and chunks[-1][-1]["role"] == "user":  # the scene ends on the user
        unanswered = chunks[-1].pop()
        if not chunks[-1]:
            chunks.pop()
    head = "".join(x for x in (f"『{play.title}』" if play.title else "", play.author or "") if x)
    for k, chunk in enumerate(chunks):
        notes = []
        if opts.stage_directions == "system":
            notes += [x for x in (head, scene.title) if x]
            if scene_no == 0 and k == 0:
                notes += play.front
            notes += [d for t in chunk for d in t["directions"]]
        if k == 0 and opening is not None:
            notes.append(opening["content"])
        conv = ([{"role": "system", "content": "\n".join(notes)}] if notes else []) + [
            {"role": t["role"], "content": t["content"]} for t in chunk
        ]
        meta = {
            "title": play.title,
            "author": play.author,
            "scene": scene.title or None,
            "window": k,
            "line": (opening if k == 0 and opening else chunk[0])["line"] + 1,
            "speakers": ([opening["speakers"]] if k == 0 and opening else []) + [t["speakers"] for t in chunk],
            "credits": play.credits,
        }
        yield conv, {key: v for key, v in meta.items() if v is not None}
    if unanswered is not None:
        yield None, {"line": unanswered["line"] + 1, "text": unanswered["content"]}
