"""The recipe: one YAML file that says what a build reads and how it cleans, deduplicates and splits.

Paths in a recipe are relative to the recipe file. An unknown key anywhere is an error that names it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.base import Strict
from schemas.operate import RuntimeSpec, ScheduleSpec
from schemas.sources import KIND_OPTIONS
from schemas.stages import GenerateSpec, LoraSpec, SamplingSpec, TrainSpec

# the sections defined beside this module, importable from here as well
__all__ = ["GenerateSpec", "LoraSpec", "RuntimeSpec", "SamplingSpec", "ScheduleSpec", "TrainSpec"]


class RecipeError(ValueError):
    """A recipe that cannot be used; the message is one line naming the file and the key."""


def _one_path_component(v: str) -> str:
    """Names become file and folder names (data/out/NAME, .NAME.work): one safe component."""
    if v in (".", ".."):
        raise ValueError(f"{v!r} is not a name (letters, digits and -_. , not '.' or '..')")
    return v


# a recipe or source name: letters, digits and -_. , one path component
SafeName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$"), AfterValidator(_one_path_component)]


class SourceSpec(Strict):
    """One source of a build. Kinds with options of their own (schemas/sources.py) take them as extra
    keys beside these; ``options`` gives them, validated."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: SafeName
    kind: str
    path: str  # a glob, relative to the recipe file
    license: str
    priority: int = 0
    metadata: str | None = None  # arxiv_redpajama only: glob of arXiv metadata records
    max_body_chars: int = Field(default=12000, gt=0)  # arXiv readers: body character budget

    _options: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _kind_options(self) -> SourceSpec:
        model = KIND_OPTIONS.get(self.kind)
        extra = dict(self.model_extra or {})
        if model is None:
            if extra:
                raise PydanticCustomError("unknown_key", "unknown key {key}", {"key": next(iter(extra))})
            return self
        unknown = [k for k in extra if k not in model.model_fields]
        if unknown:
            raise PydanticCustomError("unknown_key", "unknown key {key}", {"key": unknown[0]})
        try:
            self._options = model.model_validate(extra)
        except ValidationError as err:
            e = err.errors()[0]
            loc = ".".join(str(p) for p in e["loc"])
            raise ValueError(f"{loc}: {e['msg'].removeprefix('Value error, ')}") from None
        return self

    @property
    def options(self) -> Any:
        """The kind's options (schemas/sources.py), defaults filled in; None for a kind without any."""
        if self._options is None and self.kind in KIND_OPTIONS:
            self._options = KIND_OPTIONS[self.kind]()
        return self._options


class NearDedupSpec(Strict):
    threshold: float = Field(default=0.8, gt=0.0, lt=1.0)
    ngram: int = Field(default=5, ge=1)  # character n-gram size
    num_perm: int = Field(default=128, ge=8, le=1024)
    seed: int = 0
    shingle: Literal["char", "auto"] = "char"  # auto: word n-grams for space-separated languages
    word_ngram: int = Field(default=3, ge=1)


class DedupSpec(Strict):
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


class SplitSpec(Strict):
    validation: float = Field(default=0.05, ge=0.0, lt=1.0)
    seed: int = 0


class LicensePolicy(Strict):
    """Which licences a build keeps, compared per row (a row's own licence, else its source's) and
    case-insensitively. A refused row's reject keeps its lineage and reason; its text only with
    ``keep_rejected_text`` (a build must not ship the very records its policy refuses)."""

    allow: list[str] | None = None
    deny: list[str] = []
    keep_rejected_text: bool = False


class CleanSpec(Strict):
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
    # translation_artifact: a Japanese row whose output (or instruction) has at least this share of Latin
    # letters among its letters, and is not about English, code or a name
    max_latin_share_ja: float = Field(default=0.6, gt=0.0, le=1.0)
    # rules and repairs switched off, by name: any filter of pipeline/clean/filters (e.g. "unseen_media",
    # "translation_artifact") or repair ("mojibake", "placeholder_input", "escapes", "pii")
    skip: list[str] = []


class OutputSpec(Strict):
    shard_rows: int = Field(default=100_000, gt=0)
    # tokenizer (local directory or hub id) for the token-length figures of report.html; default the
    # train section's model when there is one
    report_tokenizer: str | None = None


class Recipe(Strict):
    name: SafeName
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
    if e["type"] == "unknown_key":  # a source key its kind does not take (SourceSpec)
        return f"{path}: unknown recipe key '{loc}.{e['ctx']['key']}'"
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
