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


def system_allocator() -> None:
    """Arrow's buffers from the C library's malloc (glibc), not its default mimalloc, from now on in this
    process. mimalloc keeps much of what a build's stage frees even after ``release_unused()``: the write
    stage alone at 2M documents peaked at 879 MB with it and 683 MB with malloc (Arrow's live bytes at
    most ~250 MB either way), at the same speed; ``malloc_trim`` (release_memory) hands malloc's back."""
    try:
        import pyarrow as pa
    except ImportError:
        return
    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())


@contextmanager
def memory_released():
    """Arrow on the system allocator while the block runs, and release_memory() when it ends (each task
    of a build)."""
    system_allocator()
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
