"""A build never destroys or corrupts what is not its own (real CLI processes).

- an ``--out`` that is a user's folder, or a build output with the user's files in it, is refused;
- recipe names are one path component;
- one run per output at a time: a second run fails naming the first, or waits with ``--wait``;
- Prefect's API server dying under a run stops the run within seconds, in one line; the rerun resumes.
"""

import html
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, files_of, samples_copy, write_recipe


@pytest.fixture(scope="module")
def setup(tmp_path_factory, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    tmp = tmp_path_factory.mktemp("safety")
    recipe = samples_copy(tmp)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(ROOT)}
    for k in ("PIPELINE_FAILPOINT", "PIPELINE_FAILPOINT_READY"):
        env.pop(k, None)
    ref = tmp / "ref" / "out"
    res = cli(env, "build", recipe, "--out", ref)
    assert res.returncode == 0, res.stderr[-3000:]
    return tmp, recipe, env, files_of(ref)


def cli(env, *args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


def start(env, *args, log: Path):
    """A CLI run in the background; its output to a file (a pipe could be held open by a child)."""
    fh = open(log, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *map(str, args)], env=env, stdout=fh, stderr=subprocess.STDOUT
    )


def paused(env, ready: Path, point: str = "clean:100") -> dict:
    """The environment of a run that holds still at ``point`` after creating ``ready``."""
    return {**env, "PIPELINE_FAILPOINT": f"{point}:pause", "PIPELINE_FAILPOINT_READY": str(ready)}


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "the run ended before reaching its pause point"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.2)


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


def test_a_user_folder_under_out_is_refused_and_kept(setup):
    tmp, recipe, env, expected = setup
    notes = tmp / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("my own notes\n")
    res = cli(env, "build", recipe, "--out", notes)
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {notes} exists and is not a build output (use --overwrite to replace it)"
    assert (notes / "todo.txt").read_text() == "my own notes\n" and len(list(notes.iterdir())) == 1
    assert not list(tmp.glob(".notes.*.partial")) and not (tmp / ".notes.work").exists()
    # a file in place of the directory, and a link to the folder, are refused the same way
    (tmp / "afile").write_text("x")
    (tmp / "alink").symlink_to(notes)
    for target in (tmp / "afile", tmp / "alink"):
        res = cli(env, "build", recipe, "--out", target)
        assert res.returncode == 2 and "exists and is not a build output" in one_error_line(res.stderr)
    assert (tmp / "afile").read_text() == "x" and (notes / "todo.txt").exists()
    # asked for, the folder is replaced by the build
    res = cli(env, "build", recipe, "--out", notes, "--overwrite")
    assert res.returncode == 0, res.stderr[-3000:]
    assert files_of(notes) == expected


def test_a_build_output_holding_a_users_file_is_refused(setup):
    tmp, recipe, env, expected = setup
    out = tmp / "mine" / "out"
    assert cli(env, "build", recipe, "--out", out).returncode == 0
    (out / "analysis.ipynb").write_text("{}")
    res = cli(env, "build", recipe, "--out", out)
    assert res.returncode == 2
    assert one_error_line(res.stderr) == (
        f"error: {out} holds files no build wrote (analysis.ipynb): move them, or use --overwrite to "
        "replace the whole directory"
    )
    assert (out / "analysis.ipynb").exists()
    (out / "analysis.ipynb").unlink()
    assert cli(env, "build", recipe, "--out", out).returncode == 0  # its own output: rebuilt in place
    assert files_of(out) == expected


@pytest.mark.parametrize("name", [".", ".."])
def test_recipe_names_are_one_path_component(setup, tmp_path, name):
    _, _, env, _ = setup
    recipe = samples_copy(tmp_path, name=name)
    (tmp_path / "data" / "out").mkdir(parents=True)
    (tmp_path / "data" / "out" / "keep.txt").write_text("kept")
    res = cli(env, "build", recipe, cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"error: {recipe}: recipe key 'name': '{name}' is not a name (letters, digits and -_. , not '.' or '..')"
    )
    assert [p.name for p in (tmp_path / "data" / "out").iterdir()] == ["keep.txt"]


def test_one_writer_per_output_a_second_run_fails_or_waits(setup):
    tmp, recipe, env, expected = setup
    out = tmp / "busy" / "out"
    ready = tmp / "busy-ready"
    first = start(paused(env, ready), "build", recipe, "--out", out, log=tmp / "first.log")
    try:
        wait_for(ready, first)
        second = cli(env, "build", recipe, "--out", out)
        assert second.returncode == 2
        line = one_error_line(second.stderr)
        assert line.startswith(f"error: {out} is being written by another run (pid {first.pid} on ")
        assert line.endswith("wait for it to end, or run again with --wait")
        waiting = start(env, "build", recipe, "--out", out, "--wait", log=tmp / "waiting.log")
        time.sleep(3)
        assert waiting.poll() is None  # still waiting for the lock
    finally:
        first.kill()  # the kernel drops its lock: the waiting run takes over
        first.wait()
    assert waiting.wait(timeout=600) == 0, (tmp / "waiting.log").read_text()[-3000:]
    assert "waiting for the run that writes" in (tmp / "waiting.log").read_text()
    assert files_of(out) == expected  # no temporary file left in the finished DIR either
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def _children(pid: int) -> list[int]:
    kids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(proc.name))
    return kids


