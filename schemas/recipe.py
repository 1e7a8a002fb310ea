"""The recipe: one YAML file that says what a build reads and how it cleans, deduplicates and splits.

Paths in a recipe are relative to the recipe file. An unknown key anywhere is an error that names it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from cronsim import CronSim, CronSimError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)


class RecipeError(ValueError):
    """A recipe that cannot be used; the message is one line naming the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str
    path: str  # a glob, relative to the recipe file
    license: str
    priority: int = 0
    metadata: str | None = None  # arxiv_redpajama only: glob of arXiv metadata records
    max_body_chars: int = Field(default=12000, gt=0)  # arXiv readers: body character budget


class NearDedupSpec(_Strict):
    threshold: float = Field(default=0.8, gt=0.0, lt=1.0)
    ngram: int = Field(default=5, ge=1)  # character n-gram size
    num_perm: int = Field(default=128, ge=8, le=1024)
    seed: int = 0
    shingle: Literal["char", "auto"] = "char"  # auto: word n-grams for space-separated languages
    word_ngram: int = Field(default=3, ge=1)


class DedupSpec(_Strict):
    exact: bool = True
    near: NearDedupSpec | Literal[False] = NearDedupSpec()

    @field_validator("near", mode="before")
    @classmethod
    def _near_switch(cls, v: Any) -> Any:
        if v is True:
            return {}
        if v is None:
            return False
        return v


class SplitSpec(_Strict):
    validation: float = Field(default=0.05, ge=0.0, lt=1.0)
    seed: int = 0


class LicensePolicy(_Strict):
    allow: list[str] | None = None
    deny: list[str] = []


class CleanSpec(_Strict):
    """Thresholds of the cleaning filters (pipeline/clean/filters)."""

    min_chars_instruct: int = 4
    max_chars_instruct: int = 40000
    min_chars_text: int = 100
    max_chars_text: int = 2_000_000
    # Gopher-style repetition thresholds (fractions of the document)
    max_dup_line_frac: float = 0.30
    max_dup_para_frac: float = 0.30
    max_dup_line_char_frac: float = 0.20
    max_dup_para_char_frac: float = 0.20
    max_top_ngram_frac: dict[int, float] = {2: 0.20, 3: 0.18, 4: 0.16}
    ngram_min_words: int = 100  # the word n-gram rules judge documents of at least this many words
    # character n-gram rule, the one that works without spaces: share of character n-grams that repeat
    # an earlier one (natural ja/en sample text stays under 0.08/0.28 at n=10; loops reach 0.8+)
    dup_char_ngram: int = 10
    max_dup_char_ngram_frac: float = 0.40
    dup_char_min_chars: int = 100  # shorter texts are not judged by the character rule
    repetition_min_chars: int = 200  # shorter texts are not judged by the line/paragraph rules


class OutputSpec(_Strict):
    shard_rows: int = Field(default=100_000, gt=0)
    # tokenizer (local directory or hub id) for the token-length figures of report.html; default the
    # train section's model when there is one
    report_tokenizer: str | None = None


class SamplingSpec(_Strict):
    temperature: float = Field(default=0.7, ge=0.0)
    top_p: float = Field(default=0.92, gt=0.0, le=1.0)
    max_new_tokens: int = Field(default=256, gt=0)


class GenerateSpec(_Strict):
    """Self-instruct generation (pipeline/generate): an open model writes instructions and responses."""

    model: str  # local directory or hub id
    backend: Literal["vllm", "transformers"] = "vllm"
    template: Literal["dolly", "plain"] = "dolly"
    language: Literal["ja", "en"] = "ja"
    seed_tasks: str  # JSON lines of self-instruct seed tasks, relative to the recipe
    num_instructions: int = Field(default=1000, gt=0)
    max_rounds: int = Field(default=50, gt=0)
    batch_size: int = Field(default=64, gt=0)
    examples_per_prompt: int = Field(default=8, gt=0)  # k seed/pool instructions shown in each prompt
    new_per_prompt: int = Field(default=4, gt=0)  # instructions asked for in each prompt
    seed: int = 0
    license: str = "mit"
    novelty_threshold: float = Field(default=0.7, gt=0.0, le=1.0)  # ROUGE-L F1 above this: not novel
    sampling: SamplingSpec = SamplingSpec()
    tensor_parallel_size: int = Field(default=1, ge=1)
    dtype: str = "auto"


class LoraSpec(_Strict):
    r: int = Field(default=8, gt=0)
    alpha: float = 16
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    targets: list[str] | None = None  # None: the architecture's default (pipeline/train/lora.py)


