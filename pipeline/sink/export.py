"""A build's instruction rows as the JSONL formats trainers read: Alpaca, ShareGPT, OpenAI ``messages``, and a
LLaMA-Factory folder (JSONL files plus the ``dataset_info.json`` entries that map their columns).

One line per instruction row, in the manifest's shard order (deterministic: the same build exports to the same
bytes). Every line keeps the row's ``id``, ``source`` and ``license``. Text rows (RedPajama documents) are not
conversations or instruction pairs and are not exported; :func:`export` counts them. Rows are read one Parquet
batch at a time and written as they come: memory does not grow with the build.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.errors import PipelineError
from pipeline.sink.parquet import atomic_write

FORMATS = ("alpaca", "sharegpt", "messages", "llama-factory")
SPLITS = ("train", "validation")
_COLUMNS = ["id", "source", "license", "instruction", "input", "output"]


def _manifest(build: Path) -> dict:
    path = build / "manifest.json"
    if not path.is_file():
        raise PipelineError(f"{build}: no manifest.json (not a build output directory)")
    return json.loads(path.read_text(encoding="utf-8"))


def instruct_rows(build: Path, manifest: dict, split: str | None = None) -> Iterator[dict]:
    """The build's instruction rows (of ``split``, or all), in shard order."""
    for shard in manifest["shards"]:
        if shard["table"] != "instruct" or (split and shard["split"] != split):
            continue
        for batch in pq.ParquetFile(build / shard["path"]).iter_batches(columns=_COLUMNS):
            yield from batch.to_pylist()


def user_turn(r: dict) -> str:
    """An instruction row's user turn: the instruction, then its input after a blank line."""
    return f"{r['instruction']}\n\n{r['input']}" if r["input"] else r["instruction"]


def as_alpaca(r: dict) -> dict:
    return {
        "instruction": r["instruction"],
        "input": r["input"],
        "output": r["output"],
        "id": r["id"],
        "source": r["source"],
        "license": r["license"],
    }


def as_sharegpt(r: dict) -> dict:
    return {
        "conversations": [{"from": "human", "value": user_turn(r)}, {"from": "gpt", "value": r["output"]}],
        "id": r["id"],
        "source": r["source"],
        "license": r["license"],
    }


def as_messages(r: dict) -> dict:
    return {
        "messages": [
            {"role": "user", "content": user_turn(r)},
            {"role": "assistant", "content": r["output"]},
        ],
        "id": r["id"],
        "source": r["source"],
        "license": r["license"],
    }


LINE = {"alpaca": as_alpaca, "sharegpt": as_sharegpt, "messages": as_messages}

# LLaMA-Factory's dataset_info.json entries for the two files of each split (its column mapping and role tags)
_LF_ALPACA = {
    "formatting": "alpaca",
    "columns": {"prompt": "instruction", "query": "input", "response": "output"},
}
_LF_SHAREGPT = {
    "formatting": "sharegpt",
    "columns": {"messages": "conversations"},
    "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
}


def _write_jsonl(path: Path, rows: Iterator[dict], line) -> int:
    n = 0

    def write(tmp: Path) -> None:
        nonlocal n
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            for r in rows:
                fh.write(json.dumps(line(r), ensure_ascii=False) + "\n")
                n += 1

    atomic_write(path, write)
    return n


def export(build: Path, fmt: str, out: Path) -> dict:
    """Write ``build``'s instruction rows as ``fmt`` to ``out`` (a .jsonl file; for llama-factory a folder).
    Returns {"rows": exported lines, "text_rows_skipped": n, "files": [paths]}."""
    if fmt not in FORMATS:
        raise PipelineError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    build, out = Path(build), Path(out)
    manifest = _manifest(build)
    skipped = sum(s["rows"] for s in manifest["shards"] if s["table"] == "text")
    if fmt != "llama-factory":
        if out.is_dir():
            raise PipelineError(f"{out}: is a directory; --format {fmt} writes one .jsonl file")
        n = _write_jsonl(out, instruct_rows(build, manifest), LINE[fmt])
        return {"rows": n, "text_rows_skipped": skipped, "files": [str(out)]}
    if out.exists() and not out.is_dir():
        raise PipelineError(f"{out}: is a file; --format llama-factory writes a folder")
    out.mkdir(parents=True, exist_ok=True)
    name = manifest["name"]
    info, files, n = {}, [], 0
    splits = [
        s for s in SPLITS if any(x["table"] == "instruct" and x["split"] == s for x in manifest["shards"])
    ]
    for split in splits:
        for kind, line, entry in (("alpaca", as_alpaca, _LF_ALPACA), ("sharegpt", as_sharegpt, _LF_SHAREGPT)):
            file = f"{name}_{kind}_{split}.jsonl"
            rows = _write_jsonl(out / file, instruct_rows(build, manifest, split), line)
            n += rows if kind == "alpaca" else 0
            info[f"{name}_{kind}_{split}"] = {"file_name": file, **entry}
            files.append(str(out / file))
    atomic_write(
        out / "dataset_info.json",
        lambda tmp: tmp.write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"),
    )
    return {"rows": n, "text_rows_skipped": skipped, "files": [*files, str(out / "dataset_info.json")]}
