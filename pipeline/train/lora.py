"""LoRA targets per architecture and the exact LoRA parameter count of a model (meta device: no weights)."""

from __future__ import annotations

DEFAULT_TARGETS = {
    # RWKV-4: key / value / receptance of the time-mix (attention) and channel-mix (feed-forward) blocks
    "rwkv": ["key", "value", "receptance"],
    # GPT-NeoX (Dolly, Pythia): fused attention projection and its output
    "gpt_neox": ["query_key_value", "dense"],
    # Llama family: attention projections and the MLP
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
PACKABLE = {"gpt_neox", "llama"}  # attention models that take a 4D block mask; RWKV is recurrent


def targets_for(model_type: str, targets: list[str] | None) -> list[str]:
    if targets:
        return targets
    if model_type not in DEFAULT_TARGETS:
        raise ValueError(f"no default LoRA targets for model type {model_type!r}: set train.lora.targets")
    return DEFAULT_TARGETS[model_type]


def meta_model(config):
    """The model built on the meta device: exact shapes and parameter counts, no memory."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def lora_shapes(model, targets: list[str]) -> list[tuple[str, int, int]]:
    """(module name, in_features, out_features) of every Linear whose last name part is a target."""
    import torch

    out = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and name.split(".")[-1] in targets:
            out.append((name, mod.in_features, mod.out_features))
    return out


def lora_param_count(model, targets: list[str], r: int) -> int:
    return sum(r * (i + o) for _, i, o in lora_shapes(model, targets))
