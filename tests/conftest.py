import json
import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# flash-linear-attention's Triton kernels run on CPU tensors under the interpreter; triton decides at its first
# import whether its own jit functions are interpreted, so this is set before anything imports torch or triton
os.environ.setdefault("TRITON_INTERPRET", "1")

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
DEFAULT_RECIPE = ROOT / "data" / "recipes" / "default.yaml"


@pytest.fixture(scope="session")
def prefect_harness():
    """One embedded Prefect API for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def write_recipe(dir: Path, data: dict, name: str = "recipe.yaml") -> Path:
    path = dir / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def spec(name="s", kind="alpaca", path="x", license="cc-by-4.0", **kw):
    from schemas.recipe import SourceSpec

    return SourceSpec(name=name, kind=kind, path=path, license=license, **kw)


def read_all(kind: str, file: Path, **kw) -> list[dict]:
    """Every row and reject a reader yields for one file."""
    from pipeline.sources import READERS

    s = spec(kind=kind, path=str(file), **kw)
    return list(READERS[kind](file, file.name, s, file.parent))


def samples_copy(dir: Path, **changes) -> Path:
    """A copy of data/samples and of the default recipe (with ``changes``) under ``dir``; the recipe."""
    import shutil

    if not (dir / "samples").exists():
        shutil.copytree(SAMPLES, dir / "samples")
    (dir / "recipes").mkdir(exist_ok=True)
    data = yaml.safe_load(DEFAULT_RECIPE.read_text(encoding="utf-8"))
    recipe = dir / "recipes" / "default.yaml"
    recipe.write_text(yaml.safe_dump({**data, **changes}, allow_unicode=True), encoding="utf-8")
    return recipe


def cpu_train_spec(**changes):
    """A TrainSpec for a few fast LoRA steps of a tiny model on CPU (fp32, constant lr, no checkpointing),
    with ``changes`` on top."""
    from schemas.recipe import TrainSpec

    base = dict(
        model="m",
        dataset="d",
        lora={"r": 8, "alpha": 16, "dropout": 0.0},
        seq_len=256,
        micro_batch=2,
        grad_accum=1,
        max_steps=3,
        lr=2e-2,
        lr_scheduler="constant",
        precision="fp32",
        gpus=0,
        logging_steps=2,
        eval_steps=100,
        save_steps=100,
        sample_generations=0,
        gradient_checkpointing=False,
    )
    return TrainSpec(**{**base, **changes})


def files_of(d: Path) -> dict[str, bytes]:
    """Every file under ``d`` by relative path, with its bytes."""
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    from testkit.tiny_models import make_model

    ja = json.loads((SAMPLES / "japanese_alpaca" / "alpaca_data_ja.sample.json").read_text())
    texts = [r["instruction"] + "\n" + r["output"] for r in ja]
    root = tmp_path_factory.mktemp("models")
    # A wider init than the 0.02 default (attention models) lets a LoRA move the logits of a 64-wide model.
    extra = {"gpt_neox": {"initializer_range": 0.2}, "llama": {"initializer_range": 0.2}, "rwkv": {}}
    return {
        a: make_model(root / a, texts, a, hidden=64, heads=1, layers=2, vocab_size=512, **extra[a])
        for a in ("gpt_neox", "llama", "rwkv")
    }


@pytest.fixture(scope="session")
def small_build(tmp_path_factory, prefect_harness):
    """A real build output of 12 Japanese Alpaca rows (2 of them in validation with seed 3)."""
    tmp = tmp_path_factory.mktemp("build")
    ja = json.loads((SAMPLES / "japanese_alpaca" / "alpaca_data_ja.sample.json").read_text())
    short = [r for r in ja if len(r["output"]) < 60][:12]
    (tmp / "a.json").write_text(json.dumps(short, ensure_ascii=False))
    return one_source_build(tmp, "small", {"name": "a", "kind": "alpaca", "path": "a.json", "license": "mit"})


def one_source_build(tmp: Path, name: str, source: dict) -> Path:
    """A real build of one source in ``tmp`` (validation 0.2, seed 3): its output folder ``tmp/out``."""
    from flows.build import build_flow

    r = write_recipe(tmp, {"name": name, "sources": [source], "split": {"validation": 0.2, "seed": 3}})
    build_flow(str(r), str(tmp / "out"))
    return tmp / "out"
