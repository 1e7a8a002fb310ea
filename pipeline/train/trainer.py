"""The LoRA trainer: a build's shards -> a PEFT adapter, with a log, eval loss and sample generations.

Uses Hugging Face Trainer (gradient accumulation, schedule, checkpoints and resume, and DDP / FSDP /
DeepSpeed when started with ``accelerate launch`` and one of the configs in pipeline/train/accelerate/).
Weights load from safetensors with low_cpu_mem_usage, so a rank never holds a second full host copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import torch

from pipeline.errors import PipelineError
from pipeline.sink.parquet import atomic_write_text
from pipeline.text.repetition import GUARD_CHARS, cut_loop
from pipeline.train.chat import prompt_text, resolve
from pipeline.train.data import Collator, encode_rows, load_rows, pack, shuffled
from pipeline.train.lora import PACKABLE, targets_for
from pipeline.train.templates import prompt

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def load_model(spec, model_path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    kwargs = {"dtype": DTYPES[spec.precision], "low_cpu_mem_usage": True}
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is not None and spec.strategy in ("ddp", "deepspeed-zero2") and torch.cuda.is_available():
        kwargs["device_map"] = {"": int(local_rank)}  # each rank streams its copy straight to its GPU
    if spec.quantization:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_8bit=spec.quantization == "8bit", load_in_4bit=spec.quantization == "4bit"
        )
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    return tok, model


def with_lora(model, spec):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=spec.lora.r,
        lora_alpha=spec.lora.alpha,
        lora_dropout=spec.lora.dropout,
        target_modules=targets_for(model.config.model_type, spec.lora.targets),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, cfg)


def prepare(spec, tok, model_type: str, dataset: Path):
    """(train rows, eval rows, collator): packed where the architecture allows it."""
    packable = spec.pack and model_type in PACKABLE
    rows = shuffled(load_rows(dataset, "train", spec.text_rows), spec.seed)
    chat = (spec.chat_template, model_type)
    train = encode_rows(tok, rows, spec.template, spec.seq_len, *chat)
    val = encode_rows(tok, load_rows(dataset, "validation", spec.text_rows), spec.template, spec.seq_len, *chat)
    if not train:
        raise PipelineError(f"{dataset}: no training rows")
    dtype = DTYPES[spec.precision] if spec.precision != "fp32" else torch.float32
    return (
        pack(train, spec.seq_len, packable),
        pack(val, spec.seq_len, packable),
        Collator(tok.pad_token_id, packable, dtype),
    )


def sample_generations(model, tok, spec, rows: list[dict], n: int) -> list[dict]:
    """A few answers from the trained model, cut by the repetition guard."""
    out = []
    model.eval()
    model.config.use_cache = True
    for r in rows[:n]:
        if r["_table"] == "chat":  # the conversation up to its last answer, which the model writes
            last = max(i for i, m in enumerate(r["messages"]) if m["role"] == "assistant")
            p = prompt_text(tok, resolve(tok, spec.chat_template, model.config.model_type), r["messages"][:last])
            r = {"instruction": r["messages"][last - 1]["content"]}
        else:
            p = prompt(spec.template, r["instruction"], r["input"])
        enc = tok(p, return_tensors="pt").to(model.device)
        with torch.no_grad():
            ids = model.generate(**enc, max_new_tokens=64, do_sample=False, pad_token_id=tok.pad_token_id)
        text = tok.decode(ids[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        cut, period = cut_loop(text, **GUARD_CHARS)
        out.append({"instruction": r["instruction"], "output": cut, "looped": period is not None})
    return out


def rwkv_setup(spec, model, on_gpu: bool) -> tuple[str | None, int | None]:
    """RWKV-4 only: install the WKV op ``train.wkv`` names and switch off inference-time layer rescaling
    (it divides base weights in place but not LoRA deltas); (op, the config's rescale_every) or (None, None)."""
    if model.config.model_type != "rwkv":
        if spec.method != "lora":
            raise PipelineError(
                f"train.method {spec.method!r}: state tuning is for RWKV-4 models, not "
                f"{model.config.model_type}"
            )
        return None, None
    from pipeline.rwkv.wkv import resolve, use_wkv

    op = resolve(spec.wkv, "cuda" if on_gpu else "cpu")
    use_wkv(op)
    rescale = model.config.rescale_every
    model.config.rescale_every = 0
    return op, rescale


def train(spec, out_dir: Path, model_path: str, dataset: Path, resume: bool = True) -> dict:
    """Train ``spec`` into ``out_dir``; the run record (also written to run_manifest.json)."""
    from pipeline.rwkv.wkv import use_wkv

    before = use_wkv("transformers")  # whatever this run installs for RWKV is undone after it
    try:
        return _train(spec, out_dir, model_path, dataset, resume)
    finally:
        use_wkv(before)


def _train(spec, out_dir: Path, model_path: str, dataset: Path, resume: bool) -> dict:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)
    source = model_path
    if model_path.endswith(".pth"):  # a BlinkDL RWKV-4 checkpoint: imported once into the run's folder
        from pipeline.rwkv.checkpoint import imported

        model_path = imported(model_path, spec.tokenizer, out_dir)
    tok, model = load_model(spec, model_path)
    model_type = model.config.model_type
    on_gpu = torch.cuda.is_available() and spec.gpus > 0
    wkv_op, rescale = rwkv_setup(spec, model, on_gpu)
    model.config.use_cache = (
        False  # no generation cache while training (RWKV would update its state in place)
    )
    train_rows, val_rows, collator = prepare(spec, tok, model_type, dataset)
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    if "lora" in spec.method:
        model = with_lora(model, spec)
    else:
        model.requires_grad_(False)
    initial_state = None
    if "state" in spec.method:
        from pipeline.rwkv.state import attach

        initial_state = attach(model, shift=spec.state_shift)
    log_path = out_dir / "train_log.jsonl"

    class Log(TrainerCallback):
        def __init__(self):
            self.t, self.tokens = time.perf_counter(), 0

        def on_step_end(self, args, state, control, **kw):
            if state.global_step >= state.max_steps:  # the last step is always logged
                control.should_log = True

        def on_log(self, args, state, control, logs=None, **kw):
            if not logs or "loss" not in logs or not state.is_world_process_zero:
                return
            now = time.perf_counter()
            seen = collator.tokens_seen - self.tokens
            rec = {
                "step": state.global_step,
                "loss": logs["loss"],
                "lr": logs.get("learning_rate"),
                "tokens_per_s": round(seen / max(now - self.t, 1e-9), 1),
            }
            if on_gpu:
                rec["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
            self.t, self.tokens = now, collator.tokens_seen
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")

    args = TrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        per_device_train_batch_size=spec.micro_batch,
        per_device_eval_batch_size=spec.micro_batch,
        gradient_accumulation_steps=spec.grad_accum,
        max_steps=spec.max_steps or -1,
        num_train_epochs=spec.epochs or 1,
        learning_rate=spec.lr,
        lr_scheduler_type=spec.lr_scheduler,
        warmup_steps=spec.warmup_steps,
        logging_steps=spec.logging_steps,
        eval_strategy="steps" if val_rows else "no",
        eval_steps=spec.eval_steps,
        save_steps=spec.save_steps,
        save_total_limit=2,
        bf16=on_gpu and spec.precision == "bf16",
        fp16=on_gpu and spec.precision == "fp16",
        use_cpu=not on_gpu,
        seed=spec.seed,
        data_seed=spec.seed,
        remove_unused_columns=False,
        report_to=[],
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_rows,
        eval_dataset=val_rows or None,
        data_collator=collator,
        callbacks=[Log()],
    )
    ckpts = sorted((out_dir / "checkpoints").glob("checkpoint-*")) if resume else []
    trainer.train(resume_from_checkpoint=str(ckpts[-1]) if ckpts else None)
    eval_loss = trainer.evaluate()["eval_loss"] if val_rows else None
    if not trainer.is_world_process_zero():  # one rank writes the outputs
        return {"steps": trainer.state.global_step, "eval_loss": eval_loss}
    if "lora" in spec.method:
        model.save_pretrained(out_dir / "adapter", safe_serialization=True)
        tok.save_pretrained(out_dir / "adapter")
    if initial_state is not None:
        from pipeline.rwkv.state import save

        save(initial_state, out_dir)
    samples = sample_generations(
        model,
        tok,
        spec,
        load_rows(dataset, "validation", False) or load_rows(dataset, "train", False),
        spec.sample_generations,
    )
    if spec.merge and "lora" in spec.method:
        merged = model.merge_and_unload()
        if rescale is not None:
            merged.config.rescale_every = rescale
        merged.save_pretrained(out_dir / "merged", safe_serialization=True)
        tok.save_pretrained(out_dir / "merged")
    manifest = json.loads((dataset / "manifest.json").read_text())
    run = {
        "model": source,
        "base": model_path,
        "model_type": model_type,
        "method": spec.method,
        "wkv": wkv_op,
        "dataset": str(dataset),
        "dataset_manifest_sha256": hashlib.sha256((dataset / "manifest.json").read_bytes()).hexdigest(),
        "dataset_recipe_sha256": manifest.get("recipe_sha256"),
        "train_sequences": len(train_rows),
        "eval_sequences": len(val_rows),
        "steps": trainer.state.global_step,
        "eval_loss": eval_loss,
        "lora_params": sum(
            p.numel() for n, p in model.named_parameters() if p.requires_grad and "lora_" in n
        ),
        "state_params": sum(p.numel() for p in initial_state.parameters())
        if initial_state is not None
        else 0,
        "samples": samples,
        "spec": spec.model_dump(mode="json"),
    }
    atomic_write_text(out_dir / "run_manifest.json", json.dumps(run, ensure_ascii=False, indent=2) + "\n")
    return run
