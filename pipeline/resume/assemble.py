"""Streams over the finished units of a build, so that no process holds the corpus.

- ``kept_rows``: the rows the cleaning kept, table by table and unit by unit (for the dedup passes,
  which need only their text columns and do not care about order);
- ``dropped``: the duplicates the dedup units found, as sorted numpy columns (``Dropped``; near dedup's
  mask of the exact duplicates); ``Duplicates``: the same read an id range at a time (the writer's);
- ``output_rows`` / ``output_rejects``: what the build writes, in id order, as Arrow tables: ids are
  uniform hashes, so the id space is cut into ranges of about PART_ROWS rows; each range is read from
  every unit (units are sorted by id, so row-group statistics skip the rest) and sorted at once in Arrow;
  duplicates become rejects here, from their unit's row (the record they keep is the cleaned row's
  original fields, as before), made while the kept rows are read and spilled (``DuplicateSpill``);
- ``split_counts``: rows per split of a table, from the id column alone (the writer must know how
  many shards there will be before it writes the first).

Memory: ``dropped`` holds about 75 bytes per duplicate; the writer's streams hold one id range (about
PART_ROWS rows, twice while it is sorted), that range's duplicates, and one row group per unit being read.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.processes import KEEP_FREE, release_memory
from pipeline.records import ORIGINAL, Row, json_records, reject, to_json
from pipeline.resume.store import UnitStore
from pipeline.sink.output import BuildRows
from pipeline.sink.split import split_of
from schemas.columns import DATA_TABLES, LINEAGE_NAMES, TABLE_SCHEMAS

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


class Dropped:
    """The duplicates the dedup units found, as sorted numpy columns (about 75 bytes a duplicate, not a
    Python dict entry of ~800): ``ids`` (S32, sorted), ``of`` (the id each duplicates, S32), ``sim``
    (near similarity, NaN for exact) and ``near`` (duplicate_near, else duplicate_exact)."""

    def __init__(self, ids: np.ndarray, of: np.ndarray, sim: np.ndarray, near: np.ndarray):
        order = np.argsort(ids, kind="stable")
        self.ids = ids[order]
        del ids  # the caller's arrays are dropped one at a time: one column is copied twice, never all four
        self.of = of[order]
        del of
        self.sim, self.near = sim[order], near[order]

    def __len__(self) -> int:
        return len(self.ids)

    def mask(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` (S32) are duplicates."""
        if not len(self.ids) or not len(ids):
            return np.zeros(len(ids), bool)
        at = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return self.ids[at] == ids

    def between(self, lo: str | None, hi: str | None) -> slice:
        """The positions of the duplicates with lo <= id < hi (None: open end)."""
        a = 0 if lo is None else int(np.searchsorted(self.ids, lo.encode()))
        b = len(self.ids) if hi is None else int(np.searchsorted(self.ids, hi.encode()))
        return slice(a, b)

    def ids_between(self, lo: str | None, hi: str | None) -> pa.Array:
        return pa.array(self.ids[self.between(lo, hi)].tolist(), pa.binary()).cast(pa.string())

    def found(self, id: str) -> tuple[str, str, float | None]:
        """(reason, duplicate_of, similarity) of one duplicate."""
        i = int(np.searchsorted(self.ids, id.encode()))
        sim = float(self.sim[i])
        reason = "duplicate_near" if self.near[i] else "duplicate_exact"
        return reason, self.of[i].decode(), None if np.isnan(sim) else sim


