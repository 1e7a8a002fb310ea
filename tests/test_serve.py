"""Scheduling: a real Prefect server on 127.0.0.1, `python -m pipeline serve RECIPE`, a run triggered
through the server's REST API, watched until it completes; the recipe's cron schedule in its time zone."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, samples_copy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float, proc=None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(1)
    tail = log.read_text(errors="replace")[-3000:] if log else ""
    raise AssertionError(f"{what}: not within {timeout} s\n{tail}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prefect-server")
    url = f"http://127.0.0.1:{free_port()}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp / "home"),  # a fresh database
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PREFECT_API_URL", None)
    log = tmp / "server.log"
    port = url.split(":")[2].split("/")[0]
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                port,
            ],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )

    def healthy():
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for("prefect server", healthy, 180, proc, log)
        yield url, {**env, "PREFECT_API_URL": url}
    finally:
        proc.terminate()
        proc.wait(30)


def test_serve_then_trigger_through_the_api(server, tmp_path):
    url, env = server
    recipe = samples_copy(tmp_path, schedule={"cron": "0 3 * * *", "timezone": "Asia/Tokyo"})
    log = tmp_path / "serve.log"
    with open(log, "w") as fh:
        serve = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "serve", str(recipe), "--out-root", str(tmp_path / "out")],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:

        def deployments():  # both registered: serve is past its set-up
            got = [httpx.get(f"{url}/deployments/name/{f}/samples", timeout=5) for f in ("build", "pipeline")]
            return [r.json() for r in got] if all(r.status_code == 200 for r in got) else None

        build, dep = wait_for("build/samples and pipeline/samples deployments", deployments, 120, serve, log)
        assert [s["schedule"] for s in dep["schedules"]] == [
            {"cron": "0 3 * * *", "timezone": "Asia/Tokyo", "day_or": True}
        ]
        assert dep["parameters"] == {"recipe_path": str(recipe), "out_root": str(tmp_path / "out")}
        assert build["schedules"] == []  # the schedule is on the flow the recipe names (pipeline)

        def trigger():  # a busy SQLite may answer 5xx once: try again, keep the last answer for the message
            trigger.last = httpx.post(f"{url}/deployments/{dep['id']}/create_flow_run", json={}, timeout=30)
            return trigger.last.json() if trigger.last.status_code == 201 else None

        try:
            run = wait_for("a flow run of pipeline/samples", trigger, 60, serve, log)
        except AssertionError as err:
            raise AssertionError(
                f"{err}\nlast answer {trigger.last.status_code}: {trigger.last.text[:1000]}"
            ) from None

        def finished():
            state = httpx.get(f"{url}/flow_runs/{run['id']}", timeout=5).json()["state"]["type"]
            return state if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

        assert wait_for("the triggered run", finished, 300, serve, log) == "COMPLETED", log.read_text()[
            -3000:
        ]
        out = tmp_path / "out" / "samples"
        manifest = json.loads((out / "manifest.json").read_text())
        assert sum(c["kept"] for c in manifest["counts"].values()) == 843
        assert (out / "report.html").is_file()

        # the scheduler has planned the nightly runs: 03:00 in Tokyo is 18:00 UTC
        def planned():
            return httpx.post(
                f"{url}/flow_runs/filter",
                json={
                    "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
                    "deployments": {"id": {"any_": [dep["id"]]}},
                },
                timeout=10,
            ).json()

        runs = wait_for("scheduled runs", planned, 120, serve, log)
        assert {r["expected_start_time"][11:19] for r in runs} == {"18:00:00"}
    finally:
        serve.terminate()
        serve.wait(60)
