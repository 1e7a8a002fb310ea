"""The resumable units of a build, as plain functions over a UnitStore (pipeline/resume/store.py).

- ``clean_file``: read one input file and clean its rows, in units of at most ``runtime.unit_records``
  records (the stage that runs in parallel, a file per task, on the local runner or Dask workers);
- ``exact_unit`` / ``near_unit``: the two dedup passes over all kept rows (one unit each), reading the
  clean units a batch at a time and storing only the duplicates found.

Each returns what it produced and whether it was computed or found finished, so that a run can say how
much work it did. ``reused`` is None for a pass the recipe turns off.
"""

from __future__ import annotations

import os
import socket
from collections import Counter

import numpy as np
import pyarrow as pa

from pipeline.clean.stage import CleanStage
from pipeline.dedup.exact import dedup_key, duplicate_winners
from pipeline.dedup.near import Doc, near_duplicates, settings_from
from pipeline.failpoints import failpoint
from pipeline.records import Row, record_text
from pipeline.resume.assemble import dropped, kept_rows
from pipeline.resume.store import UnitStore, unit_key
from pipeline.sink.parquet import sha256_of
from pipeline.sources import SourceFile, read_file
from pipeline.sources._io import metadata_files
from schemas.recipe import Recipe, SourceSpec


def _dependencies(recipe: Recipe, spec: SourceSpec) -> list[str]:
    """sha256 of the other files a reader consults (the arXiv metadata a join reads)."""
    return [sha256_of(p) for p in metadata_files(spec, recipe.base_dir)]


def clean_file_key(recipe: Recipe, spec: SourceSpec, f: SourceFile, sha256: str) -> str:
    source = spec.model_dump(mode="json", exclude={"priority", "path"})
    return unit_key(
        "clean",
        source,
        f.rel,
        f.recipe_rel,
        sha256,
        _dependencies(recipe, spec),
        recipe.clean.model_dump(mode="json"),
        recipe.languages,
        None if recipe.license_policy is None else recipe.license_policy.model_dump(mode="json"),
    )


def clean_file(work: UnitStore, recipe: Recipe, source: str, f: SourceFile) -> dict:
    """Read and clean one input file into units of at most ``runtime.unit_records`` records each (so a
    1 GB file never sits in memory, and a kill mid-file keeps the ranges finished before it); returns
    the file's info: its unit keys, input record, counts, and whether every unit was found finished."""
    spec = recipe.source(source)
    sha = sha256_of(f.path)
    file_key = clean_file_key(recipe, spec, f, sha)
    size = recipe.runtime.unit_records
    stage = CleanStage.from_recipe(recipe)
    keys: list[str] = []
    counts: Counter[str] = Counter()
    records = computed = 0
    batch: list[Row] = []

    def finish(batch: list[Row]) -> None:
        nonlocal computed
        key = unit_key("clean-range", file_key, size, len(keys))
        keys.append(key)
        if work.has("clean", key):
            counts.update(work.info("clean", key)["counts"])
            return
        before = Counter(stage.counts)
        cleaned = []
        for row in stage(batch):
            failpoint("clean")
            cleaned.append(row)
        done = stage.counts - before
        counts.update(done)
        work.save("clean", key, cleaned, {"key": key, "records": len(batch), "counts": dict(sorted(done.items()))})
        computed += 1
        failpoint("clean-saved")

    for row in read_file(f, spec, recipe.base_dir):
        failpoint("read")
        batch.append(row)
        records += 1
        if len(batch) == size:
            finish(batch)
            batch = []
    if batch or not keys:
        finish(batch)
    return {
        "key": file_key,
        "units": keys,
        "input": {"source": source, "path": f.recipe_rel, "sha256": sha, "records": records},
        "counts": dict(sorted(counts.items())),
        "reused": computed == 0,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }


def _dedup_table(rows: list[tuple[str, str, float | None]]) -> pa.Table:
    ids, of, sim = zip(*rows, strict=True) if rows else ((), (), ())
    return pa.table(
        {"id": pa.array(ids, pa.string()), "duplicate_of": pa.array(of, pa.string()),
         "similarity": pa.array(sim, pa.float64())}
    )


def exact_unit(work: UnitStore, recipe: Recipe, clean_keys: list[str]) -> tuple[str, bool | None, int]:
    """Exact dedup over the kept rows of every clean unit, read a batch at a time: only their dedup
    keys, priorities and ids are held. Stores (id, duplicate_of) of the duplicates; returns (key,
    reused or None when off, rows given)."""
    priorities = {s.name: s.priority for s in recipe.sources}
    key = unit_key("exact", clean_keys, recipe.dedup.exact, priorities)
    if not recipe.dedup.exact:
        return key, None, 0
    if work.has("exact", key):
        return key, True, work.info("exact", key)["rows"]
    keys, prios, ids = [], [], []
    for row in kept_rows(work, clean_keys):
        keys.append(dedup_key(row))
        prios.append(priorities.get(row["source"], 0))
        ids.append(row["id"])
    id_arr = np.array(ids, dtype="S32")
    dups, winners = duplicate_winners(np.array(keys, dtype="S16"), np.array(prios, dtype=np.int64), id_arr)
    found = sorted((id_arr[d].decode(), id_arr[w].decode(), None) for d, w in zip(dups, winners, strict=True))
    failpoint("exact-done")
    work.save_tables("exact", key, {"duplicates": _dedup_table(found)}, {"key": key, "rows": len(ids)})
    return key, False, len(ids)


def near_unit(
    work: UnitStore, recipe: Recipe, clean_keys: list[str], exact_key: str
) -> tuple[str, bool | None, int]:
    """Near dedup over the kept rows that exact dedup left, streamed from the clean units into the
    MinHash LSH of pipeline/dedup/near.py (signatures spill into the store's scratch folder)."""
    priorities = {s.name: s.priority for s in recipe.sources}
    spec = recipe.dedup.near
    key = unit_key("near", exact_key, False if spec is False else spec.model_dump(mode="json"), priorities)
    if spec is False:
        return key, None, 0
    if work.has("near", key):
        return key, True, work.info("near", key)["rows"]
    gone = set(dropped(work, {"exact": exact_key}))
    given = 0

    def docs():
        nonlocal given
        for r in kept_rows(work, clean_keys):
            if r["id"] not in gone:
                given += 1
                yield Doc(r["id"], record_text(r), r.get("lang"), priorities.get(r["source"], 0))

    found = near_duplicates(docs(), settings_from(spec), work.scratch())
    table = _dedup_table([(d.id, d.duplicate_of, d.similarity) for d in found])
    work.save_tables("near", key, {"duplicates": table}, {"key": key, "rows": given})
    return key, False, given

