"""The one-way layers, checked on every module's imports (ast, so lazy imports inside functions count):

    schemas  <-  pipeline (no Prefect)  <-  flows (Prefect flows, the CLI on top)

- ``schemas`` imports nothing of ours and not Prefect;
- ``pipeline`` imports ``schemas`` and itself only, never Prefect or ``flows`` (the one exception:
  ``pipeline/__main__.py``, the shim that keeps ``python -m pipeline`` working, starts the CLI);
- inside ``pipeline``: ``text`` imports no other part of the pipeline; ``clean``, ``dedup`` and
  ``generate`` share text helpers through ``text``, never by importing each other; ``sink`` never
  imports ``generate`` or ``train``;
- nothing of ours imports the tests' support package (``testkit``) or ``tests``.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = ("schemas", "pipeline", "flows", "testkit", "tests")


def _top(name: str) -> str:
    return name.split(".")[0]


def _rule(module: str, imported: str) -> str | None:
    """Why ``module`` may not import ``imported``, or None when it may."""
    top, parts, target = _top(module), module.split("."), imported.split(".")
    if _top(imported) in ("testkit", "tests"):
        return "product code never imports test support"
    if top == "schemas":
        if _top(imported) in OURS and _top(imported) != "schemas":
            return "schemas imports nothing of ours"
        if _top(imported) == "prefect":
            return "schemas never imports prefect"
    if top == "pipeline":
        if module == "pipeline.__main__" and imported == "flows.cli":
            return None  # the shim that keeps `python -m pipeline` working
        if _top(imported) == "prefect":
            return "pipeline never imports prefect (flows/ orchestrates)"
        if _top(imported) == "flows":
            return "pipeline never imports flows (the layer above it)"
        if _top(imported) == "pipeline" and len(parts) > 1 and len(target) > 1:
            here, there = parts[1], target[1]
            if here == "text" and there != "text":
                return "pipeline.text imports no other part of the pipeline"
            peers = {"clean", "dedup", "generate"}
            if here in peers and there in peers and here != there:
                return f"pipeline.{here} does not import pipeline.{there} (shared helpers live in pipeline.text)"
            if here == "sink" and there in ("generate", "train"):
                return f"pipeline.sink does not import pipeline.{there} (they write through sink)"
    return None


def violations(root: Path) -> list[str]:
    """'file:line: imports X (why)' for every import that breaks a layer rule under ``root``."""
    found = []
    for package in ("schemas", "pipeline", "flows"):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
            for line, imported in _imports_of(path, root):
                why = _rule(module, imported)
                if why:
                    found.append(f"{rel.as_posix()}:{line}: imports {imported} ({why})")
    return found


def _imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(root).with_suffix("")
    package_parts = list(rel.parts[:-1])  # the package a relative import starts from
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                out.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            else:
                out.append((node.lineno, node.module or ""))
    return out


def test_every_import_points_down_the_layers():
    assert violations(ROOT) == []


def test_a_planted_wrong_import_is_named(tmp_path):
    for pkg in ("schemas", "pipeline/dedup", "pipeline/text", "flows"):
        (tmp_path / pkg).mkdir(parents=True)
    (tmp_path / "schemas" / "recipe.py").write_text("from prefect.client import schedules\nimport pipeline\n")
    (tmp_path / "pipeline" / "progress.py").write_text(
        "import logging\n\n\ndef log():\n    from prefect import get_run_logger\n    return get_run_logger()\n"
    )
    (tmp_path / "pipeline" / "cli.py").write_text("from flows.build import build_flow\n")
    (tmp_path / "pipeline" / "__main__.py").write_text("from flows.cli import main\n")
    (tmp_path / "pipeline" / "dedup" / "exact.py").write_text(
        "from pipeline.clean.normalize import dedup_key_text\nfrom pipeline.text import normalize\n"
    )
    (tmp_path / "pipeline" / "dedup" / "near.py").write_text("from ..generate import filters\n")
    (tmp_path / "pipeline" / "text" / "langid.py").write_text("from pipeline.records import Row\n")
    (tmp_path / "flows" / "build.py").write_text("import prefect\nfrom testkit.tiny_models import make_model\n")
    assert violations(tmp_path) == [
        "schemas/recipe.py:1: imports prefect.client (schemas never imports prefect)",
        "schemas/recipe.py:2: imports pipeline (schemas imports nothing of ours)",
        "pipeline/cli.py:1: imports flows.build (pipeline never imports flows (the layer above it))",
        "pipeline/dedup/exact.py:1: imports pipeline.clean.normalize "
        "(pipeline.dedup does not import pipeline.clean (shared helpers live in pipeline.text))",
        "pipeline/dedup/near.py:1: imports pipeline.generate "
        "(pipeline.dedup does not import pipeline.generate (shared helpers live in pipeline.text))",
        "pipeline/progress.py:5: imports prefect (pipeline never imports prefect (flows/ orchestrates))",
        "pipeline/text/langid.py:1: imports pipeline.records (pipeline.text imports no other part of the pipeline)",
        "flows/build.py:2: imports testkit.tiny_models (product code never imports test support)",
    ]
