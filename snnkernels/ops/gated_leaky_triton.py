"""The gated leaky neuron (``kernels.triton.gated_leaky``) as ``torch.library`` ops and an autograd op.

``gated_leaky(x, scale, spatial, relu=..., ...)`` is the multi-step leaky neuron driven by
``y = pre(x) * scale[t, b, c] (* spatial[b, p])``, pre = ReLU or identity, with zero initial state. It is
differentiable in ``x`` (the gate's own path: dL/dy * scale * spatial * pre'(x)), ``scale`` and ``spatial``,
so an attention whose gates are computed by its own reduction sweeps (TCJA's ``tcja_gate_fused``, MA-SNN's
``ma_gates_fused``) composes with it under autograd: the gates' backward adds its pooled paths to x's
gradient, and Y itself is never stored. Same layout contract as ``pooled_attention_triton`` (contiguous H * W
planes; gates dense fp32).
"""

from __future__ import annotations

from typing import Any

import torch

from ..kernels.triton.gated_leaky import gated_leaky_bwd_kernel, gated_leaky_fwd_kernel
from ..surrogate import Sigmoid, Triangle
from ._device import on_device_of
from ._double_backward import refuse_double_backward
from .autograd_helpers import forward_settings, fresh_settings, needs_training
from .layout import match_layout, rows_layout
from .leaky import num_checkpoints
from .leaky_triton import DEFAULT_CHUNK
from .registry import (
    SAMPLE_SHAPE,
    neuron_args,
    rand,
    randn,
    registered_op,
    triton_entry,
)
from .triton_launch import COMPILE_OPTIONS, f32, neuron_geometry, neuron_grid, per_row

__all__ = ["gated_leaky", "gated_leaky_fwd", "gated_leaky_bwd", "needs_training", "NeuronSettings"]

# (decay, gain, bias, v_threshold, v_reset, v_init_value, hard_reset, strict, detach_reset, surrogate_id,
#  surrogate_param): the scalar settings of a leaky neuron (ops/leaky_settings.SCALAR_SETTINGS), as
#  ``nn.fused.neuron_settings`` makes them
NeuronSettings = tuple


def new_checkpoints(x: torch.Tensor, training: bool, chunk: int) -> torch.Tensor:
    """The fp32 checkpoints a neuron kernel over ``x`` writes when training (empty otherwise)."""
    T, B, C, H, W = x.shape
    rows = num_checkpoints(T, chunk) if training else 0
    return x.new_empty((rows, B * C * H * W) if training else (0,), dtype=torch.float32)


