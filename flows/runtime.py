"""The task runner a recipe's ``runtime`` asks for: a local pool of ``workers`` processes (default: one per
CPU; one worker runs the tasks in the flow's own process), or a Dask cluster (a running one at
``address``, or a local one of ``workers`` processes started for the run)."""

from __future__ import annotations

import os

from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from pipeline.processes import die_with_parent
from schemas.recipe import RuntimeSpec


def task_runner(runtime: RuntimeSpec):
    if runtime.engine == "local":
        workers = runtime.workers or os.cpu_count() or 1
        if workers == 1:  # every task in the flow's process, one at a time (CPU-bound: threads only interleave)
            return ThreadPoolTaskRunner(max_workers=1)
        # workers die with the flow's process (a killed build leaves none running)
        return ProcessPoolTaskRunner(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),))
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