def fixed_width(column: pa.Array | pa.ChunkedArray, width: int) -> np.ndarray:
    """A string or binary column whose values are all ``width`` bytes long (ids: 32 hex digits; dedup
    keys: 16 bytes) as a numpy ``S{width}`` array, copied straight out of the Arrow buffers: no Python
    string per value (a near dedup's 800k duplicates made 120 MB of them, and kept the heap that high).
    A column with nulls or other lengths goes through Python values (``np.array(..., "S{width}")``),
    which gives the same array."""
    dtype = np.dtype(f"S{width}")
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = [np.empty(0, dtype)]
    for a in chunks:
        n = len(a)
        if not n:
            continue
        bufs = a.buffers()
        if a.null_count:
            parts.append(np.array(a.to_pylist(), dtype))
        elif pa.types.is_fixed_size_binary(a.type) and a.type.byte_width == width:
            parts.append(np.frombuffer(bufs[1], dtype, count=n, offset=a.offset * width).copy())
        elif pa.types.is_string(a.type) or pa.types.is_binary(a.type):
            off = np.frombuffer(bufs[1], np.int32, count=n + 1, offset=a.offset * 4)
            if np.all(np.diff(off) == width):
                parts.append(np.frombuffer(bufs[2], dtype, count=n, offset=int(off[0])).copy())
            else:
                parts.append(np.array(a.to_pylist(), dtype))
        else:
            parts.append(np.array(a.to_pylist(), dtype))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def dropped(work: UnitStore, passes: dict[str, list[str]]) -> Dropped:
    """Every duplicate the given dedup units (stage -> unit keys) found."""
    ids, of, sim, near = [], [], [], []
    for stage, keys in passes.items():
        for key in keys:
            # in batches: near dedup's one unit holds every near duplicate, and a whole-table read of it
            # costs three times its size for the moment, and the heap stays there
            for batch in work.batches(stage, key, "duplicates"):
                ids.append(fixed_width(batch.column("id"), 32))
                of.append(fixed_width(batch.column("duplicate_of"), 32))
                sim.append(batch.column("similarity").to_numpy(zero_copy_only=False).astype(np.float64))
                near.append(np.full(batch.num_rows, stage != "exact"))
    if not ids:
        return Dropped(np.empty(0, "S32"), np.empty(0, "S32"), np.empty(0), np.empty(0, bool))
    columns = [np.concatenate(ids)]
    del ids
    columns.append(np.concatenate(of))
    del of
    return Dropped(*columns, np.concatenate(sim), np.concatenate(near))


class Duplicates:
    """The duplicates of the dedup units the writer reads (stage -> unit keys), an id range at a time:
    each dedup unit is stored in id order with id statistics, so :meth:`between` reads the range's rows of
    each and nothing else. The writer's memory holds one range's duplicates, not the build's (a map of
    all of them is 75 bytes a duplicate: 29 GB at 400M duplicates, and its read kept the heap higher)."""

    def __init__(self, work: UnitStore, passes: dict[str, list[str]]):
        self.work, self.passes = work, passes
        files = [(stage != "exact", work.unit_path(stage, key) / "duplicates.parquet") for stage, keys in passes.items() for key in keys]
        self.files = [(near, path) for near, path in files if path.is_file()]
        self.total = sum(pq.ParquetFile(path).metadata.num_rows for _, path in self.files)

    def __len__(self) -> int:
        return self.total

    def near_clusters(self) -> Counter:
        """Near duplicates per kept row -> kept rows, as the near dedup units counted them."""
        counts: Counter = Counter()
        for stage, keys in self.passes.items():
            for key in keys if stage == "near" else ():
                counts.update({size: rows for size, rows in self.work.info(stage, key)["clusters"]})
        return counts

    def between(self, lo: str | None, hi: str | None) -> Dropped:
        """The duplicates with lo <= id < hi (None: open end) as a :class:`Dropped`."""
        ids, of, sim, near = [], [], [], []
        for is_near, path in self.files:
            t = self.work.file_id_range(path, lo, hi, ["id", "duplicate_of", "similarity"])
            if t is None or not t.num_rows:
                continue
            ids.append(fixed_width(t.column("id"), 32))
            of.append(fixed_width(t.column("duplicate_of"), 32))
            sim.append(t.column("similarity").to_numpy(zero_copy_only=False).astype(np.float64))
            near.append(np.full(t.num_rows, is_near))
        if not ids:
            return Dropped(np.empty(0, "S32"), np.empty(0, "S32"), np.empty(0), np.empty(0, bool))
        return Dropped(np.concatenate(ids), np.concatenate(of), np.concatenate(sim), np.concatenate(near))

    def split_counts(self, table: str, validation: float, seed: int) -> Counter:
        """Duplicates of ``table`` per split, streamed through the dedup units' (id, table) columns."""
        counts: Counter = Counter()
        for _, path in self.files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=["id", "table"], use_threads=False):
                mine = pc.equal(batch.column("table"), table)
                counts.update(split_of(i, validation, seed) for i in batch.column("id").filter(mine).to_pylist())
        return counts


PART_ROWS = 32_768  # about this many rows per write partition (an id range), sorted in Arrow at once
PART_BYTES = 32 << 20  # and about this many bytes (uncompressed, in the units), for long documents


