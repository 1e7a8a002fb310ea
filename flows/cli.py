"""Command line: ``python -m pipeline build|run|serve|generate|train|report|inspect|export|rwkv`` (also installed as
``instruct-pipeline``). The top layer: it reads arguments, starts Prefect's API for the run and calls
the flows; ``pipeline/__main__.py`` only hands over to it."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from flows.prefect_api import embedded_api
from flows.terminal import (
    absolute,
    api_lost,
    err_console,
    fail,
    owned_output,
    prefect_env,
    prefect_terminal,
    print_counts,
)
from pipeline import progress
from pipeline.errors import PipelineError
from pipeline.sink.outdir import check_build_output, check_generate_output, check_train_output
from schemas.recipe import RecipeError, load_recipe

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Build instruction-tuning datasets.",
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = REPO_ROOT / "data" / "recipes" / "default.yaml"


def preflight(recipe_path: Path):
    """Every file-level problem that can be seen before reading: recipe, kinds, globs, archives."""
    from pipeline.clean.stage import check_skip
    from pipeline.sources import expand
    from pipeline.sources._streams import open_binary

    recipe = load_recipe(recipe_path)
    check_skip(recipe)
    if not recipe.sources:
        raise PipelineError(f"{recipe_path}: the recipe has no sources to build")
    for spec in recipe.sources:
        for f in expand(recipe, spec):
            open_binary(f.path).close()
    return recipe


WAIT = typer.Option("--wait", help="wait for another run writing the same output instead of failing")


def _importer(module: str):
    """Imports ``module`` when called: the flow, imported while Prefect's API server starts."""
    import importlib

    return lambda: importlib.import_module(module)


@app.command()
def build(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML")] = DEFAULT_RECIPE,
    out: Annotated[
        Path | None, typer.Option("--out", help="output directory (default data/out/NAME)")
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="discard finished work of earlier runs (.NAME.work) first")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="replace --out even when it is not a build output")
    ] = False,
    wait: Annotated[bool, WAIT] = False,
) -> None:
    """Read, clean, deduplicate and write the sources of RECIPE as Parquet shards.

    A killed or failed build started again with the same recipe and --out resumes: finished units
    (one per input file, one per dedup pass, each shard) are kept in .NAME.work beside the output.
    """
    try:
        r = preflight(recipe)
    except (RecipeError, PipelineError) as err:
        fail(str(err))
    out_dir = out or Path("data") / "out" / r.name
    with owned_output(out_dir, wait, lambda p: check_build_output(p, overwrite)):
        prefect_env()
        try:
            with embedded_api(on_loss=api_lost, meanwhile=_importer("flows.build")), prefect_terminal(), progress.bars(err_console):
                from flows.build import build_flow

                manifest = build_flow(str(recipe), absolute(out_dir), fresh, overwrite=overwrite)
        except (RecipeError, PipelineError) as err:
            fail(str(err))
    print_counts(manifest["counts"])
    typer.echo(f"wrote {out_dir}")


@app.command()
def generate(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML with a generate: section")],
    out: Annotated[
        Path | None, typer.Option("--out", help="output directory (default data/out/NAME-generated)")
    ] = None,
    wait: Annotated[bool, WAIT] = False,
) -> None:
    """Self-instruct: let an open model write instructions and responses (resumes an interrupted run)."""
    try:
        r = load_recipe(recipe)
        if r.generate is None:
            raise PipelineError(f"{recipe}: no 'generate' section")
        if r.generate.task == "self-instruct":
            seeds = r.resolve(r.generate.seed_tasks)
            if not seeds.is_file():
                raise PipelineError(f"{seeds}: seed tasks file not found")
        elif not (r.resolve(r.generate.posts) / "manifest.json").is_file():
            raise PipelineError(f"{r.resolve(r.generate.posts)}: no manifest.json (generate.posts must be a build)")
    except (RecipeError, PipelineError) as err:
        fail(str(err))
    out_dir = out or Path("data") / "out" / f"{r.name}-generated"
    with owned_output(out_dir, wait, check_generate_output):
        prefect_env()
        with embedded_api(on_loss=api_lost, meanwhile=_importer("flows.generate")), prefect_terminal():
            from flows.generate import generate_flow

            manifest = generate_flow(str(recipe), str(out_dir))
    print_counts(manifest["counts"])
    if manifest["generation"].get("note"):
        err_console.print(f"note: {manifest['generation']['note']}", markup=False)
    typer.echo(f"wrote {out_dir}")


