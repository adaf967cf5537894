"""DTA's T-NA with its elementwise work fused around the dense convolutions (docs/tcja_dta.md "DTA backward").

The three D x D 1x1 convolutions and the depth-wise 5x5 run on cuDNN / cuBLAS through ``F.conv2d``; what
surrounds them is fused:

- ``E = gelu(We X2 + be)`` and GTCA's pooling ``mean_hw E`` in one sweep (``_GeluMean``); its backward is one
  sweep ``(dE + dmean / HW) * gelu'(pre)``;
- LTCA's per-channel affine after the depth-wise 5x5 (DTA's "dilated" conv has a 1x1 kernel) is folded into
  the 5x5's weights and bias: ``(dw_w(E) + b1) d2 + b2 = dw_(w d2)(E) + (b1 d2 + b2)``, no pass of its own;
- ``A = g * L * E`` in one sweep, and its backward (dL, dE and the gate's row sums) in one (``_GatedProduct``);
- E is not kept for the backward: the depth-wise conv and the product save ``pre`` (kept for gelu' anyway)
  and recompute E with the forward's kernel;
- the decoding conv runs without its bias: bias and residual are added by the consumer, inside DTA's output
  sweep (``dta_product_fused(..., na_bias=...)``) or in one torch add for a lone T-NA.

Layout: T-NA's own [B, D, H, W] (D = T * C, t-major), seen by the row kernels as [1, B, D, H, W].
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..kernels.triton import tna as K
from ..reference.dta import TNAParams
from .layout import match_layout
from .registry import (
    SAMPLE_SHAPE,
    rand,
    randn,
    triton_entry,
)
from .triton_launch import launch_rows, per_row

__all__ = ["tna_decoded", "tna_fused"]


def _per_bd(t: torch.Tensor) -> torch.Tensor:
    return torch.empty(t.shape[:2], dtype=torch.float32, device=t.device)


@torch.library.custom_op("snnkernels::tna_gelu_rows", mutates_args=(), device_types=("cpu", "cuda"))
def gelu_rows(pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(gelu(pre), sum_hw gelu(pre) [B, D] fp32)."""
    pre = pre.contiguous()
    e, sums = torch.empty_like(pre), _per_bd(pre)
    launch_rows(K.gelu_rows_kernel, pre.unsqueeze(0), pre, e, sums)
    return e, sums


@gelu_rows.register_fake
def _(pre):
    return torch.empty_like(pre.contiguous()), _per_bd(pre)


@torch.library.custom_op("snnkernels::tna_gelu_bwd", mutates_args=(), device_types=("cpu", "cuda"))
def gelu_bwd(grad_e: torch.Tensor, pre: torch.Tensor, grad_sum: torch.Tensor) -> torch.Tensor:
    """(dE + grad_sum[b, d]) * gelu'(pre), in pre's dtype."""
    pre = pre.contiguous()
    grad_e = match_layout(grad_e, pre)
    out = torch.empty_like(pre)
    launch_rows(K.gelu_bwd_kernel, pre.unsqueeze(0), grad_e, pre, per_row(grad_sum), out)
    return out


@gelu_bwd.register_fake
def _(grad_e, pre, grad_sum):
    return torch.empty_like(pre.contiguous())


