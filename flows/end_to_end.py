"""The end-to-end flow: build -> generate -> build again with the generated rows -> train.

Generate and train run when the recipe has their sections. The second build writes into the same
output directory as the first and adds one source (``generated``: the generate run's shards), so it
finds every unit of the first build finished and computes only the generated file and the dedup passes.
Training then uses that output directory, whatever the recipe's ``train.dataset`` says.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.build import build_flow
from flows.generate import generate_flow
from flows.train import train_flow
from schemas.recipe import load_recipe

GENERATED_SOURCE = "generated"


def output_dirs(name: str, out_root: Path) -> dict[str, Path]:
    return {
        "build": out_root / name,
        "generate": out_root / f"{name}-generated",
        "train": out_root / f"{name}-lora",
    }


@flow(name="pipeline")
def pipeline_flow(recipe_path: str, out_root: str = "data/out") -> dict:
    recipe = load_recipe(recipe_path)
    dirs = output_dirs(recipe.name, Path(out_root))
    build = build_flow
    log = get_run_logger()
    done: dict = {"stages": []}
    if recipe.sources:
        build(recipe_path, str(dirs["build"]))
        done["stages"].append("build")
    if recipe.generate is not None:
        gen = generate_flow(recipe_path, str(dirs["generate"]))
        done["stages"].append("generate")
        extra = [
            {
                "name": GENERATED_SOURCE,
                "kind": "generated",
                "path": str((dirs["generate"] / "generated" / "*.parquet").resolve()),
                "license": recipe.generate.license,
            }
        ]
        if gen["counts"][next(iter(gen["counts"]))]["kept"]:
            build(recipe_path, str(dirs["build"]), extra_sources=extra)
            done["stages"].append("build+generated")
        else:
            log.warning("the generate run kept no rows: nothing to add to the build")
    if recipe.train is not None:
        built = any(s.startswith("build") for s in done["stages"])
        dataset = dirs["build"] if built else recipe.resolve(recipe.train.dataset)
        run = train_flow(recipe_path, str(dirs["train"]), dataset=str(dataset.resolve()))
        done["stages"].append("train")
        done["train"] = run["run"]
    done["outputs"] = {k: str(v) for k, v in dirs.items()}
    log.info("pipeline %s: %s", recipe.name, " -> ".join(done["stages"]) or "nothing to do")
    return done
