"""The MA-SNN paper's in-loop TCSA-LIF (``reference.ma_snn.tcsa_lif_paper_reference``) on Triton.

docs/ma_snn.md "Paper variant: TCSA-LIF".

Per step: the channel and spatial gates' statistics of V_t = H_{t-1} + X_TA[t] on the released attention's
sweeps (``ma_gates_fused`` on a one-step sequence: CA pools over (H, W), SA over C); then ``tcsa_step``
(``kernels.triton.tcsa_step``): gates applied, fire and reset in one sweep, which also writes the next
step's V (adding X_TA[t + 1]), and one sweep back that also reduces the gates' gradients. TA runs once on the
whole sequence (its gate from the same sweeps). Autograd chains the steps (BPTT); V_t is kept for the backward.
"""

from __future__ import annotations

from typing import Any

import torch
import triton

from ..kernels.triton.tcsa_step import tcsa_step_bwd_kernel, tcsa_step_fwd_kernel
from ..surrogate import Sigmoid, Surrogate, Triangle
from ._device import on_device_of
from .autograd_helpers import fresh_float
from .ma_snn import ma_gates_fused
from .registry import (
    SAMPLE_SHAPE,
    rand,
    randn,
    triton_entry,
)
from .triton_launch import COMPILE_OPTIONS, channel_tiles, f32

__all__ = ["tcsa_step", "tcsa_lif_paper_fused"]


def _tiles(C: int, S: int) -> tuple[int, int, int]:
    """All channels of one sample and a block of at least 8 pixels (``channel_tiles``)."""
    return channel_tiles(C, S, min_pixels=8)


def _grid(v: torch.Tensor) -> tuple[tuple[int, int], int, int, int]:
    B, C, H, W = v.shape
    block_c, block_s, warps = _tiles(C, H * W)
    return (B, triton.cdiv(H * W, block_s)), block_c, block_s, warps


@torch.library.custom_op("snnkernels::tcsa_step_fwd", mutates_args=(), device_types=("cpu", "cuda"))
def tcsa_step_fwd(
    v: torch.Tensor,
    sc: torch.Tensor,
    gs: torch.Tensor,
    x_next: torch.Tensor | None,
    u_th: float,
    v_reset: float,
    beta: float,
    spike_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(spikes [B, C, H, W] in ``spike_dtype``, next state fp32, or with ``x_next`` the next step's V = H' +
    x_next) of V fp32 [B, C, H, W], sc [B, C], gs [B, H * W]."""
    spikes, h = torch.empty_like(v, dtype=spike_dtype), torch.empty_like(v)
    if v.numel():
        grid, block_c, block_s, warps = _grid(v)
        with on_device_of(v):
            tcsa_step_fwd_kernel[grid](
                v,
                sc,
                gs,
                v if x_next is None else x_next.contiguous(),
                spikes,
                h,
                v.shape[1],
                v.shape[2] * v.shape[3],
                *f32(u_th, v_reset, beta),
                HAS_NEXT=x_next is not None,
                BLOCK_C=block_c,
                BLOCK_S=block_s,
                num_warps=warps,
                **COMPILE_OPTIONS,
            )
    return spikes, h


@tcsa_step_fwd.register_fake
def _(v, sc, gs, x_next, u_th, v_reset, beta, spike_dtype):
    return torch.empty_like(v, dtype=spike_dtype), torch.empty_like(v)


@torch.library.custom_op("snnkernels::tcsa_step_bwd", mutates_args=(), device_types=("cpu", "cuda"))
def tcsa_step_bwd(
    grad_spikes: torch.Tensor,
    grad_h: torch.Tensor | None,
    v: torch.Tensor,
    sc: torch.Tensor,
    gs: torch.Tensor,
    u_th: float,
    v_reset: float,
    beta: float,
    detach_reset: bool,
    surrogate_id: int,
    surrogate_param: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dV, dsc [B, C], dgs [B, H * W]), fp32."""
    B, C, H, W = v.shape
    grid, block_c, block_s, warps = _grid(v)
    dv, dgs = torch.empty_like(v), v.new_empty((B, H * W))
    dsc = v.new_empty((grid[1], B, C))
    if v.numel():
        with on_device_of(v):
            tcsa_step_bwd_kernel[grid](
                v,
                sc,
                gs,
                grad_spikes.contiguous(),
                v if grad_h is None else grad_h.contiguous(),
                dv,
                dsc,
                dgs,
                B,
                C,
                H * W,
                *f32(u_th, v_reset, beta, surrogate_param),
                HAS_DH=grad_h is not None,
                DETACH_RESET=detach_reset,
                SG_ID=surrogate_id,
                BLOCK_C=block_c,
                BLOCK_S=block_s,
                num_warps=warps,
                **COMPILE_OPTIONS,
            )
    else:
        dsc.zero_(), dgs.zero_()
    return dv, dsc.sum(0), dgs


@tcsa_step_bwd.register_fake
def _(grad_spikes, grad_h, v, sc, gs, u_th, v_reset, beta, detach_reset, surrogate_id, surrogate_param):
    B, C, H, W = v.shape
    return torch.empty_like(v), v.new_empty((B, C)), v.new_empty((B, H * W))


class _TCSAStepFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, v, sc, gs, x_next, u_th, v_reset, beta, detach_reset, surrogate_id, surrogate_param, spike_dtype
    ):
        spikes, h = tcsa_step_fwd(v, sc, gs, x_next, u_th, v_reset, beta, spike_dtype)
        ctx.save_for_backward(v, sc, gs)
        ctx.settings = (u_th, v_reset, beta, detach_reset, surrogate_id, surrogate_param)
        return spikes, h

    @staticmethod
    def backward(ctx: Any, grad_spikes, grad_h):
        v, sc, gs = ctx.saved_tensors
        dv, dsc, dgs = tcsa_step_bwd(grad_spikes, grad_h, v, sc, gs, *ctx.settings)
        # V' = H' + x_next: x_next's gradient is dL/dV' itself
        grad_x_next = grad_h if ctx.needs_input_grad[3] else None
        return dv, dsc, dgs, grad_x_next, None, None, None, None, None, None, None