def id_ranges(rows: int, nbytes: int = 0) -> list[tuple[str | None, str | None]]:
    """Contiguous id ranges (lo inclusive, hi exclusive, None open) that cut ``rows`` uniformly spread
    ids (hex digests) of ``nbytes`` into parts of about PART_ROWS rows and PART_BYTES bytes at most; in
    order, so that their concatenation is id order (the output does not depend on the cut)."""
    parts = max(1, -(-rows // PART_ROWS), -(-nbytes // PART_BYTES))
    bounds: list[str | None] = [f"{(i << 32) // parts:08x}" for i in range(1, parts)]
    return list(zip([None, *bounds], [*bounds, None], strict=True))


def _sorted(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    t = pa.concat_tables([pa.Table.from_arrays(x.select(schema.names).columns, schema=schema) for x in tables])
    return t.take(pc.sort_indices(t, [("id", "ascending")])) if t.num_rows > 1 else t


_DUP_BATCH = 4096  # duplicates turned into reject rows at a time


# threads that read one id range out of the units at once (Parquet decoding and Arrow's copies run outside
# the GIL): the writer's reading thread was its bottleneck, with the other core half idle
READ_THREADS = 2


def _range(
    work: UnitStore,
    clean_keys: list[str],
    table: str,
    lo: str | None,
    hi: str | None,
    columns: list[str] | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> pa.Table | None:
    """One id range of ``table`` from every unit, concatenated in unit order (unit schema, or ``columns``;
    not sorted); with ``pool``, the units are read by its threads."""

    def read(key: str) -> pa.Table | None:
        return work.id_range("clean", key, table, lo, hi, columns)

    tables = pool.map(read, clean_keys) if pool is not None and len(clean_keys) > 1 else map(read, clean_keys)
    parts = [t for t in tables if t is not None and t.num_rows]
    return pa.concat_tables(parts) if parts else None


def _reading_pool() -> ThreadPoolExecutor | None:
    return ThreadPoolExecutor(READ_THREADS, thread_name_prefix="unit-read") if READ_THREADS > 1 else None


def unit_bytes(work: UnitStore, clean_keys: list[str], table: str, columns: list[str] | None = None) -> int:
    """Uncompressed bytes of ``table`` (its ``columns``, or all) over the units, from Parquet metadata."""
    n = 0
    for key in clean_keys:
        path = work.unit_path("clean", key) / f"{table}.parquet"
        if not path.is_file():
            continue
        md = pq.ParquetFile(path).metadata
        names = [md.schema.column(j).path.split(".")[0] for j in range(md.num_columns)]
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            n += sum(rg.column(j).total_uncompressed_size for j in range(md.num_columns) if not columns or names[j] in columns)
    return n


class DuplicateSpill:
    """The duplicates' rejects, made by :func:`output_rows` from the range it has just read (so that
    :func:`output_rejects` need not read every data table of every unit a second time), spilled to one
    Parquet file per table in the store's scratch folder: written in id order, a row group per range, with
    id statistics, so that any id range of them is read like a unit's. A table not spilled whole (its kept
    rows not read to the end) is read the old way. Disk: the duplicates' rejects, once."""

    def __init__(self, work: UnitStore):
        self.work = work
        self.done: set[str] = set()
        self._paths: dict[str, Path] = {}
        self._writers: dict[str, pq.ParquetWriter] = {}

    def add(self, table: str, rejects: pa.Table) -> None:
        if not rejects.num_rows:
            return
        if table not in self._writers:
            path = self.work.scratch() / f"dups-{os.getpid()}-{id(self):x}-{table}.parquet"
            self._paths[table] = path
            self._writers[table] = pq.ParquetWriter(
                path, TABLE_SCHEMAS["rejects"], compression="lz4", write_statistics=["id"]
            )
        self._writers[table].write_table(rejects, row_group_size=1 << 30)  # given in id order

    def finish(self, table: str) -> None:
        if table in self._writers:
            self._writers.pop(table).close()
        self.done.add(table)

    def id_range(self, table: str, lo: str | None, hi: str | None) -> pa.Table | None:
        path = self._paths.get(table)
        return None if path is None else self.work.file_id_range(path, lo, hi)

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()
        for path in self._paths.values():
            path.unlink(missing_ok=True)
        self._paths.clear()
        self.done.clear()


def output_rows(
    work: UnitStore,
    clean_keys: list[str],
    table: str,
    gone: Duplicates,
    total: int,
    nbytes: int = 0,
    spill: DuplicateSpill | None = None,
) -> Iterator[pa.Table]:
    """The kept rows of ``table`` across all units, minus the duplicates, in id order: one Arrow table per
    id range (each range read from every unit, its duplicates dropped and its rows sorted at once); with
    ``spill``, the duplicates' rejects are made from the same read (their original fields read with it)."""
    schema = TABLE_SCHEMAS[table]
    columns = [*schema.names, ORIGINAL] if spill is not None else list(schema.names)
    work.drop_cached_groups()
    with _reading_pool() or nullcontext() as pool:
        for lo, hi in id_ranges(total, nbytes):
            t = _range(work, clean_keys, table, lo, hi, columns, pool)
            if t is None:
                continue
            here = gone.between(lo, hi)
            ids = here.ids_between(None, None)
            # one sort of the range's ids; the kept rows and the duplicates are each copied once, in id
            # order, by one take (the kept ones without the original fields)
            order = pc.sort_indices(t.column("id"))
            kept = order
            if len(ids):
                dup = pc.take(pc.is_in(t.column("id"), value_set=ids), order)
                if spill is not None:
                    dups = t.take(order.filter(dup))  # the spill file is in id order
                    for at in range(0, dups.num_rows, _DUP_BATCH):
                        spill.add(table, duplicate_rejects(dups.slice(at, _DUP_BATCH), here))
                    del dups
                kept = order.filter(pc.invert(dup))
            if len(kept):
                yield pa.Table.from_arrays(t.select(schema.names).take(kept).columns, schema=schema)
            del t, order, kept
            release_memory(KEEP_FREE)  # freed ranges back to the system (past KEEP_FREE): the peak is about one range
    if spill is not None:
        spill.finish(table)


def _duplicate(row: Row, found: tuple[str, str, float | None]) -> Row:
    """The reference for :func:`duplicate_rejects`: one duplicate's reject from its row dict."""
    reason, of, sim = found
    detail = None if sim is None else f"similarity={sim:.4f}"
    return reject(row, "dedup", reason, detail, None, duplicate_of=of)


def duplicate_rejects(dups: pa.Table, gone: Dropped) -> pa.Table:
    """The rejects of the duplicate rows ``dups`` (a unit table's rows, ``_original`` included), built by
    column: lineage as it is, reason / duplicate_of / detail from ``gone``, and the record (the cleaned
    row's original fields, else its own, as compact JSON) serialised once per row; no row dicts. Equal to
    :func:`_duplicate` row by row (tests/test_streaming.py)."""
    schema = TABLE_SCHEMAS["rejects"]
    n = dups.num_rows
    ids = fixed_width(dups.column("id"), 32)
    at = np.searchsorted(gone.ids, ids)
    near, sim = gone.near[at], gone.sim[at]
    fields = dups.select([c for c in dups.column_names if c not in LINEAGE_NAMES and not c.startswith("_")])
    if ORIGINAL in dups.column_names:  # stored as to_json made it (or "{}": no original fields)
        original = dups.column(ORIGINAL)
        own_needed = pc.fill_null(pc.equal(original, "{}"), True)
    else:
        original, own_needed = pa.nulls(n, pa.string()), pa.array(np.ones(n, bool))
    own = json_records(fields) if pc.any(own_needed).as_py() else original  # string columns: in Arrow
    if own is None:  # a conversation's turns: the row's own fields one row at a time
        rows, needed = fields.to_pylist(), own_needed.to_pylist()
        own = pa.array([to_json(r) if k else None for r, k in zip(rows, needed, strict=True)], pa.string())
    columns = {name: dups.column(name) for name in LINEAGE_NAMES}
    columns.update(
        stage=pa.array(["dedup"] * n, pa.string()),
        reason=pc.if_else(pa.array(near, pa.bool_()), "duplicate_near", "duplicate_exact"),
        detail=_similarity_details(sim),
        duplicate_of=pa.array(gone.of[at], pa.binary()).cast(pa.string()),
        record=pc.if_else(own_needed, own, original),
    )
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _similarity_details(sim: np.ndarray) -> pa.Array:
    """``similarity=0.9375`` per value (null for NaN: an exact duplicate), each distinct value formatted once."""
    values, inverse = np.unique(np.where(np.isnan(sim), -1.0, sim), return_inverse=True)
    texts = pa.array([None if x == -1.0 else f"similarity={x:.4f}" for x in values.tolist()], pa.string())
    return texts.take(pa.array(inverse.reshape(-1), pa.int64()))


def output_rejects(
    work: UnitStore, clean_keys: list[str], gone: Duplicates, total: int, nbytes: int = 0, spill: DuplicateSpill | None = None
) -> Iterator[pa.Table]:
    """Every reject of the build (parse, filter, licence, dedup), in id order, one Arrow table per id
    range; a duplicate becomes a reject from its unit's row (the record it keeps is the cleaned row's
    original fields), made by :func:`output_rows` when it spilled that table, else here."""
    try:
        yield from _output_rejects(work, clean_keys, gone, total, nbytes, spill)
    finally:
        if spill is not None:
            spill.close()


def _output_rejects(
    work: UnitStore, clean_keys: list[str], gone: Duplicates, total: int, nbytes: int, spill: DuplicateSpill | None
) -> Iterator[pa.Table]:
    schema = TABLE_SCHEMAS["rejects"]
    work.drop_cached_groups()
    with _reading_pool() or nullcontext() as pool:
        for lo, hi in id_ranges(total, nbytes):
            parts = []
            t = _range(work, clean_keys, "rejects", lo, hi, None, pool)
            if t is not None:
                parts.append(t)
            here = gone.between(lo, hi)
            ids = here.ids_between(None, None)
            for table in DATA_TABLES if len(ids) else ():
                if spill is not None and table in spill.done:
                    t = spill.id_range(table, lo, hi)
                    if t is not None and t.num_rows:
                        parts.append(t)
                    continue
                t = _range(work, clean_keys, table, lo, hi, None, pool)
                if t is None:
                    continue
                dups = t.filter(pc.is_in(t.column("id"), value_set=ids))
                del t
                for at in range(0, dups.num_rows, _DUP_BATCH):
                    parts.append(duplicate_rejects(dups.slice(at, _DUP_BATCH), here))
            if parts:
                yield _sorted(parts, schema)
            del parts
            release_memory(KEEP_FREE)


def split_counts(
    work: UnitStore, clean_keys: list[str], table: str, gone: Duplicates, validation: float, seed: int
) -> Counter:
    """Kept rows of ``table`` per split: every cleaned row's split, less the duplicates' (each duplicate
    is one of the rows, and its dedup unit names its table), so no map of the duplicates is needed."""
    counts: Counter = Counter()
    for key in clean_keys:
        t = work.table("clean", key, table, ["id"])
        if t is not None and t.num_rows:
            counts.update(split_of(i, validation, seed) for i in t.column("id").to_pylist())
    return counts - gone.split_counts(table, validation, seed)


def reject_count(work: UnitStore, clean_keys: list[str], gone: Duplicates) -> int:
    n = len(gone)
    for key in clean_keys:
        path = work.unit_path("clean", key) / "rejects.parquet"
        n += pq.ParquetFile(path).metadata.num_rows if path.is_file() else 0
    return n


def build_rows(work: UnitStore, clean_keys: list[str], gone: Duplicates, validation: float, seed: int) -> BuildRows:
    """The writer's streams over the clean units, minus the duplicates in ``gone``."""
    splits = {t: split_counts(work, clean_keys, t, gone, validation, seed) for t in DATA_TABLES}
    rejects = reject_count(work, clean_keys, gone)
    # bytes: the ranges of long documents hold fewer rows; counted over the columns each pass reads (the kept
    # pass reads the original fields too, for the duplicates' rejects; a duplicate's reject holds both)
    nbytes = {t: unit_bytes(work, clean_keys, t, [*TABLE_SCHEMAS[t].names, ORIGINAL]) for t in DATA_TABLES}
    reject_bytes = unit_bytes(work, clean_keys, "rejects") + (sum(unit_bytes(work, clean_keys, t) for t in DATA_TABLES) if len(gone) else 0)
    spill = DuplicateSpill(work)  # the kept pass makes the duplicates' rejects; the rejects pass reads them
    return BuildRows(
        kept={
            t: (lambda t=t: output_rows(work, clean_keys, t, gone, sum(splits[t].values()), nbytes[t], spill))
            for t in DATA_TABLES
        },
        split_counts=splits,
        rejects=lambda: output_rejects(work, clean_keys, gone, rejects, reject_bytes, spill),
        reject_count=rejects,
        near_clusters=gone.near_clusters(),
    )
