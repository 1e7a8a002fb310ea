"""The build flow: read and clean each input file (a unit each, run in parallel on the task runner),
exact dedup, near dedup, write. Finished units are kept in the work directory, so a killed run started
again redoes only what was not finished (pipeline/resume/store.py)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.utilities.annotations import quote

from flows.runtime import task_runner
from pipeline import progress
from pipeline.records import Row, is_reject
from pipeline.resume.store import UnitStore, unit_key
from pipeline.resume.units import clean_file, exact_unit, near_unit
from pipeline.sink.outdir import check_build_output, output_lock
from pipeline.sink.output import write_build
from pipeline.sink.parquet import atomic_write_text
from pipeline.sink.report import artifact_tables
from pipeline.sink.staging import StagingDir
from pipeline.sources import SourceFile, expand
from schemas.manifest import InputFile
from schemas.recipe import Recipe, SourceSpec, load_recipe


@task(cache_policy=NO_CACHE)
def clean_file_task(out_dir: str, recipe: Recipe, source: str, f: SourceFile) -> dict:
    """Read and clean one input file (or find it done); returns the unit's info, rows stay on disk."""
    info = clean_file(UnitStore(Path(out_dir)), recipe, source, f)
    get_run_logger().info(
        "%s %s: %s, %d records",
        source,
        f.rel,
        "finished earlier" if info["reused"] else "cleaned",
        info["input"]["records"],
    )
    return info


@task(cache_policy=NO_CACHE)
def dedup_task(out_dir: str, recipe: Recipe, rows: list[Row], clean_keys: list[str]):
    work = UnitStore(Path(out_dir))
    log = get_run_logger()
    kept, exact, exact_key, exact_reused = exact_unit(work, recipe, rows, clean_keys)
    log.info("exact dedup%s: %d kept, %d duplicates", _how(exact_reused), len(kept), len(exact))
    n_exact = len(kept)
    kept, near, near_key, near_reused = near_unit(work, recipe, kept, exact_key)
    log.info("near dedup%s: %d kept, %d near duplicates", _how(near_reused), len(kept), len(near))
    units = {"exact": (exact_key, exact_reused, len(rows)), "near": (near_key, near_reused, n_exact)}
    return kept, exact + near, units


def _how(reused: bool | None) -> str:
    return " (off)" if reused is None else " (finished earlier)" if reused else ""


@task(cache_policy=NO_CACHE)
def write_task(recipe: Recipe, out: Path, key: str, kept, rejects, inputs, stages):
    with StagingDir(out, key) as staging:
        written = write_build(
            staging, recipe, kept, rejects, [InputFile(**i) for i in inputs], stages, reuse=True
        )
    get_run_logger().info("wrote %d shards to %s", len(written.manifest.shards), out)
    for suffix, rows in artifact_tables(written.report).items():  # the report's tables, on the flow run
        create_table_artifact(
            key=f"build-{_artifact_key(recipe.name)}-{suffix}",
            table=rows,
            description=f"{suffix} of build {recipe.name} ({out}); the figures are in {out}/report.html",
        )
    return written.manifest.model_dump(mode="json"), written.shards


