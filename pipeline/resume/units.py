"""The resumable units of a build, as plain functions over a UnitStore (pipeline/resume/store.py).

- ``clean_file``: read one input file and clean its rows, in units of at most ``runtime.unit_records``
  records (the stage that runs in parallel, a file per task, on the local runner or Dask workers);
- ``exact_bucket``: exact dedup of one of ``runtime.buckets`` partitions (by the first byte of the
  dedup key), over the (id, source, key) columns every clean unit stores beside its rows;
- ``sig_unit``: the MinHash signatures of one clean unit (per unit, on the workers); ``clean_file`` computes
  them itself for the units it cleans (the rows are in memory then), so this reads a unit back only when its
  signatures are missing (near dedup's settings changed, or a kill came between the two saves);
- ``near_unit``: near dedup over the signature units minus the exact duplicates (one unit).

The dedup units store only the duplicates they found (id, duplicate_of, similarity); rows stay in the
clean units until the writer streams them out (pipeline/resume/assemble.py). Each returns whether it was
computed or found finished, so that a run can say how much work it did.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.clean.stage import CleanStage
from pipeline.dedup.exact import dedup_key, duplicate_winners
from pipeline.dedup.near import (
    Doc,
    UnitSignatures,
    cluster_arrays,
    doc_batches,
    lsh_params,
    settings_from,
    signatures_for,
)
from pipeline.failpoints import failpoint
from pipeline.processes import KEEP_FREE, release_memory
from pipeline.records import Row, record_text, table_of
from pipeline.resume.assemble import DATA_TABLES, dropped, fixed_width, kept_rows
from pipeline.resume.store import UnitStore, unit_key
from pipeline.sink.parquet import sha256_of
from pipeline.sources import SourceFile, read_file
from pipeline.sources._io import metadata_files
from pipeline.sources._streams import file_encoding
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
    """Read and clean one input file into units of at most ``runtime.unit_records`` records and about
    ``runtime.unit_bytes`` bytes of text each (so a 1 GB file never sits in memory, and a kill mid-file
    keeps the ranges finished before it); returns
    the file's info: its unit keys, input record, counts, and how many units were computed."""
    spec = recipe.source(source)
    sha = sha256_of(f.path)
    file_key = clean_file_key(recipe, spec, f, sha)
    size, limit = recipe.runtime.unit_records, recipe.runtime.unit_bytes
    stage = CleanStage.from_recipe(recipe)
    keys: list[str] = []
    signed: list[str] = []  # the units whose signatures were computed here
    counts: Counter[str] = Counter()
    records = computed = rows_cleaned = 0
    batch: list[Row] = []

    def finish(batch: list[Row]) -> None:
        nonlocal computed, rows_cleaned
        key = unit_key("clean-range", file_key, size, limit, len(keys))
        keys.append(key)
        if work.has("clean", key):
            counts.update(work.info("clean", key)["counts"])
            return
        before = Counter(stage.counts)
        cleaned = []
        for row in stage(batch):
            failpoint("clean")
            cleaned.append(row)
        records = len(batch)
        batch.clear()  # the read rows: what the cleaned rows still need of them, they hold
        done = stage.counts - before
        counts.update(done)
        info = {"key": key, "file": file_key, "records": records, "counts": dict(sorted(done.items()))}
        at = _kept_positions(cleaned)
        keys_table = _keys_table(cleaned, at)
        # near dedup's signatures, while the rows are here as Python objects (save hands them over to Arrow)
        skey = sig_key(recipe, key)
        sig = _signatures(recipe, [cleaned[k] for k in at]) if skey is not None and not work.has("sig", skey) else None
        work.save("clean", key, cleaned, info, extra={"keys": keys_table})
        if sig is not None:
            _save_signatures(work, skey, sig)
            signed.append(key)
        computed += 1
        rows_cleaned += records
        del cleaned, sig
        release_memory(KEEP_FREE)  # the next range starts from a small process, not from this one's peak
        failpoint("clean-saved")

    nbytes = 0
    for row in read_file(f, spec, recipe.base_dir):
        failpoint("read")
        batch.append(row)
        records += 1
        nbytes += _row_size(row)
        if len(batch) == size or nbytes >= limit:
            finish(batch)
            batch, nbytes = [], 0
    if batch or not keys:
        finish(batch)
    return {
        "key": file_key,
        "units": keys,
        "input": {
            "source": source,
            "path": f.recipe_rel,
            "sha256": sha,
            "records": records,
            "encoding": file_encoding(f.path),
        },
        "counts": dict(sorted(counts.items())),
        "computed": computed,
        "signed": signed,
        "rows_cleaned": rows_cleaned,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }


