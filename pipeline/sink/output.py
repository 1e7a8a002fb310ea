"""Write a build's (or a generate run's) output: shards per table and split, rejects, manifest, dataset
card and report, into a directory the caller gives (a StagingDir, pipeline/sink/staging.py, for builds).
"""

from __future__ import annotations

import json
import queue
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.records import Row
from pipeline.sink.card import dataset_card
from pipeline.sink.parquet import ShardStream, WrittenShard, atomic_write_text, write_shards
from pipeline.sink.report import ReportStats, groups_first_seen, tokenizer_of, write_report
from pipeline.sink.split import split_of
from schemas.columns import DATA_TABLES, SCHEMA_VERSION, TABLE_SCHEMAS
from schemas.manifest import InputFile, Manifest, Shard, SourceCounts
from schemas.recipe import Recipe


class AccountingError(RuntimeError):
    """read != kept + rejected for a source: a bug, never a data problem."""


@dataclass
class Written:
    manifest: Manifest
    shards: list[WrittenShard]
    report: dict  # the report's tables (pipeline/sink/report.py report_data)


@dataclass
class BuildRows:
    """What a build writes, as streams of Arrow tables (in the table's schema) in id order
    (pipeline/resume/assemble.py makes them): for each data table a function giving its kept rows and
    their count per split, and the rejects likewise."""

    kept: dict[str, Callable[[], Iterable[pa.Table]]]
    split_counts: dict[str, Counter]
    rejects: Callable[[], Iterable[pa.Table]]
    reject_count: int
    near_clusters: Counter | None = None  # near duplicates per kept row -> kept rows (None: counted here)


# the columns the manifest's tally and the report's statistics read from each kept row
STAT_BATCH = 4096
STAT_COLUMNS = ("source", "lang", "license", "task", "instruction", "input", "output", "text", "messages")


class Tally:
    """Per-source statistics gathered while the rows are written (manifest counts, card, report)."""

    def __init__(self) -> None:
        self.kept: Counter = Counter()
        self.reasons: dict[str, Counter] = defaultdict(Counter)
        self.licenses: Counter = Counter()
        self.tasks: Counter = Counter()  # (licence, task) -> kept rows
        self.languages: Counter = Counter()

    def add_kept(self, row: Row) -> None:
        self.kept[row["source"]] += 1
        self.licenses[row["license"]] += 1
        self.tasks[(row["license"], row.get("task") or "text")] += 1
        if row.get("lang"):
            self.languages[row["lang"]] += 1

    def add_kept_table(self, t: pa.Table) -> None:
        """:meth:`add_kept` for every row of ``t`` (in order), by column: each key's first rows first, so
        the counters end in the order the row by row path leaves them."""
        if not t.num_rows:
            return
        source, lic, lang = (t.column(c).combine_chunks() for c in ("source", "license", "lang"))
        for (name,), rows in groups_first_seen([source]):
            self.kept[name] += len(rows)
        for (code,), rows in groups_first_seen([lic]):
            self.licenses[code] += len(rows)
        task = t.column("task").combine_chunks() if "task" in t.column_names else pa.nulls(t.num_rows, pa.string())
        for (code, name), rows in groups_first_seen([lic, task]):
            self.tasks[(code, name or "text")] += len(rows)
        for (code,), rows in groups_first_seen([lang]):
            if code:
                self.languages[code] += len(rows)

    def add_reject(self, row: Row) -> None:
        self.reasons[row["source"]][row["reason"]] += 1

    def add_rejects_table(self, t: pa.Table) -> None:
        """:meth:`add_reject` for every row of ``t`` (in order), by column."""
        if t.num_rows:
            columns = [t.column("source").combine_chunks(), t.column("reason").combine_chunks()]
            for (name, reason), rows in groups_first_seen(columns):
                self.reasons[name][reason] += len(rows)

    def counts(self, recipe: Recipe, read: dict[str, int]) -> dict[str, SourceCounts]:
        counts = {}
        for spec in recipe.sources:
            name = spec.name
            c = SourceCounts(read=read.get(name, 0), kept=self.kept[name], rejected=dict(sorted(self.reasons[name].items())))
            if c.read != c.kept + sum(c.rejected.values()):
                raise AccountingError(
                    f"source {name}: read {c.read} != kept {c.kept} + rejected {sum(c.rejected.values())}"
                )
            counts[name] = c
        return counts


PREFETCH = 1  # id ranges read ahead while one is written (0: none)


def prefetched(items: Iterable, depth: int | None = None) -> Iterator:
    """``items`` in order, the next ``depth`` of them made in a thread meanwhile: reading an id range from
    the units (Parquet decode, filter, sort: Arrow, outside the GIL) overlaps with the statistics and the
    Parquet encoding of the one before. At most ``depth`` + 1 items are alive (the one given out and those
    made ahead): the thread starts the next only when the one before the last given out is done with. An
    error in the thread is raised here, at its place in the order; closing this early stops the thread."""
    depth = PREFETCH if depth is None else depth
    if depth <= 0:
        yield from items
        return
    made: queue.Queue = queue.Queue()
    slots = threading.Semaphore(depth + 1)
    stop = threading.Event()
    end = object()

    def run() -> None:
        try:
            it = iter(items)
            while True:
                while not slots.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                x = next(it, end)
                made.put((x, None))
                if x is end:
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            made.put((end, e))

    t = threading.Thread(target=run, name="write-prefetch", daemon=True)
    t.start()
    try:
        while True:
            x, err = made.get()
            if x is end:
                if err is not None:
                    raise err
                return
            yield x
            del x
            slots.release()  # the caller asks for the next: the one given out is done with
    finally:
        stop.set()
        t.join()


