"""Streams over the finished units of a build, so that no process holds the corpus.

- ``kept_rows``: the rows the cleaning kept, table by table and unit by unit (for the dedup passes,
  which need only their text columns and do not care about order);
- ``dropped``: the duplicates the dedup units found (id -> reason, duplicate_of, similarity);
- ``output_rows`` / ``output_rejects``: what the build writes, in id order: each unit's rows are sorted
  by id (UnitStore.save), so a k-way merge over the units gives the global order without a sort;
  duplicates become rejects here, from their unit's row (the record they keep is the cleaned row's
  original fields, as before);
- ``split_counts``: rows per split of a table, from the id column alone (the writer must know how
  many shards there will be before it writes the first).

Memory: ``dropped`` holds one entry per duplicate; the merges hold one batch per unit.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator

from pipeline.records import Row, reject
from pipeline.resume.store import UnitStore
from pipeline.sink.output import BuildRows
from pipeline.sink.split import split_of

DATA_TABLES = ("instruct", "text")
# the columns the dedup passes read: lineage the keep rule and near dedup need, and the text fields
DEDUP_COLUMNS = {
    "instruct": ["id", "source", "lang", "instruction", "input", "output"],
    "text": ["id", "source", "lang", "text"],
}
MERGE_BATCH = 512  # rows per unit held by the k-way merges


def kept_rows(work: UnitStore, clean_keys: list[str]) -> Iterator[Row]:
    for key in clean_keys:
        for table in DATA_TABLES:
            yield from work.iter_rows("clean", key, table, DEDUP_COLUMNS[table])


def dropped(work: UnitStore, passes: dict[str, list[str]]) -> dict[str, tuple[str, str, float | None]]:
    """id -> (reason, duplicate_of, similarity) of every duplicate the given dedup units (stage -> unit
    keys) found."""
    out: dict[str, tuple[str, str, float | None]] = {}
    for stage, keys in passes.items():
        reason = "duplicate_exact" if stage == "exact" else "duplicate_near"
        for key in keys:
            table = work.table(stage, key, "duplicates")
            columns = (table.column(c).to_pylist() for c in ("id", "duplicate_of", "similarity"))
            for i, of, sim in zip(*columns, strict=True):
                out[i] = (reason, of, sim)
    return out


def _by_id(streams: list[Iterator[Row]]) -> Iterator[Row]:
    return heapq.merge(*streams, key=lambda r: r["id"])


def output_rows(work: UnitStore, clean_keys: list[str], table: str, gone: dict) -> Iterator[Row]:
    """The kept rows of ``table`` across all units, minus the duplicates, in id order."""
    streams = [work.iter_rows("clean", k, table, batch=MERGE_BATCH) for k in clean_keys]
    return (r for r in _by_id(streams) if r["id"] not in gone)


def _unit_rejects(work: UnitStore, key: str, gone: dict) -> Iterator[Row]:
    """One unit's rejects: its cleaning rejects and its duplicates, in id order."""
    dups = [
        (_duplicate(r, gone[r["id"]]) for r in work.iter_rows("clean", key, table, batch=MERGE_BATCH) if r["id"] in gone)
        for table in DATA_TABLES
    ]  # each table of a unit is in id order: merged, not sorted, so that a unit's duplicates stream too
    yield from _by_id([work.iter_rows("clean", key, "rejects", batch=MERGE_BATCH), *dups])


def _duplicate(row: Row, found: tuple[str, str, float | None]) -> Row:
    reason, of, sim = found
    detail = None if sim is None else f"similarity={sim:.4f}"
    return reject(row, "dedup", reason, detail, None, duplicate_of=of)


def output_rejects(work: UnitStore, clean_keys: list[str], gone: dict) -> Iterator[Row]:
    """Every reject of the build (parse, filter, licence, dedup), in id order."""
    return _by_id([_unit_rejects(work, k, gone) for k in clean_keys])


def split_counts(work: UnitStore, clean_keys: list[str], table: str, gone: dict, validation: float, seed: int) -> Counter:
    counts: Counter = Counter()
    for key in clean_keys:
        t = work.table("clean", key, table, ["id"])
        if t is not None:
            counts.update(split_of(i, validation, seed) for i in t.column("id").to_pylist() if i not in gone)
    return counts


def reject_count(work: UnitStore, clean_keys: list[str], gone: dict) -> int:
    n = len(gone)
    for key in clean_keys:
        t = work.table("clean", key, "rejects", ["id"])
        n += 0 if t is None else t.num_rows
    return n


def build_rows(work: UnitStore, clean_keys: list[str], gone: dict, validation: float, seed: int) -> BuildRows:
    """The writer's streams over the clean units, minus the duplicates in ``gone``."""
    return BuildRows(
        kept={t: (lambda t=t: output_rows(work, clean_keys, t, gone)) for t in DATA_TABLES},
        split_counts={t: split_counts(work, clean_keys, t, gone, validation, seed) for t in DATA_TABLES},
        rejects=lambda: output_rejects(work, clean_keys, gone),
        reject_count=reject_count(work, clean_keys, gone),
    )
