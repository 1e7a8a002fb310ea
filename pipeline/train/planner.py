"""Memory planner: predict VRAM per GPU and host RAM for a LoRA run from the model's config alone.

Exact parts: parameter counts (the model is built on the meta device) and the LoRA parameter count (sum
of r * (in + out) over the target Linear layers), hence the adapter size. Estimated parts: activations
kept for backward, per token and layer, from the architecture's dimensions (coefficients checked against
saved-tensor measurements on tiny models in tests/test_train.py), logits, optimizer state and buffers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pipeline.train.lora import lora_param_count, meta_model, targets_for

GB = 1024**3
WEIGHT_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "8bit": 1.0 + 4 / 64, "4bit": 0.5 + 4 / 64}
CUDA_CONTEXT_GB = 0.6  # CUDA context + cuBLAS workspace per GPU
PROCESS_HOST_GB = 2.0  # python + torch + transformers per rank
ALLOCATOR_SLACK = 1.10  # fragmentation of the caching allocator
LORA_STATE_BYTES = 16  # fp32 LoRA weight + grad + Adam m and v


@dataclass
class Plan:
    model_type: str
    params: int
    lora_params: int
    lora_targets: list[str]
    adapter_bytes: int
    per_gpu_gb: dict[str, float] = field(default_factory=dict)  # breakdown of one GPU (or CPU RAM)
    vram_gb: float = 0.0
    host_gb: float = 0.0
    fits: bool = True
    problems: list[str] = field(default_factory=list)
    suggestion: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def activation_elems_per_token_layer(config, seq_len: int, checkpointing: bool, attn: str = "sdpa") -> float:
    """Activation elements kept per token and layer for backward."""
    mt = config.model_type
    h = config.hidden_size
    if checkpointing:
        return float(h)  # only the layer input; one layer is recomputed at a time (added separately)
    if mt == "rwkv":
        ffn = config.intermediate_size or 4 * h
        return 13.0 * h + 3.0 * ffn
    inter = getattr(config, "intermediate_size", 4 * h)
    heads = config.num_attention_heads
    elems = 10.0 * h + 3.0 * inter
    if attn == "eager":
        elems += 2.0 * heads * seq_len  # attention probabilities and dropout mask
    return elems


def plan(config, spec, attn: str = "sdpa", n_shards: int | None = None) -> Plan:
    """A Plan for TrainSpec ``spec`` on ``config`` (a transformers PretrainedConfig)."""
    model = meta_model(config)
    params = sum(p.numel() for p in model.parameters())
    targets = targets_for(config.model_type, spec.lora.targets)
    lora = lora_param_count(model, targets, spec.lora.r)
    act_bytes = 4.0 if spec.precision == "fp32" else 2.0
    adapter_bytes = int(lora * act_bytes)
    wkey = spec.quantization or spec.precision
    weights = params * WEIGHT_BYTES[wkey]
    gpus = max(spec.gpus, 1)
    sharded = spec.strategy in ("fsdp", "deepspeed-zero3") and spec.gpus > 1
    layers = config.num_hidden_layers
    per_gpu_weights = weights / gpus + (weights / layers if sharded else 0.0) if sharded else weights
    lora_state = lora * LORA_STATE_BYTES / (gpus if spec.strategy != "ddp" and spec.gpus > 1 else 1)
    tokens = spec.micro_batch * spec.seq_len
    h = config.hidden_size
    per_layer = activation_elems_per_token_layer(config, spec.seq_len, spec.gradient_checkpointing, attn)
    acts = tokens * per_layer * layers * act_bytes
    if spec.gradient_checkpointing:  # the layer being recomputed holds its full activations
        acts += tokens * activation_elems_per_token_layer(config, spec.seq_len, False, attn) * act_bytes
    vocab = config.vocab_size
    logits = tokens * vocab * (act_bytes + 4.0 + 4.0)  # logits, fp32 upcast for the loss, its gradient
    on_device = spec.gpus > 0
    breakdown = {
        "weights": per_gpu_weights / GB,
        "lora_and_optimizer": lora_state / GB,
        "activations": acts / GB,
        "logits": logits / GB,
        "buffers": (CUDA_CONTEXT_GB if on_device else 0.0) + 0.1 * (per_gpu_weights + acts + logits) / GB,
    }
    total = sum(breakdown.values())
    ranks = gpus if spec.gpus > 1 else 1
    shard = weights / (n_shards or max(1, round(weights / (5 * GB))))
    if on_device:
        # safetensors, low_cpu_mem_usage, device_map per rank: each rank streams its weights shard by shard
        host = ranks * (PROCESS_HOST_GB + shard / GB)
    else:
        host = PROCESS_HOST_GB + total
    p = Plan(config.model_type, params, lora, targets, adapter_bytes, {k: round(v, 3) for k, v in breakdown.items()})
    p.vram_gb = round(total, 3) if on_device else 0.0
    p.host_gb = round(host, 3)
    if on_device and total > spec.gpu_memory_gb:
        p.problems.append(f"needs {total:.1f} GB per GPU, has {spec.gpu_memory_gb:g} GB")
    if host > spec.host_memory_gb:
        p.problems.append(f"needs {host:.1f} GB host RAM, has {spec.host_memory_gb:g} GB")
    p.fits = not p.problems
    return p


def cheaper_options(spec):
    """Changes to try, cheapest (least effect on the result) first: (description, changed spec)."""
    opts = []
    if not spec.gradient_checkpointing:
        opts.append(("enable gradient_checkpointing", spec.model_copy(update={"gradient_checkpointing": True})))
    mb = spec.micro_batch
    while mb > 1:
        mb //= 2
        ga = spec.grad_accum * (spec.micro_batch // mb)
        opts.append((f"micro_batch {mb} with grad_accum {ga}", spec.model_copy(update={"micro_batch": mb, "grad_accum": ga})))
    if spec.gpus > 1 and spec.strategy not in ("fsdp", "deepspeed-zero3"):
        opts.append(("strategy fsdp (shards the weights over the GPUs)", spec.model_copy(update={"strategy": "fsdp"})))
    for q in ("8bit", "4bit"):
        if spec.quantization != q and not (spec.quantization == "4bit"):
            opts.append((f"quantization {q}", spec.model_copy(update={"quantization": q})))
    seq = spec.seq_len
    while seq > 256:
        seq //= 2
        opts.append((f"seq_len {seq}", spec.model_copy(update={"seq_len": seq})))
    return opts


def plan_with_advice(config, spec, **kw) -> Plan:
    p = plan(config, spec, **kw)
    if p.fits:
        return p
    applied = spec
    steps = []
    for desc, _ in cheaper_options(spec):
        # apply changes cumulatively in order of cost until the plan fits
        for d2, s2 in cheaper_options(applied):
            if d2 == desc:
                applied = s2
                break
        steps.append(desc)
        if plan(config, applied, **kw).fits:
            p.suggestion = "; ".join(steps)
            return p
    p.suggestion = "no change tried fits: use more or larger GPUs"
    return p


def format_plan(p: Plan, spec) -> str:
    where = f"per GPU ({spec.gpus} x {spec.gpu_memory_gb:g} GB, {spec.strategy})" if spec.gpus else "CPU RAM"
    lines = [
        f"model type {p.model_type}: {p.params / 1e9:.3f}B parameters",
        f"LoRA r={spec.lora.r} on {', '.join(p.lora_targets)}: {p.lora_params:,} parameters "
        f"= {p.adapter_bytes / 1e6:.1f} MB adapter ({p.adapter_bytes / 2**20:.1f} MiB) in {spec.precision}",
        f"memory {where}:",
    ]
    for k, v in p.per_gpu_gb.items():
        lines.append(f"  {k:20s} {v:9.2f} GB")
    if spec.gpus:
        lines.append(f"  {'total':20s} {p.vram_gb:9.2f} GB")
    lines.append(f"host RAM peak (load + train) {p.host_gb:.1f} GB of {spec.host_memory_gb:g} GB")
    lines.append("fits" if p.fits else "DOES NOT FIT: " + "; ".join(p.problems))
    if p.suggestion:
        lines.append(f"cheapest change that fits: {p.suggestion}")
    return "\n".join(lines)
