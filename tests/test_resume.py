"""Crash-safe resume of a build: SIGKILL at named points (pipeline/failpoints.py), then rerun.

Work is counted by the build itself (DIR's work directory, last-run.json): rows read and cleaned in
units it computed, rows given to each dedup pass it computed, rows in shards it wrote.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT, files_of, samples_copy


@pytest.fixture(scope="module")
def setup(tmp_path_factory, prefect_harness):
    """A copy of the samples and the default recipe (shards of 100 rows: many shards to write)."""
    from prefect.settings import PREFECT_API_URL

    tmp = tmp_path_factory.mktemp("resume")
    recipe = samples_copy(tmp, output={"shard_rows": 100})
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(ROOT)}
    env.pop("PIPELINE_FAILPOINT", None)
    base = tmp / "base" / "out"
    run = build(recipe, base, env)
    assert run.returncode == 0, run.stderr[-3000:]
    return tmp, recipe, env, files_of(base), stats(base)


def build(recipe: Path, out: Path, env: dict, failpoint: str | None = None):
    """The CLI in a fresh process; output to a file, not a pipe (a child left alive would hold a pipe open)."""
    if failpoint:
        env = {**env, "PIPELINE_FAILPOINT": failpoint}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", "build", str(recipe), "--out", str(out)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=600,
        )
        log.seek(0)
        proc.stderr = log.read()
    return proc


def stats(out: Path) -> dict:
    return json.loads((out.parent / f".{out.name}.work" / "last-run.json").read_text())


def finished_units(out: Path, stage: str) -> int:
    d = out.parent / f".{out.name}.work" / stage
    return sum(1 for u in d.iterdir() if (u / "unit.json").is_file()) if d.exists() else 0


# (failpoint, the stage it kills)
POINTS = [
    ("read:400", "read"),  # 400th record read
    ("clean:700", "filter"),  # 700th row through the filters
    ("exact-done", "dedup"),  # exact dedup computed, not yet saved
    ("near-band:7", "dedup"),  # near dedup, in the 7th LSH band
    ("write-tmp:3", "write"),  # 3rd atomic write (resume key, shard 1, shard 2) done but not renamed
    ("write-shard:5", "write"),  # after the 5th shard
    ("write-rename", "write"),  # everything written, before DIR is renamed into place
]


@pytest.mark.parametrize("point,stage", POINTS, ids=[p for p, _ in POINTS])
def test_sigkill_then_rerun_is_byte_identical_and_does_less(setup, point, stage):
    tmp, recipe, env, expected, full = setup
    out = tmp / point.replace(":", "-") / "out"
    killed = build(recipe, out, env, point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not out.exists()  # nothing under the final name until the whole build is there
    done_before = finished_units(out, "clean")
    scratch = out.parent / f".{out.name}.work" / "scratch"
    if point.startswith("near-band"):  # near dedup spills its signatures into the work directory
        (spill,) = scratch.glob("neardup-*")
        assert (spill / "rows.u32").stat().st_size > 0 and len(list(spill.glob("band-*.u32"))) == 14
    rerun = build(recipe, out, env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert files_of(out) == expected
    assert not (out.parent / f".{out.name}.partial").exists()
    assert not list(scratch.glob("*"))  # a killed run's spill is swept by the next finished one
    s = stats(out)
    assert s["clean_units"] == {"computed": 22 - done_before, "reused": done_before}
    assert s["rows_processed"] < full["rows_processed"], (s, full)
    if stage in ("dedup", "write"):
        assert s["clean_units"]["computed"] == 0
    if stage == "write":
        assert s["dedup"] == {"exact": "reused", "near": "reused"}
    # the shards finished before the kill are kept, the rest written
    reused = {"write-tmp:3": 1, "write-shard:5": 5}.get(point, 0)
    assert s["shards"] == {"written": full["shards"]["written"] - reused, "reused": reused}


def test_kill_during_a_rebuild_leaves_the_previous_build_whole(setup):
    tmp, recipe, env, expected, _ = setup
    out = tmp / "rebuild" / "out"
    assert build(recipe, out, env).returncode == 0
    killed = build(recipe, out, env, "write-shard:2")
    # the run found every unit finished and had only shards to write; the old DIR stays as it was
    assert killed.returncode == -signal.SIGKILL
    assert files_of(out) == expected


def test_a_changed_input_or_setting_redoes_exactly_the_work_it_affects(setup, tmp_path):
    from flows.build import build_flow

    _, _, _, expected, _ = setup

    def rebuild(**changes) -> dict:
        recipe = samples_copy(tmp_path, output={"shard_rows": 100}, **changes)
        build_flow(str(recipe), str(tmp_path / "out"))
        return stats(tmp_path / "out")

    first = rebuild()
    assert first["clean_units"] == {"computed": 22, "reused": 0}
    assert files_of(tmp_path / "out") == expected
    # one input file changes (one record dropped): its unit only, then both dedup passes and the shards
    dolly = tmp_path / "samples" / "dolly_15k" / "databricks-dolly-15k.sample.jsonl"
    dolly.write_text("".join(dolly.read_text(encoding="utf-8").splitlines(True)[1:]), encoding="utf-8")
    s = rebuild()
    assert s["clean_units"] == {"computed": 1, "reused": 21}
    assert s["rows_cleaned"] == 99
    assert s["dedup"] == {"exact": "computed", "near": "computed"}
    # near dedup's threshold: near dedup only
    s = rebuild(dedup={"near": {"threshold": 0.7}})
    assert s["clean_units"] == {"computed": 0, "reused": 22}
    assert s["dedup"] == {"exact": "reused", "near": "computed"}
    # a cleaning threshold: every file is cleaned again
    s = rebuild(dedup={"near": {"threshold": 0.7}}, clean={"min_chars_text": 50})
    assert s["clean_units"] == {"computed": 22, "reused": 0}
    # units no longer used are swept: one per input file, one per dedup pass
    work = tmp_path / ".out.work"
    assert [len(list((work / st).iterdir())) for st in ("clean", "exact", "near")] == [22, 1, 1]


def processes_with_env(marker: str) -> list[int]:
    """pids of live processes whose environment contains ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:  # gone, or not ours to read
                pass
    return found


def test_a_killed_cli_run_leaves_no_prefect_server_behind(setup, tmp_path):
    """Without PREFECT_API_URL the CLI starts Prefect's API as a child; a SIGKILL must take it along."""
    import time

    _, recipe, env, _, _ = setup
    home = f"PREFECT_HOME={tmp_path / 'prefect-home'}"
    env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": home.split("=", 1)[1]}
    killed = build(recipe, tmp_path / "out", env, "clean:100")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    deadline = time.monotonic() + 20
    while processes_with_env(home) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_with_env(home) == []