@torch.library.custom_op("snnkernels::tna_gated_fwd", mutates_args=(), device_types=("cpu", "cuda"))
def gated_fwd(local: torch.Tensor, e: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """g[b, d] * local * e."""
    e = e.contiguous()
    local = match_layout(local, e)
    out = torch.empty_like(e)
    launch_rows(K.gated_product_fwd_kernel, e.unsqueeze(0), local, e, per_row(g), out)
    return out


@gated_fwd.register_fake
def _(local, e, g):
    return torch.empty_like(e.contiguous())


@torch.library.custom_op("snnkernels::tna_gated_bwd", mutates_args=(), device_types=("cpu", "cuda"))
def gated_bwd(
    grad_a: torch.Tensor, local: torch.Tensor, e: torch.Tensor, g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dL, dE, dg [B, D] fp32) of ``g * local * e``."""
    e = e.contiguous()
    local, grad_a = match_layout(local, e), match_layout(grad_a, e)
    d_local, d_e, dots = torch.empty_like(e), torch.empty_like(e), _per_bd(e)
    launch_rows(K.gated_product_bwd_kernel, e.unsqueeze(0), grad_a, local, e, per_row(g), d_local, d_e, dots)
    return d_local, d_e, dots


@gated_bwd.register_fake
def _(grad_a, local, e, g):
    e = e.contiguous()
    return torch.empty_like(e), torch.empty_like(e), _per_bd(e)


class _GeluMean(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pre: torch.Tensor):
        e, sums = gelu_rows(pre)
        ctx.plane = pre.shape[2] * pre.shape[3]
        ctx.save_for_backward(pre)
        return e, sums / ctx.plane

    @staticmethod
    def backward(ctx: Any, grad_e: torch.Tensor | None, grad_mean: torch.Tensor | None):
        (pre,) = ctx.saved_tensors
        if grad_e is None:
            grad_e = torch.zeros_like(pre)
        grad_sum = grad_mean / ctx.plane if grad_mean is not None else pre.new_zeros(pre.shape[:2], dtype=torch.float32)
        return gelu_bwd(grad_e, pre, grad_sum)


def _gelu_again(pre: torch.Tensor) -> torch.Tensor:
    """E recomputed from its pre-activation in a backward: the forward's kernel, so the same bits."""
    return gelu_rows(pre)[0]


class _DepthwiseOnGelu(torch.autograd.Function):
    """``F.conv2d(e, weight, bias, padding, groups)`` on ``e = gelu(pre)``, saving ``pre`` (which ``_GeluMean``
    saves anyway) instead of ``e``: the weight gradient recomputes e (docs/tcja_dta.md "Fused kernels on Triton")."""

    @staticmethod
    def forward(ctx: Any, e: torch.Tensor, pre: torch.Tensor, weight: torch.Tensor, bias, padding: int, groups: int):
        ctx.save_for_backward(pre, weight)
        ctx.geometry = (None if bias is None else list(bias.shape), padding, groups)
        return F.conv2d(e, weight, bias, padding=padding, groups=groups)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        pre, weight = ctx.saved_tensors
        bias_shape, padding, groups = ctx.geometry
        need = ctx.needs_input_grad
        mask = [need[0], need[2], bias_shape is not None and need[3]]
        # only the weight gradient reads the input's values; without it ``pre`` stands in for e's shape
        e = _gelu_again(pre) if need[2] else pre
        d_e, d_w, d_b = torch.ops.aten.convolution_backward(
            grad, e, weight, bias_shape, [1, 1], [padding, padding], [1, 1], False, [0, 0], groups, mask
        )
        return d_e, None, d_w, d_b, None, None


class _GatedProduct(torch.autograd.Function):
    """``g * local * e`` on ``e = gelu(pre)``, saving ``pre`` instead of ``e`` (as ``_DepthwiseOnGelu``)."""

    @staticmethod
    def forward(ctx: Any, g: torch.Tensor, local: torch.Tensor, e: torch.Tensor, pre: torch.Tensor):
        ctx.save_for_backward(g, local, pre)
        return gated_fwd(local, e, g)

    @staticmethod
    def backward(ctx: Any, grad_a: torch.Tensor):
        g, local, pre = ctx.saved_tensors
        d_local, d_e, d_g = gated_bwd(grad_a, local, _gelu_again(pre), g)
        return d_g.to(g.dtype), d_local, d_e, None


def tna_decoded(x2: torch.Tensor, params: TNAParams, *, dilation: int = 3) -> torch.Tensor:
    """T-NA on [B, D, H, W] up to the decoding conv WITHOUT its bias and residual (``Wd @ A``): the caller adds
    ``decoding_bias`` and ``x2``, in DTA's output sweep or in ``tna_fused``."""
    p = params
    D = x2.shape[1]
    pre = F.conv2d(x2, p.encoding_weight, p.encoding_bias)
    e, g_in = _GeluMean.apply(pre)
    k = p.dw_weight.shape[-1]
    if p.dilated_weight.shape[-1] == 1:
        # DTA's "dilated" depth-wise conv is 1x1: a per-channel affine, folded into the 5x5 (exact algebra)
        d2 = p.dilated_weight.reshape(D)
        w, b = p.dw_weight * d2.view(D, 1, 1, 1), p.dw_bias * d2 + p.dilated_bias
        l2 = _DepthwiseOnGelu.apply(e, pre, w, b, (k - 1) // 2, D)
    else:
        l1 = _DepthwiseOnGelu.apply(e, pre, p.dw_weight, p.dw_bias, (k - 1) // 2, D)
        kd = p.dilated_weight.shape[-1]
        l2 = F.conv2d(
            l1, p.dilated_weight, p.dilated_bias, padding=dilation * (kd - 1) // 2, dilation=dilation, groups=D
        )
    local = F.conv2d(l2, p.pw_weight, p.pw_bias)
    # GTCA on the fp32 pooled vector (tiny): no bias, no sigmoid
    g = F.linear(F.relu(F.linear(g_in, p.mlp_weight1.float())), p.mlp_weight2.float())
    attended = _GatedProduct.apply(g, local, e, pre)
    return F.conv2d(attended, p.decoding_weight)


def tna_fused(x2: torch.Tensor, params: TNAParams, *, dilation: int = 3, attn_shortcut: bool = True) -> torch.Tensor:
    """``tna_fused_reference`` on the fused path: [B, D, H, W] in and out."""
    na = tna_decoded(x2, params, dilation=dilation) + params.decoding_bias[:, None, None]
    return na + x2 if attn_shortcut else na


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck, the Triton kernels launched.


def _tna_inputs(dev: str) -> tuple:
    """(a [B, D, H, W] plane, another, per-(b, d) gate)."""
    T, B, C, H, W = SAMPLE_SHAPE
    return randn(dev, B, C, H, W), randn(dev, B, C, H, W), rand(dev, B, C)


OPS = (
    triton_entry("tna_gelu_rows", __name__, lambda d: [_tna_inputs(d)[:1]], "gelu_rows_kernel"),
    triton_entry("tna_gelu_bwd", __name__, lambda d: [_tna_inputs(d)], "gelu_bwd_kernel"),
    triton_entry("tna_gated_fwd", __name__, lambda d: [_tna_inputs(d)], "gated_product_fwd_kernel"),
    triton_entry(
        "tna_gated_bwd",
        __name__,
        lambda d: [(randn(d, *SAMPLE_SHAPE[1:]), *_tna_inputs(d))],
        "gated_product_bwd_kernel",
    ),
)
