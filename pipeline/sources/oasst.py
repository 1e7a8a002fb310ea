"""OpenAssistant conversation trees (oasst1 / oasst2 and their translations), in three shapes:

- flat messages, one JSON object per line (the Hugging Face ``OpenAssistant/oasst1`` dump): ``message_id``,
  ``parent_id`` (null for the root), ``message_tree_id``, ``role`` (prompter | assistant), ``text``,
  ``lang``, ``rank``, ``deleted``, ``review_result``. A tree's messages must stand together in the file
  (the dumps keep them so): a message whose tree was already closed is a reject ``orphan_message``.
- nested export trees, one tree per line: ``{"message_tree_id", "prompt": {message, "replies": [...]}}``;
- the Japanese editor threads (one JSON object keyed by ``message_id``; ``text_ja_audited`` is the
  hand-corrected Japanese, the default text there, ``text_ja`` where that is empty).

Conversations: prompter -> user. ``branches: best`` (default) follows one path per tree, at each choice
the reply with the lowest ``rank`` (unranked last; then one that has replies itself; then file order);
``branches: all`` gives one conversation per leaf. Deleted and review-failed messages (and, in the editor
file, ``ready_to_export: false``) are dropped with their subtrees; a path's last prompter message with no
answer is dropped. Nothing is lost: every dropped message is a parse reject (``deleted``,
``review_failed``, ``not_ready``, ``in_dropped_subtree``, ``branch_not_taken``, ``unanswered``) keeping
its record: its own line in the flat form, the subtree's JSON in the nested form.

Lineage: in the flat and editor forms a conversation's ``source_index`` is the position of its last
message, a reject's that of its message; in the nested form every row of a tree has the tree's line and
rows after the first are told apart by their id (pipeline.records.make_id's ``part``). ``meta`` keeps the
tree id and, per turn, the message id and the message's ``lang``.

Memory: one tree at a time (flat and nested forms); the editor file is read whole (it is one JSON object).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.records import Row, chat_row, is_reject, lineage, reject, to_json
from pipeline.sources._io import iter_jsonl_objects, load_json_document, lone_surrogate, require_object
from pipeline.sources._streams import iter_lines
from schemas.recipe import SourceSpec

KIND = "oasst"
ROLES = {"prompter": "user", "assistant": "assistant"}


@dataclass(eq=False)  # compared by identity: ids may repeat in a malformed file
class Msg:
    index: int  # record position (flat / editor), or the order inside its tree (nested)
    id: str
    parent: str | None
    role: str  # ours: user | assistant
    text: str
    lang: str | None
    rank: float  # lower is better; unranked: inf
    drop: str | None  # deleted | review_failed | not_ready
    raw: Any  # the record a reject keeps: its line (flat, editor) or its JSON object (nested)
    children: list[Msg] = field(default_factory=list)


def _rank(obj: dict) -> float:
    r = obj.get("rank")
    if isinstance(r, int | float) and not isinstance(r, bool):
        return float(r)
    q = obj.get("quality")  # the editor threads: higher quality first
    if isinstance(q, int | float) and not isinstance(q, bool):
        return -float(q)
    return float("inf")


def _drop(obj: dict) -> str | None:
    if obj.get("deleted") is True:
        return "deleted"
    if obj.get("review_result") is False:
        return "review_failed"
    if obj.get("ready_to_export") is False:
        return "not_ready"
    return None


def _message(obj: Any, index: int, raw: Any, text_field: str | None, editor: bool) -> Msg | str:
    """A Msg, or the reason (a detail) why the object is not a message."""
    if not isinstance(obj, dict):
        return f"record is {type(obj).__name__}, not an object"
    role = ROLES.get(obj.get("role"))
    if role is None:
        return f"role {obj.get('role')!r} (known: prompter, assistant)"
    key = text_field or ("text_ja_audited" if editor else "text")
    text = obj.get(key)
    if editor and text_field is None and not text:
        key, text = "text_ja", obj.get("text_ja")
    if not isinstance(text, str):
        return f"no string field {key!r}"
    mid = obj.get("message_id")
    if not isinstance(mid, str):
        return "no string field 'message_id'"
    parent = obj.get("parent_id")
    lang = obj.get("lang") if isinstance(obj.get("lang"), str) else None
    return Msg(
        index, mid, parent if isinstance(parent, str) else None, role, text, lang, _rank(obj), _drop(obj), raw
    )


def _subtree(m: Msg) -> Iterator[Msg]:
    stack = [m]
    while stack:
        x = stack.pop()
        yield x
        stack.extend(reversed(x.children))


def _choice_key(m: Msg) -> tuple:
    return (m.rank, not any(c.drop is None for c in m.children), m.index)


class Dropped(NamedTuple):
    msg: Msg
    reason: str
    detail: str | None
    top: bool  # the root of a dropped subtree (its record, in the nested form, holds the rest)


def _drop_subtree(m: Msg, reason: str, detail: str | None, inner: str) -> list[Dropped]:
    """``m`` and every message below it, dropped: ``m`` for ``reason``, the others for ``inner``."""
    return [Dropped(m, reason, detail, True)] + [
        Dropped(d, inner, f"under {m.id}" + (f" ({reason})" if inner != reason else ""), False)
        for d in list(_subtree(m))[1:]
    ]


def conversations(root: Msg, branches: str) -> tuple[list[list[Msg]], list[Dropped]]:
    """(paths, dropped) of one tree: each path a list of messages from the root; every message in no path
    is in ``dropped``."""
    paths: list[list[Msg]] = []
    if root.drop:
        return paths, _drop_subtree(root, root.drop, None, "in_dropped_subtree")
    dropped: list[Dropped] = []
    stack: list[tuple[Msg, list[Msg]]] = [(root, [root])]
    while stack:
        m, path = stack.pop()
        kept = []
        for c in m.children:
            if c.drop:
                dropped += _drop_subtree(c, c.drop, None, "in_dropped_subtree")
            else:
                kept.append(c)
        if not kept:
            if path[-1].role == "user":
                dropped.append(Dropped(path[-1], "unanswered", "a prompt with no kept answer", True))
                path = path[:-1]
            if path:
                paths.append(path)
            continue
        if branches == "best":
            best = min(kept, key=_choice_key)
            for c in kept:
                if c is not best:
                    note = "unranked" if c.rank == float("inf") else f"rank {c.rank:g}" if c.rank >= 0 else f"quality {-c.rank:g}"
                    dropped += _drop_subtree(c, "branch_not_taken", f"{note}; taken: {best.id}", "branch_not_taken")
            kept = [best]
        for c in reversed(kept):
            stack.append((c, [*path, c]))
    # an unanswered prompt under an assistant reply that is also another path's end gives that path twice
    unique, seen = [], set()
    for p in paths:
        key = tuple(map(id, p))
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, dropped


def _meta(tree_id: Any, path: list[Msg]) -> dict:
    return {"message_tree_id": tree_id, "message_ids": [m.id for m in path], "langs": [m.lang for m in path]}


def _messages(path: list[Msg]) -> list[dict]:
    return [{"role": m.role, "content": m.text} for m in path]


def read(path: Path, rel: str, spec: SourceSpec, base_dir: Path) -> Iterator[Row]:
    opts = spec.options
    lines = iter_lines(path)
    first = next(lines, (0, b""))[1]
    lines.close()
    if first.strip() == b"{":
        yield from _read_editor(path, rel, spec, opts)
        return
    group: list[Msg] = []
    group_tree: Any = None
    closed: set = set()
    for lin, obj, raw in iter_jsonl_objects(path, rel, spec):
        if is_reject(lin):
            yield lin
            continue
        if "prompt" in obj and "message_id" not in obj:  # a nested export tree
            yield from _read_nested(lin, obj, raw, spec, opts)
            continue
        tree = obj.get("message_tree_id")
        if tree != group_tree and group:
            yield from _flush_flat(group, group_tree, rel, spec, opts)
            closed.add(group_tree)
            group = []
        group_tree = tree
        m = _message(obj, lin["source_index"], raw, opts.text_field, editor=False)
        if isinstance(m, str):
            yield reject(lin, "parse", "missing_field", m, raw)
        elif tree in closed:
            yield reject(lin, "parse", "orphan_message", f"tree {tree} ended earlier in the file", raw)
        else:
            group.append(m)
    if group:
        yield from _flush_flat(group, group_tree, rel, spec, opts)


def _link(msgs: list[Msg]) -> tuple[list[Msg], list[Msg]]:
    """(roots, orphans): children linked to their parents, in record order."""
    by_id = {m.id: m for m in msgs}
    roots, orphans = [], []
    for m in msgs:
        if m.parent is None:
            roots.append(m)
        elif m.parent in by_id:
            by_id[m.parent].children.append(m)
        else:
            orphans.append(m)
    return roots, orphans


def _flush_flat(msgs: list[Msg], tree: Any, rel: str, spec: SourceSpec, opts) -> Iterator[Row]:
    """The rows of one tree of the flat or editor form: records are messages."""
    seen: set[str] = set()
    unique = []
    for m in msgs:
        if m.id in seen:
            yield reject(lineage(spec.name, rel, m.index, spec.license), "parse", "duplicate_message_id",
                         f"message_id {m.id} again in tree {tree}", m.raw)
        else:
            seen.add(m.id)
            unique.append(m)
    msgs = unique
    roots, orphans = _link(msgs)
    reached = {d.id for r in roots for d in _subtree(r)}
    for m in msgs:  # orphans, and messages under an orphan (or in a parent cycle): no root reaches them
        if m.id not in reached:
            why = (
                f"parent {m.parent} not in tree {tree}"
                if m in orphans
                else f"no root above it in tree {tree}"
            )
            yield reject(
                lineage(spec.name, rel, m.index, spec.license), "parse", "orphan_message", why, m.raw
            )
    for root in roots:
        paths, dropped = conversations(root, opts.branches)
        for p in paths:
            lin = lineage(spec.name, rel, p[-1].index, spec.license)
            yield chat_row(lin, _messages(p), meta=_meta(tree, p))
        for d in dropped:
            yield reject(lineage(spec.name, rel, d.msg.index, spec.license), "parse", d.reason, d.detail, d.msg.raw)


def _read_nested(lin: Row, obj: dict, raw: str, spec: SourceSpec, opts) -> Iterator[Row]:
    """The rows of one nested export tree (one line): conversations first, then dropped subtrees."""
    msgs: list[Msg] = []
    stack: list[tuple[Any, Msg | None]] = [(obj["prompt"], None)]
    while stack:  # the tree as it is nested (message ids need not be unique here)
        node, parent = stack.pop()
        m = _message(node, len(msgs), node, opts.text_field, editor=False)
        if isinstance(m, str):
            yield reject(lin, "parse", "missing_field", f"message {len(msgs)} of the tree: {m}", raw)
            return
        msgs.append(m)
        if parent is not None:
            parent.children.append(m)
        replies = node.get("replies") or []
        if not isinstance(replies, list):
            yield reject(lin, "parse", "missing_field", f"message {m.id}: 'replies' is not a list", raw)
            return
        stack.extend((r, m) for r in reversed(replies))
    paths, dropped = conversations(msgs[0], opts.branches)
    tree = obj.get("message_tree_id")
    part = 0
    for p in paths:
        row_lin = lineage(spec.name, lin["source_file"], lin["source_index"], spec.license, part=part)
        yield chat_row(row_lin, _messages(p), meta=_meta(tree, p))
        part += 1
    for d in dropped:
        if not d.top:
            continue  # inside the record of its subtree's root
        row_lin = lineage(spec.name, lin["source_file"], lin["source_index"], spec.license, part=part)
        # an unanswered prompt's dropped replies are rejects of their own
        record = d.msg.raw if d.reason != "unanswered" else {k: v for k, v in d.msg.raw.items() if k != "replies"}
        detail = f"message {d.msg.id}" + (f": {d.detail}" if d.detail else "")
        yield reject(row_lin, "parse", d.reason, detail, to_json(record))
        part += 1


def _read_editor(path: Path, rel: str, spec: SourceSpec, opts) -> Iterator[Row]:
    """The editor threads: one object keyed by message_id; records are its entries, in file order."""
    data = load_json_document(path)
    if not isinstance(data, dict):
        lin = lineage(spec.name, rel, 0, spec.license)
        bad = require_object(lin, data, to_json(data))
        yield bad or reject(lin, "parse", "missing_field", "not an object keyed by message_id", to_json(data))
        return
    trees: dict[Any, list[Msg]] = {}
    for index, (mid, obj) in enumerate(data.items()):
        raw = to_json({mid: obj})
        lin = lineage(spec.name, rel, index, spec.license)
        if lone_surrogate(obj):
            yield reject(lin, "parse", "bad_encoding", f"entry {index}: lone surrogate", ascii(raw))
            continue
        m = _message(
            {**obj, "message_id": mid} if isinstance(obj, dict) else obj,
            index,
            raw,
            opts.text_field,
            editor=True,
        )
        if isinstance(m, str):
            yield reject(lin, "parse", "missing_field", f"entry {mid}: {m}", raw)
            continue
        trees.setdefault(obj.get("message_tree_id"), []).append(m)
    for tree, msgs in trees.items():
        yield from _flush_flat(msgs, tree, rel, spec, opts)
