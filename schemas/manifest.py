"""The manifest written at the top of every build output directory (DIR/manifest.json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class InputFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    path: str  # relative to the recipe's folder
    sha256: str
    records: int
    encoding: str = "utf-8"  # as read: utf-8, or a legacy Japanese encoding found (euc_jp, cp932)


class Shard(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str  # relative to the output directory
    table: str  # instruct | text | rejects
    split: str | None  # train | validation | None for rejects
    rows: int
    sha256: str


class SourceCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    read: int = 0
    kept: int = 0
    rejected: dict[str, int] = {}


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: str
    name: str
    recipe: dict[str, Any]
    recipe_sha256: str
    inputs: list[InputFile]
    shards: list[Shard]
    counts: dict[str, SourceCounts]
    stages: dict[str, dict[str, int]] = {}  # per-stage / per-filter rejection counts
    generation: dict[str, Any] | None = None  # generate runs: model, backend, rounds, tokens, notes
