"""STAA-LIF's time loop on Triton (docs/staa.md "For a fused kernel"): per step one fused sweep for the gated
aggregation, fire and reset, which also sums the new state for the next step's pooling.

``staa_loop_fused`` computes what the loop of ``reference.staa.staa_lif_reference`` computes, from the
PE + GC features and the coefficients (per step: one sweep forward, one backward):

- the pooling mean_hw(a H + b Y) = a mean_hw(H) + b mean_hw(Y) (a, b per channel): mean_hw(Y) for all
  steps in one sweep before the loop (Y does not depend on the recurrence), mean_hw(H_{t-1}) from the
  previous step kernel's row sums of the state it wrote (no sweep of its own; its gradient enters that
  kernel's backward);
- the gates (the tiny MLP on [B, C]) in torch, by the reference's own ``step_attention_gates``;
- ``staa_step``: U = ga a H + gb b Y, spike, reset in one sweep, and in one sweep back (dL/dH, dL/dY and
  the per-row sums for the gates and the coefficients).

Autograd chains the steps (BPTT). The membrane sequence is kept for the backward ([T, B, C, H, W] fp32:
each step's input state), as SpikingJelly's kernels keep theirs. Coefficients a, b: [C] or one value;
per-pixel ([C, H, W]) coefficients take the eager loop.
"""

from __future__ import annotations

from typing import Any

import torch
import triton

from ..kernels.triton.staa_step import staa_step_bwd_kernel, staa_step_fwd_kernel
from ..reference.staa import (
    LOOP_KERNELS,
    SAParams,
    check_drop_mask,
    check_option,
    position_encoding_reference,
    staa_coefficients,
    step_attention_gates,
)
from ..surrogate import Sigmoid, Surrogate, Triangle
from ._device import on_device_of
from .autograd_helpers import fresh_float
from .global_context_triton import global_context_fused
from .pooled_attention import pooled_mean
from .registry import (
    SAMPLE_SHAPE,
    rand,
    randn,
    triton_entry,
)
from .staa_loop_triton import staa_loop_persistent
from .triton_launch import COMPILE_OPTIONS, f32, half_tiles

__all__ = ["staa_step", "staa_loop_fused", "staa_features_fused", "staa_lif_fused"]


def _launch(kernel, R: int, S: int, *args, **constexprs) -> None:
    if R == 0 or S == 0:
        return
    block_r, block_s, warps = half_tiles(R, S)
    with on_device_of(next(a for a in args if isinstance(a, torch.Tensor))):
        kernel[(triton.cdiv(R, block_r),)](
            *args, BLOCK_R=block_r, BLOCK_S=block_s, num_warps=warps, **constexprs, **COMPILE_OPTIONS
        )


def _geometry(h: torch.Tensor) -> tuple[int, int, int]:
    B, C, H, W = h.shape
    return B * C, H * W, C


