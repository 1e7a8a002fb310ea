import base64
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard
from conftest import ROOT, SAMPLES, read_all, write_recipe

from pipeline.errors import InputFileError
from pipeline.records import is_reject


def test_record_level_problems_become_rejects_and_the_file_goes_on(tmp_path):
    f = tmp_path / "d.jsonl"
    good = json.dumps({"instruction": "Say hi.", "context": "", "response": "Hi!", "category": "open_qa"})
    lines = [
        good.encode(),
        b'{"instruction": "broken", "response": ',  # malformed JSON
        json.dumps({"instruction": "no response"}).encode(),  # missing field
        b'{"instruction": "\xff\xfe bad bytes", "response": "x"}',  # not UTF-8
        b"[1, 2]",  # not an object
        good.replace("hi", "bye").encode(),
    ]
    f.write_bytes(b"\n".join(lines) + b"\n")
    rows = read_all("dolly", f)
    assert [(r.get("stage"), r.get("reason")) for r in rows] == [
        (None, None),
        ("parse", "parse_error"),
        ("parse", "missing_field"),
        ("parse", "bad_encoding"),
        ("parse", "missing_field"),
        (None, None),
    ]
    assert [r["source_index"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert rows[1]["record"] == '{"instruction": "broken", "response": '
    assert base64.b64decode(rows[3]["record"]) == b'{"instruction": "\xff\xfe bad bytes", "response": "x"}'
    assert rows[3]["detail"].endswith("; record: the raw bytes in base64")
    assert json.loads(rows[2]["record"]) == {"instruction": "no response"}
    assert rows[2]["detail"] == "no field 'response'"


def write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )


def base_recipe(path: str, kind: str = "alpaca", **extra) -> dict:
    return {"name": "t", "sources": [{"name": "a", "kind": kind, "path": path, "license": "mit"}], **extra}


@pytest.mark.parametrize(
    "recipe, message",
    [
        (base_recipe("nothing/*.json"), "source 'a': no file matches"),
        (base_recipe("data/*.json", kind="csv"), "source 'a': unknown kind 'csv'"),
        ({**base_recipe("data/*.json"), "dedupe": {"exact": True}}, "unknown recipe key 'dedupe'"),
        (
            {
                "name": "t",
                "sources": [
                    {"name": "a", "kind": "alpaca", "path": "data/*.json", "license": "mit", "prio": 1}
                ],
            },
            "unknown recipe key 'sources.0.prio'",
        ),
        (
            base_recipe("data/*.json", schedule={"cron": "61 * * * *"}),
            """recipe key 'schedule.cron': invalid cron string "61 * * * *": Bad minute""",
        ),
        (
            base_recipe("data/*.json", schedule={"cron": "@daily", "timezone": "Asia/Tokio"}),
            """recipe key 'schedule.timezone': unknown time zone "Asia/Tokio" (an IANA name, e.g. Asia/Tokyo)""",
        ),
    ],
)
def test_file_level_problems_exit_2_with_one_line_and_no_output(tmp_path, recipe, message):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.json").write_text("[]")
    r = write_recipe(tmp_path, recipe)
    res = cli("build", str(r), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert res.returncode == 2
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out*"))


def test_unreadable_archive_exits_2_naming_the_file(tmp_path):
    (tmp_path / "rp").mkdir()
    bad = tmp_path / "rp" / "shard.jsonl.zst"
    bad.write_bytes(b"this is not zstd data at all")
    r = write_recipe(tmp_path, base_recipe("rp/*.jsonl.zst", kind="redpajama"))
    res = cli("build", str(r), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert res.returncode == 2
    assert str(bad) in res.stderr and "unreadable" in res.stderr
    assert not (tmp_path / "out").exists()


def test_truncated_archive_found_while_reading_exits_2_and_leaves_no_output(tmp_path):
    (tmp_path / "rp").mkdir()
    data = gzip.compress((SAMPLES / "redpajama_format" / "wikipedia_sample.jsonl").read_bytes())
    bad = tmp_path / "rp" / "shard.jsonl.gz"
    bad.write_bytes(data[: len(data) // 2])
    r = write_recipe(tmp_path, base_recipe("rp/*.jsonl.gz", kind="redpajama"))
    res = cli("build", str(r), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {bad}: unreadable archive")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out*"))


def test_malformed_json_array_is_a_file_error(tmp_path):
    (tmp_path / "a.json").write_text('[{"instruction": "x", "output": "y"},')
    r = write_recipe(tmp_path, base_recipe("*.json"))
    res = cli("build", str(r), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert res.returncode == 2
    assert "a.json: not valid JSON" in res.stderr
    assert not (tmp_path / "out").exists()


def test_inspect_on_a_directory_without_manifest(tmp_path):
    res = cli("inspect", str(tmp_path), cwd=tmp_path)
    assert res.returncode == 2 and "no manifest.json" in res.stderr


def test_classes_found_by_fuzzing_each_on_its_smallest_case(tmp_path):
    """Found by hand before tests/test_fuzz.py (which now covers them): each on its smallest case."""
    rec = {"instruction": "Say hi.", "input": "", "output": "Hi!"}
    line = json.dumps(rec).encode()
    data = b"\n".join([line] * 200) + b"\n"
    # a truncated .zst is refused (it was read as an empty file, exit 0)
    z = zstandard.ZstdCompressor().compress(data)
    with pytest.raises(InputFileError, match="truncated"):
        read_all("alpaca", write(tmp_path, "cut.jsonl.zst", z[: len(z) // 2]))
    # a truncated .json.gz array is refused (it was an EOFError traceback)
    g = gzip.compress(json.dumps([rec] * 50).encode())
    with pytest.raises(InputFileError, match="unreadable archive"):
        read_all("alpaca", write(tmp_path, "cut.json.gz", g[: len(g) // 2]))
    # a lone surrogate escape is one bad_encoding reject that keeps the line (it crashed at Parquet)
    rows = read_all("alpaca", write(tmp_path, "s.jsonl", b'{"instruction": "\\ud800", "output": "x"}\n' + line))
    assert [(r.get("reason"), r.get("record")) for r in rows][0] == (
        "bad_encoding",
        '{"instruction": "\\ud800", "output": "x"}',
    )
    assert not is_reject(rows[1])
    # a 10,000-deep line is one parse_error (it was a RecursionError)
    rows = read_all("redpajama", write(tmp_path, "d.jsonl", b"[" * 10000 + b"]" * 10000 + b"\n" + line))
    assert [r.get("reason") for r in rows] == ["parse_error", "missing_field"]
    assert rows[0]["detail"] == "line 0: nested too deep"
    # a BOM is not part of the first record, in JSON lines and in arrays
    assert not is_reject(read_all("alpaca", write(tmp_path, "b.jsonl", b"\xef\xbb\xbf" + line))[0])
    assert len(read_all("alpaca", write(tmp_path, "b.json", b"\xef\xbb\xbf" + json.dumps([rec] * 3).encode()))) == 3
    # a pretty-printed object is one record; 5,000 spaces before an array do not hide it
    assert len(read_all("dolly", write(tmp_path, "p.json", json.dumps(
        {"instruction": "a", "context": "", "response": "b"}, indent=2).encode()))) == 1
    assert len(read_all("alpaca", write(tmp_path, "w.json", b" " * 5000 + json.dumps([rec] * 10).encode()))) == 10
    # a .tex.gz (arXiv's usual single-file source) is read, not taken for bad encoding
    tex = (SAMPLES / "arxiv_latex" / "tex" / "adrn__SnailTime.tex").read_bytes()
    (row,) = read_all("arxiv_latex", write(tmp_path, "paper.tex.gz", gzip.compress(tex)))
    assert not is_reject(row) and row["task"] == "summarization"


def test_a_file_reached_twice_through_links_is_read_once(tmp_path):
    from pipeline.sources import expand

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.json").write_text("[]")
    (tmp_path / "d" / "loop").symlink_to(tmp_path / "d")  # a link loop under a ** glob
    (tmp_path / "d" / "again.json").symlink_to(tmp_path / "d" / "a.json")
    r = write_recipe(tmp_path, {"name": "t", "sources": [{"name": "a", "kind": "alpaca", "path": "d/**/*.json", "license": "mit"}]})
    from schemas.recipe import load_recipe

    recipe = load_recipe(r)
    files = expand(recipe, recipe.sources[0])
    assert [f.rel for f in files] == ["a.json"]
