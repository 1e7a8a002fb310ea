"""Tokens/s and MFU of LoRA training steps for a configured model on the device present.

    .venv/bin/python benchmarks/train.py                                  # small random GPT-NeoX, CPU
    .venv/bin/python benchmarks/train.py --arch gpt_neox --hidden 2048 --layers 24 --seq 1024 --batch 8
    .venv/bin/python benchmarks/train.py --model DIR --peak-tflops 989   # e.g. H100/H200 dense bf16

MFU counts 6 * parameters * tokens FLOPs per step (the usual convention; a LoRA step does less since
frozen weights get no gradient), over the device's peak (--peak-tflops; unknown on a CPU).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from pipeline.train.trainer import with_lora
    from schemas.recipe import TrainSpec

    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--arch", default="gpt_neox", choices=["gpt_neox", "llama", "rwkv"])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--peak-tflops", type=float)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model_dir = args.model
    if model_dir is None:
        from testkit.tiny_models import make_model

        seeds = ROOT / "data" / "samples" / "seed_tasks" / "seed_tasks_jp_cleaned.jsonl"
        texts = [json.loads(x)["instruction"] for x in seeds.read_text().splitlines()]
        model_dir = str(Path(tempfile.mkdtemp()) / args.arch)
        make_model(
            model_dir,
            texts,
            args.arch,
            hidden=args.hidden,
            layers=args.layers,
            heads=max(args.hidden // 64, 1),
        )
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    model.config.use_cache = False
    params = sum(p.numel() for p in model.parameters())
    spec = TrainSpec(
        model="m",
        dataset="d",
        lora={"r": args.r, "dropout": 0.0},
        precision="bf16" if device == "cuda" else "fp32",
    )
    model = with_lora(model, spec).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.seq), device=device)

    def step():
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad()

    step()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    tps = args.batch * args.seq * args.steps / dt
    line = f"{model.config.model_type} {params / 1e6:.1f}M params, LoRA r={args.r}, batch {args.batch} x {args.seq} on {device}: {tps:,.0f} tokens/s"
    if args.peak_tflops:
        line += f", MFU {6 * params * tps / (args.peak_tflops * 1e12):.3f}"
    print(line)


if __name__ == "__main__":
    main()
