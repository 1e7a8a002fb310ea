"""Prefect's API for one CLI run, when no server is configured.

Prefect's own ephemeral mode starts its API server as a child process and stops it on a clean exit, but a
run killed with SIGKILL (or by the OOM killer) leaves that server running forever. Here the same server
(uvicorn over ``prefect.server.api.server:create_app``, UI off) is started with the kernel told to stop it
when this process dies (Linux ``PR_SET_PDEATHSIG``), so a killed build leaves nothing behind. Elsewhere,
or with PREFECT_API_URL set, Prefect's own behaviour is kept.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from pipeline.processes import die_with_parent, stop_process


def _die_with_parent(parent: int):
    return lambda: die_with_parent(parent, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server() -> tuple[subprocess.Popen, int]:
    """uvicorn over Prefect's API app on a free local port, told to die with this process."""
    import importlib.util

    port = _free_port()
    app_dir = Path(importlib.util.find_spec("prefect").origin).parent  # without importing Prefect
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(app_dir.parent),
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ],
        env=env,
        preexec_fn=_die_with_parent(os.getpid()),
    )
    return proc, port


@contextmanager
def embedded_api(timeout: float = 120, on_loss=None, meanwhile=None):
    """Prefect's API server for the block (see the module docstring). ``on_loss(exit_status)`` is called
    from a watchdog thread if the server dies before the block ends (the CLI stops the run there: left
    alone, Prefect's client would retry for minutes and then fail with a traceback). ``meanwhile()`` runs
    while the server starts (the CLI imports its flow then: the two take seconds each, on two cores at
    once); it runs in any case."""
    if os.environ.get("PREFECT_API_URL") or not sys.platform.startswith("linux"):
        if meanwhile is not None:
            meanwhile()
        yield None
        return
    proc, port = _start_server()  # before importing Prefect here, so that its start overlaps ours
    try:
        if meanwhile is not None:
            meanwhile()
        from prefect.settings import PREFECT_API_URL, temporary_settings

        configured = PREFECT_API_URL.value()  # a server set in the Prefect profile, not the environment
    except BaseException:
        stop_process(proc)
        raise
    if configured:
        stop_process(proc)
        yield None
        return
    url = f"http://127.0.0.1:{port}/api"
    done = threading.Event()
    scratch = None  # a folder of this run's, removed at the end
    try:
        _wait_healthy(url, proc, timeout)
        if on_loss is not None:
            threading.Thread(target=_watch, args=(proc, done, on_loss), daemon=True).start()
        # in the environment too: worker processes (the local pool, a local Dask cluster) use this server
        # and in the process-global settings: threads that carry no settings context of their own (the
        # process pool's thread that forwards the workers' logs and events) read those, and without this
        # would each start a temporary server of their own
        # and a one-certificate CA file (see _one_certificate): this API is the only one its clients reach
        from prefect.context import refresh_global_settings_context
        from prefect.settings import PREFECT_API_SSL_CERT_FILE

        scratch = tempfile.mkdtemp(prefix="prefect-api-")
        env = {"PREFECT_API_URL": url, "PREFECT_API_SSL_CERT_FILE": _one_certificate(Path(scratch))}
        before = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        refresh_global_settings_context()
        updates = {PREFECT_API_URL: url, PREFECT_API_SSL_CERT_FILE: env["PREFECT_API_SSL_CERT_FILE"]}
        with temporary_settings(updates=updates):
            try:
                yield url
            finally:  # send the run's last logs and events while the server is still there
                from prefect.events.worker import EventsWorker
                from prefect.logging.handlers import APILogWorker

                APILogWorker.drain_all(timeout=10)
                EventsWorker.drain_all(timeout=10)
                for k, v in before.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
                refresh_global_settings_context()
    finally:
        done.set()
        stop_process(proc)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _one_certificate(dir: Path) -> str:
    """A CA file holding one certificate (the first of certifi's bundle), for Prefect's clients of the
    embedded API. That API is plain HTTP on the loopback address, so no certificate is ever checked, but
    Prefect's client loads its CA file (PREFECT_API_SSL_CERT_FILE, else SSL_CERT_FILE, else certifi's
    ~150 roots) into a new SSL context for every client it makes: ~30 ms each, several per task run, 2-3% of
    a build's CPU. From a one-certificate file that costs ~1 ms. Other programs' SSL_CERT_FILE is left as
    it is."""
    import certifi

    bundle = Path(certifi.where()).read_text(encoding="ascii")
    end = "-----END CERTIFICATE-----"
    first = bundle[bundle.index("-----BEGIN CERTIFICATE-----") : bundle.index(end) + len(end)]
    path = dir / "loopback-ca.pem"
    path.write_text(first + "\n", encoding="ascii")
    return str(path)


def _watch(proc: subprocess.Popen, done: threading.Event, on_loss, every: float = 0.5) -> None:
    while not done.wait(every):
        if proc.poll() is not None and not done.is_set():
            on_loss(proc.returncode)
            return


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    """Poll the server's health route until it answers 200. Plain ``http.client`` on the loopback address:
    an httpx client per poll built an SSL context from the CA bundle each time (~40 ms of CPU, ~20 times
    while the server and this process both import on two cores)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(f"{url}/health")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Prefect API server exited with status {proc.returncode}")
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
        try:
            conn.request("GET", parts.path)
            if conn.getresponse().status == 200:
                return
        except (OSError, http.client.HTTPException):  # not listening yet (refused), or slow to answer
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    raise RuntimeError(f"the Prefect API server did not answer within {timeout:.0f} s")
