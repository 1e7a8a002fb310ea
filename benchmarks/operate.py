"""Operate figures: a local build against a 2-worker Dask build of the same corpus, and the work a rerun
does after a SIGKILL at several points against a full run.

    .venv/bin/python benchmarks/operate.py --docs 40000 --files 16 [--workers 2]

The corpus (benchmarks/corpus.py) is written as Alpaca JSON files (instruction rows) and RedPajama JSON
lines (text rows), ``--files`` of each kind. Every run is the real CLI in a fresh process, so the times
include Prefect's start (a few seconds) and, for Dask, the cluster's start. Work is the build's own count
(.NAME.work/last-run.json: rows read and cleaned + rows given to each dedup pass + rows written).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from corpus import make_corpus  # benchmarks/corpus.py, beside this script

ROOT = Path(__file__).resolve().parents[1]



def write_corpus(dir: Path, n: int, files: int) -> None:
    inst, text = [[] for _ in range(files)], [[] for _ in range(files)]
    for i, (row, _label, _lang) in enumerate(make_corpus(n)):
        if "text" in row:
            text[i % files].append({"text": row["text"], "meta": {"i": i}})
        else:
            inst[i % files].append({k: row[k] for k in ("instruction", "input", "output")})
    for k in range(files):
        (dir / "inst").mkdir(parents=True, exist_ok=True)
        (dir / "text").mkdir(parents=True, exist_ok=True)
        (dir / "inst" / f"part-{k:03d}.json").write_text(json.dumps(inst[k], ensure_ascii=False))
        (dir / "text" / f"part-{k:03d}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in text[k])
        )


def recipe(dir: Path, name: str, **extra) -> Path:
    data = {
        "name": "bench",
        "sources": [
            {"name": "inst", "kind": "alpaca", "path": "inst/*.json", "license": "mit"},
            {"name": "text", "kind": "redpajama", "path": "text/*.jsonl", "license": "mit"},
        ],
        "output": {"shard_rows": 2000},
        **extra,
    }
    path = dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def build(r: Path, out: Path, failpoint: str | None = None) -> tuple[float, int]:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PIPELINE_FAILPOINT", None)
    if failpoint:
        env["PIPELINE_FAILPOINT"] = failpoint
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "pipeline", "build", str(r), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return time.perf_counter() - t, p.returncode


def files_of(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def work(out: Path) -> dict:
    return json.loads((out.parent / f".{out.name}.work" / "last-run.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=40000)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=ROOT / "benchmarks" / "out" / "operate")
    a = ap.parse_args()
    shutil.rmtree(a.dir, ignore_errors=True)
    a.dir.mkdir(parents=True)
    write_corpus(a.dir, a.docs, a.files)
    local, dask = (
        recipe(a.dir, "local"),
        recipe(a.dir, "dask", runtime={"engine": "dask", "workers": a.workers}),
    )

    t_local, rc = build(local, a.dir / "local")
    assert rc == 0
    full = work(a.dir / "local")
    t_dask, rc = build(dask, a.dir / "dask")
    assert rc == 0
    same = files_of(a.dir / "local") == files_of(a.dir / "dask")
    print(f"{a.docs} docs in {2 * a.files} files, {os.cpu_count()} cores")
    phases = {name: work(a.dir / name)["seconds"] for name in ("local", "dask")}
    for name, t in (("local", t_local), (f"dask {a.workers} workers", t_dask)):
        ph = phases[name.split()[0]]
        print(
            f"{name:<16} {t:6.1f} s whole CLI run; runner start {ph['runner start']:.1f} s, "
            f"read+clean {ph['read+clean']:.1f} s "
            f"({a.docs / ph['read+clean']:,.0f} docs/s), dedup {ph['dedup']:.1f} s, write {ph['write']:.1f} s"
        )
    print(f"dask output byte-identical to local: {same}")
    print(f"full run rows_processed {full['rows_processed']:,}")
    half = full["rows_cleaned"] // 2
    for point in (f"read:{half}", "exact-done", "near-band:5", "write-shard:5"):
        out = a.dir / f"kill-{point.replace(':', '-')}"
        t_kill, rc = build(local, out, point)
        assert rc == -signal.SIGKILL, rc
        t_re, rc = build(local, out)
        assert rc == 0
        w = work(out)
        print(
            f"killed at {point:<14} rerun {t_re:6.1f} s ({t_re / t_local:.2f} of a full run), rows_processed "
            f"{w['rows_processed']:,} ({w['rows_processed'] / full['rows_processed']:.2f}), "
            f"identical: {files_of(out) == files_of(a.dir / 'local')}"
        )


if __name__ == "__main__":
    main()
