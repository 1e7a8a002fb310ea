"""Scale figures: whole-CLI builds of 0.2M, 1M and 2M documents, and one large .jsonl.zst input.

    .venv/bin/python benchmarks/scale.py --docs 200000 1000000 2000000 [--files 16] [--big-mb 1024]

The corpus is benchmarks/corpus.py's (the shipped samples combined and perturbed, with planted noise),
``--base`` documents of it; a larger size replicates it: replica r > 0 of document i joins i with
document (i + r * 7919) mod base (instruction and input of i, outputs of both; texts of both), so that
replicas are new documents to exact and near dedup, not copies of the base. Instruction rows are written
as Alpaca JSON lines, text rows as RedPajama .jsonl.zst, ``--files`` files of each.

Every build is the real CLI (``python -m pipeline build``) in a fresh process with the default runtime (from 64 MB
of input a process pool of one worker per CPU); a sampler reads the RSS of the CLI's whole process tree (workers
and Prefect's API server included) every 0.2 s. Printed per size: seconds, docs/s, peak RSS of the
largest process and of the tree's sum, bytes written to the work directory (.NAME.work) and to DIR.

``--big-mb N`` also builds one RedPajama .jsonl.zst file holding N MB of JSON lines (uncompressed), the
case of one large RedPajama shard: the file is cut into units of runtime.unit_records records.

``--baseline TREE`` (a checkout of another commit, e.g. ``git worktree add /tmp/old f20ec38``) also builds each
size with that tree's CLI (same interpreter), alternating with this one ``--rounds`` times, and prints both:
this machine's runs vary by 10-20%, so speed is compared side by side, never against an old figure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import yaml
import zstandard
from corpus import make_corpus  # benchmarks/corpus.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
STRIDE = 7919


def documents(n: int, base: list[dict]):
    """``n`` corpus documents (rows of instruct or text fields), replicas of ``base`` beyond its size."""
    b = len(base)
    for g in range(n):
        r, i = divmod(g, b)
        row = base[i]
        if r == 0:
            yield row
            continue
        other = base[(i + r * STRIDE) % b]
        if "text" in row:
            yield {"text": row["text"] + "\n\n" + other.get("text", other.get("output", ""))}
        else:
            extra = other.get("output", other.get("text", ""))
            yield {"instruction": row["instruction"], "input": row["input"], "output": row["output"] + "\n" + extra}


def base_corpus(n: int) -> list[dict]:
    out = []
    for row, _label, _lang in make_corpus(n):
        out.append({"text": row["text"]} if "text" in row else {k: row[k] for k in ("instruction", "input", "output")})
    return out


def write_inputs(dir: Path, docs, files: int) -> int:
    """Instruction rows to inst/part-K.jsonl, text rows to text/part-K.jsonl.zst; returns input bytes."""
    (dir / "inst").mkdir(parents=True, exist_ok=True)
    (dir / "text").mkdir(parents=True, exist_ok=True)
    inst = [open(dir / "inst" / f"part-{k:03d}.jsonl", "w", encoding="utf-8") for k in range(files)]
    text = [
        zstandard.ZstdCompressor(level=3).stream_writer(open(dir / "text" / f"part-{k:03d}.jsonl.zst", "wb"))
        for k in range(files)
    ]
    raw = 0
    for g, doc in enumerate(docs):
        k = g % files
        if "text" in doc:
            line = json.dumps({"text": doc["text"], "meta": {"g": g}}, ensure_ascii=False) + "\n"
            text[k].write(line.encode())
        else:
            line = json.dumps(doc, ensure_ascii=False) + "\n"
            inst[k].write(line)
        raw += len(line.encode())
    for f in inst + text:
        f.close()
    return raw


def write_big(path: Path, mb: int, base: list[dict]) -> tuple[int, int]:
    """One .jsonl.zst of about ``mb`` MB of text rows (the corpus's text documents and their
    replicas); returns (documents, uncompressed bytes)."""
    target, raw, n = mb * 1024 * 1024, 0, 0
    with open(path, "wb") as fh, zstandard.ZstdCompressor(level=3).stream_writer(fh) as z:
        buf = io.StringIO()
        for doc in documents(10**9, base):
            if raw >= target:
                break
            if "text" not in doc:
                continue
            line = json.dumps({"text": doc["text"], "meta": {"n": n}}, ensure_ascii=False) + "\n"
            buf.write(line)
            raw += len(line.encode())
            n += 1
            if buf.tell() > 1 << 20:
                z.write(buf.getvalue().encode())
                buf = io.StringIO()
        z.write(buf.getvalue().encode())
    return n, raw


def recipe(dir: Path, sources: list[dict]) -> Path:
    path = dir / "scale.yaml"
    path.write_text(yaml.safe_dump({"name": "scale", "sources": sources, "output": {"shard_rows": 100_000}}))
    return path


class Sampler(threading.Thread):
    """Peak RSS of a process tree: the largest single process and the sum, sampled every 0.2 s."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak_one = self.peak_sum = 0
        self.samples: list[tuple[float, int]] = []  # (epoch seconds, RSS of the largest process)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            rss = []
            for p in procs:
                try:
                    rss.append(p.memory_info().rss)
                except psutil.Error:
                    pass
            if rss:
                self.samples.append((time.time(), max(rss)))
                self.peak_one = max(self.peak_one, max(rss))
                self.peak_sum = max(self.peak_sum, sum(rss))
            time.sleep(0.2)


