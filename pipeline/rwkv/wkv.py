"""RWKV-4's WKV recurrence on flash-linear-attention's Triton kernel, in transformers' calling convention.

transformers' ``RwkvSelfAttention`` calls the module-level ``rwkv_linear_attention(time_decay, time_first, key,
value, state, return_state)``; its fast path needs a CUDA kernel fetched from the hub, so offline it runs a Python
loop over time steps. :func:`fla_wkv` computes the same thing with ``fla.ops.rwkv4.fused_recurrent_rwkv4``
(forward and backward in Triton, fp32 accumulation): state in and out in transformers' layout (three (B, C)
tensors: numerator, denominator, running max), inputs of any float dtype, the state always fp32.

:func:`use_wkv` installs one op for every RWKV model of the process and returns the one it replaced.
On CPU the Triton kernel runs only under ``TRITON_INTERPRET=1`` (slow: for tests), set before triton is
first imported (triton decides at import whether its own jit functions are interpreted).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch

from pipeline.errors import PipelineError

OPS = ("auto", "fla", "transformers")
MAX_INIT = -1e38  # the running max of an empty state (fla's convention; transformers' loop uses -1e38 too)


def fla_wkv(time_decay, time_first, key, value, state=None, return_state=False):
    """transformers' ``rwkv_linear_attention`` on the fla kernel: (output like ``key``, state or None)."""
    from fla.ops.rwkv4 import fused_recurrent_rwkv4

    b, _, c = key.shape
    if state is None:
        s = torch.zeros(b, 3, 1, c, dtype=torch.float32, device=key.device)
        s[:, 2] = MAX_INIT
    else:
        s = torch.stack([x.float() for x in state], dim=1).unsqueeze(2)
    out, s_out = fused_recurrent_rwkv4(
        time_decay.float(), time_first.float(), key.float(), value.float(), s
    )  # float32 in: the kernel keeps its state in the dtype of ``key``
    out = out.to(key.dtype)
    if return_state or state is not None:
        s_out = s_out[:, :, 0]
        return out, [s_out[:, 0], s_out[:, 1], s_out[:, 2]]
    return out, None


class _SavesLikeFla(torch.autograd.Function):
    """On the meta device (the memory planner): keeps for backward what fla's op keeps (w, u, k and v in
    float32, the state after every step: (B, 3, T, C) float32) and returns empty outputs."""

    @staticmethod
    def forward(ctx, w, u, k, v, s):
        b, t, c = k.shape
        ctx.save_for_backward(w, u, k, v, k.new_empty(b, 3, t, c))
        return k.new_empty(b, t, c), s.new_empty(b, 3, 1, c)

    @staticmethod
    def backward(ctx, *grads):  # never called: meta tensors only
        raise NotImplementedError


def meta_fla_wkv(time_decay, time_first, key, value, state=None, return_state=False):
    """:func:`fla_wkv`'s memory on the meta device: the same saved tensors, no kernel."""
    b, _, c = key.shape
    s = torch.empty(b, 3, 1, c, dtype=torch.float32, device=key.device)
    out, _ = _SavesLikeFla.apply(time_decay.float(), time_first.float(), key.float(), value.float(), s)
    return out.to(key.dtype), None


def _transformers_op():
    from transformers.models.rwkv import modeling_rwkv

    return getattr(modeling_rwkv, "_instruct_pipeline_original", modeling_rwkv.rwkv_linear_attention)


def _dispatch_fla(time_decay, time_first, key, value, state=None, return_state=False):
    if key.size(1) == 1:  # one token (generation): the loop is one step; a kernel launch costs more
        return _transformers_op()(time_decay, time_first, key, value, state=state, return_state=return_state)
    return fla_wkv(time_decay, time_first, key, value, state=state, return_state=return_state)


def _triton_interprets() -> bool:
    """Whether triton's own jit functions were made for the interpreter (decided when triton is imported)."""
    import triton.language as tl

    return type(tl.zeros_like).__name__ == "InterpretedFunction"


def fla_problem(device: str) -> str | None:
    """Why the fla op cannot run on ``device`` ("cuda" or "cpu"), or None when it can.

    fla is imported only when its kernel can run now (on CUDA, or on CPU under TRITON_INTERPRET=1): Triton
    fixes its backend at import, so an import without either would break a later interpreted run."""
    import importlib.util

    if importlib.util.find_spec("fla") is None:
        return "flash-linear-attention is not installed (pip install flash-linear-attention)"
    if device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        return "its Triton kernel runs on CPU only under TRITON_INTERPRET=1 (slow: for tests)"
    if device == "cpu" and not _triton_interprets():
        return "TRITON_INTERPRET=1 was set after triton was imported: set it before the process starts"
    if device == "cuda" and not torch.cuda.is_available():
        return "no CUDA device"
    try:
        import fla.ops.rwkv4  # noqa: F401
    except Exception as err:  # ImportError, or triton failing to find a backend
        return f"flash-linear-attention is not importable ({type(err).__name__}: {str(err).splitlines()[0]})"
    return None


def planned(op: str) -> str:
    """The op a GPU run of ``train.wkv: op`` will use, for the memory planner (which runs anywhere, so it
    only asks whether fla is installed): "fla" or "transformers"."""
    import importlib.util

    return "fla" if op in ("auto", "fla") and importlib.util.find_spec("fla") is not None else "transformers"


def resolve(op: str, device: str) -> str:
    """The op that ``op`` (one of OPS) means on ``device``: "fla" or "transformers"; an error if "fla" cannot run."""
    if op not in OPS:
        raise PipelineError(f"train.wkv: unknown op {op!r} (known: {', '.join(OPS)})")
    if op == "auto":
        return "fla" if device == "cuda" and fla_problem(device) is None else "transformers"
    if op == "fla" and (why := fla_problem(device)):
        raise PipelineError(f"train.wkv: fla on {device}: {why}")
    return op


def use_wkv(op: str) -> str:
    """Install "fla" or "transformers" (or "meta-fla", the planner's stand-in) as the WKV op of every RWKV
    model; the op it replaced."""
    from transformers.models.rwkv import modeling_rwkv

    if not hasattr(modeling_rwkv, "_instruct_pipeline_original"):
        modeling_rwkv._instruct_pipeline_original = modeling_rwkv.rwkv_linear_attention
    current = modeling_rwkv.rwkv_linear_attention
    before = {_dispatch_fla: "fla", meta_fla_wkv: "meta-fla"}.get(current, "transformers")
    ops = {"fla": _dispatch_fla, "meta-fla": meta_fla_wkv}
    modeling_rwkv.rwkv_linear_attention = ops.get(op) or _transformers_op()
    return before


@contextmanager
def wkv(op: str):
    """``use_wkv(op)`` for the block, then the previous op again."""
    before = use_wkv(op)
    try:
        yield
    finally:
        use_wkv(before)
