"""BlinkDL RWKV-4 checkpoints (``RWKV-4-Pile-14B-*.pth``: a state dict saved with torch.save) in and out.

:func:`import_pth` reads one with ``torch.load(weights_only=True)`` (no pickled code runs; memory-mapped, so the
host holds no second copy), renames BlinkDL's tensors to transformers' ``RwkvForCausalLM`` layout, infers the
config from the shapes and writes safetensors shards + config.json + the tokenizer. :func:`export_pth` goes back:
a transformers RWKV folder, or a train run (its base model with the LoRA adapter merged in), to a BlinkDL state
dict that ChatRWKV's ``rwkv`` package loads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pipeline.errors import PipelineError

# BlinkDL name part -> transformers name part, per block; the rest map one to one below
_ATT = {
    "time_decay": "time_decay",
    "time_first": "time_first",
    "time_mix_k": "time_mix_key",
    "time_mix_v": "time_mix_value",
    "time_mix_r": "time_mix_receptance",
    "key.weight": "key.weight",
    "value.weight": "value.weight",
    "receptance.weight": "receptance.weight",
    "output.weight": "output.weight",
}
_FFN = {
    "time_mix_k": "time_mix_key",
    "time_mix_r": "time_mix_receptance",
    "key.weight": "key.weight",
    "receptance.weight": "receptance.weight",
    "value.weight": "value.weight",
}
_TOP = {
    "emb.weight": "rwkv.embeddings.weight",
    "ln_out.weight": "rwkv.ln_out.weight",
    "ln_out.bias": "rwkv.ln_out.bias",
    "head.weight": "head.weight",
    "blocks.0.ln0.weight": "rwkv.blocks.0.pre_ln.weight",
    "blocks.0.ln0.bias": "rwkv.blocks.0.pre_ln.bias",
}
_BLOCK = re.compile(r"blocks\.(\d+)\.(att|ffn|ln1|ln2)\.(.+)")
_HF_BLOCK = re.compile(r"rwkv\.blocks\.(\d+)\.(attention|feed_forward|ln1|ln2)\.(.+)")
_PART = {
    "att": ("attention", _ATT),
    "ffn": ("feed_forward", _FFN),
    "ln1": ("ln1", None),
    "ln2": ("ln2", None),
}


def to_transformers_name(name: str) -> str | None:
    """The transformers name of BlinkDL tensor ``name``; None for a name RWKV-4 does not have."""
    if name in _TOP:
        return _TOP[name]
    m = _BLOCK.fullmatch(name)
    if not m:
        return None
    layer, part, rest = m.groups()
    hf_part, table = _PART[part]
    if table is None:
        return f"rwkv.blocks.{layer}.{hf_part}.{rest}" if rest in ("weight", "bias") else None
    return f"rwkv.blocks.{layer}.{hf_part}.{table[rest]}" if rest in table else None


def to_blinkdl_name(name: str) -> str | None:
    """The inverse of :func:`to_transformers_name`."""
    for k, v in _TOP.items():
        if v == name:
            return k
    m = _HF_BLOCK.fullmatch(name)
    if not m:
        return None
    layer, hf_part, rest = m.groups()
    for part, (hp, table) in _PART.items():
        if hp != hf_part:
            continue
        if table is None:
            return f"blocks.{layer}.{part}.{rest}" if rest in ("weight", "bias") else None
        for bk, hk in table.items():
            if hk == rest:
                return f"blocks.{layer}.{part}.{bk}"
    return None


def load_pth(path: Path) -> dict:
    """A BlinkDL state dict, memory-mapped; a clear error for a file that is not one."""
    import torch

    try:
        sd = torch.load(path, weights_only=True, map_location="cpu", mmap=True)
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such file") from None
    except Exception as err:  # an unpickling refusal, a truncated zip, not a torch file at all
        raise PipelineError(f"{path}: not a loadable torch state dict ({str(err).splitlines()[0]})") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise PipelineError(f"{path}: not a state dict of tensors")
    return sd


def config_from(sd: dict, context_length: int, bos: int, eos: int):
    """A transformers RwkvConfig that fits the tensors of BlinkDL state dict ``sd``."""
    from transformers import RwkvConfig

    layers = 1 + max(int(m.group(1)) for k in sd if (m := _BLOCK.fullmatch(k)))
    vocab, hidden = sd["emb.weight"].shape
    return RwkvConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        attention_hidden_size=sd["blocks.0.att.key.weight"].shape[0],
        intermediate_size=sd["blocks.0.ffn.key.weight"].shape[0],
        context_length=context_length,
        bos_token_id=bos,
        eos_token_id=eos,
        tie_word_embeddings=False,
    )


def import_pth(path: Path, tokenizer: str, out_dir: Path, context_length: int = 1024) -> Path:
    """BlinkDL ``.pth`` -> a transformers RWKV folder (safetensors shards, config.json, tokenizer) at ``out_dir``."""
    from huggingface_hub import save_torch_state_dict
    from transformers import AutoTokenizer

    path, out_dir = Path(path), Path(out_dir)
    sd = load_pth(path)
    unknown = sorted(k for k in sd if to_transformers_name(k) is None)
    if unknown:
        raise PipelineError(
            f"{path}: not an RWKV-4 checkpoint: {len(unknown)} unknown tensor(s), e.g. {', '.join(unknown[:3])}"
        )
    missing = sorted(set(_TOP) - set(sd))
    if missing:
        raise PipelineError(f"{path}: incomplete RWKV-4 checkpoint: missing {', '.join(missing)}")
    try:
        tok = AutoTokenizer.from_pretrained(tokenizer)
    except Exception as err:
        raise PipelineError(
            f"tokenizer {tokenizer!r}: cannot load it ({str(err).splitlines()[0]}); the Pile RWKV-4 models use "
            "the GPT-NeoX 20B tokenizer (hub id EleutherAI/gpt-neox-20b or a local copy)"
        ) from None
    eos = tok.eos_token_id if tok.eos_token_id is not None else 0
    bos = tok.bos_token_id if tok.bos_token_id is not None else eos
    config = config_from(sd, context_length, bos, eos)
    if len(tok) > config.vocab_size:
        raise PipelineError(
            f"tokenizer {tokenizer!r} has {len(tok)} tokens, the model's embedding {config.vocab_size}"
        )
    renamed = {to_transformers_name(k): v for k, v in sd.items()}
    expected = _expected_names(config)
    if missing := sorted(expected - set(renamed)):
        raise PipelineError(
            f"{path}: incomplete RWKV-4 checkpoint: missing {len(missing)} tensor(s), e.g. "
            f"{', '.join(to_blinkdl_name(m) or m for m in missing[:3])}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    config.torch_dtype = str(next(iter(renamed.values())).dtype).removeprefix("torch.")
    config.save_pretrained(out_dir)
    save_torch_state_dict(renamed, out_dir, max_shard_size="5GB", safe_serialization=True)
    tok.save_pretrained(out_dir)
    (out_dir / "import.json").write_text(
        json.dumps({"from": str(path), "tokenizer": tokenizer, "tensors": len(renamed)}, indent=2) + "\n"
    )
    return out_dir


def _expected_names(config) -> set[str]:
    from pipeline.train.lora import meta_model

    return {k for k in meta_model(config).state_dict()}


def _merged_model(src: Path):
    """The model at ``src``: a transformers folder, or a train run (base + its adapter merged)."""
    from transformers import AutoModelForCausalLM

    run = src / "run_manifest.json"
    if run.is_file():
        manifest = json.loads(run.read_text())
        if not (src / "adapter").is_dir():
            raise PipelineError(f"{src}: the train run has no LoRA adapter (adapter/) to merge")
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(
            manifest.get("base", manifest["model"]), low_cpu_mem_usage=True, dtype="auto"
        )
        return PeftModel.from_pretrained(base, src / "adapter").merge_and_unload()
    if not (src / "config.json").is_file():
        raise PipelineError(
            f"{src}: neither a model folder (config.json) nor a train run (run_manifest.json)"
        )
    return AutoModelForCausalLM.from_pretrained(src, low_cpu_mem_usage=True, dtype="auto")


def export_pth(src: Path, out: Path) -> Path:
    """A transformers RWKV folder or a train run -> a BlinkDL ``.pth`` state dict at ``out``."""
    import torch

    from pipeline.sink.parquet import atomic_write

    src, out = Path(src), Path(out)
    model = _merged_model(src)
    if model.config.model_type != "rwkv":
        raise PipelineError(f"{src}: a {model.config.model_type} model, not RWKV-4")
    sd = {}
    for k, v in model.state_dict().items():
        name = to_blinkdl_name(k)
        if name is None:
            raise PipelineError(f"{src}: tensor {k} has no BlinkDL name")
        sd[name] = v.detach().contiguous()
    atomic_write(out, lambda tmp: torch.save(sd, tmp))
    return out


def is_pth(ref: str) -> bool:
    return str(ref).endswith(".pth")


def model_config(ref: str, context_length: int = 1024):
    """The transformers config of a model reference: a folder or hub id, or a BlinkDL ``.pth`` (from its shapes)."""
    if is_pth(ref):
        sd = load_pth(Path(ref))
        return config_from(sd, context_length, 0, 0)
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(ref)


def imported(pth: str, tokenizer: str | None, work_dir: Path) -> str:
    """``pth`` imported once into ``work_dir/imported`` (again only when the source file changed): its folder."""
    dest = Path(work_dir) / "imported"
    src = Path(pth)
    stamp = {"from": str(src), "size": src.stat().st_size if src.exists() else None}
    marker = dest / "import.json"
    if marker.is_file():
        old = json.loads(marker.read_text())
        if old.get("from") == stamp["from"] and old.get("size") == stamp["size"]:
            return str(dest)
    import_pth(src, tokenizer or DEFAULT_TOKENIZER, dest)
    data = json.loads(marker.read_text())
    marker.write_text(json.dumps({**data, **stamp}, indent=2) + "\n")
    return str(dest)


DEFAULT_TOKENIZER = "EleutherAI/gpt-neox-20b"  # the Pile RWKV-4 models' tokenizer