def write_build(
    out_dir: Path,
    recipe: Recipe,
    rows: BuildRows,
    inputs: list[InputFile],
    stage_counts: dict[str, dict[str, int]] | None = None,
    reuse: bool = False,
) -> Written:
    """Write everything into ``out_dir`` (a staging directory): shards, manifest, card and report.

    Rows stream through as Arrow tables: memory holds the chunk being written and one row group per
    split being filled, never the table.
    ``reuse``: shards already in ``out_dir`` are kept (a resumed staging directory, see StagingDir).
    """
    read = Counter()
    for f in inputs:
        read[f.source] += f.records
    tally = Tally()
    stats = ReportStats(tokenizer_of(recipe), near_clusters=rows.near_clusters)
    shards: list[WrittenShard] = []
    shard_rows = recipe.output.shard_rows
    for table in DATA_TABLES:
        streams = {
            split: ShardStream(out_dir, table, split, rows.split_counts[table][split], TABLE_SCHEMAS[table], shard_rows, reuse)
            for split in ("train", "validation")
        }
        names = [c for c in STAT_COLUMNS if c in TABLE_SCHEMAS[table].names]
        for chunk in prefetched(rows.kept[table]()):
            splits = [split_of(i, recipe.split.validation, recipe.split.seed) for i in chunk.column("id").to_pylist()]
            validation = np.array([s == "validation" for s in splits], dtype=bool) if "validation" in splits else None
            mask = None if validation is None else pa.array(validation)
            if stats.columnar(table):  # the statistics by column
                lean = chunk.select(names)
                tally.add_kept_table(lean)
                stats.add_kept_table(table, lean, validation)
                del lean
            else:
                for at in range(0, chunk.num_rows, STAT_BATCH):  # Python rows, a batch at a time
                    part = chunk.slice(at, STAT_BATCH).select(names).to_pylist()
                    for row, split in zip(part, splits[at : at + STAT_BATCH], strict=True):
                        tally.add_kept(row)
                        stats.add_kept(table, split, row)
            if mask is None:
                streams["train"].add_table(chunk)
                continue
            streams["train"].add_table(chunk.filter(pc.invert(mask)))
            streams["validation"].add_table(chunk.filter(mask))
        for split in ("train", "validation"):
            shards += streams[split].close()
    rejects = ShardStream(out_dir, "rejects", "rejects", rows.reject_count, TABLE_SCHEMAS["rejects"], shard_rows, reuse)
    for chunk in prefetched(rows.rejects()):
        tally.add_rejects_table(chunk)
        if stats.add_rejects_table(chunk):  # by column
            rejects.add_table(chunk)
            continue
        # the statistics need the record only for the report's examples: it is fetched for those rows alone
        # (a range of rejects' records as Python strings would be most of the write's memory)
        records = chunk.column("record")
        lean = chunk.select(["source", "stage", "reason", "duplicate_of", "detail"]).to_pylist()
        for i, row in enumerate(lean):
            stats.add_reject(row, lambda i=i, records=records: records[i].as_py())
        rejects.add_table(chunk)
    shards += rejects.close()
    counts = tally.counts(recipe, read)
    manifest = write_manifest(out_dir, recipe, inputs, shards, counts, stages=stage_counts or {})
    atomic_write_text(out_dir / "README.md", dataset_card(manifest, tally.licenses, tally.languages, tally.tasks))
    report = stats.data(manifest.model_dump(mode="json"))
    write_report(out_dir, data=report)
    return Written(manifest, shards, report)


def write_manifest(
    out_dir: Path, recipe: Recipe, inputs, shards: list[WrittenShard], counts, **extra
) -> Manifest:
    """DIR/manifest.json: schema version, resolved recipe and its hash, inputs, shards, counts."""
    manifest = Manifest(
        schema_version=SCHEMA_VERSION,
        name=recipe.name,
        recipe=recipe.content(),
        recipe_sha256=recipe.sha256(),
        inputs=inputs,
        shards=[
            Shard(path=s.path, table=s.table, split=s.split, rows=s.rows, sha256=s.sha256) for s in shards
        ],
        counts=counts,
        **extra,
    )
    atomic_write_text(out_dir / "manifest.json", manifest.model_dump_json(indent=2) + "\n")
    return manifest


def load_manifest(out_dir: Path) -> Manifest:
    return Manifest.model_validate(json.loads((out_dir / "manifest.json").read_text(encoding="utf-8")))


def write_generated(
    out_dir: Path,
    recipe: Recipe,
    source: str,
    rows: list[Row],
    rejects: list[Row],
    inputs: list[InputFile],
    summary: dict,
) -> Manifest:
    """Final files of a generate run: DIR/generated/*.parquet, DIR/rejects/*.parquet, DIR/manifest.json."""
    reasons = Counter(r["reason"] for r in rejects)
    counts = {
        source: SourceCounts(
            read=len(rows) + len(rejects), kept=len(rows), rejected=dict(sorted(reasons.items()))
        )
    }
    shards = write_shards(
        out_dir, "generated", "train", rows, TABLE_SCHEMAS["instruct"], recipe.output.shard_rows
    )
    shards += write_shards(
        out_dir, "rejects", "rejects", rejects, TABLE_SCHEMAS["rejects"], recipe.output.shard_rows
    )
    return write_manifest(out_dir, recipe, inputs, shards, counts, generation=summary)