# the flow's log lines that end each stage (flows/build.py's progress and summary lines)
STAGE_ENDS = [
    ("read+clean", re.compile(r"read\+clean: (\d+)/\1 files")),
    ("exact dedup", re.compile(r"exact dedup: (\d+)/\1 buckets")),
    ("signatures", re.compile(r"signatures: (\d+)/\1 units")),
    ("near dedup", re.compile(r"Flow run .* - dedup: ")),
    ("write", re.compile(r"Flow run .* - work done: ")),
]


def stage_peaks(log: Path, samples: list[tuple[float, int]], day: float) -> dict[str, int]:
    """Peak RSS of the largest process in each stage, the stages cut at the times the log says each
    ended (log times are HH:MM:SS.mmm of ``day``, local time)."""
    ends = {}
    for line in log.read_text(errors="replace").splitlines():
        for name, pat in STAGE_ENDS:
            if name not in ends and pat.search(line):
                h, m, sec = line[:12].split(":")
                ends[name] = day + int(h) * 3600 + int(m) * 60 + float(sec)
    out, start = {}, 0.0
    for name, _ in STAGE_ENDS:
        if name in ends:
            inside = [r for t, r in samples if start <= t <= ends[name]]
            out[name] = max(inside, default=0)
            start = ends[name]
    return out


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def build(r: Path, out: Path, root: Path = ROOT) -> dict:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PIPELINE_FAILPOINT", None)
    work = out.parent / f".{out.name}.work"
    t, t0 = time.perf_counter(), time.time()
    log = open(out.parent / f"{out.name}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "build", str(r), "--out", str(out), "--fresh"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root,
    )
    sampler = Sampler(proc.pid)
    sampler.start()
    rc = proc.wait()
    seconds = time.perf_counter() - t
    sampler.done.set()
    sampler.join()
    if rc != 0:
        sys.exit(f"build failed (exit {rc}); see {log.name}")
    midnight = time.mktime(time.localtime(t0)[:3] + (0, 0, 0, 0, 0, -1))
    return {
        "stage_peaks": stage_peaks(out.parent / f"{out.name}.log", sampler.samples, midnight),
        "seconds": seconds,
        "peak_one": sampler.peak_one,
        "peak_sum": sampler.peak_sum,
        "work_bytes": du(work),
        "out_bytes": du(out),
        "last_run": json.loads((work / "last-run.json").read_text()),
    }