@app.command("train")
def train_cmd(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML with a train: section")],
    out: Annotated[
        Path | None, typer.Option("--out", help="output directory (default data/out/NAME-lora)")
    ] = None,
    dataset: Annotated[
        Path | None, typer.Option("--dataset", help="build output directory (default train.dataset)")
    ] = None,
    plan: Annotated[bool, typer.Option("--plan", help="print the memory plan and stop")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="with --plan: machine-readable output")] = False,
    wait: Annotated[bool, WAIT] = False,
) -> None:
    """Train a LoRA adapter on a build's shards; --plan predicts memory from the model config alone.

    With train.gpus of 2 or more the run goes through accelerate launch (pipeline/train/launch.py), as it
    does from `run` and served deployments.
    """
    try:
        r = load_recipe(recipe)
        if r.train is None:
            raise PipelineError(f"{recipe}: no 'train' section")
    except (RecipeError, PipelineError) as err:
        fail(str(err))
    if plan:
        import json

        from pipeline.rwkv.checkpoint import model_config
        from pipeline.train.planner import format_plan, plan_with_advice

        try:
            config = model_config(r.resolve_model(r.train.model))
        except PipelineError as err:
            fail(str(err))
        except (OSError, ValueError) as err:
            fail(f"{r.train.model}: cannot read the model config: {str(err).splitlines()[0]}")
        p = plan_with_advice(config, r.train)
        typer.echo(json.dumps(p.as_dict(), indent=2) if as_json else format_plan(p, r.train))
        raise typer.Exit(0 if p.fits else 3)
    out_dir = out or Path("data") / "out" / f"{r.name}-lora"
    data_dir = dataset or r.resolve(r.train.dataset)
    if "LOCAL_RANK" in os.environ:  # a rank of accelerate launch: train directly (no Prefect per rank)
        from pipeline.train.launch import run_training

        run = run_training(r, str(recipe), out_dir, data_dir)
        typer.echo(f"rank {os.environ['LOCAL_RANK']}: {run['steps']} steps")
        return
    with owned_output(out_dir, wait, check_train_output):
        prefect_env()
        try:
            with embedded_api(on_loss=api_lost, meanwhile=_importer("flows.train")), prefect_terminal():
                from flows.train import train_flow

                result = train_flow(str(recipe), str(out_dir), str(data_dir))
        except PipelineError as err:
            fail(str(err))
    typer.echo(
        f"wrote {out_dir}/adapter ({result['run']['steps']} steps, eval loss {result['run']['eval_loss']})"
    )


@app.command("run")
def run_cmd(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML")] = DEFAULT_RECIPE,
    out_root: Annotated[
        Path, typer.Option("--out-root", help="folder of the outputs (NAME, NAME-generated, NAME-lora)")
    ] = Path("data/out"),
) -> None:
    """End to end: build -> generate -> build with the generated rows -> train (stages the recipe has)."""
    try:
        r = load_recipe(recipe)
        if r.sources:
            preflight(recipe)
    except (RecipeError, PipelineError) as err:
        fail(str(err))
    prefect_env()
    from flows.end_to_end import output_dirs, pipeline_flow

    dirs = output_dirs(r.name, out_root)
    stages = [  # the outputs this run writes, each checked and locked before Prefect starts
        (dirs["build"], check_build_output, bool(r.sources)),
        (dirs["generate"], check_generate_output, r.generate is not None),
        (dirs["train"], check_train_output, r.train is not None),
    ]
    with ExitStack() as held:
        for out_dir, check, used in stages:
            if used:
                held.enter_context(owned_output(out_dir, False, check))
        try:
            with prefect_terminal(), embedded_api(on_loss=api_lost), progress.bars(err_console):
                done = pipeline_flow(str(recipe), str(out_root))
        except (RecipeError, PipelineError) as err:
            fail(str(err))
    typer.echo(f"{r.name}: {' -> '.join(done['stages']) or 'nothing to do'}")


