"""Instruction backtranslation (Humpback, Li et al. 2023): for each text row of a build (e.g. a persona's
posts) the model writes the instruction that the text answers; the pair becomes an instruction row whose
output is the text verbatim, with a ``generation`` record and ``meta.answer_of`` = the text row's id.

The row's licence is the text's (the answer is the author's words); the model's part is named in
``generation``. The loop guard cuts a looping generation and it becomes a reject ``repetition_loop``, as do
``truncated`` (hit max_new_tokens), ``instruction_is_answer`` and the self-instruct instruction rules (empty,
blacklisted, too short / long, another language). Runs in rounds of ``batch_size`` posts through the
self-instruct runner (pipeline.generate.selfinstruct.run): each round is written atomically and a rerun
resumes after the last finished one. Memory: the posts' text (read once from the build's text shards).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.errors import PipelineError
from pipeline.failpoints import failpoint
from pipeline.generate.backends import Sampling
from pipeline.generate.filters import backtranslation_reason
from pipeline.generate.selfinstruct import RoundResult
from pipeline.generate.templates import STOP, ask_instruction
from pipeline.records import instruct_row, lineage, reject
from pipeline.text.langid import detect
from schemas.recipe import GenerateSpec


@dataclass(frozen=True)
class Post:
    id: str
    source: str
    license: str
    text: str


def load_posts(build: Path, sources: list[str] | None = None) -> list[Post]:
    """The text rows of a build (of ``sources``, or all), in shard order."""
    manifest = build / "manifest.json"
    if not manifest.is_file():
        raise PipelineError(f"{build}: no manifest.json (generate.posts must be a build output directory)")
    posts = []
    for shard in json.loads(manifest.read_text(encoding="utf-8"))["shards"]:
        if shard["table"] != "text":
            continue
        cols = ["id", "source", "license", "text"]
        for batch in pq.ParquetFile(build / shard["path"]).iter_batches(columns=cols):
            posts += [Post(**r) for r in batch.to_pylist() if sources is None or r["source"] in sources]
    if not posts:
        raise PipelineError(f"{build}: no text rows to backtranslate" + (f" from {sources}" if sources else ""))
    return posts


class Backtranslate:
    """The self-instruct runner's loop protocol (round_limit, enough, accept, run_round, note) over posts."""

    def __init__(self, spec: GenerateSpec, backend, posts: list[Post], source: str):
        self.spec, self.backend, self.posts, self.source = spec, backend, posts, source
        self.sampling = Sampling(**spec.sampling.model_dump())
        self.stops = STOP[spec.template]

    def round_limit(self) -> int:
        return math.ceil(len(self.posts) / self.spec.batch_size)

    def enough(self, accepted: int) -> bool:
        return False  # every post is asked about once

    def accept(self, rows) -> None:
        pass

    def note(self, accepted: int) -> str | None:
        return None

    def run_round(self, r: int, wanted: int) -> RoundResult:
        spec, res = self.spec, RoundResult()
        batch = self.posts[r * spec.batch_size : (r + 1) * spec.batch_size]
        seed = spec.seed * 1_000_003 + r
        prompts = [ask_instruction(p.text, spec.template, spec.language) for p in batch]
        got = self.backend.generate(prompts, self.sampling, seed, self.stops)
        failpoint("generate-instructions")
        for k, (post, comp) in enumerate(zip(batch, got, strict=True)):
            res.tokens += comp.tokens
            lin = lineage(self.source, f"round-{r:05d}", k, post.license)
            text = comp.text.strip()
            gen = {
                "model": self.backend.model_id,
                "backend": self.backend.name,
                "template": spec.template,
                "language": spec.language,
                "prompt": "backtranslate",
                "sampling": self.sampling.as_dict(),
                "seed": seed,
                "round": r,
                "finish_reason": comp.finish_reason,
            }
            meta = {"answer_of": post.id, "answer_source": post.source}
            reason = backtranslation_reason(text, post.text, comp.finish_reason, spec.language)
            if reason:
                rec = {"instruction": text, "output": post.text, "generation": gen, "meta": meta}
                res.rejects.append(reject(lin, "generate", reason, comp.finish_reason, rec))
                continue
            lin = {**lin, "lang": detect(text + "\n" + post.text)}
            res.rows.append(instruct_row(lin, text, "", post.text, "backtranslated", generation=gen, meta=meta))
        return res
