"""The generate flow: load the backend once, run self-instruct or backtranslation rounds (each resumable),
write shards."""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipeline.errors import PipelineError
from pipeline.generate.backends import load_backend
from pipeline.generate.backtranslate import Backtranslate, load_posts
from pipeline.generate.selfinstruct import SelfInstruct, load_seed_tasks, run
from pipeline.sink.outdir import check_generate_output, output_lock
from pipeline.sink.output import write_generated
from pipeline.sink.parquet import sha256_of
from schemas.manifest import InputFile
from schemas.recipe import load_recipe


@task(cache_policy=NO_CACHE)
def rounds_task(loop: SelfInstruct, rounds_dir: Path):
    logger = get_run_logger()
    return run(
        loop, rounds_dir, lambda r, n, want: logger.info("round %d: %d/%d instructions accepted", r, n, want)
    )


@flow(name="generate")
def generate_flow(recipe_path: str, out_dir: str, wait: bool = False) -> dict:
    """Self-instruct into OUT_DIR (missing, empty or an earlier generate run's: it resumes that run)."""
    out = Path(os.path.abspath(out_dir))
    with output_lock(out, wait, get_run_logger()):
        check_generate_output(out)
        return _generate(load_recipe(recipe_path), out)


def _generate(recipe, out: Path) -> dict:
    spec = recipe.generate
    model = recipe.resolve_model(spec.model)
    kwargs = (
        {"dtype": spec.dtype}
        if spec.backend == "vllm"
        else {"dtype": "float32" if spec.dtype == "auto" else spec.dtype}
    )
    if spec.state:
        if spec.backend != "transformers":
            raise PipelineError("generate.state: an RWKV-4 initial state needs backend: transformers")
        kwargs["state"] = str(recipe.resolve(spec.state))
    if spec.backend == "vllm":
        kwargs.update(tensor_parallel_size=spec.tensor_parallel_size, seed=spec.seed)
    backend = load_backend(spec.backend, model, **kwargs)
    source = f"generate.{recipe.name}"
    if spec.task == "backtranslate":
        posts_dir = recipe.resolve(spec.posts)
        loop = Backtranslate(spec, backend, load_posts(posts_dir, spec.posts_sources), source)
        manifest_path = posts_dir / "manifest.json"
        inputs = [InputFile(source=source, path=f"{spec.posts}/manifest.json", sha256=sha256_of(manifest_path),
                            records=len(loop.posts))]
    else:
        seeds_path = recipe.resolve(spec.seed_tasks)
        loop = SelfInstruct(spec, backend, load_seed_tasks(seeds_path), source)
        inputs = [InputFile(source=source, path=spec.seed_tasks, sha256=sha256_of(seeds_path), records=0)]
    rows, rejects, summary = rounds_task(loop, out / "rounds")
    resumed = summary.pop(
        "resumed_rounds"
    )  # how this run went, not what it made: logged, not in the manifest
    get_run_logger().info(
        "%d round(s) finished by an earlier run, %d run now", resumed, summary["rounds"] - resumed
    )
    summary = {**summary, "model": model, "backend": spec.backend}
    manifest = write_generated(out, recipe, source, rows, rejects, inputs, summary)
    get_run_logger().info("generated %d rows (%d rejects) into %s", len(rows), len(rejects), out)
    return manifest.model_dump(mode="json")
