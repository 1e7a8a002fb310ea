"""The resumable units of a build, as plain functions over a UnitStore (pipeline/resume/store.py).

- ``clean_file``: read one input file and clean its rows (one unit per input file: the per-shard stage
  that runs in parallel, on threads or on Dask workers);
- ``exact_unit`` / ``near_unit``: the two dedup passes over all kept rows (one unit each).

Each returns what it produced and whether it was computed or found finished, so that a run can say how
much work it did. ``reused`` is None for a pass the recipe turns off.
"""

from __future__ import annotations

import os
import socket

from pipeline.clean.stage import CleanStage
from pipeline.dedup.exact import exact_dedup
from pipeline.dedup.near import near_dedup
from pipeline.failpoints import failpoint
from pipeline.records import Row
from pipeline.resume.store import UnitStore, unit_key
from pipeline.sink.parquet import sha256_of
from pipeline.sources import SourceFile, read_file
from pipeline.sources._io import metadata_files
from schemas.recipe import Recipe, SourceSpec


def _dependencies(recipe: Recipe, spec: SourceSpec) -> list[str]:
    """sha256 of the other files a reader consults (the arXiv metadata a join reads)."""
    return [sha256_of(p) for p in metadata_files(spec, recipe.base_dir)]


def clean_file_key(recipe: Recipe, spec: SourceSpec, f: SourceFile, sha256: str) -> str:
    source = spec.model_dump(mode="json", exclude={"priority", "path"})
    return unit_key(
        "clean",
        source,
        f.rel,
        f.recipe_rel,
        sha256,
        _dependencies(recipe, spec),
        recipe.clean.model_dump(mode="json"),
        recipe.languages,
        None if recipe.license_policy is None else recipe.license_policy.model_dump(mode="json"),
    )


def clean_file(work: UnitStore, recipe: Recipe, source: str, f: SourceFile) -> dict:
    """Read and clean one input file into a unit; returns its info (key, input record, counts, reused)."""
    spec = recipe.source(source)
    sha = sha256_of(f.path)
    key = clean_file_key(recipe, spec, f, sha)
    if work.has("clean", key):
        return {**work.info("clean", key), "reused": True}
    rows: list[Row] = []
    for row in read_file(f, spec, recipe.base_dir):
        failpoint("read")
        rows.append(row)
    stage = CleanStage.from_recipe(recipe)
    cleaned = []
    for row in stage(rows):
        failpoint("clean")
        cleaned.append(row)
    info = {
        "key": key,
        "input": {"source": source, "path": f.recipe_rel, "sha256": sha, "records": len(rows)},
        "counts": dict(sorted(stage.counts.items())),
    }
    work.save("clean", key, cleaned, info)
    failpoint("clean-saved")
    return {**info, "reused": False, "worker": f"{socket.gethostname()}:{os.getpid()}"}


def _dedup_unit(
    work: UnitStore, stage: str, key: str, rows: list[Row], run
) -> tuple[list[Row], list[Row], bool]:
    """(kept rows in input order, duplicate rejects, reused?) of a dedup pass, stored as its rejects."""
    reused = work.has(stage, key)
    if reused:
        dups = work.rows(stage, key, "rejects")
    else:
        _, dups = run(rows)
        failpoint(f"{stage}-done")
        work.save(stage, key, dups, {"key": key, "rows": len(rows), "duplicates": len(dups)})
    gone = {d["id"] for d in dups}
    return [r for r in rows if r["id"] not in gone], dups, reused


def exact_unit(work: UnitStore, recipe: Recipe, rows: list[Row], clean_keys: list[str]):
    priorities = {s.name: s.priority for s in recipe.sources}
    key = unit_key("exact", clean_keys, recipe.dedup.exact, priorities)
    if not recipe.dedup.exact:
        return rows, [], key, None
    kept, dups, reused = _dedup_unit(work, "exact", key, rows, lambda rs: exact_dedup(rs, priorities))
    return kept, dups, key, reused


def near_unit(work: UnitStore, recipe: Recipe, rows: list[Row], exact_key: str):
    priorities = {s.name: s.priority for s in recipe.sources}
    spec = recipe.dedup.near
    key = unit_key("near", exact_key, False if spec is False else spec.model_dump(mode="json"), priorities)
    if spec is False:
        return rows, [], key, None
    kept, dups, reused = _dedup_unit(work, "near", key, rows, lambda rs: near_dedup(rs, spec, priorities, work.scratch()))
    return kept, dups, key, reused
