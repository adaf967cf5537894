"""DTA on the spikes of the leaky neuron that reads the same X (``kernels.triton.dta_leaky``): ops and autograd.

``dta_leaky(x, na, conv_t_weight, conv_c_weight, scale_t, scale_c, na_bias, neuron=...)`` is
``sig(NA * T-XA(x)) * LIF(x)``: DTA-SNN's encoding block ``DTA(X, LIF(X))`` after T-NA's convolutions, with
the neuron's time loop and DTA's output sweep as one kernel each way. Against the unfused pair (the
neuron's pass, then ``dta_product``), the spikes are never written, read back or saved, X is read once
less forward, and the backward's dL/ds never exists: one sweep gives dL/dNA, the T-XA row sums and the
whole dL/dX but T-XA's pooled path (a broadcast add afterwards, as in ``dta_product``).

The neuron's settings are the gated kernel's (scalar coefficients, zero-state multi-step neuron; see
``ops.gated_leaky_triton.gated_leaky`` and ``nn.fused.neuron_settings``). Layout contract as
``pooled_attention_triton`` (contiguous H * W planes; NA brought to X's strides; per-row terms dense fp32).
"""

from __future__ import annotations

from typing import Any

import torch

from ..kernels.triton.dta_leaky import dta_leaky_bwd_kernel, dta_leaky_fwd_kernel
from ..surrogate import Sigmoid, Triangle
from ._double_backward import refuse_double_backward
from .autograd_helpers import as_tensor, distinct, forward_settings, fresh_settings, needs_training
from .gated_leaky_triton import NeuronSettings, launch_neuron_bwd, launch_neuron_fwd, new_checkpoints, new_counts
from .layout import match_layout, na_strides, plane_size, rows_layout
from .leaky_triton import DEFAULT_CHUNK
from .pooled_attention import TXAGates, cross_grads, plane_means
from .registry import (
    SAMPLE_SHAPE,
    neuron_args,
    rand,
    randn,
    registered_op,
    triton_entry,
)
from .triton_launch import neuron_grid, per_row

__all__ = ["dta_leaky", "dta_leaky_fwd", "dta_leaky_bwd"]


