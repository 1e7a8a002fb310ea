"""Prefect deployments of a recipe: build, generate, train and the end-to-end pipeline flow, each named
after the recipe (``build/NAME``, ``pipeline/NAME`` ...), with the recipe's schedule on the flow it names.

Each deployment passes the recipe by absolute path, so a run reads the recipe as it is when the run
starts (edit the YAML, the next nightly run uses it). One run at a time per deployment: two runs
writing one output directory would wait on each other anyway.
"""

from __future__ import annotations

from pathlib import Path

from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import EntrypointType

from flows.build import build_flow
from flows.end_to_end import output_dirs, pipeline_flow
from flows.generate import generate_flow
from flows.train import train_flow
from schemas.recipe import load_recipe


def deployments_for(recipe_path: Path, out_root: Path) -> list:
    recipe = load_recipe(recipe_path)
    path = str(Path(recipe_path).resolve())
    root = Path(out_root).resolve()
    dirs = output_dirs(recipe.name, root)
    tags = ["instruct-pipeline", recipe.name]

    def deployment(flow, description: str, **parameters):
        sched = recipe.schedule
        schedules = (
            [CronSchedule(cron=sched.cron, timezone=sched.timezone)]
            if sched is not None and sched.flow == flow.name
            else None
        )
        return flow.to_deployment(
            name=recipe.name,
            parameters={"recipe_path": path, **parameters},
            schedules=schedules,
            concurrency_limit=1,
            tags=tags,
            description=description,
            entrypoint_type=EntrypointType.MODULE_PATH,  # flows.build.build_flow: imports as a package
        )

    out = []
    if recipe.sources:
        out.append(deployment(build_flow, f"build {path}", out_dir=str(dirs["build"])))
    if recipe.generate is not None:
        out.append(deployment(generate_flow, f"generate with {path}", out_dir=str(dirs["generate"])))
    if recipe.train is not None:
        out.append(deployment(train_flow, f"train with {path}", out_dir=str(dirs["train"])))
    out.append(deployment(pipeline_flow, f"build, generate, train: {path}", out_root=str(root)))
    return out