class TrainSpec(_Strict):
    """LoRA training on a build's shards (pipeline/train)."""

    model: str  # local directory or hub id
    dataset: str  # a build output directory (its manifest.json lists the shards)
    template: Literal["alpaca-ja", "alpaca-en", "dolly"] = "alpaca-ja"
    lora: LoraSpec = LoraSpec()
    seq_len: int = Field(default=1024, gt=8)
    micro_batch: int = Field(default=2, gt=0)
    grad_accum: int = Field(default=4, gt=0)
    max_steps: int | None = Field(default=1000, gt=0)
    epochs: float | None = None  # used when max_steps is null
    lr: float = Field(default=1.0e-4, gt=0)
    lr_scheduler: str = "cosine"
    warmup_steps: int = 0
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    quantization: Literal["8bit", "4bit"] | None = None
    gradient_checkpointing: bool = True
    pack: bool = True  # pack examples (never across boundaries; RWKV stays unpacked)
    text_rows: bool = True  # also train on the build's text rows (loss on every token)
    gpus: int = Field(default=1, ge=0)  # 0 = CPU
    gpu_memory_gb: float = Field(default=48, gt=0)
    host_memory_gb: float = Field(default=256, gt=0)
    strategy: Literal["ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"] = "ddp"
    seed: int = 0
    eval_steps: int = Field(default=200, gt=0)
    save_steps: int = Field(default=200, gt=0)
    logging_steps: int = Field(default=10, gt=0)
    sample_generations: int = Field(default=3, ge=0)
    merge: bool = False  # also save the base model with the adapter merged in


class ScheduleSpec(_Strict):
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


class RuntimeSpec(_Strict):
    """Where the per-file units of a build run: in the flow's process, or on a Dask cluster."""

    engine: Literal["local", "dask"] = "local"
    address: str | None = None  # dask: scheduler of a running cluster, e.g. tcp://host:8786
    workers: int | None = Field(default=None, gt=0)  # dask without address: local cluster size
    threads_per_worker: int = Field(default=1, gt=0)

    @model_validator(mode="after")
    def _one_cluster(self) -> RuntimeSpec:
        if self.engine == "local" and (self.address or self.workers):
            raise ValueError("address and workers need engine: dask")
        if self.address and self.workers:
            raise ValueError("give either address (a running cluster) or workers (a local one)")
        return self


class Recipe(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    sources: list[SourceSpec] = []
    languages: list[str] = ["ja", "en"]
    dedup: DedupSpec = DedupSpec()
    split: SplitSpec = SplitSpec()
    license_policy: LicensePolicy | None = None
    clean: CleanSpec = CleanSpec()
    output: OutputSpec = OutputSpec()
    generate: GenerateSpec | None = None
    train: TrainSpec | None = None
    schedule: ScheduleSpec | None = None
    runtime: RuntimeSpec = RuntimeSpec()

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @property
    def base_dir(self) -> Path:
        """The folder that relative paths of this recipe start from (the recipe file's folder)."""
        return self._base_dir

    def resolve(self, relpath: str) -> Path:
        p = Path(relpath)
        return p if p.is_absolute() else self._base_dir / p

    def resolve_model(self, ref: str) -> str:
        """A model reference: a local directory (relative to the recipe) when it exists, else as given
        (a hub id)."""
        p = self.resolve(ref)
        return str(p) if p.exists() else ref

    @field_validator("languages")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [x.lower() for x in v]

    @model_validator(mode="after")
    def _unique_names(self) -> Recipe:
        seen: set[str] = set()
        for s in self.sources:
            if s.name in seen:
                raise ValueError(f"duplicate source name {s.name!r}")
            seen.add(s.name)
        return self

    def source(self, name: str) -> SourceSpec:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)

    # how and when a recipe runs, not what it makes: left out of the manifest and the recipe hash, so
    # that a scheduled or Dask run writes the same bytes as a local one
    OPERATIONAL: ClassVar[frozenset[str]] = frozenset({"schedule", "runtime"})

    def content(self) -> dict:
        """The recipe as JSON data, without its operational keys (the manifest records this)."""
        return self.model_dump(mode="json", exclude=set(self.OPERATIONAL))

    def canonical_json(self) -> str:
        return json.dumps(self.content(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def _first_error(path: Path, err: ValidationError) -> str:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    if e["type"] == "extra_forbidden":
        return f"{path}: unknown recipe key '{loc}'"
    if e["type"] == "missing":
        return f"{path}: missing recipe key '{loc}'"
    return f"{path}: recipe key '{loc}': {e['msg'].removeprefix('Value error, ')}"


def parse_recipe(data: Any, path: Path, base_dir: Path | None = None) -> Recipe:
    """Validate recipe data; relative paths start from ``base_dir`` (default: the recipe's folder)."""
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a YAML mapping")
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(_first_error(path, err)) from None
    recipe._base_dir = (base_dir or path.parent).resolve()
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RecipeError(f"{path}: cannot read recipe: {err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    return parse_recipe(data, path)