@torch.library.custom_op("snnkernels::gated_leaky_fwd", mutates_args=(), device_types=("cpu", "cuda"))
def gated_leaky_fwd(
    x: torch.Tensor,
    scale: torch.Tensor,
    spatial: torch.Tensor | None,
    relu: bool,
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
    """(spikes in x's layout and dtype, fp32 checkpoints [cdiv(T, chunk) - 1, B * C * H * W] if training,
    int32 spikes per (t, b, c) [T, B, C] if count, else empty)."""
    scale, spatial = per_row(scale), per_row(spatial)
    return launch_neuron_fwd(
        gated_leaky_fwd_kernel,
        x,
        (x, scale, scale if spatial is None else spatial),
        (decay, gain, bias, v_threshold, v_reset, v_init_value),
        training,
        chunk,
        count,
        RELU=relu,
        HAS_MAP=spatial is not None,
        HARD_RESET=hard_reset,
        STRICT=strict,
    )


def launch_neuron_fwd(
    kernel: Any,
    x: torch.Tensor,
    inputs: tuple,
    scalars: tuple,
    training: bool,
    chunk: int,
    count: bool,
    strides: Any = tuple,
    **flags: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run a neuron forward over x's tiles (the gated and DTA kernels): (its output in x's layout and dtype, fp32
    checkpoints if training, int32 spikes per (t, b, c) if count, else empty). The kernel's arguments are
    ``inputs``, the output, checkpoints and counts, x's geometry, ``strides()``, ``scalars`` in fp32, ``flags``."""
    out, ckpt, counts = torch.empty_like(x), new_checkpoints(x, training, chunk), new_counts(x, count)
    if x.numel() == 0:
        return out, ckpt, counts.zero_()
    grid, block_r, block_s, warps = neuron_grid(x)
    partial = x.new_empty((grid[1], *x.shape[:3]) if count else (0,), dtype=torch.int32)
    with on_device_of(x):
        kernel[grid](
            *inputs,
            out,
            ckpt if training else out,
            partial if count else out,
            *neuron_geometry(x),
            *strides(),
            *f32(*scalars),
            **flags,
            TRAINING=training,
            COUNT=count,
            CHUNK=chunk,
            BLOCK_R=block_r,
            BLOCK_S=block_s,
            num_warps=warps,
            **COMPILE_OPTIONS,
        )
    return out, ckpt, partial.sum(dim=0, dtype=torch.int32) if count else counts


def launch_neuron_bwd(
    kernel: Any,
    x: torch.Tensor,
    tiles: tuple,
    tensors: tuple,
    scalars: tuple,
    chunk: int,
    strides: tuple = (),
    **flags: bool | int,
) -> None:
    """Run a neuron backward over x's tiles (the gated and DTA kernels; ``tiles`` is ``neuron_grid(x)``, which
    sized the partial sums among ``tensors``). The kernel's arguments are ``tensors``, x's geometry,
    ``strides``, ``scalars`` in fp32, ``flags``."""
    grid, block_r, block_s, warps = tiles
    with on_device_of(x):
        kernel[grid](
            *tensors,
            *neuron_geometry(x),
            *strides,
            *f32(*scalars),
            **flags,
            CHUNK=chunk,
            BLOCK_R=block_r,
            BLOCK_S=block_s,
            num_warps=warps,
            **COMPILE_OPTIONS,
        )


def new_counts(x: torch.Tensor, count: bool) -> torch.Tensor:
    """The int32 spikes per (t, b, c) of a neuron kernel over ``x`` when counted (empty otherwise)."""
    return x.new_empty(x.shape[:3] if count else (0,), dtype=torch.int32)


@gated_leaky_fwd.register_fake
def _(
    x,
    scale,
    spatial,
    relu,
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


def _bwd_outputs(x: torch.Tensor, has_map: bool, column_tiles: int) -> tuple[torch.Tensor, ...]:
    T, B, C, H, W = x.shape
    grad_x = torch.empty_like(x)
    grad_scale = x.new_empty((column_tiles, T, B, C), dtype=torch.float32)
    grad_map = x.new_empty((B, C, H * W) if has_map else (0,), dtype=torch.float32)
    return grad_x, grad_scale, grad_map


@torch.library.custom_op("snnkernels::gated_leaky_bwd", mutates_args=(), device_types=("cpu", "cuda"))
def gated_leaky_bwd(
    grad_spikes: torch.Tensor,
    x: torch.Tensor,
    scale: torch.Tensor,
    spatial: torch.Tensor | None,
    checkpoints: torch.Tensor,
    relu: bool,
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
    """(dL/dx of the gate's path in x's layout, dL/dscale fp32 [T, B, C], dL/dspatial fp32 [B, H * W] or
    empty). The partial sums of the programs are added here in a fixed order."""
    scale, spatial = per_row(scale), per_row(spatial)
    tiles = neuron_grid(x)
    grad_x, grad_scale, grad_map = _bwd_outputs(x, spatial is not None, tiles[0][1])
    if x.numel() == 0:
        grad_scale.zero_(), grad_map.zero_()
    else:
        launch_neuron_bwd(
            gated_leaky_bwd_kernel,
            x,
            tiles,
            (
                grad_spikes,
                x,
                scale,
                scale if spatial is None else spatial,
                checkpoints,
                grad_x,
                grad_scale,
                grad_scale if spatial is None else grad_map,
            ),
            (decay, gain, bias, v_threshold, v_reset, v_init_value, surrogate_param),
            chunk,
            RELU=relu,
            HAS_MAP=spatial is not None,
            HARD_RESET=hard_reset,
            STRICT=strict,
            DETACH_RESET=detach_reset,
            SG_ID=surrogate_id,
        )
    grad_map = grad_map.sum(dim=1) if spatial is not None else grad_map
    return grad_x, grad_scale.sum(dim=0), grad_map


@gated_leaky_bwd.register_fake
def _(
    grad_spikes,
    x,
    scale,
    spatial,
    checkpoints,
    relu,
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
    T, B, C, H, W = x.shape
    has_map = spatial is not None
    return (
        torch.empty_like(x),
        x.new_empty((T, B, C), dtype=torch.float32),
        x.new_empty((B, H * W) if has_map else (0,), dtype=torch.float32),
    )


refuse_double_backward("snnkernels::gated_leaky_bwd", "Run the attention and the neuron unfused on backend='torch'.")


class _GatedLeakyFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        scale: torch.Tensor,
        spatial: torch.Tensor | None,
        relu: bool,
        neuron: NeuronSettings,
        chunk: int,
        training: bool,
        count: bool,
    ):
        spikes, ckpt, counts = gated_leaky_fwd(
            x, scale, spatial, relu, *forward_settings(neuron), training, chunk, count
        )
        ctx.relu, ctx.neuron, ctx.chunk = relu, neuron, chunk
        ctx.save_for_backward(x, scale, spatial, ckpt)
        ctx.mark_non_differentiable(counts)
        return spikes, counts

    @staticmethod
    def backward(ctx: Any, grad_spikes: torch.Tensor, _grad_counts: Any):
        x, scale, spatial, ckpt = ctx.saved_tensors
        grad_x, grad_scale, grad_map = gated_leaky_bwd(
            match_layout(grad_spikes, x), x, scale, spatial, ckpt, ctx.relu, *ctx.neuron, ctx.chunk
        )
        needs = ctx.needs_input_grad
        return (
            grad_x if needs[0] else None,
            grad_scale.to(scale.dtype) if needs[1] else None,
            grad_map.to(spatial.dtype) if (spatial is not None and needs[2]) else None,
            None,
            None,
            None,
            None,
            None,
        )


def gated_leaky(
    x: torch.Tensor,
    scale: torch.Tensor,
    spatial: torch.Tensor | None,
    *,
    relu: bool,
    neuron: NeuronSettings,
    chunk: int = DEFAULT_CHUNK,
    count_spikes: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Spikes of the leaky neuron driven by ``pre(x) * scale[t, b, c] (* spatial[b, p])`` (Triton).

    ``x`` [T, B, C, H, W]; ``scale`` [T, B, C] and ``spatial`` [B, H * W] are computed in fp32 by the
    attention's reduction sweeps; ``neuron`` is (decay, gain, bias, v_threshold, v_reset, v_init_value, hard_reset,
    strict, detach_reset, surrogate_id, surrogate_param) with scalar coefficients: the charge is
    ``h = decay * v + gain * y + bias`` from ``v = v_init_value`` (see ``nn.fused.neuron_settings``).
    With ``count_spikes`` also the spikes per (t, b, c), int32 [T, B, C], counted by the kernel as it fires
    (exact, deterministic: per-column-tile partials summed here).
    """
    training = needs_training(x, scale, spatial)
    spikes, counts = _GatedLeakyFunction.apply(
        rows_layout(x), scale, spatial, relu, fresh_settings(neuron), chunk, training, count_spikes
    )
    return (spikes, counts) if count_spikes else spikes


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck, the Triton kernels launched.


def _gated_fwd_samples(dev: str) -> list[tuple]:
    T, B, C, H, W = SAMPLE_SHAPE
    x, scale, spatial = 2 * randn(dev, T, B, C, H, W), rand(dev, T, B, C), rand(dev, B, H * W)
    return [
        (x, scale, None, False, *neuron_args(True, False), True, 2, True),
        (x, scale, spatial, True, *neuron_args(False, True), False, 2, False),
    ]


def _gated_bwd_samples(dev: str) -> list[tuple]:
    T, B, C, H, W = SAMPLE_SHAPE
    x, scale, spatial = 2 * randn(dev, T, B, C, H, W), rand(dev, T, B, C), rand(dev, B, H * W)
    out = []
    for relu, gates, hard, sg in ((False, None, True, Triangle.id), (True, spatial, False, Sigmoid.id)):
        spikes, ckpt, _ = registered_op("gated_leaky_fwd")(
            x, scale, gates, relu, *neuron_args(hard, False), True, 2, False
        )
        out.append(
            (torch.randn_like(spikes), x, scale, gates, ckpt, relu, *neuron_args(hard, False), not hard, sg, 1.0, 2)
        )
    return out


OPS = (
    triton_entry("gated_leaky_fwd", __name__, _gated_fwd_samples, "gated_leaky_fwd_kernel"),
    triton_entry("gated_leaky_bwd", __name__, _gated_bwd_samples, "gated_leaky_bwd_kernel", autograd=True),
)
