"""How a training run starts, the same from every entry point (``python -m pipeline train``, the train
and end-to-end flows, served deployments): one process for CPU or one GPU; for ``gpus: 2`` and more,
``accelerate launch`` with the shipped config for the strategy, whose ranks run ``python -m pipeline
train`` again (they see LOCAL_RANK and train directly)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline.errors import PipelineError

ACCELERATE_CONFIGS = Path(__file__).resolve().parent / "accelerate"


def needs_launcher(spec) -> bool:
    """True for a multi-GPU run started outside accelerate (no LOCAL_RANK yet)."""
    return spec.gpus > 1 and "LOCAL_RANK" not in os.environ


def launch_command(spec, recipe_path: str, out_dir: str, dataset: str | None = None) -> list[str]:
    """The ``accelerate launch`` command that runs this training on ``spec.gpus`` GPUs with the shipped
    config for ``spec.strategy``; each rank runs ``python -m pipeline train`` (it sees LOCAL_RANK)."""
    config = ACCELERATE_CONFIGS / f"{spec.strategy}.yaml"
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        "--num_processes",
        str(spec.gpus),
        "-m",
        "pipeline",
        "train",
        recipe_path,
        "--out",
        out_dir,
    ]
    return cmd if dataset is None else [*cmd, "--dataset", dataset]


def run_training(recipe, recipe_path: str, out_dir: Path, dataset: Path, log=None) -> dict:
    """Train ``recipe.train`` on the build at ``dataset`` into ``out_dir``; returns the run record.

    A multi-GPU run goes through :func:`launch_command` and returns the run record rank 0 wrote.
    """
    spec = recipe.train
    if needs_launcher(spec):
        cmd = launch_command(spec, str(recipe_path), str(out_dir), str(dataset))
        if log is not None:
            log.info("launching: %s", " ".join(cmd))
        status = subprocess.call(cmd)
        if status != 0:
            raise PipelineError(f"accelerate launch exited with status {status}: {' '.join(cmd)}")
        return json.loads((Path(out_dir) / "run_manifest.json").read_text(encoding="utf-8"))
    from pipeline.train.trainer import train

    return train(spec, Path(out_dir), recipe.resolve_model(spec.model), Path(dataset))
