"""GCNet / STAA global-context pooling (``kernels.triton.global_context``) as ``torch.library`` ops and an
autograd op: ``gc_context(x, key_weight, key_bias)`` = ``sum_p softmax_p(wk . x[:, p] + bk) x[:, p]`` per
frame, fp32 [..., C], one sweep over x each way. The transform of the context (two small linears and a
LayerNorm) and the fusion with x stay in torch (tiny / one elementwise pass).
"""

from __future__ import annotations

from typing import Any

import torch

from ..kernels.triton.global_context import gc_context_bwd_kernel, gc_context_fwd_kernel
from ..reference.staa import GCParams, global_context_fusion, global_context_transform_reference
from ._device import on_device_of
from .registry import (
    SAMPLE_SHAPE,
    randn,
    registered_op,
    triton_entry,
)
from .triton_launch import COMPILE_OPTIONS, channel_tiles

__all__ = ["gc_context", "global_context_fused", "gc_context_fwd", "gc_context_bwd", "MAX_CHANNELS"]

MAX_CHANNELS = 2048  # one program holds a frame's C channels for a tile of pixels


def _tiles(C: int, S: int) -> tuple[int, int, int]:
    """All channels and a few pixels (``channel_tiles``): 8 or 16 values a thread on the GPU, so the backward
    keeps its three tile-sized temporaries live without spilling (python_tests/kernels/triton_aot.py)."""
    return channel_tiles(C, S, min_pixels=4)


def _frames(x: torch.Tensor) -> tuple[int, int, int]:
    """(N frames, C, S) of x [..., C, H, W] (contiguous)."""
    C, S = x.shape[-3], x.shape[-2] * x.shape[-1]
    return x.numel() // max(C * S, 1), C, S


@torch.library.custom_op("snnkernels::gc_context_fwd", mutates_args=(), device_types=("cpu", "cuda"))
def gc_context_fwd(x: torch.Tensor, key_weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ctx fp32 [..., C], stats fp32 [..., 2] = max logit and softmax denominator per frame)."""
    N, C, S = _frames(x)
    ctx = x.new_empty(x.shape[:-2], dtype=torch.float32)
    stats = x.new_empty((*x.shape[:-3], 2), dtype=torch.float32)
    if N:
        block_c, block_p, warps = _tiles(C, S)
        with on_device_of(x):
            gc_context_fwd_kernel[(N,)](
                x,
                key_weight.float().contiguous(),
                ctx,
                stats,
                C,
                S,
                BLOCK_C=block_c,
                BLOCK_P=block_p,
                num_warps=warps,
                **COMPILE_OPTIONS,
            )
    return ctx, stats


@gc_context_fwd.register_fake
def _(x, key_weight):
    return x.new_empty(x.shape[:-2], dtype=torch.float32), x.new_empty((*x.shape[:-3], 2), dtype=torch.float32)


@torch.library.custom_op("snnkernels::gc_context_bwd", mutates_args=(), device_types=("cpu", "cuda"))
def gc_context_bwd(
    grad_ctx: torch.Tensor, x: torch.Tensor, key_weight: torch.Tensor, ctx: torch.Tensor, stats: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dX in x's dtype, dwk fp32 [C] summed over the frames in a fixed order)."""
    N, C, S = _frames(x)
    grad_ctx = grad_ctx.float().contiguous()
    dot = (grad_ctx * ctx).sum(-1).contiguous()  # sum_p att datt = dctx . ctx per frame
    dx = torch.empty_like(x)
    partial = x.new_empty((N, C), dtype=torch.float32)
    if N:
        block_c, block_p, warps = _tiles(C, S)
        with on_device_of(x):
            gc_context_bwd_kernel[(N,)](
                x,
                key_weight.float().contiguous(),
                stats,
                grad_ctx,
                dot,
                dx,
                partial,
                C,
                S,
                BLOCK_C=block_c,
                BLOCK_P=block_p,
                num_warps=warps,
                **COMPILE_OPTIONS,
            )
    return dx, partial.sum(0)


@gc_context_bwd.register_fake
def _(grad_ctx, x, key_weight, ctx, stats):
    return torch.empty_like(x), x.new_empty((x.shape[-3],), dtype=torch.float32)


class _GCContextFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx_: Any, x: torch.Tensor, key_weight: torch.Tensor, key_bias: torch.Tensor | None):
        ctx, stats = gc_context_fwd(x, key_weight)
        ctx_.save_for_backward(x, key_weight, ctx, stats, key_bias)
        return ctx

    @staticmethod
    def backward(ctx_: Any, grad_ctx: torch.Tensor):
        x, key_weight, ctx, stats, key_bias = ctx_.saved_tensors
        dx, dwk = gc_context_bwd(grad_ctx, x, key_weight, ctx, stats)
        needs = ctx_.needs_input_grad
        # the key bias shifts every logit of a frame alike: its gradient is exactly 0
        return (
            dx if needs[0] else None,
            dwk.to(key_weight.dtype) if needs[1] else None,
            torch.zeros_like(key_bias) if (key_bias is not None and needs[2]) else None,
        )


def gc_context(x: torch.Tensor, key_weight: torch.Tensor, key_bias: torch.Tensor | None) -> torch.Tensor:
    """The attention-pooled context fp32 [..., C] of x [..., C, H, W] (every frame on its own).

    ``key_weight`` [C], ``key_bias`` [] / [1] or None: GCNet's ``conv_mask``. Differentiable in x and both
    (the bias cannot change a softmax: it is left out, and its gradient is 0).
    """
    C = x.shape[-3]
    if C > MAX_CHANNELS:
        raise ValueError(
            f"the fused global-context sweep holds a frame's channels in one program: C <= "
            f"{MAX_CHANNELS}, got {C}; use backend='torch'"
        )
    return _GCContextFunction.apply(x.contiguous(), key_weight.reshape(C), key_bias)


def global_context_fused(
    x: torch.Tensor, gc: GCParams, *, fusion: str = "add", layer_norm: bool = True, ln_eps: float = 1e-5
) -> torch.Tensor:
    """The GC block (``reference.staa.global_context_reference``) with its pooling on the fused sweep: the
    context's transform runs in fp32 torch on [..., C], the fusion with x is one elementwise pass."""
    ctx = gc_context(x, gc.key_weight, gc.key_bias)
    gc32 = GCParams(*(None if t is None else t.float() for t in gc))
    v = global_context_transform_reference(ctx, gc32, layer_norm=layer_norm, ln_eps=ln_eps)
    return global_context_fusion(x, v, fusion)


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck, the Triton kernels launched.


def _gc_fwd_samples(dev: str) -> list[tuple]:
    T, B, C, H, W = SAMPLE_SHAPE
    return [(randn(dev, T, B, C, H, W), randn(dev, C))]


def _gc_bwd_samples(dev: str) -> list[tuple]:
    T, B, C, H, W = SAMPLE_SHAPE
    x, wk = randn(dev, T, B, C, H, W), randn(dev, C)
    ctx, stats = registered_op("gc_context_fwd")(x, wk)
    return [(torch.randn_like(ctx), x, wk, ctx, stats)]


OPS = (
    triton_entry("gc_context_fwd", __name__, _gc_fwd_samples, "gc_context_fwd_kernel"),
    triton_entry("gc_context_bwd", __name__, _gc_bwd_samples, "gc_context_bwd_kernel"),
)
