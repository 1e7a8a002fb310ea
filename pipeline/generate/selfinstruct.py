"""The self-instruct loop: seed tasks (and accepted ones) in the prompt -> new instructions -> filters ->
responses -> filters -> instruction rows with a ``generation`` record; every candidate that fails a filter
is a reject row with its reason.

Resumable: each round is written atomically (rows, rejects, then a ``.done`` marker) and depends only on
the seed, the round number and the rounds before it, so a rerun continues after the last finished round
and ends with the same output as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.failpoints import failpoint
from pipeline.generate.backends import Sampling
from pipeline.generate.filters import NoveltyPool, instruction_reason, response_reason
from pipeline.generate.templates import STOP, ask_new_tasks, parse_instructions, render
from pipeline.records import Row, instruct_row, lineage, reject
from pipeline.sink.parquet import atomic_write, atomic_write_text
from pipeline.text.langid import detect
from schemas.columns import INSTRUCT_SCHEMA, REJECT_SCHEMA
from schemas.recipe import GenerateSpec

log = logging.getLogger(__name__)


def load_seed_tasks(path: Path) -> list[str]:
    """Instructions of a self-instruct seed file (JSON lines with an ``instruction`` field)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line)["instruction"])
    return out


@dataclass
class RoundResult:
    rows: list[Row] = field(default_factory=list)
    rejects: list[Row] = field(default_factory=list)
    tokens: int = 0


