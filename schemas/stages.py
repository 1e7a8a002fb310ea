"""The recipe's model sections: ``generate`` (self-instruct with an open model) and ``train`` (LoRA)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.base import Strict


class SamplingSpec(Strict):
    temperature: float = Field(default=0.7, ge=0.0)
    top_p: float = Field(default=0.92, gt=0.0, le=1.0)
    max_new_tokens: int = Field(default=256, gt=0)


class GenerateSpec(Strict):
    """Self-instruct generation (pipeline/generate): an open model writes instructions and responses."""

    model: str  # local directory or hub id
    backend: Literal["vllm", "transformers"] = "vllm"
    template: Literal["dolly", "plain"] = "dolly"
    language: Literal["ja", "en"] = "ja"
    # self-instruct: new instructions and answers from seed tasks; backtranslate: for each text row of the
    # build ``posts`` (e.g. a persona's posts) the model writes the instruction it answers (Humpback)
    task: Literal["self-instruct", "backtranslate"] = "self-instruct"
    seed_tasks: str | None = None  # self-instruct: JSON lines of seed tasks, relative to the recipe
    posts: str | None = None  # backtranslate: a build output directory whose text rows are the answers
    posts_sources: list[str] | None = None  # backtranslate: only these sources' text rows (default: all)
    num_instructions: int = Field(default=1000, gt=0)
    max_rounds: int = Field(default=50, gt=0)
    batch_size: int = Field(default=64, gt=0)
    examples_per_prompt: int = Field(default=8, gt=0)  # k seed/pool instructions shown in each prompt
    new_per_prompt: int = Field(default=4, gt=0)  # instructions asked for in each prompt
    seed: int = 0
    license: str = "mit"
    novelty_threshold: float = Field(default=0.7, gt=0.0, le=1.0)  # ROUGE-L F1 above this: not novel
    sampling: SamplingSpec = SamplingSpec()
    tensor_parallel_size: int = Field(default=1, ge=1)
    dtype: str = "auto"
    state: str | None = None  # RWKV-4 initial state (a train run's folder or state.safetensors); transformers only

    @model_validator(mode="after")
    def _inputs(self) -> GenerateSpec:
        if self.task == "self-instruct" and not self.seed_tasks:
            raise ValueError("generate.task self-instruct needs seed_tasks")
        if self.task == "backtranslate" and not self.posts:
            raise ValueError("generate.task backtranslate needs posts (a build output directory)")
        return self


class LoraSpec(Strict):
    r: int = Field(default=8, gt=0)
    alpha: float = 16
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    targets: list[str] | None = None  # None: the architecture's default (pipeline/train/lora.py)


class TrainSpec(Strict):
    """LoRA training on a build's shards (pipeline/train)."""

    model: str  # local directory or hub id; or a BlinkDL RWKV-4 .pth (imported into the run's folder)
    tokenizer: str | None = None  # for a .pth model: a directory or hub id (default EleutherAI/gpt-neox-20b)
    dataset: str  # a build output directory (its manifest.json lists the shards)
    template: Literal["alpaca-ja", "alpaca-en", "dolly"] = "alpaca-ja"
    # chat rows: auto = the tokenizer's own chat template, else chat-ja (pipeline/train/chat.py)
    chat_template: Literal["auto", "chat-ja", "chat-en", "rwkv", "dolly"] = "auto"
    method: Literal["lora", "state", "lora+state"] = "lora"  # state: RWKV-4 initial-state tuning
    state_shift: bool = False  # state tuning also learns the token-shift states
    wkv: Literal["auto", "fla", "transformers"] = "auto"  # RWKV-4 WKV op (auto: fla's Triton kernel on GPU)
    lora: LoraSpec = LoraSpec()
    seq_len: int = Field(default=1024, gt=8)
    micro_batch: int = Field(default=2, gt=0)
    grad_accum: int = Field(default=4, gt=0)
    max_steps: int | None = Field(default=1000, gt=0)
    epochs: float | None = None  # used when max_steps is null
    lr: float = Field(default=1.0e-4, gt=0)
    lr_scheduler: str = "cosine"
    warmup_steps: int = 0
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    quantization: Literal["8bit", "4bit"] | None = None
    gradient_checkpointing: bool = True
    pack: bool = True  # pack examples (never across boundaries; RWKV stays unpacked)
    text_rows: bool = True  # also train on the build's text rows (loss on every token)
    gpus: int = Field(default=1, ge=0)  # 0 = CPU
    gpu_memory_gb: float = Field(default=48, gt=0)
    host_memory_gb: float = Field(default=256, gt=0)
    strategy: Literal["ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"] = "ddp"
    seed: int = 0
    eval_steps: int = Field(default=200, gt=0)
    save_steps: int = Field(default=200, gt=0)
    logging_steps: int = Field(default=10, gt=0)
    sample_generations: int = Field(default=3, ge=0)
    merge: bool = False  # also save the base model with the adapter merged in
