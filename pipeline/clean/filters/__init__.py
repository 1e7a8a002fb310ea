"""Cleaning filters, one small module each, found by discovery and run in ``ORDER``.

A filter module defines ``NAME``, ``ORDER`` and ``check(row, ctx) -> None | str | (str, str)``: None keeps
the row; a string is the reject reason code; a pair is (reason, detail). Filters see normalised rows
whose ``lang`` is set; a filter with ``NEEDS_LANG = False`` runs before the slow part of language id
(langdetect), and a row it rejects keeps the script-level language ("und" where that cannot tell).
Counting, rejects and exceptions are the stage runner's job (pipeline.clean.stage).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.records import Row
from schemas.recipe import CleanSpec

Verdict = None | str | tuple[str, str]


@dataclass(frozen=True)
class FilterContext:
    clean: CleanSpec = field(default_factory=CleanSpec)
    languages: frozenset[str] = frozenset({"ja", "en"})


@dataclass(frozen=True)
class Filter:
    name: str
    order: int
    check: Callable[[Row, FilterContext], Verdict]
    needs_lang: bool = True


def discover() -> list[Filter]:
    found: list[Filter] = []
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("_"):
            continue
        module: Any = importlib.import_module(f"{__name__}.{mod.name}")
        found.append(Filter(module.NAME, module.ORDER, module.check, getattr(module, "NEEDS_LANG", True)))
    return sorted(found, key=lambda f: (f.needs_lang, f.order, f.name))


FILTERS: list[Filter] = discover()