def _row_size(row: Row) -> int:
    """About the bytes of a read row: its strings (characters; a conversation's turns included)."""
    n = 0
    for v in row.values():
        if isinstance(v, str):
            n += len(v)
        elif isinstance(v, list):
            n += sum(len(m.get("content") or "") for m in v if isinstance(m, dict))
    return n


def _kept_positions(rows: list[Row]) -> list[int]:
    """The positions in ``rows`` of its kept rows, in the order every per-unit column file uses: table by
    table, then id."""
    kept = [k for k, r in enumerate(rows) if table_of(r) in DATA_TABLES]
    return sorted(kept, key=lambda k: (DATA_TABLES.index(table_of(rows[k])), rows[k]["id"]))


def _keys_table(rows: list[Row], at: list[int]) -> pa.Table:
    """(id, source, table, exact-dedup key, seq) of a unit's kept rows: all that exact dedup reads (the table
    goes with each duplicate found, so that the writer counts kept rows without a map of them); ``seq`` is
    the row's place in the unit's cleaned output, from which near dedup orders the corpus as it was read;
    ``at``: :func:`_kept_positions` of ``rows``."""
    kept = [rows[k] for k in at]
    return pa.table(
        {
            "id": pa.array([r["id"] for r in kept], pa.string()),
            "source": pa.array([r["source"] for r in kept], pa.string()),
            "table": pa.array([table_of(r) for r in kept], pa.string()),
            "key": pa.array([dedup_key(r) for r in kept], pa.binary(16)),
            "seq": pa.array(at, pa.int32()),
        }
    )


TABLE_NAMES = pa.array(DATA_TABLES, pa.string())


# Near dedup walks the corpus in the order it was read, whatever the unit cut: input file by input file, in
# each file its tables in name order (as a whole file's unit was once read back: table by table, in name
# order), then the rows as they came out of cleaning (unit after unit, ``seq`` in each).
_NAME_RANK = np.argsort(np.argsort(np.array(DATA_TABLES)))


def _table_indices(t: pa.Table) -> np.ndarray:
    """A keys table's ``table`` column as indices into DATA_TABLES."""
    return pc.index_in(t.column("table"), value_set=TABLE_NAMES).to_numpy(zero_copy_only=False).astype(np.int8)


def _key_columns(
    work: UnitStore, clean_keys: list[str], priorities: dict[str, int]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(ids S32, source priorities, tables (indices into DATA_TABLES), keys S16) of each clean unit's kept
    rows, in the unit's order."""
    for key in clean_keys:
        t = work.table("clean", key, "keys")
        ids = fixed_width(t.column("id"), 32)
        keys = fixed_width(t.column("key"), 16)
        yield ids, _prio_array(t.column("source"), priorities), _table_indices(t), keys


def _priorities(recipe: Recipe) -> dict[str, int]:
    return {s.name: s.priority for s in recipe.sources}


def _prio_array(sources: pa.ChunkedArray | pa.Array, priorities: dict[str, int]) -> np.ndarray:
    """The priority of each row's source (0 for a source the recipe does not name), looked up once per
    distinct source (a unit holds one or a few), not per row."""
    if isinstance(sources, pa.ChunkedArray):
        sources = sources.combine_chunks()
    codes = pc.dictionary_encode(sources)
    values = np.array([priorities.get(v, 0) for v in codes.dictionary.to_pylist()], dtype=np.int64)
    return values[codes.indices.to_numpy(zero_copy_only=False)] if len(values) else np.empty(0, np.int64)


def _dedup_table(rows: list[tuple[str, str, float | None, str]]) -> pa.Table:
    """A dedup unit's duplicates (id, duplicate_of, similarity, table), in id order."""
    ids, of, sim, tables = zip(*rows, strict=True) if rows else ((), (), (), ())
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "duplicate_of": pa.array(of, pa.string()),
            "similarity": pa.array(sim, pa.float64()),
            "table": pa.array(tables, pa.string()),
        }
    )


