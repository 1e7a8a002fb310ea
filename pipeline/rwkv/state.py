"""State tuning for RWKV-4: a trainable initial state per layer, with the base model frozen.

RWKV-4 carries, per layer, a WKV state (numerator, denominator, running max) and two token-shift states (the
previous hidden vector seen by the time-mix and the channel-mix). A model normally starts from the empty state; a
tuned one starts from learnt vectors, as if it had already read a prompt. Parameters, one (layers, C) matrix each:
``wkv_num`` (the numerator), ``wkv_log_den`` (log of the denominator, so it stays positive; the running max is 0)
and, with ``shift=True``, ``att_shift`` and ``ffn_shift``. They start close to the empty state (a small
denominator, zero numerator and shifts), where the gradient still flows.

:func:`attach` gives a transformers ``RwkvForCausalLM`` (bare or inside PEFT) these parameters: without a cached
state, each layer starts from them (training, plain forward); with ``use_cache`` (generation) the model's first
state is built from them. Saved as a small safetensors file; :func:`load` attaches a saved one, frozen.
"""

from __future__ import annotations

import types
from pathlib import Path

import torch
from torch import nn

FILE = "state.safetensors"
INIT_LOG_DEN = -4.0  # a near-empty start: the state weighs about e^-4 against the current token


