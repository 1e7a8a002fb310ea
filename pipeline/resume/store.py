"""Completion records that make a build resumable: the work directory ``.NAME.work`` beside DIR.

Every unit of work (reading and cleaning one input file, exact dedup, near dedup) stores its result under
``.NAME.work/STAGE/KEY/`` where KEY hashes everything the result depends on: the input file's sha256, the
parts of the recipe the stage reads, the keys of the units it consumes and the code version (a hash of
the pipeline's own source files). A unit directory is written under a temporary name and renamed into
place when complete, so a unit either exists whole or not at all; a rerun after a crash (SIGKILL
included) loads the finished units and computes only the rest. A changed input or recipe setting changes
the keys of exactly the units that depend on it. After a successful build, units the build did not use
are removed, so the work directory holds one build's worth of data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.records import ORIGINAL, Row, table_of, to_json
from schemas.columns import FEW_VALUES, TABLE_SCHEMAS

_PACKAGES = ("pipeline", "schemas")


@cache
def code_version() -> str:
    """sha256 over the pipeline's Python sources: a code change invalidates every cached unit."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for pkg in _PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def unit_key(*parts) -> str:
    """A 128-bit hex key over the code version and JSON-able parts."""
    payload = json.dumps([code_version(), *parts], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _with_original(schema: pa.Schema) -> pa.Schema:
    return schema.append(pa.field(ORIGINAL, pa.string()))


# kept rows may carry their pre-normalisation fields (ORIGINAL) so that a later reject stays verbatim
_UNIT_SCHEMAS = {
    "instruct": _with_original(TABLE_SCHEMAS["instruct"]),
    "text": _with_original(TABLE_SCHEMAS["text"]),
    "chat": _with_original(TABLE_SCHEMAS["chat"]),
    "rejects": TABLE_SCHEMAS["rejects"],
}


TO_ARROW_ROWS = 2048  # rows turned into Arrow at a time by save (their Python objects freed as they go)


def _to_arrow(rows: list[Row], schema: pa.Schema, release: bool = False) -> pa.Table:
    """``rows`` as an Arrow table of ``schema``, TO_ARROW_ROWS at a time; ``release``: each row's place in
    ``rows`` is set to None once converted, so that a unit's rows are not held twice (as Python objects and
    as Arrow) while the whole unit is converted."""
    names = set(schema.names)
    chunks = []
    for at in range(0, len(rows), TO_ARROW_ROWS):
        out = []
        for r in rows[at : at + TO_ARROW_ROWS]:
            extra = set(r) - names
            if extra:  # a row this store cannot give back unchanged: a bug, never silently dropped
                raise ValueError(f"row {r.get('id')}: columns {sorted(extra)} are not in the unit schema")
            if r.get(ORIGINAL) is not None:
                r = {**r, ORIGINAL: to_json(r[ORIGINAL])}  # the record a reject keeps, as it will keep it
            out.append(r)
        chunks.append(pa.Table.from_pylist(out, schema=schema))
        del out
        if release:
            rows[at : at + TO_ARROW_ROWS] = [None] * len(chunks[-1])
    if not chunks:
        return schema.empty_table()
    # not combined into one chunk: that would copy the whole unit once more (row groups do not follow chunks)
    return pa.concat_tables(chunks)


def rows_of(table: pa.Table) -> list[Row]:
    """A unit table's rows as the row dicts the stages use (ORIGINAL parsed back)."""
    return _from_arrow(table)


def _from_arrow(table: pa.Table) -> list[Row]:
    rows = table.to_pylist()
    if ORIGINAL in table.column_names:
        for r in rows:
            orig = r.pop(ORIGINAL)
            if orig is not None:
                r[ORIGINAL] = json.loads(orig)
    return rows


# rows per Parquet row group in a unit: a reader decodes a whole row group at a time, and the writer
# reads an id range of every unit through the groups' id statistics, so small groups waste little
UNIT_ROW_GROUP = 256  # at 2M documents (136 units) a range holds ~240 rows of each unit


def work_root(out_dir: Path) -> Path:
    """``.NAME.work`` beside the output directory NAME."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.work"


_FOOTERS = 4096  # unit files whose schema and id bounds per row group a store keeps (a few KB each)
# The writer's id ranges run in order and are finer than a unit's row groups (at 1M documents ~113 rows of a
# unit per range, 512-row groups), so a range starts in the group the range before ended in: the rows of that
# group after each unit's range are kept, up to this many bytes in all (beyond, groups are decoded again)
LAST_GROUP_BYTES = 64 << 20


def copied_rows(t: pa.Table, start: int, stop: int) -> pa.Table:
    """Rows start..stop of ``t`` in buffers of their own (a slice would keep all of ``t`` alive): each
    column's slice concatenated into one array, which copies the slice's bytes at memcpy speed (a take of
    the same rows gathers them one by one: ~20x slower on the writer's text columns)."""
    part = t.slice(start, stop - start)
    return pa.Table.from_arrays(
        [pa.concat_arrays(c.chunks) if c.num_chunks else pa.array([], c.type) for c in part.columns],
        schema=t.schema,
    )


class UnitStore:
    def __init__(self, out_dir: Path):
        self.root = work_root(out_dir)
        # path -> (Arrow schema, (min, max) id per row group or None) for id_range, read once; units never
        # change under their key, so an entry stays right while its unit exists
        self._footers: OrderedDict[Path, tuple[pa.Schema, list[tuple[str, str] | None]] | None] = OrderedDict()
        self._last: dict[tuple, tuple[int, pa.Table, str]] = {}  # (path, columns) -> (group, its rows from id on, id)
        self._last_bytes = 0
        self._lock = threading.Lock()  # the writer reads several units at once, from threads

    def drop_cached_groups(self) -> None:
        """Forget the groups id_range kept (a pass over one table is done)."""
        with self._lock:
            self._last.clear()
            self._last_bytes = 0

    def _keep_last(self, key: tuple, entry: tuple[int, pa.Table, str] | None) -> None:
        """Keep (group, its rows from ``from_id`` on, from_id) for ``key``'s next range; None: forget it."""
        with self._lock:
            old = self._last.pop(key, None)
            if old is not None:
                self._last_bytes -= old[1].nbytes
            if entry is not None and self._last_bytes + entry[1].nbytes <= LAST_GROUP_BYTES:
                self._last[key] = entry
                self._last_bytes += entry[1].nbytes

    def _footer(self, path: Path):
        """A unit file's schema and id bounds per row group (None when there is no such file), kept in an
        LRU. Not the parsed footer itself: that is ~150 KB in memory for a unit of 20k rows (26 KB on disk),
        which made ~100 MB at 2M documents and grew with the corpus; parsing it again for a read costs
        ~0.1 ms."""
        with self._lock:
            if path in self._footers:
                self._footers.move_to_end(path)
                return self._footers[path]
        entry = None
        if path.is_file():
            md = pq.ParquetFile(path).metadata
            col = md.schema.to_arrow_schema().get_field_index("id")
            bounds = []
            for g in range(md.num_row_groups):
                st = md.row_group(g).column(col).statistics
                bounds.append((st.min, st.max) if st is not None and st.has_min_max else None)
            entry = (md.schema.to_arrow_schema(), bounds)
        with self._lock:
            self._footers[path] = entry
            if len(self._footers) > _FOOTERS:
                self._footers.popitem(last=False)
        return entry

    def scratch(self) -> Path:
        """A folder for a unit's temporary files (near dedup's spilled signatures), inside the store so
        that they land on the output's filesystem, not in a small system temp folder; swept after a run."""
        path = self.root / "scratch"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def unit_path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def has(self, stage: str, key: str) -> bool:
        return (self.unit_path(stage, key) / "unit.json").is_file()

    def info(self, stage: str, key: str) -> dict:
        return json.loads((self.unit_path(stage, key) / "unit.json").read_text(encoding="utf-8"))

    def rows(self, stage: str, key: str, table: str | None = None) -> list[Row]:
        """The unit's rows, table by table (order within a table kept); ``table`` picks one table."""
        info = self.info(stage, key)
        rows: list[Row] = []
        for name in info["tables"] if table is None else [table]:
            if name in info["tables"]:
                rows += _from_arrow(pq.read_table(self.unit_path(stage, key) / f"{name}.parquet"))
        return rows

    def iter_rows(
        self, stage: str, key: str, table: str, columns: list[str] | None = None, batch: int = 4096
    ) -> Iterator[Row]:
        """The rows of one table of a unit (sorted by id), a batch at a time; ``columns`` picks some."""
        path = self.unit_path(stage, key) / f"{table}.parquet"
        if not path.is_file():
            return
        for b in pq.ParquetFile(path).iter_batches(batch_size=batch, columns=columns):
            yield from _from_arrow(pa.Table.from_batches([b]))

    def save(
        self, stage: str, key: str, rows: list[Row], info: dict, extra: dict[str, pa.Table] | None = None
    ) -> None:
        """Write the unit whole under a temporary name, then rename it into place; each table's rows are
        sorted by id, so that the build's writer can read id ranges of every unit through row-group statistics.
        ``rows`` is handed over: the list is emptied, and each row freed once it is in Arrow (a caller that
        keeps no other reference to them holds a unit once, not twice)."""
        tables: dict[str, list[Row]] = {}
        for r in rows:
            tables.setdefault(table_of(r), []).append(r)
        rows.clear()
        arrow = {}
        for name, part in tables.items():
            part.sort(key=lambda r: r["id"])
            arrow[name] = _to_arrow(part, _UNIT_SCHEMAS[name], release=True)
            part.clear()
        del tables
        self.save_tables(stage, key, {**arrow, **(extra or {})}, info, whole=frozenset(extra or ()))

    def save_tables(
        self,
        stage: str,
        key: str,
        tables: dict[str, pa.Table],
        info: dict,
        arrays: dict[str, np.ndarray] | None = None,
        whole: frozenset[str] = frozenset(),
    ) -> None:
        """Write Arrow tables (and numpy arrays, as .npy) as a unit, under a temporary name renamed into
        place when whole. A table is cut into row groups of UNIT_ROW_GROUP rows for the writer's id-range
        reads, except those named in ``whole``: one group (a clean unit's keys, which exact dedup reads
        whole once per bucket: a small group costs each read ~0.1 ms)."""
        final = self.unit_path(stage, key)
        tmp = final.parent / f".{key}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for name, table in tables.items():
            path = tmp / f"{name}.parquet"
            stats = ["id"] if "id" in table.column_names else False  # the writer's id ranges need only these;
            # min/max of every text column made each footer ~65 KB, parsed again at every range read
            pq.write_table(
                table,
                path,
                compression="zstd",
                row_group_size=max(table.num_rows, 1) if name in whole else UNIT_ROW_GROUP,
                write_statistics=stats,
                use_dictionary=[c for c in table.column_names if c in FEW_VALUES],
            )
            _fsync(path)
        for name, array in (arrays or {}).items():
            np.save(tmp / f"{name}.npy", array)
            _fsync(tmp / f"{name}.npy")
        meta = {**info, "tables": sorted(tables)}
        (tmp / "unit.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        _fsync(tmp / "unit.json")
        if final.exists():  # another worker finished the same unit first: same key, same content
            shutil.rmtree(tmp)
            return
        os.replace(tmp, final)

    def id_range(
        self, stage: str, key: str, name: str, lo: str | None, hi: str | None, columns: list[str] | None = None
    ) -> pa.Table | None:
        """The rows of one table of a unit (stored sorted by id) with lo <= id < hi (None: open end),
        in id order; only the row groups whose id statistics overlap the range are read."""
        return self.file_id_range(self.unit_path(stage, key) / f"{name}.parquet", lo, hi, columns)

    def file_id_range(
        self, path: Path, lo: str | None, hi: str | None, columns: list[str] | None = None
    ) -> pa.Table | None:
        """:meth:`id_range` of any Parquet file sorted by id with id statistics (None when it is missing)."""
        footer = self._footer(path)
        if footer is None:
            return None
        schema, bounds = footer
        groups = [
            g
            for g, b in enumerate(bounds)  # no statistics (an empty group): read it to be safe
            if b is None or ((hi is None or b[0] < hi) and (lo is None or b[1] >= lo))
        ]
        if not groups:
            return schema.empty_table().select(columns) if columns else schema.empty_table()
        key = (path, None if columns is None else tuple(columns))
        last = self._last.get(key)
        parts, last_group = [], None
        if last is not None and last[0] == groups[0] and lo is not None and lo >= last[2]:
            parts.append(last[1])  # the rows of the group the range before ended in, from its end on
            last_group, groups = groups[0], groups[1:]
        if groups:
            f = pq.ParquetFile(path)
            if len(groups) > 1:
                parts.append(f.read_row_groups(groups[:-1], columns=columns))
            parts.append(f.read_row_group(groups[-1], columns=columns))
            last_group = groups[-1]
        t = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        # the rows are sorted by id: the range is one run of them, copied out (a slice would keep every
        # decoded group alive while the range is assembled from all units: memory would grow with units)
        ids = t.column("id")
        start = 0 if lo is None else pc.sum(pc.less(ids, lo)).as_py() or 0
        stop = t.num_rows if hi is None else pc.sum(pc.less(ids, hi)).as_py() or 0
        # kept for the next range: the last group's rows from this range's end on, copied (the whole group
        # would hold the rows read already too: that grew the writer's memory with the number of units)
        if hi is not None and stop < t.num_rows:
            self._keep_last(key, (last_group, copied_rows(t, stop, t.num_rows), hi))
        else:
            self._keep_last(key, None)
        return copied_rows(t, start, stop)

    def batches(self, stage: str, key: str, name: str, rows: int = 65_536) -> Iterator[pa.RecordBatch]:
        """One table of a unit as record batches of about ``rows`` rows (none when there is no such table)."""
        path = self.unit_path(stage, key) / f"{name}.parquet"
        if path.is_file():
            yield from pq.ParquetFile(path).iter_batches(batch_size=rows, use_threads=False)

    def table(self, stage: str, key: str, name: str, columns: list[str] | None = None) -> pa.Table | None:
        """One table of a unit as Arrow (None when the unit has no such table)."""
        path = self.unit_path(stage, key) / f"{name}.parquet"
        return pq.read_table(path, columns=columns) if path.is_file() else None

    def sweep(self, live: dict[str, set[str]]) -> int:
        """Remove unit directories (and leftover temporaries) not in ``live`` (stage -> keys)."""
        removed = 0
        if not self.root.exists():
            return 0
        for stage_dir in self.root.iterdir():
            if not stage_dir.is_dir():
                continue
            keep = live.get(stage_dir.name, set())
            for unit in stage_dir.iterdir():
                if unit.name not in keep:
                    shutil.rmtree(unit, ignore_errors=True)
                    removed += 1
        return removed

    def clear(self) -> None:
        """Remove every unit; the output's lock file (pipeline/sink/outdir.py) stays, it is held."""
        if not self.root.exists():
            return
        for entry in self.root.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name != "lock":
                entry.unlink()


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())
