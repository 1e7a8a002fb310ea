"""The task runner a recipe's ``runtime`` asks for: the flow's own process, a local pool of ``workers``
processes when ``workers`` > 1 (unset: one per core for large inputs, see local_workers), or a Dask cluster (a running one at
``address``, or a local one of ``workers`` processes started for the run); and ``write_runner``, the
fresh process a local pool's build writes its output in."""

from __future__ import annotations

import logging
import os

from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from pipeline.processes import die_with_parent
from schemas.recipe import RuntimeSpec


def _worker_start(parent: int) -> None:
    """A pool worker: dies with the flow's process, and its terminal log leaves out what the CLI reports
    itself in one line (flows/terminal.py HandledErrors), as the flow's process does."""
    die_with_parent(parent)
    from prefect.logging.configuration import setup_logging
    from prefect.logging.handlers import PrefectConsoleHandler

    from flows.terminal import HandledErrors

    setup_logging()
    for h in logging.getLogger().handlers:
        if isinstance(h, PrefectConsoleHandler):
            h.addFilter(HandledErrors())


# a local build with ``workers`` unset takes a pool of one worker per core from this much input on; a
# smaller one runs in the flow's process (starting a pool costs seconds that a small build never wins back)
AUTO_POOL_BYTES = 64 * 2**20


def local_workers(runtime: RuntimeSpec, input_bytes: int) -> int:
    """The local pool's size: ``runtime.workers``, or when unset one per core for inputs of at least
    AUTO_POOL_BYTES and 1 (the flow's process) below."""
    if runtime.workers:
        return runtime.workers
    return (os.cpu_count() or 1) if input_bytes >= AUTO_POOL_BYTES else 1


def task_runner(runtime: RuntimeSpec, input_bytes: int = 0):
    if runtime.engine == "local":
        workers = local_workers(runtime, input_bytes)
        if workers == 1:  # every task in the flow's process, one at a time (CPU-bound: threads only interleave)
            return ThreadPoolTaskRunner(max_workers=1)
        # workers die with the flow's process (a killed build leaves none running)
        return ProcessPoolTaskRunner(max_workers=workers, initializer=_worker_start, initargs=(os.getpid(),))
    from prefect_dask import DaskTaskRunner

    if runtime.address:
        return DaskTaskRunner(address=runtime.address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": runtime.workers or os.cpu_count() or 1,
            "threads_per_worker": runtime.threads_per_worker,
            "processes": True,
            "dashboard_address": None,
        }
    )


def write_runner(runtime: RuntimeSpec, input_bytes: int = 0) -> ProcessPoolTaskRunner | None:
    """A pool of one fresh worker for near dedup and the write when the build runs on a local process pool
    (None otherwise: they run on the build's runner). A worker that has cleaned keeps some of that heap
    (freed but fragmented: about 190 MB at 2M documents), and these two stages have the largest working
    sets, growing with the corpus, so they start from a bare process; the flow starts it with the clean pool
    (its start is spent while files are cleaned), and closes the clean pool before near dedup begins."""
    if runtime.engine != "local" or local_workers(runtime, input_bytes) == 1:
        return None
    return ProcessPoolTaskRunner(max_workers=1, initializer=_worker_start, initargs=(os.getpid(),))