@torch.library.custom_op("snnkernels::dta_leaky_fwd", mutates_args=(), device_types=("cpu", "cuda"))
def dta_leaky_fwd(
    x: torch.Tensor,
    na: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    na_bias: torch.Tensor | None,
    decay: float,
    gain: float,
    bias: float,
    v_threshold: float,
    v_reset: float,
    v_init_value: float,
    hard_reset: bool,
    strict: bool,
    training: bool,
    chunk: int,
    count: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Y in x's layout and dtype, fp32 checkpoints [cdiv(T, chunk) - 1, B * C * H * W] if training, int32
    spikes per (t, b, c) [T, B, C] if count, else empty). ``na`` has contiguous H * W planes, any order of
    (t, b, c) (``rows_layout``); ``a``, ``b``, ``na_bias`` are per-row [T, B, C]."""
    a, b, na_bias = per_row(a), per_row(b), per_row(na_bias)
    return launch_neuron_fwd(
        dta_leaky_fwd_kernel,
        x,
        (x, na, a, b, a if na_bias is None else na_bias),
        (decay, gain, bias, v_threshold, v_reset, v_init_value),
        training,
        chunk,
        count,
        lambda: na_strides(na),
        NA_RESIDUAL=na_bias is not None,
        HARD_RESET=hard_reset,
        STRICT=strict,
    )


@dta_leaky_fwd.register_fake
def _(
    x,
    na,
    a,
    b,
    na_bias,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init_value,
    hard_reset,
    strict,
    training,
    chunk,
    count,
):
    return torch.empty_like(x), new_checkpoints(x, training, chunk), new_counts(x, count)


def _bwd_outputs(x: torch.Tensor, na: torch.Tensor, residual: bool, column_tiles: int) -> tuple[torch.Tensor, ...]:
    partials = x.new_empty((3 if residual else 2, column_tiles, *x.shape[:3]), dtype=torch.float32)
    return torch.empty_like(x, dtype=torch.float32), torch.empty_like(na), partials


@torch.library.custom_op("snnkernels::dta_leaky_bwd", mutates_args=(), device_types=("cpu", "cuda"))
def dta_leaky_bwd(
    grad_y: torch.Tensor,
    x: torch.Tensor,
    na: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    na_bias: torch.Tensor | None,
    checkpoints: torch.Tensor,
    decay: float,
    gain: float,
    bias: float,
    v_threshold: float,
    v_reset: float,
    v_init_value: float,
    hard_reset: bool,
    strict: bool,
    detach_reset: bool,
    surrogate_id: int,
    surrogate_param: float,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dL/dx without T-XA's pooled path, fp32; dL/dna with na's strides; the row sums [2 or 3, T, B, C] fp32:
    sum_hw dxa, sum_hw dxa * x and, with ``na_bias``, sum_hw dna). The programs' partial sums are added here in a fixed
    order."""
    a, b, na_bias = per_row(a), per_row(b), per_row(na_bias)
    residual = na_bias is not None
    tiles = neuron_grid(x)
    grad_x, grad_na, partials = _bwd_outputs(x, na, residual, tiles[0][1])
    if x.numel() == 0:
        partials.zero_()
    else:
        launch_neuron_bwd(
            dta_leaky_bwd_kernel,
            x,
            tiles,
            (
                grad_y,
                x,
                na,
                a,
                b,
                na_bias if residual else a,
                checkpoints,
                grad_x,
                grad_na,
                partials[0],
                partials[1],
                partials[2] if residual else partials[0],
            ),
            (decay, gain, bias, v_threshold, v_reset, v_init_value, surrogate_param),
            chunk,
            na_strides(na),
            NA_RESIDUAL=residual,
            HARD_RESET=hard_reset,
            STRICT=strict,
            DETACH_RESET=detach_reset,
            SG_ID=surrogate_id,
        )
    return grad_x, grad_na, partials.sum(dim=1)


@dta_leaky_bwd.register_fake
def _(
    grad_y,
    x,
    na,
    a,
    b,
    na_bias,
    checkpoints,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init_value,
    hard_reset,
    strict,
    detach_reset,
    surrogate_id,
    surrogate_param,
    chunk,
):
    residual = na_bias is not None
    return (
        torch.empty_like(x, dtype=torch.float32),
        torch.empty_like(na),
        x.new_empty((3 if residual else 2, *x.shape[:3]), dtype=torch.float32),
    )


refuse_double_backward("snnkernels::dta_leaky_bwd", "Compute dta(x, neuron(x)) unfused on backend='torch'.")


def _bias_rows(na_bias: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """T-NA's decoding bias [T * C] (t-major) as per-row values [T, B, C]."""
    T, B, C = x.shape[:3]
    return None if na_bias is None else na_bias.float().view(T, 1, C).expand(T, B, C)


class _DTALeakyFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x,
        na,
        conv_t_weight,
        conv_c_weight,
        scale_t,
        scale_c,
        na_bias,
        neuron: NeuronSettings,
        chunk: int,
        training: bool,
        count: bool,
    ):
        na = rows_layout(na)  # read in place in either storage order: no copy to x's strides
        z = plane_means(x)
        g = TXAGates(z, conv_t_weight, conv_c_weight, scale_t, scale_c)
        y, ckpt, counts = dta_leaky_fwd(
            x, na, g.a, g.b, _bias_rows(na_bias, x), *forward_settings(neuron), training, chunk, count
        )
        ctx.neuron, ctx.chunk = neuron, chunk
        ctx.save_for_backward(
            x, na, ckpt, z, g.sig_t, g.sig_c, g.a, g.b, conv_t_weight, conv_c_weight, scale_t, scale_c, na_bias
        )
        ctx.mark_non_differentiable(counts)
        return y, counts

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor, _grad_counts: Any):
        x, na, ckpt, z, sig_t, sig_c, a, b, wt, wc, st, sc, na_bias = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_x32, grad_na, row_sums = dta_leaky_bwd(
            match_layout(grad_y, x), x, na, a, b, _bias_rows(na_bias, x), ckpt, *ctx.neuron, ctx.chunk
        )
        grad_a, grad_b = cross_grads(row_sums[0], row_sums[1], a, b)
        dz, *param_grads = TXAGates.backward(z, sig_t, sig_c, a, b, wt, wc, st, sc, grad_a, grad_b, needs[2:6])
        grad_x = grad_x32.add_((dz / plane_size(x))[:, :, :, None, None]).to(x.dtype) if needs[0] else None
        grad_bias = None
        if na_bias is not None and needs[6]:
            grad_bias = row_sums[2].sum(dim=1).reshape(na_bias.shape).to(na_bias.dtype)
        return (grad_x, grad_na if needs[1] else None, *param_grads, grad_bias, None, None, None, None)


