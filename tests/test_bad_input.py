import gzip
import json
import subprocess
import sys

import pytest
from conftest import ROOT, SAMPLES, read_all, write_recipe


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
    assert rows[3]["record"] == '{"instruction": "\\xff\\xfe bad bytes", "response": "x"}'
    assert json.loads(rows[2]["record"]) == {"instruction": "no response"}
    assert rows[2]["detail"] == "no field 'response'"


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