def _artifact_key(name: str) -> str:
    """Prefect artifact keys allow lower-case letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in name.lower())


def with_sources(recipe: Recipe, extra: list[dict] | None) -> Recipe:
    """The recipe with more sources (the end-to-end flow adds the generated rows this way)."""
    if not extra:
        return recipe
    return recipe.model_copy(update={"sources": [*recipe.sources, *(SourceSpec(**s) for s in extra)]})


@flow(name="build", log_prints=True)
def build_flow(
    recipe_path: str,
    out_dir: str,
    fresh: bool = False,
    extra_sources: list[dict] | None = None,
    overwrite: bool = False,
    wait: bool = False,
) -> dict:
    """Build RECIPE into OUT_DIR; ``fresh`` discards finished work of earlier runs first.

    OUT_DIR must be missing, empty or an earlier build's output (``overwrite`` replaces anything), and
    only one run writes it at a time (``wait`` waits for the other instead of failing).
    """
    recipe = with_sources(load_recipe(recipe_path), extra_sources)
    out = Path(os.path.abspath(out_dir))
    log = get_run_logger()
    with output_lock(out, wait, log):
        check_build_output(out, overwrite)
        return _build(recipe, out, fresh, log)


def _build(recipe: Recipe, out: Path, fresh: bool, log) -> dict:
    out_dir = str(out)
    work = UnitStore(out)
    if fresh:
        work.clear()

    # 1. read + clean: one unit per input file, in parallel; results assembled in recipe/file order
    files = [(spec.name, f) for spec in recipe.sources for f in expand(recipe, spec)]
    infos: list[dict] = [{}] * len(files)
    seconds = {}
    t0 = time.perf_counter()
    # on the runner the recipe's runtime names (chosen here, at run time, so a served deployment obeys it)
    with task_runner(recipe.runtime) as runner:
        seconds["runner start"] = time.perf_counter() - t0  # a local Dask cluster starts here
        futures = [
            runner.submit(clean_file_task, {"out_dir": out_dir, "recipe": recipe, "source": name, "f": f})
            for name, f in files
        ]
        position = {id(fut): i for i, fut in enumerate(futures)}
        bar = progress.track("read+clean", len(files), "files", log)
        for fut in as_completed(futures):
            infos[position[id(fut)]] = fut.result()
            bar.advance()
    rows: list[Row] = []
    rejects: list[Row] = []
    stages: dict[str, Counter] = {spec.name: Counter() for spec in recipe.sources}
    for info in infos:
        for row in work.rows("clean", info["key"]):
            (rejects if is_reject(row) else rows).append(row)
        stages[info["input"]["source"]].update(info["counts"])
    clean_keys = [info["key"] for info in infos]

    seconds["read+clean"] = time.perf_counter() - t0 - seconds["runner start"]

    # 2. exact + near dedup over all kept rows
    # quote(): the rows go to the task as they are, without Prefect walking every row for task inputs
    t0 = time.perf_counter()
    kept, dups, units = dedup_task(out_dir, recipe, quote(rows), clean_keys)
    seconds["dedup"] = time.perf_counter() - t0
    t0 = time.perf_counter()

    # 3. write: a staging directory keyed by everything the output depends on
    key = unit_key("write", recipe.sha256(), units["near"][0], recipe.output.model_dump(mode="json"))
    manifest, shards = write_task(
        recipe,
        out,
        key,
        quote(kept),
        quote(rejects + dups),
        [info["input"] for info in infos],
        {name: dict(sorted(c.items())) for name, c in stages.items()},
    )
    seconds["write"] = time.perf_counter() - t0
    stats = work_done(infos, units, shards)
    stats["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    work.sweep({"clean": set(clean_keys), "exact": {units["exact"][0]}, "near": {units["near"][0]}})
    atomic_write_text(work.root / "last-run.json", json.dumps(stats, indent=2) + "\n")
    log.info("work done: %s", json.dumps(stats))
    return manifest


def work_done(infos: list[dict], units: dict, shards) -> dict:
    """What this run computed and what it found finished, counted in units and rows.

    rows_processed = records read and cleaned (units computed) + rows given to each dedup pass computed
    + rows in shards written.
    """
    computed = [i for i in infos if not i["reused"]]
    rows_cleaned = sum(i["input"]["records"] for i in computed)
    dedup_rows = sum(n for _key, reused, n in units.values() if reused is False)
    written = [s for s in shards if not s.reused]
    rows_written = sum(s.rows for s in written)
    return {
        "clean_units": {"computed": len(computed), "reused": len(infos) - len(computed)},
        "dedup": {
            name: "off" if reused is None else "reused" if reused else "computed"
            for name, (_key, reused, _n) in units.items()
        },
        "shards": {"written": len(written), "reused": len(shards) - len(written)},
        "rows_cleaned": rows_cleaned,
        "rows_deduplicated": dedup_rows,
        "rows_written": rows_written,
        "rows_processed": rows_cleaned + dedup_rows + rows_written,
        "workers": sorted({i["worker"] for i in computed}),  # host:pid of the processes that cleaned
    }
