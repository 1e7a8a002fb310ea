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


def write_shards(
    out_dir: Path,
    table: str,
    split: str,
    rows: list[Row],
    schema: pa.Schema,
    shard_rows: int,
    reuse: bool = False,
) -> list[WrittenShard]:
    """Write ``rows`` as ``{table}/{split}-0000i-of-0000N.parquet`` (zstd); empty input writes nothing.

    ``reuse``: a shard file that already exists is taken as it is (a resumed staging directory whose key
    says it holds exactly these rows; files appear only complete, by rename).
    """
    if not rows:
        return []
    rows = sorted(rows, key=lambda r: r["id"])
    n = (len(rows) + shard_rows - 1) // shard_rows
    written = []
    for i in range(n):
        chunk = rows[i * shard_rows : (i + 1) * shard_rows]
        rel = f"{table}/{split}-{i:05d}-of-{n:05d}.parquet"
        path = out_dir / rel
        sub = split if table != "rejects" else None
        if reuse and path.is_file():
            written.append(WrittenShard(rel, table, sub, len(chunk), sha256_of(path), reused=True))
            continue
        arrow = pa.Table.from_pylist(chunk, schema=schema)
        atomic_write(
            path,
            lambda tmp, t=arrow: pq.write_table(
                t, tmp, compression="zstd", use_dictionary=True, write_statistics=True, row_group_size=50_000
            ),
        )
        written.append(WrittenShard(rel, table, sub, len(chunk), sha256_of(path)))
        failpoint("write-shard")
    return written