def tcsa_step(
    v: torch.Tensor,
    sc: torch.Tensor,
    gs: torch.Tensor,
    *,
    u_th: float,
    v_reset: float,
    beta: float,
    detach_reset: bool,
    surrogate: Surrogate,
    spike_dtype: torch.dtype,
    x_next: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(spikes, next state) of one step from V fp32 [B, C, H, W], sc fp32 [B, C], gs fp32 [B, H * W]; with
    ``x_next`` (the next step's input) the second output is the next step's V = H' + x_next instead."""
    floats = (fresh_float(u_th), fresh_float(v_reset), fresh_float(beta))
    return _TCSAStepFunction.apply(
        v.contiguous(),
        sc.contiguous(),
        gs.contiguous(),
        x_next,
        *floats,
        detach_reset,
        surrogate.id,
        fresh_float(surrogate.param),
        spike_dtype,
    )


def tcsa_lif_paper_fused(
    x: torch.Tensor,
    dims: str,
    ta: tuple[torch.Tensor, torch.Tensor] | None,
    ca: tuple[torch.Tensor, torch.Tensor] | None,
    sa: torch.Tensor | None,
    *,
    beta: float,
    u_th: float,
    v_reset: float,
    surrogate_function: Surrogate,
    detach_reset: bool,
) -> torch.Tensor:
    """``tcsa_lif_paper_reference`` (same arguments) on the sweeps and the step kernels; fp32 state, spikes in
    x's dtype."""
    xs = x.float()
    if "T" in dims:
        g_t, _ = ma_gates_fused(xs, "T", ta, None, None)  # g_t[t, b] broadcast over c: [T, B, C]
        xs = xs * g_t[..., None, None]
    step_dims = dims.replace("T", "")
    T, B, C, H, W = x.shape
    ones_c, ones_s = xs.new_ones((B, C)), xs.new_ones((B, H * W))
    v = xs[0]  # V_0 = H_0 + X_TA[0] with H_0 = 0; each step kernel then writes the next V
    spikes = []
    for t in range(T):
        sc, gs = ones_c, ones_s
        if step_dims:
            scale, g_s = ma_gates_fused(v[None], step_dims, None, ca, sa)
            sc = scale[0] if "C" in step_dims else ones_c
            gs = g_s if g_s is not None else ones_s
        s, v = tcsa_step(
            v,
            sc,
            gs,
            u_th=u_th,
            v_reset=v_reset,
            beta=beta,
            detach_reset=detach_reset,
            surrogate=surrogate_function,
            spike_dtype=x.dtype,
            x_next=xs[t + 1] if t + 1 < T else None,
        )
        spikes.append(s)
    return torch.stack(spikes)


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck, the Triton kernels launched.


def _tcsa_fwd_samples(dev: str) -> list[tuple]:
    T, B, C, H, W = SAMPLE_SHAPE
    v, sc, gs = randn(dev, B, C, H, W), rand(dev, B, C), rand(dev, B, H * W)
    return [
        (v, sc, gs, None, 1.0, 0.0, 0.5, torch.float32),
        (v, sc, gs, randn(dev, B, C, H, W), 0.5, 0.0, 0.5, torch.float16),
    ]


def _tcsa_bwd_samples(dev: str) -> list[tuple]:
    T, B, C, H, W = SAMPLE_SHAPE
    v, sc, gs = randn(dev, B, C, H, W), rand(dev, B, C), rand(dev, B, H * W)
    return [
        (randn(dev, B, C, H, W), None, v, sc, gs, 1.0, 0.0, 0.5, False, Triangle.id, 1.0),
        (randn(dev, B, C, H, W), randn(dev, B, C, H, W), v, sc, gs, 0.5, 0.0, 0.5, True, Sigmoid.id, 4.0),
    ]


OPS = (
    triton_entry("tcsa_step_fwd", __name__, _tcsa_fwd_samples, "tcsa_step_fwd_kernel"),
    triton_entry("tcsa_step_bwd", __name__, _tcsa_bwd_samples, "tcsa_step_bwd_kernel"),
)
