"""Child processes the pipeline starts (Prefect's API server, the local runner's worker pool; a browser
in the tests)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from contextlib import contextmanager

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """Run in a child: the kernel sends it ``sig`` when its parent dies (Linux; elsewhere nothing), so a
    killed build leaves no worker or server behind. Exits at once if the parent is already gone."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def release_memory() -> None:
    """Hand freed memory back to the system: a pool worker lives for the whole build, and without this
    its RSS stays at the peak of the largest unit it ever ran (glibc keeps freed heap in its arenas,
    Arrow's allocator keeps freed buffers). No gc.collect(): rows are freed by reference counting, and a
    full collection over Prefect's objects costs 0.1 s a call."""
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except ImportError:
        pass
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl): nothing to trim
            pass


@contextmanager
def memory_released():
    """release_memory() when the block ends (each task of a build)."""
    try:
        yield
    finally:
        release_memory()


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; always reaped (no zombie left)."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
