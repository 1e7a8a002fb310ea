import hashlib
import json
import shutil

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import SAMPLES, write_recipe
from gen_fixtures import ANSWERS, LOOP_INSTRUCTION, NEW, make_taught_model

from pipeline.generate.backends import Sampling, TransformersBackend, finish
from pipeline.generate.filters import NoveltyPool, instruction_reason, response_reason
from pipeline.generate.selfinstruct import SelfInstruct, load_seed_tasks, run
from pipeline.generate.templates import STOP, parse_instructions, render
from schemas.recipe import GenerateSpec

SEEDS = SAMPLES / "seed_tasks" / "seed_tasks_jp_cleaned.jsonl"


def test_dolly_format_rendering_and_parsing():
    assert render("dolly", "Say hi.", "", "en") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\nSay hi.\n\n### Response:\n"
    )
    assert render("dolly", "要約して", "本文", "ja").endswith(
        "### Instruction:\n要約して\n\nInput:\n本文\n\n### Response:\n"
    )
    assert render("plain", "Say hi.", "", "en") == "Instruction: Say hi.\nResponse:"
    got = finish(
        "Hello there.\n### End\nBelow is", STOP["dolly"], hit_length=False, engine_loop=False, tokens=9
    )
    assert (got.text, got.finish_reason) == ("Hello there.", "stop")
    assert parse_instructions(
        "1. 朝食の献立を考えてください。\n2) Write a poem.\n３．東京を説明して。\n\n"
    ) == [
        "朝食の献立を考えてください。",
        "Write a poem.",
        "東京を説明して。",
    ]


def test_novelty_filter_drops_near_copies_in_japanese_and_english():
    ja = NoveltyPool("ja")
    ja.add("日本の首都はどこですか？")
    assert ja.check("日本の首都はどこでしょうか？") == "not_novel"
    assert ja.check("好きな果物を三つ挙げてください。") is None
    en = NoveltyPool("en")
    en.add("What is the capital city of Japan?")
    assert en.check("What is the capital of Japan?") == "not_novel"
    assert en.check("Name three fruits you like.") is None


def test_blacklist_length_language_and_response_rules():
    assert instruction_reason("この画像を説明してください。", "ja") == "blacklisted"
    assert instruction_reason("Draw a cat on paper.", "en") == "blacklisted"
    assert instruction_reason("はい", "ja") == "too_short"
    assert instruction_reason("Explain how tides work.", "ja") == "lang:en"
    assert instruction_reason("潮の満ち引きの仕組みを説明してください。", "ja") is None
    assert response_reason("Q", "こんにちは。", "loop") == "repetition_loop"
    assert response_reason("Q", "partial answer", "length") == "truncated"
    assert response_reason("Say hi", "say HI!", "stop") == "response_is_instruction"


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    return make_taught_model(tmp_path_factory.mktemp("gen") / "tiny-neox")


def test_transformers_backend_stops_a_loop_at_its_first_repeat(taught):
    backend = TransformersBackend(str(taught))
    sampling = Sampling(temperature=0.0, max_new_tokens=120)
    loop, normal = backend.generate(
        [render("dolly", LOOP_INSTRUCTION, "", "ja"), render("dolly", NEW[0], "", "ja")],
        sampling,
        0,
        STOP["dolly"],
    )
    assert (loop.text, loop.finish_reason) == ("こんちには。こんにちは。", "loop")
    assert loop.tokens < 40  # stopped by the token guard long before max_new_tokens
    assert (normal.text, normal.finish_reason) == (ANSWERS[0], "stop")


