"""Tokens/s and MFU of LoRA training steps for a configured model on the device present.

    .venv/bin/python benchmarks/train.py                                  # small random GPT-NeoX, CPU
    .venv/bin/python benchmarks/train.py --arch gpt_neox --hidden 2048 --layers 24 --seq 1024 --batch 8
    .venv/bin/python benchmarks/train.py --arch rwkv --hidden 5120 --layers 40 --vocab 50277 --seq 1024 \\
        --batch 1 --wkv both --peak-tflops 989                            # RWKV-4 14B-shaped, both WKV ops
    .venv/bin/python benchmarks/train.py --model DIR --peak-tflops 989   # e.g. H100/H200 dense bf16

Without --model the model is random-init from a config, built straight on the device (no tokenizer, no
files: random token ids). MFU(6N) counts 6 * parameters * tokens FLOPs per step (the usual convention);
MFU(4N) counts 4N, what a LoRA step really does (forward 2N, backward through activations 2N, no weight
gradients for the frozen base). --peak-tflops is the device's dense peak (unknown on a CPU). On GPU the line
also gives torch.cuda.max_memory_allocated against the planner's VRAM figure for the same run.
For RWKV, --wkv picks the WKV op: fla (flash-linear-attention's Triton kernel; on CPU only under
TRITON_INTERPRET=1), transformers (its per-step loop offline), or both, measured side by side.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"gpt_neox": "GPTNeoXConfig", "llama": "LlamaConfig", "rwkv": "RwkvConfig"}


def random_config(args):
    import transformers

    extra = {
        "gpt_neox": dict(num_attention_heads=max(args.hidden // 128, 1), intermediate_size=4 * args.hidden),
        "llama": dict(num_attention_heads=max(args.hidden // 128, 1), intermediate_size=3 * args.hidden),
        "rwkv": dict(
            attention_hidden_size=args.hidden, intermediate_size=4 * args.hidden, context_length=args.seq
        ),
    }[args.arch]
    return getattr(transformers, CONFIGS[args.arch])(
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        vocab_size=args.vocab,
        tie_word_embeddings=False,
        **extra,
    )


def measure(model, args, device) -> tuple[float, float | None]:
    """(tokens/s over --steps steps after one warm-up, peak GPU bytes or None)."""
    import torch

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.seq), device=device)

    def step():
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step()  # warm-up (and Triton compilation)
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    return args.batch * args.seq * args.steps / dt, peak


def main() -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from pipeline.rwkv.wkv import resolve, wkv
    from pipeline.train.planner import plan
    from pipeline.train.trainer import with_lora
    from schemas.recipe import TrainSpec

    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--arch", default="gpt_neox", choices=list(CONFIGS))
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--wkv", default="auto", choices=["auto", "fla", "transformers", "both"])
    ap.add_argument("--checkpointing", action="store_true", help="gradient checkpointing, as train's default")
    ap.add_argument("--peak-tflops", type=float)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    config = AutoConfig.from_pretrained(args.model) if args.model else random_config(args)
    if args.model:
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).to(device)
    else:
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.config.use_cache = False
    if model.config.model_type == "rwkv":
        model.config.rescale_every = 0  # as the trainer does
    params = sum(p.numel() for p in model.parameters())
    spec = TrainSpec(
        model="m",
        dataset="d",
        lora={"r": args.r, "dropout": 0.0},
        precision="bf16" if device == "cuda" else "fp32",
        seq_len=args.seq,
        micro_batch=args.batch,
        gradient_checkpointing=args.checkpointing,
        gpu_memory_gb=1000,
    )
    if args.checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model = with_lora(model, spec).train()
    ops = [None]
    if model.config.model_type == "rwkv":
        ops = ["fla", "transformers"] if args.wkv == "both" else [resolve(args.wkv, device)]
    rates = {}
    for op in ops:
        with wkv(op or "transformers"):
            tps, peak = measure(model, args, device)
        rates[op] = tps
        name = f" [{op} WKV]" if op else ""
        line = (
            f"{model.config.model_type}{name} {params / 1e6:.1f}M params, LoRA r={args.r}, "
            f"batch {args.batch} x {args.seq} on {device}: {tps:,.0f} tokens/s"
        )
        if args.peak_tflops:
            peak_flops = args.peak_tflops * 1e12
            line += (
                f", MFU(6N) {6 * params * tps / peak_flops:.3f}, MFU(4N) {4 * params * tps / peak_flops:.3f}"
            )
        if peak is not None:
            planned = plan(config, spec.model_copy(update={"wkv": op or "auto"})).vram_gb
            line += f", peak {peak / 2**30:.2f} GiB vs planner {planned:.2f} GiB ({planned * 2**30 / peak - 1:+.1%})"
        print(line, flush=True)
    if len(rates) == 2:
        print(f"fla / transformers loop: {rates['fla'] / rates['transformers']:.3g}x")


if __name__ == "__main__":
    main()