def side_by_side(r: Path, d: Path, n: int, baseline: Path, rounds: int) -> None:
    """``rounds`` alternating whole-CLI builds of one corpus by ``baseline``'s tree and this one."""
    for k in range(rounds):
        for name, root in (("baseline", baseline), ("this tree", ROOT)):
            res = build(r, d / f"side-{k}-{name.split()[0]}", root)
            print(
                f"  {name} ({root}), round {k}: {res['seconds']:.1f} s, {n / res['seconds']:,.0f} docs/s, "
                f"peak RSS largest process {res['peak_one'] / 2**20:,.0f} MB",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, nargs="+", default=[200_000, 1_000_000, 2_000_000])
    ap.add_argument("--base", type=int, default=100_000)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--big-mb", type=int, default=0)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/scale-bench"))
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout to build each size with too")
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs per size with --baseline")
    a = ap.parse_args()
    shutil.rmtree(a.dir, ignore_errors=True)
    a.dir.mkdir(parents=True)
    t = time.perf_counter()
    base = base_corpus(a.base)
    print(f"base corpus: {len(base)} documents in {time.perf_counter() - t:.0f} s", flush=True)
    sources = [
        {"name": "inst", "kind": "alpaca", "path": "inst/*.jsonl", "license": "mit"},
        {"name": "text", "kind": "redpajama", "path": "text/*.jsonl.zst", "license": "mit"},
    ]
    print(f"cores {os.cpu_count()}; every figure is one whole CLI run (Prefect's start included)")
    print("| docs | input (JSON) | seconds | docs/s | peak RSS largest process | peak RSS process tree | work dir | output |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for n in a.docs:
        d = a.dir / f"n{n}"
        raw = write_inputs(d, documents(n, base), a.files)
        if a.baseline is not None:
            side_by_side(recipe(d, sources), d, n, a.baseline.resolve(), a.rounds)
        res = build(recipe(d, sources), d / "out")
        rows.append((n, res))
        print(
            f"| {n:,} | {raw / 1e6:,.0f} MB | {res['seconds']:.0f} | {n / res['seconds']:,.0f} | "
            f"{res['peak_one'] / 2**20:,.0f} MB | {res['peak_sum'] / 2**20:,.0f} MB | "
            f"{res['work_bytes'] / 1e6:,.0f} MB | {res['out_bytes'] / 1e6:,.0f} MB |",
            flush=True,
        )
        print(f"  stage seconds: {res['last_run']['seconds']}", flush=True)
        peaks = ", ".join(f"{k} {v / 2**20:,.0f} MB" for k, v in res["stage_peaks"].items())
        print(f"  peak RSS of the largest process per stage: {peaks}; workers {res['last_run']['workers']}", flush=True)
        shutil.rmtree(d)
    if len(rows) > 1:
        ratio = rows[-1][1]["peak_one"] / rows[0][1]["peak_one"]
        print(f"peak RSS of the largest process, {rows[-1][0]:,} / {rows[0][0]:,} docs: {ratio:.2f}x")
    if a.big_mb:
        d = a.dir / "big"
        (d / "text").mkdir(parents=True)
        n, raw = write_big(d / "text" / "shard.jsonl.zst", a.big_mb, base)
        size = (d / "text" / "shard.jsonl.zst").stat().st_size
        src = [{"name": "text", "kind": "redpajama", "path": "text/shard.jsonl.zst", "license": "mit"}]
        res = build(recipe(d, src), d / "out")
        print(
            f"one .jsonl.zst: {n:,} docs, {raw / 2**20:,.0f} MB of JSON lines ({size / 2**20:,.0f} MB compressed): "
            f"{res['seconds']:.0f} s, {n / res['seconds']:,.0f} docs/s, peak RSS largest process "
            f"{res['peak_one'] / 2**20:,.0f} MB, tree {res['peak_sum'] / 2**20:,.0f} MB; "
            f"clean units {res['last_run']['clean_units']}; per stage "
            + ", ".join(f"{k} {v / 2**20:,.0f} MB" for k, v in res["stage_peaks"].items()),
            flush=True,
        )
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
