"""Scale-out: a build's tasks on a real 2-worker local Dask cluster (prefect-dask's DaskTaskRunner), on
the local process pool, and in the flow's own process with input files cut into units of 7 records and
the writer's id ranges of about 40 rows, and the pool's with units of about 20 KB of text, compared byte
for byte."""

import json
import os

from conftest import files_of, samples_copy


def test_dask_the_process_pool_and_small_units_write_the_same_bytes(tmp_path, prefect_harness, monkeypatch):
    from flows.build import build_flow
    from pipeline.resume import assemble

    # the inline run's writer (in this process) also cuts the id space into ranges of about 40 rows
    monkeypatch.setattr(assemble, "PART_ROWS", 40)

    runtimes = {
        "inline": {"workers": 1, "unit_records": 7},  # every task in this process, 7 records a unit
        "pool": {"workers": 2, "unit_bytes": 20_000},  # the local process pool, ranges of ~20 KB of text
        "dask": {"engine": "dask", "workers": 2},
    }
    runs = {}
    for name, runtime in runtimes.items():
        recipe = samples_copy(tmp_path / f"{name}-recipe", output={"shard_rows": 100}, runtime=runtime)
        build_flow(str(recipe), str(tmp_path / name))
        runs[name] = json.loads((tmp_path / f".{name}.work" / "last-run.json").read_text())
    assert files_of(tmp_path / "pool") == files_of(tmp_path / "inline")
    assert files_of(tmp_path / "dask") == files_of(tmp_path / "inline")
    here = f"{os.uname().nodename}:{os.getpid()}"
    assert runs["inline"]["workers"] == [here]  # in the flow's process
    assert runs["inline"]["write_worker"] == here
    # the pool's write runs in a fresh process of its own, not in a worker that cleaned (nor in this one)
    assert runs["pool"]["write_worker"] not in [*runs["pool"]["workers"], here]
    assert runs["dask"]["write_worker"] in runs["dask"]["workers"]  # Dask's workers run every stage
    manifest = json.loads((tmp_path / "inline" / "manifest.json").read_text())
    ranges = sum(-(-i["records"] // 7) or 1 for i in manifest["inputs"])
    assert runs["inline"]["clean_units"] == {"computed": ranges, "reused": 0}
    for name in ("pool", "dask"):
        assert len(runs[name]["workers"]) == 2  # two worker processes did the cleaning ...
        assert here not in runs[name]["workers"]  # ... neither is this one
    assert runs["dask"]["clean_units"] == {"computed": 22, "reused": 0}  # a unit per input file
    # the pool's files of more than ~20 KB of text were cut into more ranges: the same bytes
    pool_units = runs["pool"]["clean_units"]["computed"]
    assert pool_units > 22 and pool_units == len(list((tmp_path / ".pool.work" / "clean").iterdir()))
