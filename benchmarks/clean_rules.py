"""Where the cleaning stage's time goes, per rule, and the hand-written shortcuts beside what they replace.

    .venv/bin/python benchmarks/clean_rules.py                      # the shipped Japanese Alpaca sample, repeated
    .venv/bin/python benchmarks/clean_rules.py --recipe R --source S --rows 20000   # a recipe's source

Prints microseconds a row for the whole stage (``CleanStage``) and for each filter and repair over the
same rows, then the shortcuts: Japanese letters counted by the regex and through the code-unit table at
several text lengths (the cut is ``pipeline.text.instruct.JA_TABLE_FROM``). Times are process CPU time,
the best of ``--reps`` runs; compare them within one run only.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import numpy as np

import pipeline.clean.stage as stage_module
from pipeline.clean.stage import CleanStage
from pipeline.sources import expand, read_file
from pipeline.text import instruct
from schemas.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "data" / "recipes" / "default.yaml"


def recipe_rows(recipe_path: str, source: str, n: int) -> tuple[list[dict], CleanStage]:
    recipe = load_recipe(recipe_path)
    spec = recipe.source(source)
    rows: list[dict] = []
    for f in expand(recipe, spec):
        for r in read_file(f, spec, recipe.base_dir):
            rows.append(r)
            if len(rows) >= n:
                return rows, CleanStage.from_recipe(recipe)
    rows = [rows[k % len(rows)] for k in range(n)]  # a small sample, repeated
    return rows, CleanStage.from_recipe(recipe)


def best(fn, reps: int) -> float:
    out = float("inf")
    for _ in range(reps):
        t = time.process_time()
        fn()
        out = min(out, time.process_time() - t)
    return out


def per_rule(rows: list[dict], st: CleanStage, reps: int) -> None:
    acc: dict[str, float] = defaultdict(float)

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                acc[name] += time.process_time() - t

        return wrapper

    list(st(rows[:200]))  # warm: langdetect's profiles, regex compilation
    whole = best(lambda: list(st(rows)), reps)
    st.filters = [type(f)(f.name, f.order, timed(f.name, f.check), f.needs_lang) for f in st.filters]
    for name in ("normalize_row", "mask_pii", "fix_mojibake", "detect_fast", "detect", "lone_surrogate_field"):
        setattr(stage_module, name, timed(name, getattr(stage_module, name)))
    list(st(rows))
    print(f"{len(rows)} rows: the stage {1e6 * whole / len(rows):.1f} us a row (best of {reps})")
    for name, t in sorted(acc.items(), key=lambda x: -x[1]):
        print(f"  {name:24s} {1e6 * t / len(rows):7.1f} us a row")


def _ja_regex(texts: list[str], pattern) -> list[int]:
    return [sum(map(len, pattern.findall(t))) for t in texts]


def _ja_table(texts: list[str]) -> list[int]:
    table = instruct._JA
    return [int(np.count_nonzero(table[np.frombuffer(t.encode("utf-16-le"), np.uint16)])) for t in texts]


def shortcuts(reps: int) -> None:
    pattern = instruct._JA_RUN
    print(f"Japanese letters of a text, us a call: regex / table (JA_TABLE_FROM = {instruct.JA_TABLE_FROM})")
    mixed = "日本語の文章です。English words too, 123. "
    for n in (30, 60, 100, 150, 200, 400, 1000, 3000):
        texts = [(mixed * (n // len(mixed) + 1))[:n]] * 2000
        assert _ja_regex(texts, pattern) == _ja_table(texts)
        regex = best(partial(_ja_regex, texts, pattern), reps)
        table = best(partial(_ja_table, texts), reps)
        print(f"  {n:5d} chars  {1e6 * regex / len(texts):6.2f}  {1e6 * table / len(texts):6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default=str(DEFAULT))
    ap.add_argument("--source", default="alpaca_ja", help="a source of the recipe")
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    rows, st = recipe_rows(args.recipe, args.source, args.rows)
    per_rule(rows, st, args.reps)
    shortcuts(args.reps)


if __name__ == "__main__":
    main()