class SelfInstruct:
    def __init__(self, spec: GenerateSpec, backend, seeds: list[str], source: str):
        self.spec, self.backend, self.seeds, self.source = spec, backend, seeds, source
        self.sampling = Sampling(**spec.sampling.model_dump())
        self.stops = STOP[spec.template]
        self.pool = NoveltyPool(spec.language, spec.novelty_threshold)
        for s in seeds:
            self.pool.add(s)
        self.generated: list[str] = []

    def round_limit(self) -> int:
        return self.spec.max_rounds

    def enough(self, accepted: int) -> bool:
        return accepted >= self.spec.num_instructions

    def note(self, accepted: int) -> str | None:
        if accepted >= self.spec.num_instructions:
            return None
        return f"stopped after max_rounds={self.spec.max_rounds} with {accepted} of {self.spec.num_instructions} instructions"

    def accept(self, rows: list[Row]) -> None:
        """Put accepted rows into the prompt pool and the novelty pool (also for resumed rounds)."""
        for r in rows:
            self.generated.append(r["instruction"])
            self.pool.add(r["instruction"])

    def generation_record(self, round_no: int, seed: int, finish_reason: str) -> dict:
        return {
            "model": self.backend.model_id,
            "backend": self.backend.name,
            "template": self.spec.template,
            "language": self.spec.language,
            "prompt": "self-instruct",
            "sampling": self.sampling.as_dict(),
            "seed": seed,
            "round": round_no,
            "finish_reason": finish_reason,
        }

    def run_round(self, r: int, wanted: int) -> RoundResult:
        spec, res = self.spec, RoundResult()
        rnd = random.Random(f"{spec.seed}:{r}")
        prompts = []
        for _ in range(spec.batch_size):
            k_gen = min(len(self.generated), spec.examples_per_prompt // 4)
            examples = rnd.sample(self.seeds, spec.examples_per_prompt - k_gen) + rnd.sample(
                self.generated, k_gen
            )
            rnd.shuffle(examples)
            prompts.append(ask_new_tasks(examples, spec.new_per_prompt, spec.template, spec.language))
        seed_i = spec.seed * 1_000_003 + 2 * r
        asked = self.backend.generate(prompts, self.sampling, seed_i, self.stops)
        failpoint("generate-instructions")
        index = 0
        accepted: list[tuple[Row, str]] = []
        round_pool = NoveltyPool(spec.language, spec.novelty_threshold)
        for p, comp in enumerate(asked):
            res.tokens += comp.tokens
            for text in parse_instructions(comp.text)[: spec.new_per_prompt]:
                lin = lineage(self.source, f"round-{r:05d}", index, spec.license, detect(text))
                index += 1
                record = {"instruction": text, "prompt_index": p, "stage": "instruction"}
                reason = (
                    instruction_reason(text, spec.language) or self.pool.check(text) or round_pool.check(text)
                )
                if reason is None and len(accepted) >= wanted:
                    reason = "over_target"
                if reason:
                    res.rejects.append(reject(lin, "generate", reason, None, record))
                    continue
                round_pool.add(text)
                accepted.append((lin, text))
        if not accepted:
            return res
        seed_o = seed_i + 1
        answers = self.backend.generate(
            [render(spec.template, text, "", spec.language) for _, text in accepted],
            self.sampling,
            seed_o,
            self.stops,
        )
        for (lin, text), comp in zip(accepted, answers, strict=True):
            res.tokens += comp.tokens
            gen = self.generation_record(r, seed_o, comp.finish_reason)
            reason = response_reason(text, comp.text, comp.finish_reason)
            if reason:
                rec = {"instruction": text, "output": comp.text, "generation": gen, "stage": "response"}
                res.rejects.append(reject(lin, "generate", reason, comp.finish_reason, rec))
                continue
            lin = {**lin, "lang": detect(text + "\n" + comp.text)}
            res.rows.append(instruct_row(lin, text, "", comp.text, "generated", generation=gen))
        return res


def _round_paths(rounds_dir: Path, r: int) -> tuple[Path, Path, Path]:
    base = rounds_dir / f"round-{r:05d}"
    return base.with_suffix(".parquet"), base.with_suffix(".rejects.parquet"), base.with_suffix(".done")


def _write(path: Path, rows: list[Row], schema: pa.Schema) -> None:
    table = pa.Table.from_pylist(sorted(rows, key=lambda x: x["id"]), schema=schema)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def run(
    loop, rounds_dir: Path, progress: Callable[[int, int, int], None] | None = None
) -> tuple[list[Row], list[Row], dict]:
    """Run a loop's rounds (SelfInstruct: until enough instructions are accepted or ``max_rounds``;
    Backtranslate: one per batch of posts), resuming finished rounds from ``rounds_dir``. Returns
    (rows, rejects, summary)."""
    spec = loop.spec
    rounds_dir.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    rejects: list[Row] = []
    summary = {"rounds": 0, "resumed_rounds": 0, "tokens": 0}
    for r in range(loop.round_limit()):
        if loop.enough(len(rows)):
            break
        data, rej, done = _round_paths(rounds_dir, r)
        if done.exists():
            got = RoundResult(pq.read_table(data).to_pylist(), pq.read_table(rej).to_pylist())
            got.tokens = json.loads(done.read_text())["tokens"]
            summary["resumed_rounds"] += 1
        else:
            got = loop.run_round(r, spec.num_instructions - len(rows))
            _write(data, got.rows, INSTRUCT_SCHEMA)
            _write(rej, got.rejects, REJECT_SCHEMA)
            atomic_write_text(
                done, json.dumps({"rows": len(got.rows), "rejects": len(got.rejects), "tokens": got.tokens})
            )
            failpoint("generate-round-done")
        got.rows.sort(key=lambda x: (x["source_file"], x["source_index"]))  # the same order, fresh or resumed
        got.rejects.sort(key=lambda x: (x["source_file"], x["source_index"]))
        loop.accept(got.rows)
        rows += got.rows
        rejects += got.rejects
        summary["rounds"] += 1
        summary["tokens"] += got.tokens
        if progress:
            progress(r, len(rows), spec.num_instructions if spec.task == "self-instruct" else len(loop.posts))
    summary["accepted"] = len(rows)
    note = loop.note(len(rows))
    if note:
        summary["note"] = note
        log.warning(note)
    return rows, rejects, summary
