"""Tiny causal LMs made on the spot (random init from a config, a BPE tokenizer trained with
``tokenizers`` on sample text), for tests and CPU smoke runs: no download, nothing faked. Their output is
gibberish until taught something (see :func:`teach`)."""

from __future__ import annotations

from pathlib import Path

ARCHS = ("gpt_neox", "llama", "rwkv")


def train_tokenizer(texts: list[str], out_dir: Path, vocab_size: int = 1024):
    """A byte-level BPE tokenizer trained on ``texts``, saved as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|padding|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|padding|>")
    fast.bos_token = "<|endoftext|>"
    fast.save_pretrained(out_dir)
    return fast


def make_model(out_dir: str | Path, texts: list[str], arch: str = "gpt_neox", seed: int = 0, **size):
    """Save a tiny random-init model of ``arch`` (GPT-NeoX: Dolly's architecture) with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(texts, out_dir, size.pop("vocab_size", 1024))
    hidden, layers, heads = size.pop("hidden", 128), size.pop("layers", 2), size.pop("heads", 2)
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r} (known: {', '.join(ARCHS)})")
    import transformers

    per_arch = {  # what differs between the architectures; everything else is shared below
        "gpt_neox": (
            "GPTNeoXConfig",
            dict(
                num_attention_heads=heads,
                intermediate_size=hidden * 4,
                max_position_embeddings=1024,
                rotary_pct=0.25,
                use_parallel_residual=True,
            ),
        ),
        "llama": (
            "LlamaConfig",
            dict(
                num_attention_heads=heads,
                num_key_value_heads=heads,
                intermediate_size=hidden * 3,
                max_position_embeddings=1024,
            ),
        ),
        "rwkv": (
            "RwkvConfig",
            dict(attention_hidden_size=hidden, intermediate_size=hidden * 4, context_length=1024),
        ),
    }
    cls, extra = per_arch[arch]
    config = getattr(transformers, cls)(
        hidden_size=hidden,
        num_hidden_layers=layers,
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
        **extra,
        **size,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def teach(model_dir: str | Path, texts: list[str], steps: int = 60, lr: float = 3e-3, seed: int = 0) -> None:
    """Overfit the model on ``texts`` for a few steps (e.g. to make it loop on purpose) and save it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.train()
    batch = tok(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(model_dir, safe_serialization=True)
