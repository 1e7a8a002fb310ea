"""Exact dedup on normalised text, across sources, with a deterministic keep rule.

Key: a 128-bit hash of the row's table and its case-folded, whitespace-collapsed text fields (for a
conversation: every turn, with its role). In each
group the row with the highest source priority wins, then the smallest id; the others become rejects
(stage dedup, reason duplicate_exact, duplicate_of = the winner's id).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import xxhash

from pipeline.records import Row, reject
from pipeline.text.normalize import dedup_key_text


def dedup_key(row: Row) -> bytes:
    if "text" in row:
        payload = "T\x1e" + dedup_key_text(row["text"])
    elif "messages" in row:  # the whole conversation, roles included: a shared prefix is not a duplicate
        payload = "C\x1e" + "\x1f".join(f"{m['role']}\x1d{dedup_key_text(m['content'])}" for m in row["messages"])
    else:
        payload = "I\x1e" + "\x1f".join(dedup_key_text(row[k]) for k in ("instruction", "input", "output"))
    return xxhash.xxh3_128_digest(payload.encode("utf-8", "surrogatepass"))


def duplicate_winners(keys: np.ndarray, priorities: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions of the duplicates, position of each one's winner) among rows given as arrays of their
    dedup keys (S16), source priorities and ids (S32); the winner of a key is the row with the highest
    priority, then the smallest id. Memory: the three arrays and one sort order (about 60 bytes a row)."""
    if not len(keys):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.lexsort((ids, -priorities, keys))
    sorted_keys = keys[order]
    first = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]  # the winner opens each run of one key
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    dup = ~first
    return order[dup], order[group_start[dup]]


def exact_dedup(rows: Iterable[Row], priorities: dict[str, int]) -> tuple[list[Row], list[Row]]:
    """(kept rows, duplicate rejects), both in input order."""
    rows = list(rows)
    keys = np.array([dedup_key(r) for r in rows], dtype="S16")
    prios = np.array([priorities.get(r["source"], 0) for r in rows], dtype=np.int64)
    ids = np.array([r["id"] for r in rows], dtype="S32")
    dups, winners = duplicate_winners(keys, prios, ids)
    winner_of = {int(d): rows[int(w)]["id"] for d, w in zip(dups, winners, strict=True)}
    kept, rejects = [], []
    for i, row in enumerate(rows):
        if i in winner_of:
            rejects.append(reject(row, "dedup", "duplicate_exact", None, None, duplicate_of=winner_of[i]))
        else:
            kept.append(row)
    return kept, rejects