@app.command()
def serve(
    recipes: Annotated[list[Path], typer.Argument(help="recipe YAML files")],
    out_root: Annotated[
        Path, typer.Option("--out-root", help="folder of the outputs (NAME, NAME-generated, NAME-lora)")
    ] = Path("data/out"),
) -> None:
    """Serve each recipe's flows as Prefect deployments (its schedule on the flow it names) until stopped.

    Needs a Prefect server: `prefect server start --host 127.0.0.1`, then
    PREFECT_API_URL=http://127.0.0.1:4200/api in this shell.
    """
    for path in recipes:
        try:
            load_recipe(path)
        except RecipeError as err:
            fail(str(err))
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        fail(
            "serve needs a Prefect server: start one with `prefect server start --host 127.0.0.1` and "
            "set PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect import serve as prefect_serve

    from flows.serve import deployments_for

    deployments = [d for path in recipes for d in deployments_for(path, out_root)]
    for d in deployments:
        sched = (
            f" (cron {d.schedules[0].schedule.cron} {d.schedules[0].schedule.timezone})"
            if d.schedules
            else ""
        )
        err_console.print(f"serving {d.flow_name}/{d.name}{sched}", markup=False)
    prefect_serve(*deployments, print_starting_message=False)


@app.command()
def report(
    out_dir: Annotated[Path, typer.Argument(help="a build output directory")],
    tokenizer: Annotated[
        str | None, typer.Option("--tokenizer", help="tokenizer for token lengths (directory or hub id)")
    ] = None,
) -> None:
    """(Re)generate DIR/report.html: flow of records, reasons, lengths, languages, licences, samples."""
    from pipeline.sink.report import write_report

    if not (out_dir / "manifest.json").is_file():
        fail(f"{out_dir}: no manifest.json (not a build output directory)")
    typer.echo(f"wrote {write_report(out_dir, (tokenizer, tokenizer) if tokenizer else None)}")


@app.command()
def inspect(out_dir: Annotated[Path, typer.Argument(help="a build output directory")]) -> None:
    """Print the per-source counts of a build."""
    from pipeline.sink.output import load_manifest

    if not (out_dir / "manifest.json").is_file():
        fail(f"{out_dir}: no manifest.json (not a build output directory)")
    manifest = load_manifest(out_dir)
    print_counts({k: v.model_dump() for k, v in manifest.counts.items()})
    typer.echo(f"{len(manifest.shards)} shards, recipe sha256 {manifest.recipe_sha256[:12]}")


@app.command("export")
def export_cmd(
    build: Annotated[Path, typer.Argument(help="a build output directory")],
    fmt: Annotated[str, typer.Option("--format", help="alpaca | sharegpt | messages | llama-factory")],
    out: Annotated[Path, typer.Option("--out", help="the .jsonl file (llama-factory: a folder) to write")],
) -> None:
    """Write a build's instruction and chat rows as JSONL for other trainers (LLaMA-Factory: with dataset_info.json)."""
    from pipeline.sink.export import export

    try:
        res = export(build, fmt, out)
    except PipelineError as err:
        fail(str(err))
    skipped = f"; {res['text_rows_skipped']} text rows not exported" if res["text_rows_skipped"] else ""
    typer.echo(f"wrote {res['rows']} rows to {out}{skipped}")


rwkv_app = typer.Typer(no_args_is_help=True, help="RWKV-4: BlinkDL .pth checkpoints in and out.")
app.add_typer(rwkv_app, name="rwkv")


@rwkv_app.command("import")
def rwkv_import(
    pth: Annotated[Path, typer.Argument(help="a BlinkDL RWKV-4 checkpoint (RWKV-4-Pile-*.pth)")],
    tokenizer: Annotated[
        str, typer.Option("--tokenizer", help="tokenizer directory or hub id (Pile models: EleutherAI/gpt-neox-20b)")
    ],
    out: Annotated[Path, typer.Option("--out", help="the transformers model folder to write")],
    context_length: Annotated[int, typer.Option("--context-length", help="the model's training context")] = 1024,
) -> None:
    """Convert a BlinkDL .pth (loaded with weights_only: no pickled code runs) to a transformers folder."""
    from pipeline.rwkv.checkpoint import import_pth

    try:
        typer.echo(f"wrote {import_pth(pth, tokenizer, out, context_length)}")
    except PipelineError as err:
        fail(str(err))


@rwkv_app.command("export")
def rwkv_export(
    src: Annotated[Path, typer.Argument(help="a transformers RWKV folder, or a train run (base + LoRA merged)")],
    out: Annotated[Path, typer.Option("--out", help="the .pth file to write")],
) -> None:
    """Write a BlinkDL .pth state dict that ChatRWKV's rwkv package loads."""
    from pipeline.rwkv.checkpoint import export_pth

    try:
        typer.echo(f"wrote {export_pth(src, out)}")
    except PipelineError as err:
        fail(str(err))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
