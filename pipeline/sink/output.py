"""Write a build's (or a generate run's) output: shards per table and split, rejects, manifest, dataset
card and report, into a directory the caller gives (a StagingDir, pipeline/sink/staging.py, for builds).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from pipeline.records import Row, table_of
from pipeline.sink.card import dataset_card
from pipeline.sink.parquet import WrittenShard, atomic_write_text, write_shards
from pipeline.sink.report import report_data, tokenizer_of, write_report
from pipeline.sink.split import split_of
from schemas.columns import SCHEMA_VERSION, TABLE_SCHEMAS
from schemas.manifest import InputFile, Manifest, Shard, SourceCounts
from schemas.recipe import Recipe


class AccountingError(RuntimeError):
    """read != kept + rejected for a source: a bug, never a data problem."""


@dataclass
class Written:
    manifest: Manifest
    shards: list[WrittenShard]
    report: dict  # the report's tables (pipeline/sink/report.py report_data)


def count(
    recipe: Recipe, kept: list[Row], rejects: list[Row], read: dict[str, int]
) -> dict[str, SourceCounts]:
    counts = {s.name: SourceCounts() for s in recipe.sources}
    for row in kept:
        counts[row["source"]].kept += 1
    rej: dict[str, Counter] = defaultdict(Counter)
    for row in rejects:
        rej[row["source"]][row["reason"]] += 1
    for name, c in counts.items():
        c.rejected = dict(sorted(rej[name].items()))
        c.read = read.get(name, 0)
        if c.read != c.kept + sum(c.rejected.values()):
            raise AccountingError(
                f"source {name}: read {c.read} != kept {c.kept} + rejected {sum(c.rejected.values())}"
            )
    return counts


def write_build(
    out_dir: Path,
    recipe: Recipe,
    kept: list[Row],
    rejects: list[Row],
    inputs: list[InputFile],
    stage_counts: dict[str, dict[str, int]] | None = None,
    reuse: bool = False,
) -> Written:
    """Write everything into ``out_dir`` (a staging directory); the manifest, shards and report data.

    ``reuse``: shards already in ``out_dir`` are kept (a resumed staging directory, see StagingDir).
    """
    read = Counter()
    for f in inputs:
        read[f.source] += f.records
    counts = count(recipe, kept, rejects, read)
    tables: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in kept:
        tables[(table_of(row), split_of(row["id"], recipe.split.validation, recipe.split.seed))].append(row)
    shards: list[WrittenShard] = []
    for table in ("instruct", "text"):
        for split in ("train", "validation"):
            shards += write_shards(
                out_dir,
                table,
                split,
                tables.get((table, split), []),
                TABLE_SCHEMAS[table],
                recipe.output.shard_rows,
                reuse,
            )
    shards += write_shards(
        out_dir, "rejects", "rejects", rejects, TABLE_SCHEMAS["rejects"], recipe.output.shard_rows, reuse
    )
    manifest = write_manifest(out_dir, recipe, inputs, shards, counts, stages=stage_counts or {})
    licenses = Counter(r["license"] for r in kept)
    languages = Counter(r["lang"] for r in kept if r.get("lang"))
    atomic_write_text(out_dir / "README.md", dataset_card(manifest, licenses, languages))
    report = report_data(out_dir, tokenizer_of(recipe))
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
