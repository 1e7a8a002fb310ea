"""The train flow: check the memory plan, then train the LoRA adapter on a build's shards (one process,
or ``accelerate launch`` for several GPUs: pipeline/train/launch.py decides, for every entry point)."""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipeline.errors import PipelineError
from pipeline.sink.outdir import check_train_output, output_lock
from pipeline.train.launch import run_training
from pipeline.train.planner import format_plan, plan_with_advice
from schemas.recipe import load_recipe


@task(cache_policy=NO_CACHE)
def plan_task(recipe) -> dict:
    from pipeline.rwkv.checkpoint import model_config

    spec = recipe.train
    p = plan_with_advice(model_config(recipe.resolve_model(spec.model)), spec)
    get_run_logger().info("memory plan:\n%s", format_plan(p, spec))
    if not p.fits:
        raise PipelineError(
            f"the plan does not fit ({'; '.join(p.problems)}); cheapest change: {p.suggestion}"
        )
    return p.as_dict()


@task(cache_policy=NO_CACHE)
def train_task(recipe, recipe_path: str, out: Path, dataset: Path) -> dict:
    return run_training(recipe, recipe_path, out, dataset, get_run_logger())


@flow(name="train")
def train_flow(recipe_path: str, out_dir: str, dataset: str | None = None, wait: bool = False) -> dict:
    """Train on ``dataset`` (a build output directory; default the recipe's ``train.dataset``) into
    OUT_DIR (missing, empty or an earlier train run's: it resumes from the last checkpoint)."""
    recipe = load_recipe(recipe_path)
    out = Path(os.path.abspath(out_dir))
    with output_lock(out, wait, get_run_logger()):
        check_train_output(out)
        plan = plan_task(recipe)
        data = Path(dataset) if dataset else recipe.resolve(recipe.train.dataset)
        run = train_task(recipe, recipe_path, Path(out_dir), data)
    get_run_logger().info(
        "adapter written to %s/adapter (%d steps, eval loss %s)", out_dir, run["steps"], run["eval_loss"]
    )
    return {"plan": plan, "run": run}
