"""One person's posts: an X/Twitter account archive's ``data/tweets.js`` (also ``tweet.js``, ``tweets-partN.js``)
or a Mastodon export's ``outbox.json``.

- retweets (``RT @…``) and Mastodon boosts (``Announce``) are the words of others: rejects ``retweet``;
- a self-reply chain (a post replying to a post that is in the archive, and so the owner's) is one unit:
  the posts in reply order, joined by line breaks;
- a reply to someone else keeps the text after its leading @mentions (``display_text_range``);
- other people's handles become ``@<HANDLE>`` (the owner's, from ``account.js`` beside the file, stays) and
  links ``<URL>``.

Rows (the recipe options ``chat_rows`` and ``text_rows``): a chain of two or more posts is a conversation, its
first post the user turn and the rest the assistant's (with ``chat_rows: false``, a text row); every other
post is a text row (the person's style, for continued pre-training; a recipe for short posts lowers
``clean.min_chars_text``), or with ``text_rows: false`` a reject ``not_a_thread``. Each post is in one row.
Lineage: a row's ``source_index`` is the position of its first post in the file; ``meta`` lists the post
ids, times and the owner. Memory: the file is read whole (an archive's tweets.js is one JSON array).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import InputFileError
from pipeline.records import Row, chat_row, lineage, reject, text_row, to_json
from pipeline.sources._io import DOCUMENT_LIMIT, lone_surrogate
from pipeline.sources._streams import decode_text, file_encoding, read_all
from schemas.recipe import SourceSpec

KIND = "persona"
URL = re.compile(r"https?://[^\s　<>\"]+")
HANDLE = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{1,30})(?:@[\w.-]+)?")
TAG = re.compile(r"<[^>]+>")


def _load_js(path: Path) -> Any:
    """The JSON value of an archive .js file (``window.YTD.x.partN = [...]``) or of a plain JSON file."""
    text = decode_text(read_all(path, DOCUMENT_LIMIT), file_encoding(path))
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    if start < 0:
        raise InputFileError(path, "not an archive file (no JSON array or object)")
    if "=" in text[:start]:  # window.YTD.tweets.part0 = [...]: the value after the assignment
        start = text.index("=") + 1
    try:
        return json.loads(text[start:])
    except (json.JSONDecodeError, RecursionError) as err:
        raise InputFileError(path, f"not valid archive JSON: {err}") from None


def _owner(path: Path) -> tuple[str | None, str | None]:
    """(account id, username) from account.js beside the file, when there is one."""
    acc = path.parent / "account.js"
    if not acc.is_file():
        return None, None
    try:
        data = _load_js(acc)
        a = data[0]["account"]
        return a.get("accountId"), a.get("username")
    except (InputFileError, LookupError, TypeError, AttributeError):
        return None, None


def _posts(data: Any) -> list[tuple[dict | None, Any]]:
    """(post, raw element) per element: post = {id, parent, text, time, retweet, mention_prefix_end} or None."""
    if isinstance(data, dict) and isinstance(data.get("orderedItems"), list):  # Mastodon outbox.json
        out = []
        for item in data["orderedItems"]:
            obj = item.get("object") if isinstance(item, dict) else None
            if not isinstance(item, dict) or item.get("type") not in ("Create", "Announce"):
                out.append((None, item))
            elif item["type"] == "Announce":
                out.append(({"id": str(item.get("id")), "retweet": True}, item))
            elif isinstance(obj, dict) and isinstance(obj.get("content"), str):
                text = html.unescape(TAG.sub("", re.sub(r"<br\s*/?>|</p><p>", "\n", obj["content"])))
                parent = obj.get("inReplyTo") if isinstance(obj.get("inReplyTo"), str) else None
                out.append(({"id": str(obj.get("id")), "parent": parent, "text": text,
                             "time": obj.get("published"), "retweet": False}, item))
            else:
                out.append((None, item))
        return out
    if not isinstance(data, list):
        return [(None, data)]
    out = []
    for el in data:
        tw = el.get("tweet", el) if isinstance(el, dict) else None
        if not isinstance(tw, dict) or not isinstance(tw.get("full_text"), str) or not tw.get("id_str"):
            out.append((None, el))
            continue
        text = tw["full_text"]
        rng = tw.get("display_text_range")
        start = int(rng[0]) if isinstance(rng, list) and rng and str(rng[0]).isdigit() else 0
        parent = tw.get("in_reply_to_status_id_str")
        out.append(({"id": str(tw["id_str"]), "parent": parent if isinstance(parent, str) else None,
                     "text": html.unescape(text[start:]), "time": tw.get("created_at"),
                     "retweet": text.startswith("RT @")}, el))
    return out


def _mask(text: str, owner: str | None) -> str:
    text = URL.sub("<URL>", text)
    return HANDLE.sub(lambda m: m.group() if owner and m.group(1).lower() == owner.lower() else "@<HANDLE>", text)


def read(path: Path, rel: str, spec: SourceSpec, base_dir: Path) -> Iterator[Row]:
    opts = spec.options
    data = _load_js(path)
    _, owner = _owner(path)
    posts = _posts(data)
    by_id = {p["id"]: i for i, (p, _) in enumerate(posts) if p and not p["retweet"]}
    children: dict[int, list[int]] = {}
    for i, (p, _) in enumerate(posts):
        if p and not p["retweet"] and p.get("parent") in by_id:
            children.setdefault(by_id[p["parent"]], []).append(i)
    for kids in children.values():
        kids.sort(key=lambda k: (posts[k][0]["id"], k))  # the earliest reply continues a thread
    covered: set[int] = set()

    def follow(start: int) -> list[int]:
        """``start`` and the replies after it, the earliest each time, never a post twice (cycles end it)."""
        chain = [start]
        covered.add(start)
        while True:
            nxt = next((k for k in children.get(chain[-1], []) if k not in covered), None)
            if nxt is None:
                return chain
            chain.append(nxt)
            covered.add(nxt)

    def rows_of(start: int) -> Iterator[Row]:
        """The rows of the thread from ``start``, then of every fork off it (a second reply to one post)."""
        todo = [start]
        while todo:
            chain = follow(todo.pop(0))
            yield _row(spec, rel, posts, chain, owner, opts)
            todo += [k for c in chain for k in children.get(c, []) if k not in covered]

    for i, (p, raw) in enumerate(posts):
        if p is None or p["retweet"]:
            lin = lineage(spec.name, rel, i, spec.license)
            record = to_json(raw) if not lone_surrogate(raw) else json.dumps(raw, ensure_ascii=True)
            if p is None:
                yield reject(lin, "parse", "missing_field", f"element {i}: not a post with text and an id", record)
            else:
                yield reject(lin, "parse", "retweet", f"post {p['id']}: a repost of someone else's words", record)
        elif p.get("parent") not in by_id:  # a thread starts here (its parent, if any, is not the owner's)
            yield from rows_of(i)
    for i, (p, _) in enumerate(posts):  # posts no thread reaches: a reply to itself, a cycle of replies
        if p is not None and not p["retweet"] and i not in covered:
            yield from rows_of(i)


def _row(spec, rel, posts, chain: list[int], owner, opts) -> Row:
    """One thread (or a single post) as a conversation or a text row, lineage at its first post."""
    first = posts[chain[0]][0]
    lin = lineage(spec.name, rel, chain[0], spec.license)
    texts = [_mask(posts[k][0]["text"], owner) for k in chain]
    meta = {"owner": owner, "post_ids": [posts[k][0]["id"] for k in chain], "times": [posts[k][0]["time"] for k in chain],
            "reply_to": first.get("parent")}
    meta = {k: v for k, v in meta.items() if v is not None and v != [None] * len(chain)}
    if opts.chat_rows and len(chain) > 1:
        conv = [{"role": "user", "content": texts[0]}, {"role": "assistant", "content": "\n".join(texts[1:])}]
        return chat_row(lin, conv, task="persona", meta=meta)
    if opts.text_rows:
        return text_row(lin, "\n".join(texts), meta)
    raw = posts[chain[0]][1]
    record = to_json(raw) if not lone_surrogate(raw) else json.dumps(raw, ensure_ascii=True)
    return reject(lin, "parse", "not_a_thread", f"post {first['id']}: a single post (text_rows: false)", record)
