"""Source readers: one module per source kind, found by their ``KIND``.

A source module defines ``KIND = "name"`` and ``read(path, rel, spec, base_dir) -> Iterator[Row]`` that
yields data rows and parse rejects, each with lineage (``source_file`` = ``rel``, ``source_index`` = position
in that file). Adding a kind means adding one module here; nothing else changes (a kind with recipe options of
its own also adds their model to schemas/sources.py, and reads them as ``spec.options``). A reader may yield
several rows for one record (an OASST tree's paths: ``lineage(..., part=k)``) or one row for several (a
conversation of many message lines), as long as every record ends in a row or a reject.
"""

from __future__ import annotations

import glob
import importlib
import os
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.records import Row
from schemas.recipe import Recipe, SourceSpec

Reader = Callable[[Path, str, SourceSpec, Path], Iterator[Row]]


def _discover() -> dict[str, Reader]:
    readers: dict[str, Reader] = {}
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        kind = getattr(module, "KIND", None)
        if kind:
            readers[kind] = module.read
    return readers


READERS: dict[str, Reader] = _discover()


@dataclass(frozen=True)
class SourceFile:
    """One file a source's glob matched."""

    source: str
    path: Path  # absolute
    rel: str  # relative to the directory the glob starts from (the row's source_file)
    recipe_rel: str  # relative to the recipe's folder (for the manifest)


def glob_root(pattern: str) -> Path:
    """The directory a glob starts from: its longest leading part without wildcards."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    root = Path(*fixed) if fixed else Path(".")
    if len(fixed) == len(parts):  # no wildcard at all: the file's own folder
        root = root.parent
    return root


def expand(recipe: Recipe, spec: SourceSpec) -> list[SourceFile]:
    """The files a source's glob matches, sorted; a glob matching nothing or an unknown kind stops the run."""
    if spec.kind not in READERS:
        raise PipelineError(
            f"source {spec.name!r}: unknown kind {spec.kind!r} (known: {', '.join(sorted(READERS))})"
        )
    pattern = recipe.resolve(spec.path)
    root = glob_root(str(pattern))
    files, seen = [], set()
    for p in sorted(glob.glob(str(pattern), recursive=True)):
        real = os.path.realpath(p)  # a file reached twice (a link, a "**" through a link loop): read once
        if Path(p).is_file() and real not in seen:
            seen.add(real)
            files.append(Path(p))
    if not files:
        raise PipelineError(f"source {spec.name!r}: no file matches {pattern}")
    out = []
    for f in files:
        out.append(
            SourceFile(
                source=spec.name,
                path=f,
                rel=f.relative_to(root).as_posix(),
                recipe_rel=f.as_posix() if Path(spec.path).is_absolute() else _relative(f, recipe.base_dir),
            )
        )
    return out


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def read_file(f: SourceFile, spec: SourceSpec, base_dir: Path) -> Iterator[Row]:
    return READERS[spec.kind](f.path, f.rel, spec, base_dir)
