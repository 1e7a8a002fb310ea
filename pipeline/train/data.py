"""Training data from a build: shards (via the build's manifest, read with Hugging Face datasets) ->
token ids with labels (loss on the response only for instruction rows, on the assistant turns only for chat
rows (pipeline/train/chat.py), on every token for text rows) ->
packed sequences that never attend across example boundaries -> padded batches."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pipeline.errors import PipelineError
from pipeline.train.chat import resolve, segments
from pipeline.train.templates import prompt, response_suffix

IGNORE = -100


def build_files(dataset_dir: Path) -> dict[str, dict[str, list[str]]]:
    """{table: {split: [parquet paths]}} of a build output directory, from its manifest."""
    manifest = dataset_dir / "manifest.json"
    if not manifest.is_file():
        raise PipelineError(f"{dataset_dir}: no manifest.json (not a build output directory)")
    files: dict[str, dict[str, list[str]]] = {}
    for shard in json.loads(manifest.read_text(encoding="utf-8"))["shards"]:
        if shard["table"] in ("instruct", "text", "chat"):
            files.setdefault(shard["table"], {}).setdefault(shard["split"], []).append(
                str(dataset_dir / shard["path"])
            )
    return files


def load_rows(dataset_dir: Path, split: str, text_rows: bool = True) -> list[dict]:
    from datasets import load_dataset

    rows: list[dict] = []
    for table, splits in sorted(build_files(dataset_dir).items()):
        if table == "text" and not text_rows or split not in splits:
            continue
        ds = load_dataset("parquet", data_files={split: sorted(splits[split])}, split=split)
        rows += [dict(r, _table=table) for r in ds]
    return rows


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


def encode_instruction(
    tok, template: str, instruction: str, input: str, output: str, seq_len: int
) -> Example:
    p = tok(prompt(template, instruction, input), add_special_tokens=False)["input_ids"]
    r = tok(output + response_suffix(template), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = (p + r)[:seq_len]
    labels = ([IGNORE] * len(p) + r)[:seq_len]
    return Example(ids, labels)


def encode_chat(tok, template: str, messages: list[dict], seq_len: int) -> Example:
    """A conversation rendered with ``template`` (a resolved name, pipeline.train.chat.resolve), labels on the
    assistant turns only; the EOS token closes it (in the loss when the last turn is the assistant's)."""
    ids: list[int] = []
    labels: list[int] = []
    for text, in_loss in segments(tok, template, messages):
        if not text:
            continue
        part = tok(text, add_special_tokens=False)["input_ids"]
        ids += part
        labels += part if in_loss else [IGNORE] * len(part)
    ids.append(tok.eos_token_id)
    labels.append(tok.eos_token_id if messages and messages[-1]["role"] == "assistant" else IGNORE)
    return Example(ids[:seq_len], labels[:seq_len])


def encode_text(tok, text: str, seq_len: int) -> list[Example]:
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return [Example(ids[i : i + seq_len], ids[i : i + seq_len]) for i in range(0, len(ids), seq_len)]


def encode_rows(
    tok, rows: list[dict], template: str, seq_len: int, chat_template: str = "auto", model_type: str | None = None
) -> list[Example]:
    out: list[Example] = []
    chat = resolve(tok, chat_template, model_type) if any(r["_table"] == "chat" for r in rows) else None
    for r in rows:
        if r["_table"] == "text":
            out += encode_text(tok, r["text"], seq_len)
        elif r["_table"] == "chat":
            out.append(encode_chat(tok, chat, r["messages"], seq_len))
        else:
            out.append(encode_instruction(tok, template, r["instruction"], r["input"], r["output"], seq_len))
    return [e for e in out if any(x != IGNORE for x in e.labels[1:])]


@dataclass
class Packed:
    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)  # which example each token belongs to


def pack(examples: list[Example], seq_len: int, enabled: bool = True) -> list[Packed]:
    """Greedy packing in order; each example keeps its own positions and segment id (unpacked: one each)."""
    out: list[Packed] = []
    cur = Packed()
    for ex in examples:
        if cur.input_ids and (not enabled or len(cur.input_ids) + len(ex.input_ids) > seq_len):
            out.append(cur)
            cur = Packed()
        seg = (cur.segments[-1] + 1) if cur.segments else 0
        cur.input_ids += ex.input_ids
        # the first label of each example predicts nothing from the previous example
        cur.labels += [IGNORE] + ex.labels[1:]
        cur.position_ids += list(range(len(ex.input_ids)))
        cur.segments += [seg] * len(ex.input_ids)
    if cur.input_ids:
        out.append(cur)
    return out


def shuffled(items: list, seed: int) -> list:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


class Collator:
    """Pads a list of Packed rows; with ``block_mask`` a 4D float mask keeps packed examples apart."""

    def __init__(self, pad_id: int, block_mask: bool, dtype: torch.dtype = torch.float32):
        self.pad_id, self.block_mask, self.dtype = pad_id, block_mask, dtype
        self.tokens_seen = 0

    def __call__(self, rows: list[Packed]) -> dict[str, torch.Tensor]:
        n = max(len(r.input_ids) for r in rows)
        ids = torch.full((len(rows), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), n), IGNORE, dtype=torch.long)
        pos = torch.zeros((len(rows), n), dtype=torch.long)
        seg = torch.full((len(rows), n), -1, dtype=torch.long)
        for i, r in enumerate(rows):
            k = len(r.input_ids)
            ids[i, :k] = torch.tensor(r.input_ids)
            labels[i, :k] = torch.tensor(r.labels)
            pos[i, :k] = torch.tensor(r.position_ids)
            seg[i, :k] = torch.tensor(r.segments)
            self.tokens_seen += k
        batch = {"input_ids": ids, "labels": labels}
        if self.block_mask:
            causal = torch.tril(torch.ones(n, n, dtype=torch.bool))
            allowed = (seg[:, :, None] == seg[:, None, :]) & causal & (seg[:, :, None] >= 0)
            allowed |= torch.eye(n, dtype=torch.bool)  # padding rows attend to themselves (no NaN)
            mask = torch.zeros(allowed.shape, dtype=self.dtype).masked_fill(
                ~allowed, torch.finfo(self.dtype).min
            )
            batch["attention_mask"] = mask[:, None]
            batch["position_ids"] = pos
        else:
            batch["attention_mask"] = (seg >= 0).long()
        return batch