@torch.library.custom_op("snnkernels::staa_step_fwd", mutates_args=(), device_types=("cpu", "cuda"))
def staa_step_fwd(
    h: torch.Tensor,
    y: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    ga: torch.Tensor,
    gb: torch.Tensor,
    v_threshold: float,
    v_reset: float,
    spike_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(spikes [B, C, H, W] in ``spike_dtype``, the next state fp32, its sums over H * W fp32 [B, C])."""
    spikes, h_next = torch.empty_like(h, dtype=spike_dtype), torch.empty_like(h)
    h_sum = h.new_empty(h.shape[:2])
    R, S, C = _geometry(h)
    if S == 0:
        h_sum.zero_()
    _launch(staa_step_fwd_kernel, R, S, h, y, a, b, ga, gb, spikes, h_next, h_sum, R, S, C, *f32(v_threshold, v_reset))
    return spikes, h_next, h_sum


@staa_step_fwd.register_fake
def _(h, y, a, b, ga, gb, v_threshold, v_reset, spike_dtype):
    return torch.empty_like(h, dtype=spike_dtype), torch.empty_like(h), h.new_empty(h.shape[:2])


@torch.library.custom_op("snnkernels::staa_step_bwd", mutates_args=(), device_types=("cpu", "cuda"))
def staa_step_bwd(
    grad_spikes: torch.Tensor,
    grad_h_next: torch.Tensor | None,
    grad_h_sum: torch.Tensor | None,
    h: torch.Tensor,
    y: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    ga: torch.Tensor,
    gb: torch.Tensor,
    v_threshold: float,
    v_reset: float,
    detach_reset: bool,
    surrogate_id: int,
    surrogate_param: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dL/dh, dL/dy, fp32 [4, B * C] row sums: dL/dga, dL/dgb, sum_p dA h, sum_p dB y), given dL/ds and
    dL/dh' and dL/d(sum_p h') where the next step uses them."""
    R, S, C = _geometry(h)
    dh, dy = torch.empty_like(h), torch.empty_like(y)
    sums = h.new_empty((4, R))
    if S == 0:
        sums.zero_()
    _launch(
        staa_step_bwd_kernel,
        R,
        S,
        h,
        y,
        a,
        b,
        ga,
        gb,
        grad_spikes.contiguous(),
        h if grad_h_next is None else grad_h_next.contiguous(),
        a if grad_h_sum is None else grad_h_sum.contiguous(),
        dh,
        dy,
        sums,
        R,
        S,
        C,
        *f32(v_threshold, v_reset, surrogate_param),
        HAS_DH=grad_h_next is not None,
        HAS_DSUM=grad_h_sum is not None,
        DETACH_RESET=detach_reset,
        SG_ID=surrogate_id,
    )
    return dh, dy, sums


@staa_step_bwd.register_fake
def _(
    grad_spikes,
    grad_h_next,
    grad_h_sum,
    h,
    y,
    a,
    b,
    ga,
    gb,
    v_threshold,
    v_reset,
    detach_reset,
    surrogate_id,
    surrogate_param,
):
    return torch.empty_like(h), torch.empty_like(y), h.new_empty((4, h.shape[0] * h.shape[1]))


class _STAAStepFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, h, y, a, b, ga, gb, v_threshold, v_reset, detach_reset, surrogate_id, surrogate_param, spike_dtype
    ):
        spikes, h_next, h_sum = staa_step_fwd(h, y, a, b, ga, gb, v_threshold, v_reset, spike_dtype)
        ctx.save_for_backward(h, y, a, b, ga, gb)
        ctx.settings = (v_threshold, v_reset, detach_reset, surrogate_id, surrogate_param)
        return spikes, h_next, h_sum

    @staticmethod
    def backward(ctx: Any, grad_spikes, grad_h_next, grad_h_sum):
        h, y, a, b, ga, gb = ctx.saved_tensors
        dh, dy, sums = staa_step_bwd(grad_spikes, grad_h_next, grad_h_sum, h, y, a, b, ga, gb, *ctx.settings)
        B, C = h.shape[:2]
        grad_ga, grad_gb, part_a, part_b = sums.view(4, B, C)
        grad_a, grad_b = part_a.sum(0), part_b.sum(0)  # per channel, over the batch (a fixed order)
        return dh, dy, grad_a, grad_b, grad_ga.reshape(-1), grad_gb.reshape(-1), None, None, None, None, None, None


