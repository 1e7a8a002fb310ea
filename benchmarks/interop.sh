#!/usr/bin/env bash
# A real trainer reads our exports: LLaMA-Factory (PyPI llamafactory==0.9.5, in a venv of its own: it takes
# torch 2.14 and transformers 5.6, not ours) LoRA-trains 3 steps on a tiny Llama from a build's instruction rows,
# once through the alpaca entry and once through the sharegpt entry of the exported dataset_info.json.
# Not part of CI (it installs a second torch). Usage: benchmarks/interop.sh [BUILD_DIR]   (default data/out/samples)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-data/out/samples}
WORK=${WORK:-/tmp/interop}
PY=.venv/bin/python
mkdir -p "$WORK"
[ -f "$BUILD/manifest.json" ] || $PY -m pipeline build --out "$BUILD"
NAME=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['name'])" "$BUILD/manifest.json")
$PY -m pipeline export "$BUILD" --format llama-factory --out "$WORK/data"
# a tiny random Llama with a tokenizer trained here on the build's text (no download)
PYTHONPATH=.:tests/support $PY - "$WORK/model" "$WORK/data" <<'PYEOF'
import json, sys
from pathlib import Path
from testkit.tiny_models import make_model
out, data = sys.argv[1], Path(sys.argv[2])
texts = [json.loads(x)["output"] for x in open(next(data.glob("*_alpaca_train.jsonl")))]
make_model(out, texts[:500], "llama", hidden=64, layers=2, heads=2, vocab_size=1024)
PYEOF
[ -x "$WORK/lf/bin/llamafactory-cli" ] || {
  python3 -m venv "$WORK/lf"
  # the CPU torch first (a bare torch pulls a multi-GB CUDA build); LLaMA-Factory's pins then fit around it
  "$WORK/lf/bin/pip" install -q torch==2.13.0
  "$WORK/lf/bin/pip" install -q llamafactory==0.9.5
}
for kind in alpaca sharegpt; do
  cat > "$WORK/$kind.yaml" <<YAML
model_name_or_path: $WORK/model
stage: sft
do_train: true
finetuning_type: lora
lora_target: all
lora_rank: 8
dataset: ${NAME}_${kind}_train
dataset_dir: $WORK/data
template: default
cutoff_len: 256
max_samples: 64
output_dir: $WORK/out-$kind
overwrite_output_dir: true
per_device_train_batch_size: 2
gradient_accumulation_steps: 1
max_steps: 3
logging_steps: 1
learning_rate: 1.0e-3
report_to: none
YAML
  "$WORK/lf/bin/llamafactory-cli" train "$WORK/$kind.yaml" 2>&1 | tail -n 8
done
