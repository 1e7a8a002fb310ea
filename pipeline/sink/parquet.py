"""Parquet shards with Hugging Face split names, written atomically and deterministically.

Rows are sorted by id before writing, so the bytes depend only on the rows, never on worker count or
arrival order. Each file is written under a temporary name, fsynced, then renamed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
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


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, fsync the result, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        failpoint("write-tmp")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ShardStream:
    """Rows in id order in, ``{table}/{split}-0000i-of-0000N.parquet`` shards of ``shard_rows`` rows out
    (zstd), written as each fills; ``total`` (the row count, known in advance) fixes N. Memory: one
    shard's rows.

    ``reuse``: a shard file that already exists is taken as it is (a resumed staging directory whose key
    says it holds exactly these rows; files appear only complete, by rename).
    """

    def __init__(self, out_dir: Path, table: str, split: str, total: int, schema: pa.Schema,
                 shard_rows: int, reuse: bool = False):
        self.out_dir, self.table, self.split, self.schema = out_dir, table, split, schema
        self.total, self.shard_rows, self.reuse = total, shard_rows, reuse
        self.n = (total + shard_rows - 1) // shard_rows
        self.buffer: list[Row] = []
        self.written: list[WrittenShard] = []
        self.seen = 0

    def add(self, row: Row) -> None:
        self.buffer.append(row)
        self.seen += 1
        if len(self.buffer) == self.shard_rows:
            self._flush()

    def _flush(self) -> None:
        i = len(self.written)
        rel = f"{self.table}/{self.split}-{i:05d}-of-{self.n:05d}.parquet"
        path = self.out_dir / rel
        sub = self.split if self.table != "rejects" else None
        rows, self.buffer = self.buffer, []
        if self.reuse and path.is_file():
            self.written.append(WrittenShard(rel, self.table, sub, len(rows), sha256_of(path), reused=True))
            return
        arrow = pa.Table.from_pylist(rows, schema=self.schema)
        atomic_write(
            path,
            lambda tmp, t=arrow: pq.write_table(
                t, tmp, compression="zstd", use_dictionary=True, write_statistics=True, row_group_size=50_000
            ),
        )
        self.written.append(WrittenShard(rel, self.table, sub, len(rows), sha256_of(path)))
        failpoint("write-shard")

    def close(self) -> list[WrittenShard]:
        if self.buffer:
            self._flush()
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
