"""Deterministic train/validation split: a function of the row id and the seed only."""

from __future__ import annotations

import xxhash

_SCALE = float(1 << 64)


def split_of(row_id: str, validation: float, seed: int = 0) -> str:
    if validation <= 0.0:
        return "train"
    u = xxhash.xxh3_64_intdigest(row_id.encode(), seed=seed) / _SCALE
    return "validation" if u < validation else "train"