def exact_keys(recipe: Recipe, clean_keys: list[str]) -> list[str]:
    """The unit keys of the exact-dedup buckets (empty when exact dedup is off)."""
    if not recipe.dedup.exact:
        return []
    p = recipe.runtime.buckets
    return [unit_key("exact", clean_keys, _priorities(recipe), b, p) for b in range(p)]


def exact_bucket(work: UnitStore, recipe: Recipe, clean_keys: list[str], bucket: int) -> tuple[str, bool, int]:
    """Exact dedup of one bucket (the rows whose key's first byte mod ``runtime.buckets`` is ``bucket``:
    equal rows share a bucket), over the (id, source, key) columns of every clean unit; stores (id,
    duplicate_of) of its duplicates. Returns (key, reused, rows given). Memory: the bucket's columns."""
    key = exact_keys(recipe, clean_keys)[bucket]
    if work.has("exact", key):
        return key, True, work.info("exact", key)["rows"]
    p, priorities = recipe.runtime.buckets, _priorities(recipe)
    ids, prios, tables, keys = [], [], [], []
    for i, pr, t, k in _key_columns(work, clean_keys, priorities):
        mine = k.view(np.uint8).reshape(-1, 16)[:, 0] % p == bucket if len(k) else np.zeros(0, bool)
        ids.append(i[mine])
        prios.append(pr[mine])
        tables.append(t[mine])
        keys.append(k[mine])
    id_arr = np.concatenate(ids) if ids else np.empty(0, "S32")
    table_arr = np.concatenate(tables) if tables else np.empty(0, np.int8)
    dups, winners = duplicate_winners(
        np.concatenate(keys) if keys else np.empty(0, "S16"),
        np.concatenate(prios) if prios else np.empty(0, np.int64),
        id_arr,
    )
    found = sorted(
        (id_arr[d].decode(), id_arr[w].decode(), None, DATA_TABLES[table_arr[d]])
        for d, w in zip(dups, winners, strict=True)
    )
    failpoint("exact-done")
    work.save_tables("exact", key, {"duplicates": _dedup_table(found)}, {"key": key, "rows": len(id_arr)})
    return key, False, len(id_arr)


def sig_key(recipe: Recipe, clean_key: str) -> str | None:
    spec = recipe.dedup.near
    if spec is False:
        return None
    # what a signature depends on: not the threshold (that only decides which pairs match)
    return unit_key("sig", clean_key, spec.model_dump(mode="json", exclude={"threshold"}))


def sig_unit(work: UnitStore, recipe: Recipe, clean_key: str) -> tuple[str, bool]:
    """MinHash signatures of one clean unit's kept rows (in its key table's order), on a worker: the
    costly half of near dedup, done in parallel; stored as one (rows, num_perm) uint32 .npy file."""
    key = sig_key(recipe, clean_key)
    if work.has("sig", key):
        return key, True
    _save_signatures(work, key, _signatures(recipe, kept_rows(work, [clean_key])))
    return key, False


def _signatures(recipe: Recipe, rows: Iterable[Row]) -> np.ndarray:
    """The MinHash signatures of ``rows`` (a clean unit's kept rows in its key table's order: read back, or
    the rows clean_file has just cleaned, which saves reading the unit again), one row each."""
    s = settings_from(recipe.dedup.near)
    parts = [np.empty((0, s.num_perm), np.uint32)]
    docs = (Doc(r["id"], record_text(r), r.get("lang")) for r in rows)
    for batch in doc_batches(docs, s.batch_size):
        parts.append(signatures_for(batch, s))
    return np.concatenate(parts)


def _save_signatures(work: UnitStore, key: str, sig: np.ndarray) -> None:
    """``sig`` as the sig unit ``key``: one (rows, num_perm) uint32 .npy file."""
    failpoint("sig-done")
    work.save_tables("sig", key, {}, {"key": key, "rows": len(sig)}, arrays={"sig": sig})


