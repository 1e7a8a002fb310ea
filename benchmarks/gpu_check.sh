#!/usr/bin/env bash
# All GPU figures in one run, for a lent GPU machine (H100/H200: --peak-tflops 989, 4800 GB/s for H200).
# Not part of CI. Prints, per line (numbers are what the run measures; nothing here is expected in advance):
#   rwkv [fla WKV] 1515.1M params, ... tokens/s, MFU(6N) ..., MFU(4N) ..., peak X GiB vs planner Y GiB (+Z%)
#   rwkv [transformers WKV] ...                         then  fla / transformers loop: Nx
#   the same for the 14B shape, then the Dolly-shaped GPT-NeoX rows, then vLLM generation with % of roofline.
# Goals (issue 12): MFU(4N) >= 0.30 for RWKV with the fla op, >= 100x the loop, planner within 15%.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export PYTHONPATH=.:tests/support:benchmarks
PEAK=${PEAK_TFLOPS:-989}
BW=${BANDWIDTH_GBS:-4800}
# RWKV-4 1.5B shape (Pile 1B5: 24 layers x 2048) and 14B shape (40 x 5120), bf16, LoRA r=8, seq 1024
$PY benchmarks/train.py --arch rwkv --hidden 2048 --layers 24 --vocab 50277 --seq 1024 --batch 4 --steps 3 \
    --wkv both --peak-tflops "$PEAK"
$PY benchmarks/train.py --arch rwkv --hidden 5120 --layers 40 --vocab 50277 --seq 1024 --batch 1 --steps 2 \
    --wkv both --checkpointing --peak-tflops "$PEAK"
# Dolly-v2-3b-shaped GPT-NeoX (32 x 2560) for comparison
$PY benchmarks/train.py --arch gpt_neox --hidden 2560 --layers 32 --vocab 50280 --seq 1024 --batch 4 --steps 3 \
    --peak-tflops "$PEAK"
# generation on vLLM (needs `pip install vllm` on the GPU machine), % of the weight-streaming roofline
$PY benchmarks/generate.py --hidden 2560 --layers 32 --batch 64 --new-tokens 128 --bandwidth-gbs "$BW" || echo "generate.py: failed (vllm installed?)"
