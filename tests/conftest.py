import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

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


def files_of(d: Path) -> dict[str, bytes]:
    """Every file under ``d`` by relative path, with its bytes."""
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}