def near_key(recipe: Recipe, clean_keys: list[str]) -> str | None:
    spec = recipe.dedup.near
    if spec is False:
        return None
    return unit_key("near", exact_keys(recipe, clean_keys), clean_keys, spec.model_dump(mode="json"), _priorities(recipe))


def near_unit(work: UnitStore, recipe: Recipe, clean_keys: list[str]) -> tuple[str | None, bool | None, int]:
    """Near dedup over the kept rows that exact dedup left, from the signature units: bands are
    bucketed one at a time, candidates verified, clusters joined over integer row indices
    (pipeline/dedup/near.py ``cluster``). Returns (key, reused or None when off, rows given)."""
    key = near_key(recipe, clean_keys)
    if key is None:
        return None, None, 0
    if work.has("near", key):
        return key, True, work.info("near", key)["rows"]
    gone = dropped(work, {"exact": exact_keys(recipe, clean_keys)})
    priorities = _priorities(recipe)
    s = settings_from(recipe.dedup.near)
    bands, rows = lsh_params(s.threshold, s.num_perm)
    paths, masks, ids, prios, tables, places = [], [], [], [], [], []
    files: dict[str, int] = {}
    for n, clean_key in enumerate(clean_keys):
        t = work.table("clean", clean_key, "keys")
        i = fixed_width(t.column("id"), 32)
        mask = ~gone.mask(i)
        tab = _table_indices(t)[mask]
        paths.append(work.unit_path("sig", sig_key(recipe, clean_key)) / "sig.npy")
        masks.append(mask)
        ids.append(i[mask])
        prios.append(_prio_array(t.column("source"), priorities)[mask])
        tables.append(tab)
        file_no = files.setdefault(work.info("clean", clean_key)["file"], len(files))
        seq = t.column("seq").to_numpy()[mask]
        places.append(np.stack([np.full(len(seq), file_no), _NAME_RANK[tab], np.full(len(seq), n), seq]))
    del gone
    store = UnitSignatures(paths, masks, s.num_perm, rows)
    id_arr = np.concatenate(ids) if ids else np.empty(0, "S32")
    table_arr = np.concatenate(tables) if tables else np.empty(0, np.int8)
    prio_arr = np.concatenate(prios) if prios else np.empty(0, np.int64)
    place = np.concatenate(places, axis=1) if places else np.empty((4, 0), np.int64)
    read_order = np.empty(store.n, np.int64)
    read_order[np.lexsort(place[::-1])] = np.arange(store.n)
    del place, places
    try:
        dup, of, sim = (
            cluster_arrays(store, id_arr, prio_arr, s.threshold, bands, read_order)
            if store.n
            else (np.empty(0, np.int64),) * 3
        )
    finally:
        store.close()
    # the columns straight from the numpy arrays: no Python object per duplicate (.tolist() of the id
    # columns and table names made ~140 MB of them at 2M documents, near dedup's peak)
    table = pa.table(
        {
            "id": pa.array(id_arr[dup], pa.binary()).cast(pa.string()),
            "duplicate_of": pa.array(id_arr[of], pa.binary()).cast(pa.string()),
            "similarity": pa.array(np.asarray(sim, np.float64), pa.float64()),
            "table": TABLE_NAMES.take(pa.array(table_arr[dup], pa.int8())),
        }
    )
    work.save_tables("near", key, {"duplicates": table}, {"key": key, "rows": store.n, "clusters": cluster_sizes(of)})
    return key, False, store.n


def cluster_sizes(of: np.ndarray) -> list[list[int]]:
    """[near duplicates, kept rows with that many] from the row each near duplicate keeps: the report's
    cluster table, counted here from the arrays (the writer would need a map of every kept id with
    duplicates, which grows with the corpus)."""
    _, per_kept = np.unique(of, return_counts=True)
    sizes, rows = np.unique(per_kept, return_counts=True)
    return [[int(a), int(b)] for a, b in zip(sizes.tolist(), rows.tolist(), strict=True)]
