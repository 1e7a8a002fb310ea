"""A build's instruction and chat rows as the JSONL formats trainers read: Alpaca, ShareGPT, OpenAI ``messages``,
and a LLaMA-Factory folder (JSONL files plus the ``dataset_info.json`` entries that map their columns).

One line per instruction or chat row, in the manifest's shard order (deterministic: the same build exports to
the same bytes). Every line keeps the row's ``id``, ``source`` and ``license``. An instruction row is a one-turn
conversation (ShareGPT, messages) or an Alpaca record; a chat row is its conversation, or in Alpaca form the
last user turn and answer with the earlier turns as LLaMA-Factory's ``history`` pairs and the system turn as
``system``. ShareGPT lines give the system turn as a top-level ``system`` and a ShareGPT source's tool turns
and ``tools`` back as they were (``function_call`` / ``observation``, from the row's ``meta``). Text rows (RedPajama documents) are not
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
_COLUMNS = {"instruct": ["id", "source", "license", "instruction", "input", "output"],
            "chat": ["id", "source", "license", "messages", "meta"]}
TABLES = tuple(_COLUMNS)


def _manifest(build: Path) -> dict:
    path = build / "manifest.json"
    if not path.is_file():
        raise PipelineError(f"{build}: no manifest.json (not a build output directory)")
    return json.loads(path.read_text(encoding="utf-8"))


def export_rows(build: Path, manifest: dict, split: str | None = None) -> Iterator[dict]:
    """The build's instruction and chat rows (of ``split``, or all), in shard order."""
    for shard in manifest["shards"]:
        if shard["table"] not in TABLES or (split and shard["split"] != split):
            continue
        for batch in pq.ParquetFile(build / shard["path"]).iter_batches(columns=_COLUMNS[shard["table"]]):
            yield from batch.to_pylist()


def _lineage(r: dict) -> dict:
    return {"id": r["id"], "source": r["source"], "license": r["license"]}


def _meta(r: dict) -> dict:
    return json.loads(r["meta"]) if r.get("meta") else {}


def _system_and_turns(r: dict) -> tuple[str | None, list[dict]]:
    m = r["messages"]
    return (m[0]["content"], m[1:]) if m and m[0]["role"] == "system" else (None, m)


def user_turn(r: dict) -> str:
    """An instruction row's user turn: the instruction, then its input after a blank line."""
    return f"{r['instruction']}\n\n{r['input']}" if r["input"] else r["instruction"]


def as_alpaca(r: dict) -> dict:
    if "messages" not in r:
        return {"instruction": r["instruction"], "input": r["input"], "output": r["output"], **_lineage(r)}
    system, turns = _system_and_turns(r)
    pairs = [(turns[i]["content"], turns[i + 1]["content"]) for i in range(0, len(turns) - 1, 2)]
    last_q, last_a = pairs[-1] if pairs else ("", "")
    out = {"instruction": last_q, "input": "", "output": last_a}
    if system is not None:
        out["system"] = system
    if len(pairs) > 1:
        out["history"] = [list(p) for p in pairs[:-1]]
    return {**out, **_lineage(r)}


SHAREGPT_FROM = {"user": "human", "assistant": "gpt"}


def as_sharegpt(r: dict) -> dict:
    if "messages" not in r:
        conv = [{"from": "human", "value": user_turn(r)}, {"from": "gpt", "value": r["output"]}]
        return {"conversations": conv, **_lineage(r)}
    meta = _meta(r)
    names = meta.get("turn_types")  # a ShareGPT source's own turn names (tool use), system turn included
    system, turns = _system_and_turns(r)
    if not (isinstance(names, list) and len(names) == len(r["messages"])):
        names = [SHAREGPT_FROM[m["role"]] for m in turns]
    elif system is not None:
        names = names[1:]
    out: dict = {"conversations": [{"from": n, "value": m["content"]} for n, m in zip(names, turns, strict=True)]}
    if system is not None:
        out["system"] = system
    if isinstance(meta.get("tools"), str):
        out["tools"] = meta["tools"]
    return {**out, **_lineage(r)}


def as_messages(r: dict) -> dict:
    if "messages" not in r:
        messages = [{"role": "user", "content": user_turn(r)}, {"role": "assistant", "content": r["output"]}]
        return {"messages": messages, **_lineage(r)}
    return {"messages": [{"role": m["role"], "content": m["content"]} for m in r["messages"]], **_lineage(r)}


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
# a build with chat rows: their system turns, history pairs and tool turns mapped too
_LF_ALPACA_CHAT = {**_LF_ALPACA, "columns": {**_LF_ALPACA["columns"], "system": "system", "history": "history"}}
_LF_SHAREGPT_CHAT = {
    **_LF_SHAREGPT,
    "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
    "tags": {**_LF_SHAREGPT["tags"], "observation_tag": "observation", "function_tag": "function_call"},
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
    """Write ``build``'s instruction and chat rows as ``fmt`` to ``out`` (a .jsonl file; for llama-factory a folder).
    Returns {"rows": exported lines, "text_rows_skipped": n, "files": [paths]}."""
    if fmt not in FORMATS:
        raise PipelineError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    build, out = Path(build), Path(out)
    manifest = _manifest(build)
    skipped = sum(s["rows"] for s in manifest["shards"] if s["table"] == "text")
    if fmt != "llama-factory":
        if out.is_dir():
            raise PipelineError(f"{out}: is a directory; --format {fmt} writes one .jsonl file")
        n = _write_jsonl(out, export_rows(build, manifest), LINE[fmt])
        return {"rows": n, "text_rows_skipped": skipped, "files": [str(out)]}
    if out.exists() and not out.is_dir():
        raise PipelineError(f"{out}: is a file; --format llama-factory writes a folder")
    out.mkdir(parents=True, exist_ok=True)
    name = manifest["name"]
    info, files, n = {}, [], 0
    splits = [s for s in SPLITS if any(x["table"] in TABLES and x["split"] == s for x in manifest["shards"])]
    chat = any(x["table"] == "chat" for x in manifest["shards"])
    entries = (
        ("alpaca", as_alpaca, _LF_ALPACA_CHAT if chat else _LF_ALPACA),
        ("sharegpt", as_sharegpt, _LF_SHAREGPT_CHAT if chat else _LF_SHAREGPT),
    )
    for split in splits:
        for kind, line, entry in entries:
            file = f"{name}_{kind}_{split}.jsonl"
            rows = _write_jsonl(out / file, export_rows(build, manifest, split), line)
            n += rows if kind == "alpaca" else 0
            info[f"{name}_{kind}_{split}"] = {"file_name": file, **entry}
            files.append(str(out / file))
    atomic_write(
        out / "dataset_info.json",
        lambda tmp: tmp.write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"),
    )
    return {"rows": n, "text_rows_skipped": skipped, "files": [*files, str(out / "dataset_info.json")]}