def test_a_dead_api_server_stops_the_run_in_seconds_and_the_rerun_resumes(setup, tmp_path):
    tmp, recipe, env, expected = setup
    own = {k: v for k, v in env.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": str(tmp_path / "ph")}
    out = tmp_path / "out"
    ready = tmp_path / "ready"
    run = start(paused(own, ready), "build", recipe, "--out", out, log=tmp_path / "run.log")
    try:
        wait_for(ready, run)
        (server,) = [p for p in _children(run.pid) if b"uvicorn" in Path(f"/proc/{p}/cmdline").read_bytes()]
        os.kill(server, signal.SIGKILL)
        t0 = time.monotonic()
        status = run.wait(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        if run.poll() is None:
            run.kill()
    log = (tmp_path / "run.log").read_text()
    assert status == 1 and elapsed < 10, (status, elapsed, log[-3000:])
    assert one_error_line(log) == (
        "error: Prefect's API server stopped during the run (exit status -9); finished work is kept: "
        "run the same command again to resume"
    )
    assert not out.exists()
    rerun = cli(env, "build", recipe, "--out", out)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert files_of(out) == expected


def test_generate_and_train_write_only_into_their_own_kind_of_folder(setup, tmp_path):
    from conftest import SAMPLES, write_recipe
    from test_train import rwkv14b_dir

    _, _, env, _ = setup
    model = rwkv14b_dir(tmp_path)  # a model's folder: config.json
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    recipe = write_recipe(
        tmp_path,
        {
            "name": "m",
            "generate": {
                "model": str(model),
                "backend": "transformers",
                "seed_tasks": str(SAMPLES / "seed_tasks" / "seed_tasks_jp_cleaned.jsonl"),
            },
            "train": {"model": str(model), "dataset": "built", "gpus": 0},
        },
    )
    res = cli(env, "train", recipe, "--out", model)
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"error: {model} exists and is not a train output (it holds config.json): choose another --out"
    )
    res = cli(env, "generate", recipe, "--out", tmp_path / "notes")
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"error: {tmp_path / 'notes'} exists and is not a generate output (it holds todo.txt): "
        "choose another --out"
    )
    assert sorted(p.name for p in model.iterdir()) == ["config.json"]
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["todo.txt"]


def test_html_in_rows_is_escaped_in_the_report(setup, tmp_path):
    from flows.build import build_flow

    payloads = [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(2)">',
        "</svg><svg onload=alert(3)>",
        '"><iframe src="javascript:alert(4)">',
        "<style>body{display:none}</style>",
        "&lt;already escaped&gt; & <b>bold</b>",
    ]
    rows = [
        {"instruction": f"Repeat this markup exactly: {p}", "input": "", "output": f"Here it is: {p} done."}
        for p in payloads
    ]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    recipe = write_recipe(
        tmp_path,
        {"name": "h", "sources": [{"name": "html", "kind": "alpaca", "path": "a.json", "license": "mit"}],
         "dedup": {"exact": True, "near": False}, "split": {"validation": 0.0}},
    )
    build_flow(str(recipe), str(tmp_path / "out"))
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    shown = sum(html.escape(p, quote=False) in page or html.escape(p) in page for p in payloads)
    assert shown >= 1  # the samples table shows rows: the payloads are there, escaped
    for p in payloads:
        assert p not in page
    assert "<script" not in page and "<iframe" not in page and "onerror=" not in page


UNSAFE = [
    (r"\bimport pickle\b|\bfrom pickle\b|\bcloudpickle\b", "pickle"),
    (r"(?<![\w.])eval\(|(?<![\w.])exec\(", "eval/exec"),
    (r"shell=True", "shell=True"),
    (r"yaml\.load\((?![^)]*SafeLoader)", "yaml.load without SafeLoader"),
    (r"trust_remote_code=True", "trust_remote_code"),
    (r"torch\.load\((?![^)]*weights_only=True)", "torch.load without weights_only=True"),
]


def test_no_unsafe_loading_or_execution_in_our_code():
    found = []
    for package in ("pipeline", "flows", "schemas", "benchmarks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for pattern, what in UNSAFE:
                for m in re.finditer(pattern, text):
                    found.append(f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {what}")
    assert found == []
