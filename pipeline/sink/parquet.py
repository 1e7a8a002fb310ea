"""Parquet shards with Hugging Face split names, written atomically and deterministically.

Rows are sorted by id before writing, so the bytes depend only on the rows, never on worker count or
arrival order. Each file is written under a temporary name, fsynced, then renamed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.failpoints import failpoint
from pipeline.records import Row


@dataclass(frozen=True)
class WrittenShard:
    path: str  # relative to the output directory
    table: str
    split: str | None
    rows: int
    sha256: str
    reused: bool = False  # found complete in a resumed staging directory, not written again


def temp_path(path: Path) -> Path:
    """The temporary name a file is written under before it is renamed to ``path`` (same folder)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def publish(tmp: Path, path: Path, finish) -> None:
    """Call ``finish(tmp)`` (write or close the temporary file), fsync it, then rename it to ``path``;
    the temporary file never outlives a failure."""
    try:
        finish(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        failpoint("write-tmp")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, fsync the result, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    publish(temp_path(path), path, write)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


ROW_GROUP = 50_000  # rows per Parquet row group in an output shard, at most
ROW_GROUP_BYTES = 32 << 20  # and at most this many bytes of text (``row_bytes``), so long documents
# make smaller groups: a group is held in memory until it is written, and readers load a group at once
_BATCH = 2048  # rows turned into one Arrow batch at a time while a shard fills


def row_bytes(table: pa.Table) -> np.ndarray:
    """Bytes of text per row: the UTF-8 lengths of its string and binary columns, and of the strings
    inside list<struct> columns (a conversation's turns). Depends only on the row, so a group cut by it
    is the same however the rows arrive."""
    out = np.zeros(table.num_rows, np.int64)
    for col in table.columns:
        for chunk, at in _chunks(col):
            if pa.types.is_string(chunk.type) or pa.types.is_binary(chunk.type) or pa.types.is_large_string(chunk.type):
                lengths = pc.fill_null(pc.binary_length(chunk), 0).to_numpy(zero_copy_only=False)
                out[at : at + len(chunk)] += lengths
            elif pa.types.is_list(chunk.type) and pa.types.is_struct(chunk.type.value_type):
                flat = pc.list_flatten(chunk)
                if not len(flat):
                    continue
                parents = pc.list_parent_indices(chunk).to_numpy()
                for i in range(flat.type.num_fields):
                    field = flat.field(i)
                    if pa.types.is_string(field.type):
                        lengths = pc.fill_null(pc.binary_length(field), 0).to_numpy(zero_copy_only=False)
                        out[at : at + len(chunk)] += np.bincount(parents, lengths, minlength=len(chunk)).astype(np.int64)
    return out


def _chunks(col: pa.ChunkedArray):
    at = 0
    for chunk in col.chunks:
        yield chunk, at
        at += len(chunk)


class ShardStream:
    """Rows in id order in, ``{table}/{split}-0000i-of-0000N.parquet`` shards of ``shard_rows`` rows out
    (zstd, row groups of ROW_GROUP rows or ROW_GROUP_BYTES of text, whichever comes first), each written
    as it fills; ``total`` (the row count, known in
    advance) fixes N. Rows come as Arrow tables (``add_table``) or one by one (``add``, turned into
    batches of _BATCH). Memory: one row group as Arrow, written at once when full, so a shard of any
    size streams.

    ``reuse``: a shard file that already exists is taken as it is (a resumed staging directory whose key
    says it holds exactly these rows; files appear only complete, by rename).
    """

    def __init__(self, out_dir: Path, table: str, split: str, total: int, schema: pa.Schema,
                 shard_rows: int, reuse: bool = False):
        self.out_dir, self.table, self.split, self.schema = out_dir, table, split, schema
        self.total, self.shard_rows, self.reuse = total, shard_rows, reuse
        self.n = (total + shard_rows - 1) // shard_rows
        self.written: list[WrittenShard] = []
        self.seen = 0
        self._rows: list[Row] = []  # rows given one by one, not yet in a batch
        self._batches: list[pa.Table] = []  # the row group being filled
        self._grouped = 0  # rows in _batches
        self._group_bytes = 0  # their row_bytes
        self._in_shard = 0  # rows of the current shard so far
        self._writer: pq.ParquetWriter | None = None
        self._tmp: Path | None = None
        self._skip = False  # the current shard exists already (reuse): its rows are only counted

    def _rel(self) -> str:
        return f"{self.table}/{self.split}-{len(self.written):05d}-of-{self.n:05d}.parquet"

    def add(self, row: Row) -> None:
        """One row (the next in id order); rows become Arrow batches of _BATCH."""
        self._rows.append(row)
        if len(self._rows) == _BATCH:
            self._flush_rows()

    def _flush_rows(self) -> None:
        if self._rows:
            rows, self._rows = self._rows, []
            self.add_table(pa.Table.from_pylist(rows, schema=self.schema))

    def add_table(self, table: pa.Table) -> None:
        """The next rows in id order, as an Arrow table in this stream's schema."""
        self._flush_rows() if self._rows else None
        while table.num_rows:
            if self._in_shard == 0:
                self._skip = self.reuse and (self.out_dir / self._rel()).is_file()
            take = min(table.num_rows, self.shard_rows - self._in_shard)
            full = False
            if not self._skip:
                take = min(take, ROW_GROUP - self._grouped)
                sizes = np.cumsum(row_bytes(table.slice(0, take)))
                fit = int(np.searchsorted(sizes, ROW_GROUP_BYTES - self._group_bytes, side="right"))
                if fit < take:  # the group is full by bytes (a row larger than the limit fills one alone)
                    take, full = max(fit, 0 if self._grouped else 1), True
                if take == 0:
                    self._write_group()
                    continue
                self._group_bytes += int(sizes[take - 1])
            piece, table = table.slice(0, take), table.slice(take)
            self.seen += take
            self._in_shard += take
            if not self._skip:
                self._batches.append(piece)
                self._grouped += take
                if full or self._grouped == ROW_GROUP:
                    self._write_group()
            if self._in_shard == self.shard_rows:
                self._finish()

    def _write_group(self) -> None:
        if not self._batches:
            return
        if self._writer is None:
            path = self.out_dir / self._rel()
            path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = temp_path(path)
            self._writer = pq.ParquetWriter(
                self._tmp, self.schema, compression="zstd", use_dictionary=True, write_statistics=True
            )
        # one chunk per column, so that the pages (and the bytes) do not depend on how the rows arrived
        group = pa.concat_tables(self._batches).combine_chunks()
        self._batches = []
        self._writer.write_table(pa.Table.from_arrays(group.columns, schema=self.schema), row_group_size=ROW_GROUP)
        self._batches, self._grouped, self._group_bytes = [], 0, 0

    def _finish(self) -> None:
        rel = self._rel()
        sub = self.split if self.table != "rejects" else None
        rows, self._in_shard = self._in_shard, 0
        path = self.out_dir / rel
        if self._skip:
            self.written.append(WrittenShard(rel, self.table, sub, rows, sha256_of(path), reused=True))
            return
        self._write_group()
        writer, tmp, self._writer, self._tmp = self._writer, self._tmp, None, None
        publish(tmp, path, lambda _tmp: writer.close())
        self.written.append(WrittenShard(rel, self.table, sub, rows, sha256_of(path)))
        failpoint("write-shard")

    def close(self) -> list[WrittenShard]:
        self._flush_rows()
        if self._in_shard:
            self._finish()
        if self.seen != self.total:  # the count the shard names were made from was wrong: a bug
            raise RuntimeError(f"{self.table}/{self.split}: {self.seen} rows written, {self.total} expected")
        return self.written


def write_shards(
    out_dir: Path,
    table: str,
    split: str,
    rows: list[Row],
    schema: pa.Schema,
    shard_rows: int,
    reuse: bool = False,
) -> list[WrittenShard]:
    """Write ``rows`` (any order: sorted by id here) as shards (see ShardStream); empty input writes nothing."""
    stream = ShardStream(out_dir, table, split, len(rows), schema, shard_rows, reuse)
    for row in sorted(rows, key=lambda r: r["id"]):
        stream.add(row)
    return stream.close()
