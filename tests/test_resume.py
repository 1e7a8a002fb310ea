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
    ("exact-done:3", "dedup"),  # the 3rd exact-dedup bucket computed, not yet saved
    ("sig-done:5", "filter"),  # the 5th unit's signatures (computed as its file is cleaned) not yet saved
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
    if point.startswith("near-band"):  # near dedup reads the signature units the workers wrote
        assert finished_units(out, "sig") == 22 and finished_units(out, "exact") == 8
    rerun = build(recipe, out, env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert files_of(out) == expected
    assert not (out.parent / f".{out.name}.partial").exists()
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


def test_a_kill_mid_file_resumes_at_the_last_finished_range(setup, tmp_path):
    """Units of 40 records: the first file (alpaca_ja, 300 records) is 8 ranges; a kill after the 6th
    keeps 6 ranges (240 records) and the rerun cleans only the rest of the file, and every other file."""
    _, _, env, expected, full = setup
    recipe = samples_copy(tmp_path, output={"shard_rows": 100}, runtime={"workers": 1, "unit_records": 40})
    out = tmp_path / "out"
    killed = build(recipe, out, env, "clean-saved:6")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert finished_units(out, "clean") == 6
    rerun = build(recipe, out, env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert files_of(out) == expected  # the same bytes as one unit per file
    manifest = json.loads((out / "manifest.json").read_text())
    ranges = sum(-(-i["records"] // 40) or 1 for i in manifest["inputs"])
    s = stats(out)
    assert s["clean_units"] == {"computed": ranges - 6, "reused": 6}
    assert s["rows_cleaned"] == full["rows_cleaned"] - 240


def test_a_worker_killed_alone_stops_the_build_in_one_line_and_the_rerun_finishes(setup, tmp_path):
    """The OOM killer picks one worker of the process pool: exit 2, one error line, the rerun goes on."""
    _, _, env, expected, _ = setup
    recipe = samples_copy(tmp_path, output={"shard_rows": 100}, runtime={"workers": 2})
    out = tmp_path / "out"
    crashed = build(recipe, out, env, "clean:50:crash")
    assert crashed.returncode == 2, crashed.stderr[-3000:]
    errors = [line for line in crashed.stderr.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert errors == [
        "error: a worker process died during read+clean (killed from outside, or out of memory: try fewer "
        "runtime.workers or smaller runtime.unit_records); finished units are kept, run the build again to go on"
    ]
    rerun = build(recipe, out, env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert files_of(out) == expected


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
    assert s["signature_units"] == {"computed": 0, "reused": 22}  # the threshold is not in a signature
    # a cleaning threshold: every file is cleaned again
    s = rebuild(dedup={"near": {"threshold": 0.7}}, clean={"min_chars_text": 50})
    assert s["clean_units"] == {"computed": 22, "reused": 0}
    # units no longer used are swept: one per input file, one per dedup pass
    work = tmp_path / ".out.work"
    stages = ("clean", "exact", "sig", "near")  # per file, per bucket, per clean unit, one
    assert [len(list((work / st).iterdir())) for st in stages] == [22, 8, 22, 1]


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


EMBEDDED = """
import os, sys
from flows.prefect_api import embedded_api
from prefect.client.orchestration import get_client
with embedded_api() as url:
    ca = os.environ["PREFECT_API_SSL_CERT_FILE"]
    with get_client(sync_client=True) as client:
        healthy = client.api_healthcheck() is None
    print(url.startswith("http://127.0.0.1:"), healthy, open(ca).read().count("BEGIN CERTIFICATE"))
print("PREFECT_API_SSL_CERT_FILE" in os.environ, os.path.exists(ca))
"""


def test_the_embedded_api_is_reached_with_a_one_certificate_ca_file_removed_afterwards(tmp_path):
    """The CLI's own API is plain HTTP on loopback: its clients are pointed at a one-certificate CA file
    (an SSL context from certifi's bundle costs ~30 ms per client, several per task), removed at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= {"PREFECT_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", EMBEDDED], env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split() == ["True", "True", "1", "False", "False"]
