"""The build flow end to end, under Prefect's test harness, on the shipped samples plus planted problems."""

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import DEFAULT_RECIPE, SAMPLES, write_recipe

from pipeline.text.normalize import dedup_key_text, normalize_text


def recipe_with_planted(tmp_path: Path) -> Path:
    """The default recipe (paths made absolute) plus a source with duplicates, bad lines and a loop."""
    data = yaml.safe_load(DEFAULT_RECIPE.read_text())
    for s in data["sources"]:
        s["path"] = str((DEFAULT_RECIPE.parent / s["path"]).resolve())
        if "metadata" in s:
            s["metadata"] = str((DEFAULT_RECIPE.parent / s["metadata"]).resolve())
    ja = json.loads((SAMPLES / "japanese_alpaca" / "alpaca_data_ja.sample.json").read_text())
    (tmp_path / "planted").mkdir()
    lines = [json.dumps(ja[0], ensure_ascii=False), "{not json", json.dumps({"instruction": "x"})]
    lines.append(json.dumps({**ja[1], "output": ja[1]["output"].upper() + "  "}, ensure_ascii=False))
    lines.append(
        json.dumps(
            {"instruction": "挨拶して", "input": "", "output": "こんにちは。" * 40}, ensure_ascii=False
        )
    )
    lines.append(
        json.dumps({"instruction": "这是什么?", "input": "", "output": "这是一本书。"}, ensure_ascii=False)
    )
    near = {**ja[7], "output": ja[7]["output"].replace("実際に", "実際の", 1)}  # a one-character edit
    lines.append(json.dumps(near, ensure_ascii=False))
    (tmp_path / "planted" / "p.jsonl").write_text("\n".join(lines) + "\n")
    data["sources"].append(
        {
            "name": "planted",
            "kind": "alpaca",
            "path": str(tmp_path / "planted" / "*.jsonl"),
            "license": "apache-2.0",
        }
    )
    return write_recipe(tmp_path, data)


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness):
    from flows.build import build_flow

    tmp = tmp_path_factory.mktemp("build")
    recipe = recipe_with_planted(tmp)
    build_flow(str(recipe), str(tmp / "out1"))
    state = build_flow(str(recipe), str(tmp / "out2"), return_state=True)
    (tmp / "out2-flow-run").write_text(str(state.state_details.flow_run_id))
    return tmp


