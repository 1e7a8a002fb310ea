"""The recipe's operational sections: ``schedule`` (when serve runs it) and ``runtime`` (where the units
run). They say how and when a recipe runs, not what it makes: left out of the manifest and the hash."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import Field, field_validator, model_validator

from schemas.base import Strict


class ScheduleSpec(Strict):
    """When ``python -m pipeline serve`` runs the recipe: a cron line (five fields, or @daily and its
    kin) in an IANA time zone, on one flow. Checked here with cronsim, without Prefect; serve turns it into
    Prefect's CronSchedule."""

    cron: str
    timezone: str = "UTC"
    flow: Literal["pipeline", "build", "generate", "train"] = "pipeline"  # pipeline = end to end

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        expanded = CRON_MACROS.get(v.strip().lower(), v)
        try:
            CronSim(expanded, datetime(2020, 1, 1))
        except CronSimError as err:
            raise ValueError(f'invalid cron string "{v}": {err}') from None
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'unknown time zone "{v}" (an IANA name, e.g. Asia/Tokyo)') from None
        return v


# the @-forms cron and Prefect accept, as the five fields they stand for
CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class RuntimeSpec(Strict):
    """Where a build's tasks run: a local process pool, or a Dask cluster; and how its work is cut."""

    engine: Literal["local", "dask"] = "local"
    address: str | None = None  # dask: scheduler of a running cluster, e.g. tcp://host:8786
    # local: worker processes of a pool (unset: one per core when the inputs reach 64 MB, else every
    # task in the flow's process; 1: always in the flow's process);
    # dask without address: the local cluster's size
    workers: int | None = Field(default=None, gt=0)
    threads_per_worker: int = Field(default=1, gt=0)
    # records per clean unit: a larger input file is cleaned (and resumed) in ranges of this many
    unit_records: int = Field(default=20_000, gt=0)
    # and at most about this many characters of record text (long documents make shorter ranges)
    unit_bytes: int = Field(default=32 << 20, gt=0)
    # exact dedup partitions (by the first byte of the key), each its own task
    buckets: int = Field(default=8, gt=0, le=256)

    @model_validator(mode="after")
    def _one_cluster(self) -> RuntimeSpec:
        if self.engine == "local" and self.address:
            raise ValueError("address needs engine: dask")
        if self.address and self.workers:
            raise ValueError("give either address (a running cluster) or workers (a local one)")
        return self
