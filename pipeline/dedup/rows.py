"""Near-duplicate dedup over build rows: rows in, (kept rows, duplicate_near rejects) out."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pipeline.dedup.near import Doc, NearDupSettings, near_duplicates
from pipeline.records import Row, record_text, reject
from schemas.recipe import NearDedupSpec


def settings_from(spec: NearDedupSpec) -> NearDupSettings:
    return NearDupSettings(
        threshold=spec.threshold,
        ngram=spec.ngram,
        num_perm=spec.num_perm,
        seed=spec.seed,
        shingle=spec.shingle,
        word_ngram=spec.word_ngram,
    )


def near_dedup(
    rows: Iterable[Row], spec: NearDedupSpec, priorities: dict[str, int], workdir: Path | None = None
) -> tuple[list[Row], list[Row]]:
    rows = list(rows)
    docs = (Doc(r["id"], record_text(r), r.get("lang"), priorities.get(r["source"], 0)) for r in rows)
    dups = {d.id: d for d in near_duplicates(docs, settings_from(spec), workdir)}
    kept, rejects = [], []
    for r in rows:
        d = dups.get(r["id"])
        if d is None:
            kept.append(r)
        else:
            rejects.append(
                reject(
                    r,
                    "dedup",
                    "duplicate_near",
                    f"similarity={d.similarity:.4f}",
                    duplicate_of=d.duplicate_of,
                )
            )
    return kept, rejects