def rows_of(out: Path, table: str) -> list[dict]:
    files = sorted((out / table).glob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def test_every_input_record_lands_exactly_once(built):
    out = built / "out1"
    manifest = json.loads((out / "manifest.json").read_text())
    data = rows_of(out, "instruct") + rows_of(out, "text")
    rejects = rows_of(out, "rejects")
    seen = Counter((r["source"], r["source_file"], r["source_index"]) for r in data + rejects)
    assert max(seen.values()) == 1
    expected = set()
    for inp in manifest["inputs"]:
        rel = Path(inp["path"]).name
        expected |= {(inp["source"], rel, i) for i in range(inp["records"])}
    assert set(seen) == expected
    assert sum(i["records"] for i in manifest["inputs"]) == len(data) + len(rejects) == 862
    for name, c in manifest["counts"].items():
        assert c["read"] == c["kept"] + sum(c["rejected"].values())
        assert c["kept"] == sum(1 for r in data if r["source"] == name)
        assert c["rejected"] == dict(Counter(r["reason"] for r in rejects if r["source"] == name))
    assert len({r["id"] for r in data + rejects}) == len(data) + len(rejects)


def test_planted_problems_become_the_right_rejects(built):
    rejects = [r for r in rows_of(built / "out1", "rejects") if r["source"] == "planted"]
    got = sorted((r["source_index"], r["stage"], r["reason"]) for r in rejects)
    assert got == [
        (0, "dedup", "duplicate_exact"),
        (1, "parse", "parse_error"),
        (2, "parse", "missing_field"),
        (3, "dedup", "duplicate_exact"),  # differs only in case and trailing spaces
        (4, "filter", "repetition_loop"),
        (5, "filter", "lang:zh"),
        (6, "dedup", "duplicate_near"),
    ]
    dup = next(r for r in rejects if r["reason"] == "duplicate_exact" and r["source_index"] == 0)
    data = {r["id"]: r for r in rows_of(built / "out1", "instruct")}
    assert data[dup["duplicate_of"]]["source"] == "alpaca_ja"  # priority 10 beats the planted source's 0
    assert rejects[[r["source_index"] for r in rejects].index(1)]["record"] == "{not json"
    near = next(r for r in rejects if r["reason"] == "duplicate_near")
    assert (
        data[near["duplicate_of"]]["source_index"] == 7
        and data[near["duplicate_of"]]["source"] == "alpaca_ja"
    )
    assert float(near["detail"].split("=")[1]) >= 0.8


def test_kept_rows_are_clean_unique_licensed_and_in_language(built):
    out = built / "out1"
    recipe = yaml.safe_load((built / "recipe.yaml").read_text())
    licenses = {s["name"]: s["license"] for s in recipe["sources"]}
    data = rows_of(out, "instruct") + rows_of(out, "text")
    for r in data:
        assert r["lang"] in ("ja", "en")
        assert r["license"] == licenses[r["source"]]
        for k in ("instruction", "input", "output", "text"):
            if k in r:
                assert r[k] == normalize_text(r[k])
    keys = [
        dedup_key_text(r["text"])
        if "text" in r
        else "\x1f".join(dedup_key_text(r[k]) for k in ("instruction", "input", "output"))
        for r in data
    ]
    assert len(set(keys)) == len(keys)
    assert sum(1 for r in data if r["source"] == "planted") == 0


def test_manifest_lists_every_parquet_file_with_its_sha256(built):
    out = built / "out1"
    manifest = json.loads((out / "manifest.json").read_text())
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert sorted(s["path"] for s in manifest["shards"]) == files
    for s in manifest["shards"]:
        assert hashlib.sha256((out / s["path"]).read_bytes()).hexdigest() == s["sha256"]
        assert pq.read_metadata(out / s["path"]).num_rows == s["rows"]
    assert manifest["recipe_sha256"] and manifest["schema_version"] == "1.0"
    assert [p.name for p in built.glob(".out1*")] == [".out1.work"]  # no staging dir, the work dir kept


def test_two_runs_are_byte_identical(built):
    a, b = built / "out1", built / "out2"
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_split_is_about_five_percent_and_datasets_loads_it(built):
    from datasets import load_dataset

    out = built / "out1"
    ds = load_dataset(
        "parquet", data_files={"train": str(out / "instruct" / "train-*.parquet")}, split="train"
    )
    val = rows_of(out, "instruct")
    n_val = len(pq.read_table(out / "instruct" / "validation-00000-of-00001.parquet"))
    assert len(ds) + n_val == len(val)
    assert 0.02 < n_val / len(val) < 0.09
    by_config = load_dataset(str(out), "instruct")
    assert set(by_config) == {"train", "validation"} and len(by_config["validation"]) == n_val
    text = load_dataset(str(out), "text")
    assert len(text["train"]) + len(text.get("validation", [])) == len(rows_of(out, "text"))


def test_cli_build_and_inspect_on_default_recipe(built, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["build", str(DEFAULT_RECIPE), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    # the instruction-pair rules drop two logo requests and one English answer left untranslated
    assert manifest["counts"]["alpaca_ja"] == {
        "read": 300,
        "kept": 297,
        "rejected": {"translation_artifact": 1, "unseen_media": 2},
    }
    assert {i["encoding"] for i in manifest["inputs"]} == {"utf-8"}
    assert manifest["inputs"][0]["path"] == "../samples/japanese_alpaca/alpaca_data_ja.sample.json"
    res = runner.invoke(app, ["inspect", str(tmp_path / "o")])
    assert res.exit_code == 0 and "alpaca_ja" in res.output and "855" in res.output
    shutil.rmtree(tmp_path / "o")


def test_report_is_one_self_contained_page_with_the_figures(built):
    page = (built / "out1" / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 4
    for needle in (
        "Records per source",
        "Language mix",
        "Licence mix",
        "Near-duplicate clusters",
        "Sample rows",
        "Quality: rejects per rule",
        "Quality: repairs and PII masked per type",
    ):
        assert needle in page
    assert "planted" in page and "repetition_loop" in page and "duplicate_near" in page
    assert not any(tag in page for tag in ("<script", "<link", " src="))  # nothing to fetch
    assert page == (built / "out2" / "report.html").read_text(encoding="utf-8")  # deterministic


def test_the_report_tables_are_prefect_table_artifacts_of_the_flow_run(built):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_id = (built / "out2-flow-run").read_text()
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    by_key = {a.key: a for a in arts}
    suffixes = [
        *["counts", "rejects", "lengths", "languages", "licenses", "near-duplicate-clusters", "samples"],
        *["quality", "repairs"],
    ]
    assert sorted(by_key) == sorted(f"build-samples-{s}" for s in suffixes)

    def table(key):
        art = by_key[f"build-samples-{key}"]
        assert art.type == "table"
        return json.loads(art.data) if isinstance(art.data, str) else art.data

    manifest = json.loads((built / "out2" / "manifest.json").read_text())
    counts = table("counts")
    assert {r["source"]: (r["read"], r["kept"]) for r in counts} == {
        k: (c["read"], c["kept"]) for k, c in manifest["counts"].items()
    }
    rejects = table("rejects")
    assert sum(r["rows"] for r in rejects) == sum(r["rejected"] for r in counts)
    kept = {r["source"]: r["kept"] for r in counts}
    for mix in ("languages", "licenses"):
        assert {r["source"]: sum(v for k, v in r.items() if k != "source") for r in table(mix)} == kept
    assert sum(r["rows"] for r in table("lengths")) == sum(r["kept"] for r in counts)
    assert sum(r["clusters"] * (r["cluster size"] - 1) for r in table("near-duplicate-clusters")) == sum(
        r["rows"] for r in rejects if r["reason"] == "duplicate_near"
    )
    # the table (counted by the near dedup unit) is the rejects' own: kept rows by their number of near duplicates
    near_of = Counter(r["duplicate_of"] for r in rows_of(built / "out2", "rejects") if r["reason"] == "duplicate_near")
    want = sorted(Counter(near_of.values()).items())
    assert want and [(r["cluster size"] - 1, r["clusters"]) for r in table("near-duplicate-clusters")] == want
    assert len(table("samples")) >= len(manifest["counts"])
    # quality: every rule that rejected rows (duplicates aside), with up to two examples of its rejects
    quality = table("quality")
    by_rule = {(r["stage"], r["reason"]): r["rows"] for r in rejects if r["stage"] != "dedup"}
    assert sorted({(q["stage"], q["reason"]) for q in quality}) == sorted(by_rule)
    for rule, rows in by_rule.items():
        examples = [q for q in quality if (q["stage"], q["reason"]) == rule]
        assert len(examples) == min(2, rows) and all(q["rows"] == rows and q["record"] for q in examples)
    unseen = [q for q in quality if q["reason"] == "unseen_media"]
    assert unseen[0]["detail"].startswith("instruction asks to") and unseen[0]["source"] in manifest["counts"]
    assert {(r["source"], r["kind"]): r["rows"] for r in table("repairs")} == {
        (name, k): n for name, c in manifest["stages"].items() for k, n in c.items() if k.startswith(("pii:", "repair:"))
    }
