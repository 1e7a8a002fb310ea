"""The build flow: read each source -> clean (normalise, language, license, filters) -> exact dedup
-> near dedup -> write."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from pipeline.clean.stage import CleanStage
from pipeline.dedup.exact import exact_dedup
from pipeline.dedup.rows import near_dedup
from pipeline.records import Row, is_reject
from pipeline.sink.build import StagingDir, write_build
from pipeline.sources import SourceRead, read_source
from schemas.manifest import InputFile
from schemas.recipe import Recipe, load_recipe


@task(cache_policy=NO_CACHE)
def read_task(recipe: Recipe, name: str) -> SourceRead:
    got = read_source(recipe, recipe.source(name))
    get_run_logger().info("%s: read %d records from %d file(s)", name, len(got.rows), len(got.inputs))
    return got


@task(cache_policy=NO_CACHE)
def clean_task(recipe: Recipe, name: str, rows: list[Row]) -> tuple[list[Row], list[Row], dict[str, int]]:
    stage = CleanStage.from_recipe(recipe)
    kept, rejects = [], []
    for row in stage(rows):
        (rejects if is_reject(row) else kept).append(row)
    get_run_logger().info("%s: %d kept, %d rejected after cleaning", name, len(kept), len(rejects))
    return kept, rejects, dict(stage.counts)


@task(cache_policy=NO_CACHE)
def dedup_task(recipe: Recipe, rows: list[Row]) -> tuple[list[Row], list[Row]]:
    if not recipe.dedup.exact:
        return rows, []
    kept, dups = exact_dedup(rows, {s.name: s.priority for s in recipe.sources})
    get_run_logger().info("exact dedup: %d kept, %d duplicates", len(kept), len(dups))
    return kept, dups


@task(cache_policy=NO_CACHE)
def near_dedup_task(recipe: Recipe, rows: list[Row]) -> tuple[list[Row], list[Row]]:
    if recipe.dedup.near is False:
        return rows, []
    kept, dups = near_dedup(rows, recipe.dedup.near, {s.name: s.priority for s in recipe.sources})
    get_run_logger().info("near dedup: %d kept, %d near duplicates", len(kept), len(dups))
    return kept, dups


@task(cache_policy=NO_CACHE)
def write_task(recipe: Recipe, out: Path, kept, rejects, inputs, stages) -> dict:
    with StagingDir(out) as staging:
        manifest = write_build(staging, recipe, kept, rejects, [InputFile(**i) for i in inputs], stages)
    get_run_logger().info("wrote %d shards to %s", len(manifest.shards), out)
    rows = [
        {
            "source": name,
            "read": c.read,
            "kept": c.kept,
            "rejected": sum(c.rejected.values()),
            "reasons": ", ".join(f"{k} {v}" for k, v in sorted(c.rejected.items())),
        }
        for name, c in manifest.counts.items()
    ]
    create_table_artifact(
        key=f"build-{_artifact_key(recipe.name)}-counts",
        table=rows,
        description=f"records per source of build {recipe.name} ({out})",
    )
    return manifest.model_dump(mode="json")


def _artifact_key(name: str) -> str:
    """Prefect artifact keys allow lower-case letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in name.lower())


@flow(name="build", log_prints=True)
def build_flow(recipe_path: str, out_dir: str) -> dict:
    recipe = load_recipe(recipe_path)
    rows, rejects, inputs, stages = [], [], [], {}
    for spec in recipe.sources:
        got = read_task(recipe, spec.name)
        kept, dropped, counts = clean_task(recipe, spec.name, got.rows)
        rows += kept
        rejects += dropped
        inputs += got.inputs
        stages[spec.name] = counts
    kept, exact_dups = dedup_task(recipe, rows)
    kept, near_dups = near_dedup_task(recipe, kept)
    return write_task(recipe, Path(out_dir), kept, rejects + exact_dups + near_dups, inputs, stages)
