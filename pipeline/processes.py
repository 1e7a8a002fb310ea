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


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"
    )]


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl): nothing to trim
        return None


def heap_free_bytes() -> int | None:
    """The bytes glibc's malloc holds freed in its arenas (``mallinfo2().fordblks``: what malloc_trim could
    hand back), or None where that is not known (not glibc, or older than 2.33)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().fordblks)


# freed heap a loop keeps for its next step (the write's id ranges, a file's clean units: see release_memory).
# At 400k documents, with a trim after every range, the write spent 3.6 s of its 10 s of CPU in system time
# (1.35M page faults); keeping 256 MB: 2.2 s, the write 7.8 -> 6.6-7.1 s, its peak 433 -> 469-485 MB.
KEEP_FREE = 256 << 20


def release_memory(keep_free: int = 0) -> None:
    """Hand freed memory back to the system: a pool worker lives for the whole build, and without this
    its RSS stays at the peak of the largest unit it ever ran (glibc keeps freed heap in its arenas,
    Arrow's allocator keeps freed buffers). No gc.collect(): rows are freed by reference counting, and a
    full collection over Prefect's objects costs 0.1 s a call.

    ``keep_free``: nothing is done while malloc holds at most this many freed bytes (Arrow on the system
    allocator, see :func:`system_allocator`). A loop that frees and allocates its working set again at each
    step (the write's id ranges) then reuses that memory, instead of handing it back and faulting it in
    anew every step (the kernel zeroes each page again: at 400k documents the write spent 3.4 s of system
    time so, with a trim after every range); its RSS stays within ``keep_free`` of its live memory."""
    if keep_free > 0:
        free = heap_free_bytes()
        if free is not None and free <= keep_free and _arrow_on_malloc():
            return
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except ImportError:
        pass
    libc = _libc()
    if libc is not None:
        try:
            libc.malloc_trim(0)
        except AttributeError:  # no malloc_trim: nothing to trim
            pass


def _arrow_on_malloc() -> bool:
    """Whether Arrow's buffers come from malloc (so that heap_free_bytes counts Arrow's freed memory too),
    or Arrow is not loaded."""
    pa = sys.modules.get("pyarrow")
    return pa is None or pa.default_memory_pool().backend_name == "system"


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
def memory_released(keep_free: int = 0):
    """Arrow on the system allocator while the block runs, and release_memory(keep_free) when it ends
    (each task of a build)."""
    system_allocator()
    try:
        yield
    finally:
        release_memory(keep_free)


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; always reaped (no zombie left)."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
