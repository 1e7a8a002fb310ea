"""The build flow: read and clean each input file in ranges (clean units), exact dedup in key buckets,
MinHash signatures per clean unit, near dedup over them, then one streaming write. Every stage is a task
on the recipe's runtime (a local process pool or Dask) and hands over unit keys, never rows: rows stay in
the work directory, so the flow's process stays small. Finished units are kept, so a killed run started
again redoes only what was not finished (pipeline/resume/store.py)."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections import Counter
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed

from flows.runtime import task_runner, write_runner
from pipeline import progress
from pipeline.errors import PipelineError
from pipeline.processes import KEEP_FREE, memory_released
from pipeline.resume.assemble import Duplicates, build_rows
from pipeline.resume.store import UnitStore, unit_key
from pipeline.resume.units import clean_file, exact_bucket, exact_keys, near_unit, sig_key, sig_unit
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
    """Read and clean one input file in ranges (or find them done); returns the file's info, rows stay
    on disk in the clean units."""
    with memory_released(KEEP_FREE):  # the worker's next file reuses what this one freed (up to KEEP_FREE)
        info = clean_file(UnitStore(Path(out_dir)), recipe, source, f)
    done = len(info["units"]) - info["computed"]
    get_run_logger().info(
        "%s %s: %d records, %d units cleaned%s",
        source,
        f.rel,
        info["input"]["records"],
        info["computed"],
        f" ({done} finished earlier)" if done else "",
    )
    return info


@task(cache_policy=NO_CACHE)
def sig_task(out_dir: str, recipe: Recipe, clean_key: str) -> tuple[str, bool]:
    """MinHash signatures of one clean unit (near dedup's per-unit half)."""
    with memory_released(KEEP_FREE):
        return sig_unit(UnitStore(Path(out_dir)), recipe, clean_key)


@task(cache_policy=NO_CACHE)
def exact_task(out_dir: str, recipe: Recipe, clean_keys: list[str], bucket: int) -> tuple[str, bool, int]:
    """Exact dedup of one key bucket."""
    with memory_released():
        return exact_bucket(UnitStore(Path(out_dir)), recipe, clean_keys, bucket)


@task(cache_policy=NO_CACHE)
def near_task(out_dir: str, recipe: Recipe, clean_keys: list[str]) -> tuple[str | None, bool | None, int]:
    """Near dedup: LSH bands over the signature units, clusters, keep rule."""
    with memory_released():
        return near_unit(UnitStore(Path(out_dir)), recipe, clean_keys)


@task(cache_policy=NO_CACHE)
def write_task(recipe: Recipe, out: Path, key: str, clean_keys: list[str], dedup: dict, inputs, stages):
    """Stream the kept rows and the rejects out of the units into shards, then manifest, card, report."""
    work = UnitStore(out)
    with memory_released():
        gone = Duplicates(work, dedup)
        rows = build_rows(work, clean_keys, gone, recipe.split.validation, recipe.split.seed)
        with StagingDir(out, key) as staging:
            written = write_build(staging, recipe, rows, [InputFile(**i) for i in inputs], stages, reuse=True)
    get_run_logger().info("wrote %d shards to %s", len(written.manifest.shards), out)
    for suffix, table in artifact_tables(written.report).items():  # the report's tables, on the flow run
        create_table_artifact(
            key=f"build-{_artifact_key(recipe.name)}-{suffix}",
            table=table,
            description=f"{suffix} of build {recipe.name} ({out}); the figures are in {out}/report.html",
        )
    return written.manifest.model_dump(mode="json"), written.shards, f"{socket.gethostname()}:{os.getpid()}"


@task(cache_policy=NO_CACHE)
def ready_task() -> int:
    """Nothing: submitted to start a runner's worker ahead of its work."""
    return os.getpid()


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


def _results(runner, task_fn, calls: list[dict], what: str, unit: str, log) -> list:
    """Submit ``task_fn`` once per parameter dict on the runner; results in call order, with progress."""
    futures = [runner.submit(task_fn, params) for params in calls]
    position = {id(fut): i for i, fut in enumerate(futures)}
    out: list = [None] * len(futures)
    bar = progress.track(what, len(futures), unit, log)
    for fut in as_completed(futures):
        out[position[id(fut)]] = _result(fut, what)
        bar.advance()
    return out


def _result(future, what: str):
    try:
        return future.result()
    except BrokenProcessPool:  # the kernel's OOM killer, or a kill -9 of one worker
        raise PipelineError(
            f"a worker process died during {what} (killed from outside, or out of memory: try fewer "
            "runtime.workers or smaller runtime.unit_records); finished units are kept, run the build "
            "again to go on"
        ) from None


def worker_environment() -> None:
    """Allocator settings for the worker processes the build starts from here on (unless set already):

    - Arrow's buffers from the C library's malloc (``ARROW_DEFAULT_MEMORY_POOL=system``), whose freed memory
      malloc_trim hands back; mimalloc, Arrow's default, kept ~200 MB of the write's at 2M documents;
    - one malloc arena (``MALLOC_ARENA_MAX=1``): the writer's threads (the range read ahead, the units read
      at once) each took an arena of their own, whose freed blocks the others never reuse; one arena cut
      the write's peak at 2M documents from 654 to 573 MB (0.2M: 484 -> 425 MB), at the same speed.
    Both are read when a process starts, so they go into the environment the workers inherit."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    os.environ.setdefault("MALLOC_ARENA_MAX", "1")


def _build(recipe: Recipe, out: Path, fresh: bool, log) -> dict:
    out_dir = str(out)
    work = UnitStore(out)
    if fresh:
        work.clear()
    files = [(spec.name, f) for spec in recipe.sources for f in expand(recipe, spec)]
    seconds = {}
    t0 = time.perf_counter()
    # every stage runs on the runner the recipe's runtime names (chosen here, at run time, so that a
    # served deployment obeys it); tasks hand over unit keys, rows stay on disk in the work directory
    input_bytes = sum(f.path.stat().st_size for _, f in files)
    worker_environment()
    runner, writer = task_runner(recipe.runtime, input_bytes), write_runner(recipe.runtime, input_bytes)
    opened = []  # the runners entered and not yet closed
    try:
        runner.__enter__()
        opened.append(runner)
        seconds["runner start"] = time.perf_counter() - t0
        # 1. read + clean: each input file in ranges of runtime.unit_records records
        base = {"out_dir": out_dir, "recipe": recipe}
        if writer is not None:  # the write's own process starts with the pool: its start (imports, ~3 s
            # of CPU) is spent while the files are cleaned, not waited for when dedup is done
            writer.__enter__()
            opened.append(writer)
            ready = writer.submit(ready_task, {})
        infos = _results(
            runner, clean_file_task, [{**base, "source": n, "f": f} for n, f in files], "read+clean", "files", log
        )
        clean_keys = [k for info in infos for k in info["units"]]
        seconds["read+clean"] = time.perf_counter() - t0 - seconds["runner start"]
        t0 = time.perf_counter()
        # 2. dedup: exact in key buckets, signatures per clean unit, then near over the signatures
        exact = _results(
            runner, exact_task, [{**base, "clean_keys": clean_keys, "bucket": b} for b in range(len(exact_keys(recipe, clean_keys)))],
            "exact dedup", "buckets", log,
        )
        sigs = []
        if recipe.dedup.near is not False:
            # clean_file signed the units it cleaned; the rest (found finished) are signed here, or found so
            signed = {k for info in infos for k in info["signed"]}
            sigs = [(sig_key(recipe, k), False) for k in clean_keys if k in signed]
            unsigned = [k for k in clean_keys if k not in signed]
            if unsigned:
                sigs += _results(
                    runner, sig_task, [{**base, "clean_key": k} for k in unsigned], "signatures", "units", log
                )
        near_runner = runner
        if writer is not None:  # near dedup (one task) runs in the write's fresh process too: a cleaning
            # worker's heap is fragmented, and near dedup's arrays grow with the corpus; the clean pool closes
            _result(ready, "write")
            opened.remove(runner)
            runner.__exit__(None, None, None)
            near_runner = writer
        near = _result(near_runner.submit(near_task, {**base, "clean_keys": clean_keys}), "near dedup")
        log.info(
            "dedup: %d exact buckets, %d signature units, near %s",
            len(exact), len(sigs), "off" if near[1] is None else "finished earlier" if near[1] else "computed",
        )
        seconds["dedup"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        # 3. write: a staging directory keyed by everything the output depends on
        dedup = {"exact": [k for k, _r, _n in exact], "near": [near[0]] if near[0] else []}
        key = unit_key("write", recipe.sha256(), dedup, clean_keys, recipe.output.model_dump(mode="json"))
        stages: dict[str, Counter] = {spec.name: Counter() for spec in recipe.sources}
        for info in infos:
            stages[info["input"]["source"]].update(info["counts"])
        write = {
            "recipe": recipe,
            "out": out,
            "key": key,
            "clean_keys": clean_keys,
            "dedup": dedup,
            "inputs": [info["input"] for info in infos],
            "stages": {name: dict(sorted(c.items())) for name, c in stages.items()},
        }
        manifest, shards, write_worker = _result((writer or runner).submit(write_task, write), "write")
        seconds["write"] = time.perf_counter() - t0
    finally:
        for r in reversed(opened):
            r.__exit__(*sys.exc_info())
    stats = work_done(infos, exact, sigs, near, shards)
    stats["write_worker"] = write_worker
    stats["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    work.sweep(
        {"clean": set(clean_keys), "exact": set(dedup["exact"]), "sig": {k for k, _ in sigs}, "near": set(dedup["near"])}
    )
    atomic_write_text(work.root / "last-run.json", json.dumps(stats, indent=2) + "\n")
    log.info("work done: %s", json.dumps(stats))
    return manifest


def _status(reused: list[bool]) -> str:
    return "off" if not reused else "reused" if all(reused) else "computed"


def work_done(infos: list[dict], exact: list, sigs: list, near: tuple, shards) -> dict:
    """What this run computed and what it found finished, counted in units and rows.

    rows_processed = records read and cleaned (units computed) + rows given to each dedup unit computed
    + rows in shards written.
    """
    units = sum(len(i["units"]) for i in infos)
    computed = sum(i["computed"] for i in infos)
    rows_cleaned = sum(i["rows_cleaned"] for i in infos)
    dedup_rows = sum(n for _k, reused, n in exact if not reused) + (near[2] if near[1] is False else 0)
    written = [s for s in shards if not s.reused]
    rows_written = sum(s.rows for s in written)
    return {
        "clean_units": {"computed": computed, "reused": units - computed},
        "dedup": {
            "exact": _status([r for _k, r, _n in exact]),
            "near": "off" if near[1] is None else _status([near[1]]),
        },
        "signature_units": {"computed": sum(not r for _k, r in sigs), "reused": sum(r for _k, r in sigs)},
        "shards": {"written": len(written), "reused": len(shards) - len(written)},
        "rows_cleaned": rows_cleaned,
        "rows_deduplicated": dedup_rows,
        "rows_written": rows_written,
        "rows_processed": rows_cleaned + dedup_rows + rows_written,
        "workers": sorted({i["worker"] for i in infos if i["computed"]}),  # host:pid of the processes that cleaned
    }