def spec(**kw) -> GenerateSpec:
    base = dict(
        model="m",
        backend="transformers",
        language="ja",
        seed_tasks=str(SEEDS),
        num_instructions=10,
        max_rounds=3,
        batch_size=4,
        sampling={"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 96},
    )
    return GenerateSpec(**{**base, **kw})


class Crash(Exception):
    pass


class CrashingBackend:
    """Delegates to a real backend, then fails on the n-th generate call (a killed run)."""

    def __init__(self, inner, fail_at):
        self.inner, self.fail_at, self.calls = inner, fail_at, 0
        self.name, self.model_id = inner.name, inner.model_id

    def generate(self, *args):
        self.calls += 1
        if self.calls == self.fail_at:
            raise Crash()
        return self.inner.generate(*args)


def test_interrupted_run_resumed_equals_a_clean_run(taught, tmp_path):
    backend = TransformersBackend(str(taught))
    seeds = load_seed_tasks(SEEDS)
    s = spec(
        num_instructions=12, max_rounds=3, sampling={"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 64}
    )
    clean_rows, clean_rej, _ = run(SelfInstruct(s, backend, seeds, "g"), tmp_path / "clean")
    with pytest.raises(Crash):
        run(SelfInstruct(s, CrashingBackend(backend, fail_at=4), seeds, "g"), tmp_path / "resumed")
    assert sorted(p.name for p in (tmp_path / "resumed").glob("*.done")) == ["round-00000.done"]
    rows, rej, summary = run(SelfInstruct(s, backend, seeds, "g"), tmp_path / "resumed")
    assert summary["resumed_rounds"] == 1
    assert rows == clean_rows and rej == clean_rej
    for f in sorted((tmp_path / "clean").glob("*.parquet")):
        assert f.read_bytes() == (tmp_path / "resumed" / f.name).read_bytes()


def test_generate_cli_then_build_with_the_generated_source(taught, tmp_path, prefect_harness):
    shutil.copytree(taught, tmp_path / "model")
    recipe = {
        "name": "gen",
        "generate": {**spec().model_dump(mode="json"), "model": "model", "seed_tasks": str(SEEDS)},
    }
    r = write_recipe(tmp_path, recipe)
    res = run_cli(["generate", str(r), "--out", str(tmp_path / "gen")], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "generate.gen" in res.stdout and "note: stopped after max_rounds=3" in res.stderr
    manifest = json.loads((tmp_path / "gen" / "manifest.json").read_text())
    c = manifest["counts"]["generate.gen"]
    rows = pq.read_table(tmp_path / "gen" / "generated" / "train-00000-of-00001.parquet").to_pylist()
    rejects = pq.read_table(tmp_path / "gen" / "rejects" / "rejects-00000-of-00001.parquet").to_pylist()
    assert c["kept"] == len(rows) >= 4 and c["read"] == len(rows) + len(rejects)
    assert c["rejected"] == dict(
        sorted(__import__("collections").Counter(x["reason"] for x in rejects).items())
    )
    assert all(instruction_reason(r["instruction"], "ja") is None for r in rows)
    gens = [json.loads(r["generation"]) for r in rows]
    assert {(g["backend"], g["template"], g["finish_reason"], g["language"]) for g in gens} == {
        ("transformers", "dolly", "stop", "ja")
    }
    assert {r["task"] for r in rows} == {"generated"} and {r["license"] for r in rows} == {"mit"}

    build = {
        "name": "with-generated",
        "sources": [
            {"name": "dolly_gen", "kind": "generated", "path": "gen/generated/*.parquet", "license": "mit"}
        ],
        "languages": ["ja"],
    }
    b = write_recipe(tmp_path, build, "build.yaml")
    from flows.build import build_flow

    build_flow(str(b), str(tmp_path / "built"))  # (a second CliRunner in one test breaks logging capture)
    bm = json.loads((tmp_path / "built" / "manifest.json").read_text())
    bc = bm["counts"]["dolly_gen"]
    assert bc["read"] == len(rows) and bc["read"] == bc["kept"] + sum(bc["rejected"].values())
    kept = [
        x
        for f in sorted((tmp_path / "built" / "instruct").glob("*.parquet"))
        for x in pq.read_table(f).to_pylist()
    ]
    assert all(json.loads(x["generation"])["model"].endswith("model") for x in kept)
    assert yaml.safe_load((tmp_path / "built" / "README.md").read_text().split("---")[1])["license"] == "mit"


def run_cli(args, cwd, env=None):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


VLLM_ENV = {"VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_vllm(args, cwd):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {**os.environ, **VLLM_ENV, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


def test_vllm_backend_stops_the_loop_and_answers(taught, tmp_path):
    from conftest import ROOT

    res = run_vllm(
        [str(ROOT / "tests" / "vllm_generate.py"), str(taught), LOOP_INSTRUCTION, NEW[0]], tmp_path
    )
    assert res.returncode == 0, res.stderr[-3000:]
    got = [
        json.loads(line[len("COMPLETION ") :])
        for line in res.stdout.splitlines()
        if line.startswith("COMPLETION ")
    ]
    assert [(g["text"], g["finish_reason"]) for g in got] == [
        ("こんちには。こんにちは。", "loop"),
        (ANSWERS[0], "stop"),
    ]
    assert got[0]["tokens"] < 40  # the engine's repetition detection ended it, not max_tokens


def test_end_to_end_flow_build_generate_build_train(taught, tmp_path, prefect_harness):
    """build -> generate -> build with the generated rows (same DIR, finished units reused) -> train."""
    from flows.end_to_end import pipeline_flow

    ja = json.loads((SAMPLES / "japanese_alpaca" / "alpaca_data_ja.sample.json").read_text())
    short = [r for r in ja if len(r["output"]) < 80][:20]
    (tmp_path / "a.json").write_text(json.dumps(short, ensure_ascii=False))
    shutil.copytree(taught, tmp_path / "model")
    recipe = {
        "name": "e2e",
        "sources": [{"name": "a", "kind": "alpaca", "path": "a.json", "license": "cc-by-nc-4.0"}],
        "languages": ["ja"],
        "dedup": {"near": False},
        "generate": {**spec().model_dump(mode="json"), "model": "model", "seed_tasks": str(SEEDS)},
        "train": {
            "model": "model",
            "dataset": "not-used",  # the flow trains on its own build
            "seq_len": 128,
            "micro_batch": 2,
            "grad_accum": 1,
            "max_steps": 3,
            "precision": "fp32",
            "gradient_checkpointing": False,
            "gpus": 0,
            "eval_steps": 100,
            "save_steps": 100,
            "sample_generations": 0,
        },
    }
    r = write_recipe(tmp_path, recipe)
    done = pipeline_flow(str(r), str(tmp_path / "out"))
    assert done["stages"] == ["build", "generate", "build+generated", "train"]
    built = tmp_path / "out" / "e2e"
    manifest = json.loads((built / "manifest.json").read_text())
    generated = json.loads((tmp_path / "out" / "e2e-generated" / "manifest.json").read_text())
    n_gen = generated["counts"]["generate.e2e"]["kept"]
    assert manifest["counts"]["a"]["read"] == 20
    assert manifest["counts"]["generated"]["read"] == n_gen >= 4
    work = json.loads((tmp_path / "out" / ".e2e.work" / "last-run.json").read_text())
    assert work["clean_units"] == {"computed": 1, "reused": 1}  # the second build cleaned only the new file
    run = json.loads((tmp_path / "out" / "e2e-lora" / "run_manifest.json").read_text())
    assert run["dataset"] == str(built.resolve())
    assert (
        run["dataset_manifest_sha256"] == hashlib.sha256((built / "manifest.json").read_bytes()).hexdigest()
    )
    assert (tmp_path / "out" / "e2e-lora" / "adapter" / "adapter_model.safetensors").is_file()


def test_generate_killed_with_sigkill_resumes_to_the_same_bytes(taught, tmp_path):
    """The CLI killed mid-round (round 1's instructions generated, its answers not), then run again:
    every file equals an uninterrupted run's; the rerun redid only the unfinished rounds."""
    from conftest import files_of

    shutil.copytree(taught, tmp_path / "model")
    gen = {**spec().model_dump(mode="json"), "model": "model", "seed_tasks": str(SEEDS)}
    r = write_recipe(tmp_path, {"name": "gen", "generate": gen})
    clean = run_cli(["generate", str(r), "--out", str(tmp_path / "clean")], tmp_path)
    assert clean.returncode == 0, clean.stderr[-3000:]
    for point, finished in (("generate-instructions:2", 1),):
        out = tmp_path / point.replace(":", "-")
        killed = run_cli(["generate", str(r), "--out", str(out)], tmp_path, {"PIPELINE_FAILPOINT": point})
        assert killed.returncode == -9, killed.stderr[-3000:]
        assert sorted(p.name for p in (out / "rounds").glob("*.done")) == [
            f"round-{i:05d}.done" for i in range(finished)
        ]
        rerun = run_cli(["generate", str(r), "--out", str(out)], tmp_path)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert f"{finished} round(s) finished by an earlier run, {3 - finished} run now" in rerun.stderr
        assert files_of(out) == files_of(tmp_path / "clean")
