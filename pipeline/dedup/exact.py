"""Exact dedup on normalised text, across sources, with a deterministic keep rule.

Key: a 128-bit hash of the row's table and its case-folded, whitespace-collapsed text fields. In each
group the row with the highest source priority wins, then the smallest id; the others become rejects
(stage dedup, reason duplicate_exact, duplicate_of = the winner's id).
"""

from __future__ import annotations

from collections.abc import Iterable

import xxhash

from pipeline.records import Row, reject
from pipeline.text.normalize import dedup_key_text


def dedup_key(row: Row) -> bytes:
    if "text" in row:
        payload = "T\x1e" + dedup_key_text(row["text"])
    else:
        payload = "I\x1e" + "\x1f".join(dedup_key_text(row[k]) for k in ("instruction", "input", "output"))
    return xxhash.xxh3_128_digest(payload.encode("utf-8", "surrogatepass"))


def rank(row: Row, priorities: dict[str, int]) -> tuple[int, str]:
    """Smaller is better: higher priority first, then smaller id."""
    return (-priorities.get(row["source"], 0), row["id"])


def exact_dedup(rows: Iterable[Row], priorities: dict[str, int]) -> tuple[list[Row], list[Row]]:
    """(kept rows, duplicate rejects), both in input order."""
    rows = list(rows)
    keys = [dedup_key(r) for r in rows]
    best: dict[bytes, tuple[tuple[int, str], str]] = {}
    for row, key in zip(rows, keys, strict=True):
        r = rank(row, priorities)
        cur = best.get(key)
        if cur is None or r < cur[0]:
            best[key] = (r, row["id"])
    kept, dups = [], []
    for row, key in zip(rows, keys, strict=True):
        winner = best[key][1]
        if winner == row["id"]:
            kept.append(row)
        else:
            dups.append(reject(row, "dedup", "duplicate_exact", None, None, duplicate_of=winner))
    return kept, dups
