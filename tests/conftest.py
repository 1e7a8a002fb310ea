import os
import sys
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the planted near-duplicate set lives there
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
