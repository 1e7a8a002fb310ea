"""Every entry point trains a two-GPU recipe the same way: through accelerate launch, with one command.

The CLI (`train`), the train flow (what a served train/NAME deployment runs) and the end-to-end flow
(`run`, pipeline/NAME) are each run on a recipe with ``gpus: 2``; the launch is intercepted where the
process would start (no GPU here) and the command each would have run is compared.
"""

import sys

import pytest
from conftest import write_recipe
from test_train import rwkv14b_dir

import pipeline.train.launch as launch
from schemas.recipe import TrainSpec


@pytest.fixture
def two_gpu_recipe(tmp_path):
    model = rwkv14b_dir(tmp_path)  # config only: the memory plan needs no weights
    recipe = write_recipe(
        tmp_path,
        {
            "name": "two",
            "train": {
                "model": str(model),
                "dataset": "built",
                "gpus": 2,
                "gpu_memory_gb": 48,
                "strategy": "fsdp",
            },
        },
    )
    return recipe, tmp_path / "out" / "two-lora", tmp_path / "built"


@pytest.fixture
def launched(monkeypatch):
    """The commands the launcher would have started; each 'exits' with status 7."""
    commands = []

    def call(cmd):
        commands.append(list(cmd))
        return 7

    monkeypatch.setattr(launch.subprocess, "call", call)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    return commands


def test_cli_train_flow_and_run_launch_the_same_command(two_gpu_recipe, launched, prefect_harness):
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.end_to_end import pipeline_flow
    from flows.train import train_flow
    from pipeline.errors import PipelineError

    recipe, out, built = two_gpu_recipe
    expected = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(launch.ACCELERATE_CONFIGS / "fsdp.yaml"),
        "--num_processes",
        "2",
        "-m",
        "pipeline",
        "train",
        str(recipe),
        "--out",
        str(out),
        "--dataset",
        str(built),
    ]

    res = CliRunner().invoke(app, ["train", str(recipe), "--out", str(out)])
    assert res.exit_code == 2
    assert "error: accelerate launch exited with status 7" in res.output
    with pytest.raises(PipelineError, match="accelerate launch exited with status 7"):
        train_flow(str(recipe), str(out))  # the train/NAME deployment
    with pytest.raises(PipelineError, match="accelerate launch exited with status 7"):
        pipeline_flow(str(recipe), str(out.parent))  # `run` and the pipeline/NAME deployment
    assert launched == [expected, expected, expected]


def test_one_gpu_and_ranks_train_in_process(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert launch.needs_launcher(TrainSpec(model="m", dataset="d", gpus=2))
    assert not launch.needs_launcher(TrainSpec(model="m", dataset="d", gpus=1))
    assert not launch.needs_launcher(TrainSpec(model="m", dataset="d", gpus=0))
    monkeypatch.setenv("LOCAL_RANK", "1")  # a rank of accelerate launch trains directly
    assert not launch.needs_launcher(TrainSpec(model="m", dataset="d", gpus=2))
