"""Memory planner: predict VRAM per GPU and host RAM for a LoRA run from the model's config alone.

Exact parts: parameter counts (the model is built on the meta device) and the LoRA parameter count (sum
of r * (in + out) over the target Linear layers), hence the adapter size. Activations: the tensors autograd
keeps in a dry run of the real implementation with its LoRA on the meta device (shapes only), for 1 and 2
layers, extended to all layers. Estimated parts: logits gradient, allocator slack, CUDA context, host RAM.
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


def _saved_bytes_of_forward(config, spec, layers: int) -> float:
    """Bytes autograd keeps for backward in one training forward of a ``layers``-layer copy of the model
    with its LoRA, run on the meta device (shapes only: no weights, no memory, seconds even for 14B)."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    from pipeline.train.lora import PACKABLE
    from pipeline.train.trainer import with_lora  # the same LoRA wrapping as training

    cfg = copy.deepcopy(config)
    cfg.num_hidden_layers = layers
    cfg.use_cache = False
    dtype = torch.float32 if spec.precision == "fp32" else torch.bfloat16
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    model = with_lora(model, spec).train()
    params = {p.untyped_storage()._cdata for p in list(model.parameters()) + list(model.buffers())}
    seen: dict[int, int] = {}

    def keep(t):
        st = t.untyped_storage()
        if st._cdata not in params:
            seen[st._cdata] = max(seen.get(st._cdata, 0), st.nbytes())
        return t

    b, s = spec.micro_batch, spec.seq_len
    ids = torch.zeros((b, s), dtype=torch.long, device="meta")
    kwargs = {}
    if config.model_type in PACKABLE:  # a 4D mask (training passes one when packing; the meta device
        # cannot build one from position ids)
        kwargs["attention_mask"] = torch.zeros((b, 1, s, s), dtype=dtype, device="meta")
    from contextlib import nullcontext

    from pipeline.rwkv.wkv import planned, wkv

    # RWKV-4: the WKV op a GPU run uses (fla's kernel keeps far less than transformers' per-step loop)
    op = nullcontext() if config.model_type != "rwkv" else wkv(
        "meta-fla" if planned(spec.wkv) == "fla" else "transformers"
    )
    with op, torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        logits = model(input_ids=ids, use_cache=False, **kwargs).logits.float()
        torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids.reshape(-1))
    return float(sum(seen.values()))


_DRY_RUNS: dict[tuple, float] = {}


def _dry_run(config, spec, layers: int) -> float:
    """:func:`_saved_bytes_of_forward` at micro-batch 1, scaled to the micro-batch (activations are linear
    in it), and cached: the advice search plans many variants of one run."""
    one = spec.model_copy(update={"micro_batch": 1})
    key = (
        config.to_json_string(),
        layers,
        one.model_dump_json(include={"seq_len", "precision", "lora", "pack", "wkv"}),
    )
    if key not in _DRY_RUNS:
        _DRY_RUNS[key] = _saved_bytes_of_forward(config, one, layers)
    return _DRY_RUNS[key] * spec.micro_batch


def saved_activation_bytes(config, spec) -> tuple[float, float]:
    """(bytes kept for backward by the whole model, bytes of one layer's full activations).

    Measured by dry runs of 1- and 2-layer copies on the meta device and extended to all layers (every
    layer keeps the same); with gradient checkpointing only each layer's input is kept, and one layer at a
    time is recomputed in full during backward.
    """
    one = _dry_run(config, spec, 1)
    two = _dry_run(config, spec, 2)
    per_layer = max(two - one, 0.0)
    layers = config.num_hidden_layers
    if not spec.gradient_checkpointing:
        return one + (layers - 1) * per_layer, per_layer
    act_bytes = 4.0 if spec.precision == "fp32" else 2.0
    inputs = spec.micro_batch * spec.seq_len * config.hidden_size * act_bytes
    return one - per_layer + layers * inputs, per_layer


def plan(config, spec, n_shards: int | None = None) -> Plan:
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
    saved, per_layer = saved_activation_bytes(config, spec)
    logits_saved = tokens * config.vocab_size * (act_bytes + (4.0 if act_bytes < 4 else 0.0))
    acts = max(saved - logits_saved, 0.0)
    if spec.gradient_checkpointing:  # the layer being recomputed holds its full activations
        acts += per_layer
    logits = logits_saved + tokens * config.vocab_size * 4.0  # plus the gradient of the logits
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
    p = Plan(
        config.model_type,
        params,
        lora,
        targets,
        adapter_bytes,
        {k: round(v, 3) for k, v in breakdown.items()},
    )
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
        opts.append(
            ("enable gradient_checkpointing", spec.model_copy(update={"gradient_checkpointing": True}))
        )
    mb = spec.micro_batch
    while mb > 1:
        mb //= 2
        ga = spec.grad_accum * (spec.micro_batch // mb)
        opts.append(
            (
                f"micro_batch {mb} with grad_accum {ga}",
                spec.model_copy(update={"micro_batch": mb, "grad_accum": ga}),
            )
        )
    if spec.gpus > 1 and spec.strategy not in ("fsdp", "deepspeed-zero3"):
        opts.append(
            ("strategy fsdp (shards the weights over the GPUs)", spec.model_copy(update={"strategy": "fsdp"}))
        )
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
