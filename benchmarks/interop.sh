#!/usr/bin/env bash
# A real trainer reads our builds: LLaMA-Factory (PyPI llamafactory==0.9.5, in a venv of its own: it takes
# torch 2.14 and transformers 5.6, not ours) LoRA-trains 3 steps on a tiny Llama
#   1. straight from a build's instruct Parquet shards (a dataset_info.json entry of our own: formatting alpaca,
#      file_name = BUILD/instruct), as a new user would point it at the folder;
#   2. through the alpaca and the sharegpt entries that `pipeline export --format llama-factory` writes, for
#      the instruction rows of the default build and for the chat rows of data/recipes/chat.yaml (sharegpt
#      with role/content tags, system and tool turns).
# Not part of CI (it installs a second torch). Usage: benchmarks/interop.sh [BUILD_DIR [CHAT_BUILD_DIR]]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(realpath -m "${1:-data/out/samples}")
CHAT=$(realpath -m "${2:-data/out/chat}")
WORK=${WORK:-/tmp/interop}
PY=.venv/bin/python
mkdir -p "$WORK"
[ -f "$BUILD/manifest.json" ] || $PY -m pipeline build --out "$BUILD"
[ -f "$CHAT/manifest.json" ] || $PY -m pipeline build data/recipes/chat.yaml --out "$CHAT"
name() { $PY -c "import json,sys; print(json.load(open(sys.argv[1]))['name'])" "$1/manifest.json"; }
NAME=$(name "$BUILD"); CHAT_NAME=$(name "$CHAT")
rm -rf "$WORK/data" && mkdir -p "$WORK/data"
$PY -m pipeline export "$BUILD" --format llama-factory --out "$WORK/data/instruct"
$PY -m pipeline export "$CHAT" --format llama-factory --out "$WORK/data/chat"
# one dataset_dir: both exports' entries, plus the Parquet folder itself
$PY - "$WORK/data" "$BUILD" <<'PYEOF'
import json, sys
from pathlib import Path
data, build = Path(sys.argv[1]), sys.argv[2]
info = {}
for sub in ("instruct", "chat"):
    for k, v in json.loads((data / sub / "dataset_info.json").read_text()).items():
        info[k] = {**v, "file_name": f"{sub}/{v['file_name']}"}
info["parquet_instruct"] = {"file_name": f"{build}/instruct", "formatting": "alpaca",
                            "columns": {"prompt": "instruction", "query": "input", "response": "output"}}
(data / "dataset_info.json").write_text(json.dumps(info, ensure_ascii=False, indent=2))
PYEOF
# a tiny random Llama with a tokenizer trained here on the build's text (no download)
[ -f "$WORK/model/config.json" ] || PYTHONPATH=.:tests/support $PY - "$WORK/model" "$WORK/data/instruct" <<'PYEOF'
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
for dataset in parquet_instruct "${NAME}_alpaca_train" "${NAME}_sharegpt_train" "${CHAT_NAME}_alpaca_train" "${CHAT_NAME}_sharegpt_train"; do
  cat > "$WORK/$dataset.yaml" <<YAML
model_name_or_path: $WORK/model
stage: sft
do_train: true
finetuning_type: lora
lora_target: all
lora_rank: 8
dataset: $dataset
dataset_dir: $WORK/data
template: default
cutoff_len: 256
max_samples: 64
output_dir: $WORK/out-$dataset
overwrite_output_dir: true
per_device_train_batch_size: 2
gradient_accumulation_steps: 1
max_steps: 3
logging_steps: 1
learning_rate: 1.0e-3
report_to: none
YAML
  echo "== $dataset"
  "$WORK/lf/bin/llamafactory-cli" train "$WORK/$dataset.yaml" > "$WORK/$dataset.log" 2>&1 || { tail -n 30 "$WORK/$dataset.log"; exit 1; }
  grep -E "'loss'|train_loss|Num examples|Training completed" "$WORK/$dataset.log" | tail -n 6
done