class InitialState(nn.Module):
    def __init__(self, layers: int, hidden: int, attention_hidden: int, shift: bool):
        super().__init__()
        self.wkv_num = nn.Parameter(torch.zeros(layers, attention_hidden))
        self.wkv_log_den = nn.Parameter(torch.full((layers, attention_hidden), INIT_LOG_DEN))
        self.shift = shift
        if shift:
            self.att_shift = nn.Parameter(torch.zeros(layers, hidden))
            self.ffn_shift = nn.Parameter(torch.zeros(layers, hidden))

    def wkv(self, layer: int, batch: int):
        """(numerator, denominator, max) of ``layer``, each (batch, C) float32, in transformers' order."""
        num = self.wkv_num[layer].float().expand(batch, -1)
        den = self.wkv_log_den[layer].float().exp().expand(batch, -1)
        return [num, den, torch.zeros_like(num)]

    def shifted(self, which: str, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden`` moved one step right, the first position from the learnt shift (or zeros)."""
        b, _, c = hidden.shape
        first = (
            getattr(self, f"{which}_shift")[layer].to(hidden.dtype).expand(b, 1, c)
            if self.shift
            else hidden.new_zeros(b, 1, c)
        )
        return torch.cat([first, hidden[:, :-1]], dim=1)

    def cache(self, batch: int, dtype, device) -> list[torch.Tensor]:
        """transformers' five (batch, C, layers) state tensors, built from the learnt state (for generation)."""
        layers, c = self.wkv_num.shape
        att = self.att_shift if self.shift else self.wkv_num.new_zeros(layers, self.hidden)
        ffn = self.ffn_shift if self.shift else self.wkv_num.new_zeros(layers, self.hidden)

        def lay(m, dt):  # (layers, C) -> (batch, C, layers)
            return m.detach().to(device=device, dtype=dt).t().unsqueeze(0).expand(batch, -1, -1).clone()

        return [
            lay(ffn, dtype),
            lay(att, dtype),
            lay(self.wkv_num, torch.float32),
            lay(self.wkv_log_den.exp(), torch.float32),
            lay(torch.zeros_like(self.wkv_num), torch.float32),
        ]


def _rwkv(model):
    """The transformers ``RwkvForCausalLM`` inside ``model`` (a PEFT wrapper or the model itself)."""
    for m in model.modules():
        if type(m).__name__ == "RwkvForCausalLM":
            return m
    raise ValueError("state tuning needs an RWKV-4 model (transformers' RwkvForCausalLM)")


def _attention_forward(self, hidden, state=None, use_cache=False):
    if state is not None:  # generation with a cache: the cache already started from the learnt state
        return self._stateless_forward(hidden, state=state, use_cache=use_cache)
    from transformers.models.rwkv import modeling_rwkv

    init = self._initial_state()
    shifted = init.shifted("att", self.layer_id, hidden)
    key = self.key(hidden * self.time_mix_key + shifted * (1 - self.time_mix_key))
    value = self.value(hidden * self.time_mix_value + shifted * (1 - self.time_mix_value))
    receptance = torch.sigmoid(
        self.receptance(hidden * self.time_mix_receptance + shifted * (1 - self.time_mix_receptance))
    )
    out, _ = modeling_rwkv.rwkv_linear_attention(
        self.time_decay, self.time_first, key, value, state=init.wkv(self.layer_id, hidden.size(0))
    )
    return self.output(receptance * out), None


def _feed_forward(self, hidden, state=None):
    if state is not None:
        return self._stateless_forward(hidden, state=state)
    shifted = self._initial_state().shifted("ffn", self.layer_id, hidden)
    key = torch.square(torch.relu(self.key(hidden * self.time_mix_key + shifted * (1 - self.time_mix_key))))
    receptance = torch.sigmoid(
        self.receptance(hidden * self.time_mix_receptance + shifted * (1 - self.time_mix_receptance))
    )
    return receptance * self.value(key), None


def attach(model, shift: bool = False, init: InitialState | None = None) -> InitialState:
    """Give ``model`` an initial state (new and trainable, or ``init``); the state module."""
    rwkv = _rwkv(model)
    cfg = rwkv.config
    if init is None:
        init = InitialState(
            cfg.num_hidden_layers, cfg.hidden_size, cfg.attention_hidden_size or cfg.hidden_size, shift
        )
    init.hidden = cfg.hidden_size
    param = next(rwkv.parameters())
    init.to(device=param.device)
    rwkv.initial_state = init  # registered as a submodule: its parameters train and move with the model

    def get():
        return rwkv.initial_state

    for block in rwkv.rwkv.blocks:
        for mod, fwd in ((block.attention, _attention_forward), (block.feed_forward, _feed_forward)):
            if not hasattr(mod, "_stateless_forward"):
                mod._stateless_forward = mod.forward
            mod._initial_state = get
            mod.forward = types.MethodType(fwd, mod)

    def start_from_state(module, args, kwargs):
        use_cache = kwargs.get("use_cache")
        if use_cache is None:
            use_cache = module.config.use_cache and not module.training
        if not use_cache or kwargs.get("state") is not None:
            return None
        x = kwargs.get("inputs_embeds")
        ids = args[0] if args else kwargs.get("input_ids")
        batch = (x if x is not None else ids).size(0)
        dtype = x.dtype if x is not None else module.embeddings.weight.dtype
        kwargs["state"] = rwkv.initial_state.cache(batch, dtype, module.embeddings.weight.device)
        return args, kwargs

    if not getattr(rwkv.rwkv, "_starts_from_state", False):
        rwkv.rwkv.register_forward_pre_hook(start_from_state, with_kwargs=True)
        rwkv.rwkv._starts_from_state = True
    return init


def save(init: InitialState, out_dir: Path) -> Path:
    from safetensors.torch import save_file

    tensors = {k: v.detach().float().contiguous().cpu() for k, v in init.state_dict().items()}
    path = Path(out_dir) / FILE
    save_file(
        tensors, str(path), metadata={"format": "rwkv4-initial-state", "shift": str(init.shift).lower()}
    )
    return path


def load(model, path: Path) -> InitialState:
    """Attach the state saved at ``path`` (a file or a folder holding state.safetensors) to ``model``, frozen."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        path = path / FILE
    with safe_open(str(path), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    layers, c = tensors["wkv_num"].shape
    shift = "att_shift" in tensors
    hidden = tensors["att_shift"].shape[1] if shift else _rwkv(model).config.hidden_size
    init = InitialState(layers, hidden, c, shift)
    init.load_state_dict(tensors)
    init.requires_grad_(False)
    return attach(model, init=init)
