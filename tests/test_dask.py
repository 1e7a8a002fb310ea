"""Scale-out: the per-file units of a build on a real 2-worker local Dask cluster (prefect-dask's
DaskTaskRunner), compared byte for byte with the local run."""

import json
import os

from conftest import files_of, samples_copy


def test_two_dask_workers_write_the_same_bytes_as_the_local_run(tmp_path, prefect_harness):
    from flows.build import build_flow

    local = samples_copy(tmp_path / "local-recipe", output={"shard_rows": 100})
    dask = samples_copy(
        tmp_path / "dask-recipe", output={"shard_rows": 100}, runtime={"engine": "dask", "workers": 2}
    )
    build_flow(str(local), str(tmp_path / "local"))
    build_flow(str(dask), str(tmp_path / "dask"))
    assert files_of(tmp_path / "dask") == files_of(tmp_path / "local")
    local_run = json.loads((tmp_path / ".local.work" / "last-run.json").read_text())
    dask_run = json.loads((tmp_path / ".dask.work" / "last-run.json").read_text())
    assert local_run["workers"] == [f"{os.uname().nodename}:{os.getpid()}"]  # in the flow's process
    assert len(dask_run["workers"]) == 2  # two worker processes did the cleaning ...
    assert all(not w.endswith(f":{os.getpid()}") for w in dask_run["workers"])  # ... neither is this one
    assert dask_run["clean_units"] == {"computed": 22, "reused": 0}
