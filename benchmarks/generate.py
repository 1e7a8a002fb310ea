"""Tokens/s of the two generation backends on the same prompts and model.

    .venv/bin/python benchmarks/generate.py                       # a small random GPT-NeoX made here
    .venv/bin/python benchmarks/generate.py --model DIR --batch 64 --new-tokens 128 --bandwidth-gbs 4800

Both engines decode greedily a fixed number of new tokens (EOS ignored, no stop strings, no loop guard),
so they do the same work. With --bandwidth-gbs (the device's memory bandwidth) it prints the share of the
weight-streaming roofline: tokens/s / (batch * bandwidth / model bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prompts(n: int) -> list[str]:
    from pipeline.generate.templates import render

    seeds = ROOT / "data" / "samples" / "seed_tasks" / "seed_tasks_jp_cleaned.jsonl"
    tasks = [json.loads(line)["instruction"] for line in seeds.read_text().splitlines()]
    return [render("dolly", tasks[i % len(tasks)], "", "ja") for i in range(n)]


def bench_transformers(model: str, ps: list[str], new: int) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(model)
    tok.padding_side = "left"
    tok.pad_token = tok.pad_token or tok.eos_token
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    m = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(device).eval()
    enc = tok(ps, return_tensors="pt", padding=True).to(device)
    kw = dict(do_sample=False, max_new_tokens=new, min_new_tokens=new, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        m.generate(**{k: v[:, :] for k, v in enc.items()}, **{**kw, "max_new_tokens": 4, "min_new_tokens": 4})
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = m.generate(**enc, **kw)
        if device == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
    return (out.shape[1] - enc["input_ids"].shape[1]) * len(ps) / dt


def bench_vllm(model: str, ps: list[str], new: int) -> float:
    from vllm import LLM, SamplingParams

    llm = LLM(model=model, tokenizer=model, seed=0, enforce_eager=True, max_model_len=1024)
    params = SamplingParams(temperature=0.0, max_tokens=new, ignore_eos=True)
    llm.generate(ps[:2], SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True), use_tqdm=False)
    t = time.perf_counter()
    outs = llm.generate(ps, params, use_tqdm=False)
    dt = time.perf_counter() - t
    return sum(len(o.outputs[0].token_ids) for o in outs) / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="model directory (default: a random GPT-NeoX made here)")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--bandwidth-gbs", type=float, help="device memory bandwidth in GB/s, for the roofline")
    ap.add_argument("--backends", nargs="+", default=["transformers", "vllm"])
    args = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    model = args.model
    if model is None:
        from testkit.tiny_models import make_model

        model = str(Path(tempfile.mkdtemp()) / "neox")
        texts = [p for p in prompts(175)]
        make_model(model, texts, "gpt_neox", hidden=args.hidden, layers=args.layers, heads=args.hidden // 64)
    from safetensors import safe_open

    nbytes = 0
    for f in Path(model).glob("*.safetensors"):
        with safe_open(f, "pt") as st:
            for k in st.keys():
                t = st.get_slice(k)
                n = 1
                for d in t.get_shape():
                    n *= d
                nbytes += n * {"F32": 4, "BF16": 2, "F16": 2}.get(t.get_dtype(), 4)
    ps = prompts(args.batch)
    print(
        f"model {model}: {nbytes / 1e6:.1f} MB of weights; batch {args.batch}; {args.new_tokens} new tokens each"
    )
    for name in args.backends:
        tps = (
            bench_transformers(model, ps, args.new_tokens)
            if name == "transformers"
            else bench_vllm(model, ps, args.new_tokens)
        )
        line = f"{name:12s} {tps:10,.0f} tokens/s"
        if args.bandwidth_gbs:
            roof = args.batch * args.bandwidth_gbs * 1e9 / nbytes
            line += f"   roofline {roof:,.0f} tokens/s -> {tps / roof:.1%}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