def dta_leaky(
    x: torch.Tensor,
    na: torch.Tensor,
    conv_t_weight: torch.Tensor,
    conv_c_weight: torch.Tensor,
    scale_t: torch.Tensor | float,
    scale_c: torch.Tensor | float,
    na_bias: torch.Tensor | None = None,
    *,
    neuron: NeuronSettings,
    chunk: int = DEFAULT_CHUNK,
    count_spikes: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``sig(NA * txa_reference(x, ...)) * LIF(x)`` (Triton), with NA = ``na``, or ``na + na_bias + x`` when
    ``na_bias`` ([T * C], t-major: T-NA's decoding bias) is given, as ``dta_product_fused``.

    ``x`` [T, B, C, H, W] is both the neuron's input and DTA's X; ``neuron`` is the gated kernel's scalar
    settings (decay, gain, bias, v_threshold, v_reset, v_init_value, hard_reset, strict, detach_reset,
    surrogate_id, surrogate_param). With ``count_spikes`` also the neuron's spikes per (t, b, c), int32
    [T, B, C], counted as it fires.
    """
    x = rows_layout(x)
    tensors = distinct(x, na, conv_t_weight, conv_c_weight, as_tensor(scale_t, x), as_tensor(scale_c, x), na_bias)
    y, counts = _DTALeakyFunction.apply(*tensors, fresh_settings(neuron), chunk, needs_training(*tensors), count_spikes)
    return (y, counts) if count_spikes else y


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck, the Triton kernels launched.


def _dta_inputs(dev: str) -> tuple:
    T, B, C, H, W = SAMPLE_SHAPE
    x = randn(dev, T, B, C, H, W) + 0.5  # fires, and keeps sig(NA * ...) within fp32's exp
    na_bt = randn(dev, B, T, C, H, W).transpose(0, 1)  # T-NA's [B, T] output, read in place
    return x, randn(dev, T, B, C, H, W), na_bt, rand(dev, T, B, C), rand(dev, T, B, C), randn(dev, T, B, C)


def _dta_leaky_fwd_samples(dev: str) -> list[tuple]:
    x, na, na_bt, a, b, na_bias = _dta_inputs(dev)
    return [
        (x, na, a, b, None, *neuron_args(True, False), True, 2, True),
        (x, na_bt, a, b, na_bias, *neuron_args(False, True), False, 2, False),
    ]


def _dta_leaky_bwd_samples(dev: str) -> list[tuple]:
    x, na, na_bt, a, b, na_bias = _dta_inputs(dev)
    out = []
    for n, bias, hard, sg in ((na, None, True, Triangle.id), (na_bt, na_bias, False, Sigmoid.id)):
        y, ckpt, _ = registered_op("dta_leaky_fwd")(x, n, a, b, bias, *neuron_args(hard, False), True, 2, False)
        out.append((torch.randn_like(y), x, n, a, b, bias, ckpt, *neuron_args(hard, False), not hard, sg, 1.0, 2))
    return out


OPS = (
    triton_entry("dta_leaky_fwd", __name__, _dta_leaky_fwd_samples, "dta_leaky_fwd_kernel"),
    triton_entry("dta_leaky_bwd", __name__, _dta_leaky_bwd_samples, "dta_leaky_bwd_kernel", autograd=True),
)
