"""Streams over the finished units of a build, so that no process holds the corpus.

- ``kept_rows``: the rows the cleaning kept, table by table and unit by unit (for the dedup passes,
  which need only their text columns and do not care about order);
- ``dropped``: the duplicates the dedup units found (id -> reason, duplicate_of, similarity);
- ``output_rows`` / ``output_rejects``: what the build writes, in id order, as Arrow tables: ids are
  uniform hashes, so the id space is cut into ranges of about PART_ROWS rows; each range is read from
  every unit (units are sorted by id, so row-group statistics skip the rest) and sorted at once in Arrow;
  duplicates become rejects here, from their unit's row (the record they keep is the cleaned row's
  original fields, as before);
- ``split_counts``: rows per split of a table, from the id column alone (the writer must know how
  many shards there will be before it writes the first).

Memory: ``dropped`` holds one entry per duplicate; the writer's streams hold one id range (about
PART_ROWS rows, twice while it is sorted) and one row group per unit being read.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.records import Row, reject
from pipeline.resume.store import UnitStore, rows_of
from pipeline.sink.output import BuildRows
from pipeline.sink.split import split_of
from schemas.columns import DATA_TABLES, TABLE_SCHEMAS

# the columns the dedup passes read: lineage the keep rule and near dedup need, and the text fields
DEDUP_COLUMNS = {
    "instruct": ["id", "source", "lang", "instruction", "input", "output"],
    "text": ["id", "source", "lang", "text"],
    "chat": ["id", "source", "lang", "messages"],
}


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


PART_ROWS = 32_768  # about this many rows per write partition (an id range), sorted in Arrow at once


def id_ranges(rows: int) -> list[tuple[str | None, str | None]]:
    """Contiguous id ranges (lo inclusive, hi exclusive, None open) that cut ``rows`` uniformly spread
    ids (hex digests) into parts of about PART_ROWS rows; in order, so that their concatenation is id
    order."""
    parts = max(1, -(-rows // PART_ROWS))
    bounds: list[str | None] = [f"{(i << 32) // parts:08x}" for i in range(1, parts)]
    return list(zip([None, *bounds], [*bounds, None], strict=True))


def _sorted(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    t = pa.concat_tables([pa.Table.from_arrays(x.select(schema.names).columns, schema=schema) for x in tables])
    return t.take(pc.sort_indices(t, [("id", "ascending")])) if t.num_rows > 1 else t


_DUP_BATCH = 4096  # duplicates turned into reject rows at a time


def _gone_in(gone_sorted: list[str], lo: str | None, hi: str | None) -> pa.Array:
    """The duplicate ids within [lo, hi), from the sorted list of all of them."""
    a = 0 if lo is None else bisect.bisect_left(gone_sorted, lo)
    b = len(gone_sorted) if hi is None else bisect.bisect_left(gone_sorted, hi)
    return pa.array(gone_sorted[a:b], pa.string())


def _range(
    work: UnitStore, clean_keys: list[str], table: str, lo: str | None, hi: str | None, columns: list[str] | None = None
) -> pa.Table | None:
    """One id range of ``table`` from every unit, concatenated (unit schema, or ``columns``; not sorted)."""
    parts = [
        t for key in clean_keys if (t := work.id_range("clean", key, table, lo, hi, columns)) is not None and t.num_rows
    ]
    return pa.concat_tables(parts) if parts else None


def output_rows(work: UnitStore, clean_keys: list[str], table: str, gone: dict, total: int) -> Iterator[pa.Table]:
    """The kept rows of ``table`` across all units, minus the duplicates, in id order: one Arrow table per
    id range (each range read from every unit, its duplicates dropped and its rows sorted at once)."""
    schema, gone_sorted = TABLE_SCHEMAS[table], sorted(gone)
    for lo, hi in id_ranges(total):
        t = _range(work, clean_keys, table, lo, hi, list(schema.names))  # not the originals: rows only
        if t is None:
            continue
        ids = _gone_in(gone_sorted, lo, hi)
        if len(ids):
            t = t.filter(pc.invert(pc.is_in(t.column("id"), value_set=ids)))
        if t.num_rows:
            yield _sorted([t], schema)


def _duplicate(row: Row, found: tuple[str, str, float | None]) -> Row:
    reason, of, sim = found
    detail = None if sim is None else f"similarity={sim:.4f}"
    return reject(row, "dedup", reason, detail, None, duplicate_of=of)


def output_rejects(work: UnitStore, clean_keys: list[str], gone: dict, total: int) -> Iterator[pa.Table]:
    """Every reject of the build (parse, filter, licence, dedup), in id order, one Arrow table per id
    range; a duplicate becomes a reject from its unit's row (the record it keeps is the cleaned row's
    original fields)."""
    schema, gone_sorted = TABLE_SCHEMAS["rejects"], sorted(gone)
    for lo, hi in id_ranges(total):
        parts = []
        t = _range(work, clean_keys, "rejects", lo, hi)
        if t is not None:
            parts.append(t)
        ids = _gone_in(gone_sorted, lo, hi)
        for table in DATA_TABLES if len(ids) else ():
            t = _range(work, clean_keys, table, lo, hi)
            if t is None:
                continue
            dups = t.filter(pc.is_in(t.column("id"), value_set=ids))
            del t
            for at in range(0, dups.num_rows, _DUP_BATCH):  # as Python rows a batch at a time
                rows = [_duplicate(r, gone[r["id"]]) for r in rows_of(dups.slice(at, _DUP_BATCH))]
                parts.append(pa.Table.from_pylist(rows, schema=schema))
        if parts:
            yield _sorted(parts, schema)


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
    splits = {t: split_counts(work, clean_keys, t, gone, validation, seed) for t in DATA_TABLES}
    rejects = reject_count(work, clean_keys, gone)
    return BuildRows(
        kept={t: (lambda t=t: output_rows(work, clean_keys, t, gone, sum(splits[t].values()))) for t in DATA_TABLES},
        split_counts=splits,
        rejects=lambda: output_rejects(work, clean_keys, gone, rejects),
        reject_count=rejects,
    )
