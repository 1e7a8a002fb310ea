"""Shards written by the generate flow (DIR/generated/*.parquet): instruction rows with their
``generation`` record, taken into a build like any other source. The generator's own lineage is kept
in ``meta``; the row's license is the recipe source's — except for backtranslated rows (generate.task
backtranslate), whose output is a person's text: they keep their own licence, task and ``answer_of``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.errors import InputFileError
from pipeline.records import Row, lineage, reject
from schemas.recipe import SourceSpec

KIND = "generated"


def read(path: Path, rel: str, spec: SourceSpec, base_dir: Path) -> Iterator[Row]:
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        raise InputFileError(path, f"not a readable Parquet file: {err}") from None
    for index, rec in enumerate(table.to_pylist()):
        lin = lineage(spec.name, rel, index, spec.license)
        if not all(isinstance(rec.get(k), str) for k in ("instruction", "output")):
            yield reject(
                lin, "parse", "missing_field", "no string instruction/output", json.dumps(rec, default=str)
            )
            continue
        meta = {"generator_id": rec.get("id"), "generator_source": rec.get("source"), "task": rec.get("task")}
        task = "generated"
        if rec.get("task") == "backtranslated":  # the output is a person's text: its licence and origin stay
            task = "backtranslated"
            lin["license"] = rec.get("license") or spec.license
            meta["answer_of"] = json.loads(rec["meta"]).get("answer_of") if rec.get("meta") else None
        row = dict(lin)
        row.update(
            instruction=rec["instruction"],
            input=rec.get("input") or "",
            output=rec["output"],
            task=task,
            generation=rec.get("generation"),
            meta=json.dumps(meta, ensure_ascii=False, sort_keys=True),
        )
        yield row