def staa_step(
    h: torch.Tensor,
    y: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    ga: torch.Tensor,
    gb: torch.Tensor,
    *,
    v_threshold: float,
    v_reset: float,
    detach_reset: bool,
    surrogate: Surrogate,
    spike_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(spikes, next state, its sums over H * W [B, C]) of one step: h, y fp32 [B, C, H, W]; a, b fp32 [C];
    ga, gb fp32 [B, C]. All three outputs are differentiable (the sums feed the next step's pooling)."""
    return _STAAStepFunction.apply(
        h.contiguous(),
        y.contiguous(),
        a,
        b,
        ga.reshape(-1).contiguous(),
        gb.reshape(-1).contiguous(),
        fresh_float(v_threshold),
        fresh_float(v_reset),
        detach_reset,
        surrogate.id,
        fresh_float(surrogate.param),
        spike_dtype,
    )


def staa_loop_fused(
    y_seq: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    sa: SAParams | None,
    mask: torch.Tensor | None,
    *,
    alpha: float,
    sa_gate: str,
    v_threshold: float,
    v_reset: float,
    detach_reset: bool,
    surrogate: Surrogate,
    v_init: torch.Tensor | None,
    spike_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loop of ``staa_lif_reference`` on fp32 inputs: ``y_seq`` [T, B, C, H, W] the aggregation's input
    per step (the PE + GC features; with tsrd_scope="all" the raw input on dropped steps), ``a``, ``b``
    [C] (or one value), ``mask`` bool [T, B] (True = drop: plain sum) or None. Returns (spikes, H_T)."""
    T, B, C = y_seq.shape[:3]
    a = a.reshape(-1).expand(C).contiguous()
    b = b.reshape(-1).expand(C).contiguous()
    mean_y = pooled_mean(y_seq) if sa is not None else None  # [T, B, C], one sweep for every step
    h = torch.zeros_like(y_seq[0]) if v_init is None else v_init.float().contiguous()
    ones = y_seq.new_ones((B, C))
    # mean_hw(H_{t-1}): zero at the start, a sweep for a given v_init, then the step kernel's row sums
    mean_h = torch.zeros_like(ones) if v_init is None else pooled_mean(h[None])[0]
    plane = y_seq.shape[3] * y_seq.shape[4]
    spikes = []
    for t in range(T):
        if sa is None:
            ga = gb = ones
        else:
            ga, gb = step_attention_gates(a * mean_h + b * mean_y[t], sa, alpha=alpha, gate=sa_gate)
            if mask is not None:
                dropped = mask[t][:, None]
                ga, gb = torch.where(dropped, ones, ga), torch.where(dropped, ones, gb)
        s, h, h_sum = staa_step(
            h,
            y_seq[t],
            a,
            b,
            ga,
            gb,
            v_threshold=v_threshold,
            v_reset=v_reset,
            detach_reset=detach_reset,
            surrogate=surrogate,
            spike_dtype=spike_dtype,
        )
        mean_h = h_sum / plane
        spikes.append(s)
    return torch.stack(spikes), h


def staa_features_fused(
    xs: torch.Tensor, params: Any, *, gc_fusion: str, gc_layer_norm: bool, ln_eps: float
) -> torch.Tensor:
    """STAA-LIF's spatial input port (``reference.staa.staa_features_reference``) on xs in the state dtype:
    PE in torch, then the GC block with its pooling on the fused sweep."""
    feat = xs if params.position is None else position_encoding_reference(xs, params.position.to(xs.dtype))
    if params.gc is None:
        return feat
    return global_context_fused(feat, params.gc, fusion=gc_fusion, layer_norm=gc_layer_norm, ln_eps=ln_eps)


def staa_lif_fused(
    x: torch.Tensor,
    params: Any,
    *,
    drop_mask: torch.Tensor | None,
    alpha: float,
    sa_gate: str,
    gc_fusion: str,
    gc_layer_norm: bool,
    ln_eps: float,
    coefficient_map: str,
    tsrd_scope: str,
    v_threshold: float,
    v_reset: float,
    detach_reset: bool,
    surrogate_function: Surrogate,
    tsrd_granularity: str = "step",
    loop_kernel: str = "steps",
) -> torch.Tensor:
    """STAA-LIF (``reference.staa.staa_lif_reference``'s arguments, as ``STAALIFNode.options()`` gives
    them, with an explicit ``drop_mask``: ``tsrd_granularity`` only shapes a draw, so it is unused here) with
    PE in torch, the GC pooling on its fused sweep and the loop: ``loop_kernel="steps"`` on the step kernels
    above, ``"persistent"`` as one kernel each way (``ops.staa_loop_triton``). fp32 state; spikes in x's
    dtype. Coefficients of shape [C] or scalar."""
    check_option(loop_kernel, LOOP_KERNELS, "loop_kernel")
    T, B = x.shape[:2]
    xs = x.float()
    feat = staa_features_fused(xs, params, gc_fusion=gc_fusion, gc_layer_norm=gc_layer_norm, ln_eps=ln_eps)
    mask = None
    if drop_mask is not None:
        mask = check_drop_mask(drop_mask, T, B, x.device).reshape(T, -1).expand(T, B)
        if tsrd_scope == "all":  # a dropped step also skips PE and GC
            feat = torch.where(mask[:, :, None, None, None], xs, feat)
    a, b = staa_coefficients(params.m.float(), params.n.float(), coefficient_map)
    sa = None if params.sa is None else SAParams(*(w.float() for w in params.sa))
    loop = dict(
        alpha=alpha,
        sa_gate=sa_gate,
        v_threshold=v_threshold,
        v_reset=v_reset,
        detach_reset=detach_reset,
        surrogate=surrogate_function,
        spike_dtype=x.dtype,
    )
    if loop_kernel == "persistent":
        return staa_loop_persistent(feat, a, b, sa, mask, **loop)
    spikes, _ = staa_loop_fused(feat, a, b, sa, mask, v_init=None, **loop)
    return spikes


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck, the Triton kernels launched.


def _staa_step_inputs(dev: str) -> tuple:
    """(h, y [B, C, H, W], a, b [C], ga, gb [B * C])."""
    T, B, C, H, W = SAMPLE_SHAPE
    return (
        randn(dev, B, C, H, W),
        2 * rand(dev, B, C, H, W),
        rand(dev, C),
        rand(dev, C),
        rand(dev, B * C),
        rand(dev, B * C),
    )


def _staa_step_bwd_samples(dev: str) -> list[tuple]:
    T, B, C, H, W = SAMPLE_SHAPE
    h, *rest = _staa_step_inputs(dev)
    return [
        (torch.randn_like(h), None, None, h, *rest, 1.0, 0.0, False, Triangle.id, 1.0),
        (torch.randn_like(h), torch.randn_like(h), randn(dev, B, C), h, *rest, 1.0, 0.0, True, Sigmoid.id, 4.0),
    ]


OPS = (
    triton_entry(
        "staa_step_fwd",
        __name__,
        lambda d: [(*_staa_step_inputs(d), 1.0, 0.0, dt) for dt in (torch.float32, torch.bfloat16)],
        "staa_step_fwd_kernel",
    ),
    triton_entry("staa_step_bwd", __name__, _staa_step_bwd_samples, "staa_step_bwd_kernel"),
)
