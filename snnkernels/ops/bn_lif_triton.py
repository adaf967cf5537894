"""BatchNorm + the leaky neuron as one op (``kernels.triton.bn_lif``): ``torch.library`` ops and the autograd.

``bn_lif(x, running_mean, running_var, weight, bias, ...)`` is ``nn.functional.batch_norm`` over the merged
[T * B, C, ...] samples followed by the multi-step leaky neuron, with BatchNorm applied as the neuron loads x:
BatchNorm's output is never stored, and the backward rebuilds it from x (docs/bn_lif.md). Three ops:

- ``snnkernels::bn_lif_stats``: the batch mean and biased variance per channel (fp64 [2, C]) from one sweep
  of x: per tile-row sums and squared deviations (fp32, kernel), combined per channel in fp64 here;
- ``snnkernels::bn_lif_fwd``: the neuron on ``y = x * scale[c] + shift[c]``: (spikes, checkpoints);
- ``snnkernels::bn_lif_bwd``: dL/dx and the per-channel sums that give dL/dweight, dL/dbias and the
  neuron coefficients' gradients.

The running statistics are updated here, as ``nn.functional.batch_norm`` does (momentum, unbiased variance),
from the same fp64 statistics. Layout: x [T, B, C, *spatial] with the spatial dims flattened into contiguous
rows (the [T, B] storage or its [B, T] transpose read in place, anything else copied once).
"""

from __future__ import annotations

from typing import Any

import torch
import triton

from ..kernels.triton.bn_lif import (
    bn_lif_bwd_kernel,
    bn_lif_fwd_kernel,
    bn_lif_input_grad_kernel,
    bn_lif_stats_kernel,
)
from ..surrogate import Sigmoid, Triangle
from ._device import on_device_of
from ._double_backward import refuse_double_backward
from .autograd_helpers import forward_settings
from .bn_lif import as_rows, run_bn_lif
from .gated_leaky_triton import NeuronSettings, new_checkpoints
from .layout import match_layout
from .leaky import new_spikes_packed
from .leaky_triton import DEFAULT_CHUNK
from .registry import SAMPLE_SHAPE, rand, randn, registered_op, triton_entry
from .spike_pack_triton import spike_pack_triton
from .triton_launch import COMPILE_OPTIONS, f32, launch_rows, neuron_geometry, neuron_grid, row_geometry, row_tiles

__all__ = ["bn_lif", "bn_lif_stats", "bn_lif_fwd", "bn_lif_fwd_packed", "bn_lif_bwd", "as_rows", "SUMS", "OPS"]

# Rows of bn_lif_bwd's per-channel sums: dL/dbias, dL/dweight (sum of dL/dy * x_hat), and the neuron's
# dL/ddecay (dL/dh * v_{t-1}), dL/dgain (dL/dh * y), dL/dbias (dL/dh)
SUMS = ("dy", "dy_xhat", "decay", "gain", "bias")


@torch.library.custom_op("snnkernels::bn_lif_stats", mutates_args=(), device_types=("cpu", "cuda"))
def bn_lif_stats(x: torch.Tensor) -> torch.Tensor:
    """(batch mean, biased variance) per channel of x [T, B, C, 1, S] over T * B * S values, fp64 [2, C]."""
    T, B, C, _, S = x.shape
    R = T * B * C
    block_r, block_s, warps = row_tiles(R, S)
    n_col = triton.cdiv(S, block_s)
    sums = x.new_empty((n_col, R), dtype=torch.float32)
    m2 = x.new_empty((n_col, R), dtype=torch.float32)
    if x.numel() > 0:
        with on_device_of(x):
            bn_lif_stats_kernel[(triton.cdiv(R, block_r), n_col)](
                x,
                sums,
                m2,
                *row_geometry(x),
                BLOCK_R=block_r,
                BLOCK_S=block_s,
                num_warps=warps,
                **COMPILE_OPTIONS,
            )
    # Chan's parallel formula over the tile-rows, in fp64 and a fixed order (docs/bn_lif.md "Batch statistics")
    counts = (S - torch.arange(n_col, device=x.device, dtype=torch.float64) * block_s).clamp(max=block_s)
    sums, m2 = sums.double().view(n_col, T * B, C), m2.double().view(n_col, T * B, C)
    n = float(T * B * S)
    mean = sums.sum(dim=(0, 1)) / n
    part_mean = sums / counts[:, None, None]
    spread = (counts[:, None, None] * (part_mean - mean) ** 2).sum(dim=(0, 1))
    var = (m2.sum(dim=(0, 1)) + spread) / n
    return torch.stack((mean, var))


@bn_lif_stats.register_fake
def _(x):
    return x.new_empty((2, x.shape[2]), dtype=torch.float64)


@torch.library.custom_op("snnkernels::bn_lif_fwd", mutates_args=(), device_types=("cpu", "cuda"))
def bn_lif_fwd(
    x: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    decay: torch.Tensor,
    gain: torch.Tensor,
    bias: torch.Tensor,
    v_threshold: float,
    v_reset: float,
    v_init_value: float,
    hard_reset: bool,
    strict: bool,
    training: bool,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(spikes in x's layout and dtype, fp32 checkpoints [cdiv(T, chunk) - 1, B * C * S] if training) of the
    neuron ``h = decay * v + gain * y + bias`` on ``y = x * scale + shift`` (all [C] fp32), from v_init_value."""
    spikes, ckpt = torch.empty_like(x), new_checkpoints(x, training, chunk)
    _launch_fwd(x, (scale, shift, decay, gain, bias), spikes, ckpt, None, v_threshold, v_reset, v_init_value,
                hard_reset, strict, training, chunk)  # fmt: skip
    return spikes, ckpt


@bn_lif_fwd.register_fake
def _(x, scale, shift, decay, gain, bias, v_threshold, v_reset, v_init_value, hard_reset, strict, training, chunk):
    return torch.empty_like(x), new_checkpoints(x, training, chunk)


def packs_as_it_fires(x: torch.Tensor) -> bool:
    """Whether ``bn_lif_fwd_packed`` packs the spikes of x [T, B, C, 1, S] inside the neuron kernel: S % 8 == 0,
    so each tile's bytes are whole. Otherwise it packs the spikes it stored in a pass of its own."""
    return x.shape[-1] % 8 == 0


@torch.library.custom_op("snnkernels::bn_lif_fwd_packed", mutates_args=(), device_types=("cpu", "cuda"))
def bn_lif_fwd_packed(
    x: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    decay: torch.Tensor,
    gain: torch.Tensor,
    bias: torch.Tensor,
    v_threshold: float,
    v_reset: float,
    v_init_value: float,
    hard_reset: bool,
    strict: bool,
    training: bool,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``bn_lif_fwd``'s outputs and the spikes at 1 bit each (uint8 [ceil(x.numel() / 8)], spike_pack's layout of
    x's logical order, whatever its strides), written by the kernel as it fires where ``packs_as_it_fires``."""
    spikes, ckpt = torch.empty_like(x), new_checkpoints(x, training, chunk)
    packed = new_spikes_packed(x) if packs_as_it_fires(x) else None
    _launch_fwd(x, (scale, shift, decay, gain, bias), spikes, ckpt, packed, v_threshold, v_reset, v_init_value,
                hard_reset, strict, training, chunk)  # fmt: skip
    return spikes, ckpt, spike_pack_triton(spikes, False) if packed is None else packed


@bn_lif_fwd_packed.register_fake
def _(x, scale, shift, decay, gain, bias, v_threshold, v_reset, v_init_value, hard_reset, strict, training, chunk):
    return torch.empty_like(x), new_checkpoints(x, training, chunk), new_spikes_packed(x)


def _launch_fwd(
    x: torch.Tensor,
    channel: tuple[torch.Tensor, ...],
    spikes: torch.Tensor,
    ckpt: torch.Tensor,
    packed: torch.Tensor | None,
    v_threshold: float,
    v_reset: float,
    v_init_value: float,
    hard_reset: bool,
    strict: bool,
    training: bool,
    chunk: int,
) -> None:
    """The forward kernel into ``spikes`` / ``ckpt`` and, unless None, ``packed``; ``channel``: the [C] scale,
    shift, decay, gain and bias."""
    if x.numel() == 0:
        return
    grid, block_r, block_s, warps = neuron_grid(x)
    with on_device_of(x):
        bn_lif_fwd_kernel[grid](
            x,
            *channel,
            spikes,
            ckpt if training else spikes,
            spikes if packed is None else packed,
            *neuron_geometry(x),
            *f32(v_threshold, v_reset, v_init_value),
            HARD_RESET=hard_reset,
            STRICT=strict,
            TRAINING=training,
            PACK=packed is not None,
            CHUNK=chunk,
            BLOCK_R=block_r,
            BLOCK_S=block_s,
            num_warps=warps,
            **COMPILE_OPTIONS,
        )


@torch.library.custom_op("snnkernels::bn_lif_bwd", mutates_args=(), device_types=("cpu", "cuda"))
def bn_lif_bwd(
    grad_spikes: torch.Tensor,
    x: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    mean: torch.Tensor,
    invstd: torch.Tensor,
    decay: torch.Tensor,
    gain: torch.Tensor,
    bias: torch.Tensor,
    checkpoints: torch.Tensor,
    v_threshold: float,
    v_reset: float,
    v_init_value: float,
    hard_reset: bool,
    strict: bool,
    detach_reset: bool,
    surrogate_id: int,
    surrogate_param: float,
    chunk: int,
    batch_stats: bool,
    need_grad_decay: bool,
    need_grad_gain: bool,
    need_grad_bias: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dL/dx in x's layout and dtype, fp32 [5, C] per-channel sums in the order of ``SUMS``; the rows of
    coefficients not asked for are zero). ``batch_stats``: x was normalised with its own batch statistics
    (``mean``, ``invstd``), so dL/dx has BatchNorm's mean terms; else with fixed ones, dL/dx = scale * dL/dy."""
    T, B, C, _, S = x.shape
    grid, block_r, block_s, warps = neuron_grid(x)
    grad_x = torch.empty_like(x)
    partials = x.new_zeros((len(SUMS), grid[1], B * C), dtype=torch.float32)
    if x.numel() == 0:
        return grad_x, partials.new_zeros((len(SUMS), C))
    # dL/dy needs the per-channel sums before dL/dx can be formed: kept in fp32 (in grad_x itself for fp32 x)
    grad_y = grad_x if (batch_stats and x.dtype == torch.float32) else None
    if batch_stats and grad_y is None:
        grad_y = torch.empty_like(x, dtype=torch.float32)
    with on_device_of(x):
        bn_lif_bwd_kernel[grid](
            grad_spikes,
            x,
            scale,
            shift,
            mean,
            invstd,
            decay,
            gain,
            bias,
            checkpoints,
            grad_y if batch_stats else grad_x,
            partials,
            *neuron_geometry(x),
            *f32(v_threshold, v_reset, v_init_value, surrogate_param),
            BATCH_STATS=batch_stats,
            HARD_RESET=hard_reset,
            STRICT=strict,
            DETACH_RESET=detach_reset,
            SG_ID=surrogate_id,
            NEED_GRAD_DECAY=need_grad_decay,
            NEED_GRAD_GAIN=need_grad_gain,
            NEED_GRAD_BIAS=need_grad_bias,
            CHUNK=chunk,
            BLOCK_R=block_r,
            BLOCK_S=block_s,
            num_warps=warps,
            **COMPILE_OPTIONS,
        )
    sums = partials.view(len(SUMS), grid[1] * B, C).sum(dim=1, dtype=torch.float64)
    if batch_stats:
        n = T * B * S
        channel = torch.cat((scale[None], mean[None], invstd[None], (sums[:2] / n).float()))
        launch_rows(bn_lif_input_grad_kernel, x, grad_y, x, channel.contiguous(), grad_x)
    return grad_x, sums.float()


@bn_lif_bwd.register_fake
def _(grad_spikes, x, scale, *args):
    return torch.empty_like(x), x.new_empty((len(SUMS), x.shape[2]), dtype=torch.float32)


refuse_double_backward("snnkernels::bn_lif_bwd", "Run BatchNorm and the neuron unfused on backend='torch'.")


class _BNLIFFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        decay: torch.Tensor,
        gain: torch.Tensor,
        neuron_bias: torch.Tensor,
        mean: torch.Tensor,
        invstd: torch.Tensor,
        neuron: NeuronSettings,
        batch_stats: bool,
        chunk: int,
        training: bool,
    ):
        return _forward(ctx, bn_lif_fwd, x, weight, bias, decay, gain, neuron_bias, mean, invstd, neuron,
                        batch_stats, chunk, training)[0]  # fmt: skip

    @staticmethod
    def backward(ctx: Any, grad_spikes: torch.Tensor):
        return _backward(ctx, grad_spikes)


class _BNLIFPackedFunction(torch.autograd.Function):
    """``_BNLIFFunction`` whose forward also returns the spikes packed (``bn_lif_fwd_packed``; no gradient)."""

    @staticmethod
    def forward(ctx: Any, *args: Any):
        spikes, packed = _forward(ctx, bn_lif_fwd_packed, *args)
        ctx.mark_non_differentiable(packed)
        return spikes, packed

    @staticmethod
    def backward(ctx: Any, grad_spikes: torch.Tensor, _grad_packed: Any):
        return _backward(ctx, grad_spikes)


def _backward(ctx: Any, grad_spikes: torch.Tensor) -> tuple:
    """The autograd backward of both functions: dL/dx and the per-channel gradients from ``bn_lif_bwd``."""
    x, scale, shift, mean, invstd, decay, gain, neuron_bias, ckpt = ctx.saved_tensors
    needs = ctx.needs_input_grad
    grad_x, sums = bn_lif_bwd(
        match_layout(grad_spikes, x),
        x,
        scale,
        shift,
        mean,
        invstd,
        decay,
        gain,
        neuron_bias,
        ckpt,
        *ctx.neuron[3:],
        ctx.chunk,
        ctx.batch_stats,
        needs[3],
        needs[4],
        needs[5],
    )
    grads = (sums[1], sums[0], sums[2], sums[3], sums[4])
    return (
        grad_x if needs[0] else None,
        *(g if need else None for g, need in zip(grads, needs[1:6], strict=True)),
        None,
        None,
        None,
        None,
        None,
        None,
    )


def _forward(ctx: Any, forward_op: Any, x, weight, bias, decay, gain, neuron_bias, mean, invstd, neuron, batch_stats,
             chunk, training) -> tuple:  # fmt: skip
    """The autograd forward: ``forward_op`` (``bn_lif_fwd`` or ``bn_lif_fwd_packed``) on BatchNorm's per-channel
    scale and shift; (spikes, the packed copy or None)."""
    scale = weight * invstd
    shift = bias - mean * scale
    # the neuron's coefficients are the tensors decay, gain, neuron_bias: its float ones are not read
    spikes, ckpt, *packed = forward_op(
        x, scale, shift, decay, gain, neuron_bias, *forward_settings(neuron)[3:], training, chunk
    )
    ctx.neuron, ctx.batch_stats, ctx.chunk = neuron, batch_stats, chunk
    ctx.save_for_backward(x, scale, shift, mean, invstd, decay, gain, neuron_bias, ckpt)
    return spikes, (packed[0] if packed else None)


def bn_lif(
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    *,
    batch_stats: bool,
    momentum: float,
    eps: float,
    coefficients: tuple[float | torch.Tensor, float | torch.Tensor, float | torch.Tensor],
    neuron: NeuronSettings,
    chunk: int = DEFAULT_CHUNK,
    pack: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Spikes of the leaky neuron on ``nn.functional.batch_norm(x over [T * B, C, ...])`` (Triton); with ``pack``
    (spikes, their packed copy written as the kernel fires: ``bn_lif_fwd_packed``).

    Args:
        x (Tensor): [T, B, C, *spatial], fp32 / fp16 / bf16.
        running_mean (Tensor, Optional): [C]; updated in place when ``batch_stats`` (as BatchNorm's buffer).
        running_var (Tensor, Optional): [C]; updated in place with the unbiased batch variance.
        weight (Tensor, Optional): BatchNorm's [C] weight (None: 1).
        bias (Tensor, Optional): BatchNorm's [C] bias (None: 0).
        batch_stats (bool): normalise with the batch statistics (``training`` of ``batch_norm``); else with
            the running ones.
        momentum (float): the running statistics' update factor (``batch_norm``'s ``momentum``).
        eps (float): added to the variance.
        coefficients (tuple): the neuron's (decay, gain, bias): floats, or 0-d / [1] / [C] tensors that may be
            learnable.
        neuron (tuple): (decay, gain, bias, v_threshold, v_reset, v_init_value, hard_reset, strict,
            detach_reset, surrogate_id, surrogate_param); its first three entries are ignored (``coefficients``).
        chunk (int): steps per checkpoint. Default: the leaky neuron's.
        pack (bool): also return the spikes at 1 bit each (docs/spike_pack.md "Packed by the neuron").
    """
    return run_bn_lif(
        _BNLIFPackedFunction if pack else _BNLIFFunction, bn_lif_stats, x, running_mean, running_var, weight, bias,
        batch_stats=batch_stats, momentum=momentum, eps=eps, coefficients=coefficients, neuron=neuron, chunk=chunk,
    )  # fmt: skip


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck, the Triton kernels launched.


def _bn_lif_inputs(dev: str) -> tuple:
    """x as the [T, B, C, 1, S] rows bn_lif walks (and its [B, T] storage read in place), BatchNorm's per-channel
    scale and shift, the neuron's per-channel (decay, gain, bias)."""
    T, B, C, H, W = SAMPLE_SHAPE
    x = 2 * randn(dev, T, B, C, 1, H * W)
    x_bt = 2 * randn(dev, B, T, C, 1, H * W).transpose(0, 1)
    coef = tuple(torch.full((C,), c, device=dev) for c in (0.5, 1.0, 0.1))
    return x, x_bt, rand(dev, C) + 0.5, randn(dev, C), coef


def _bn_lif_fwd_samples(dev: str) -> list[tuple]:
    x, x_bt, scale, shift, coef = _bn_lif_inputs(dev)
    return [
        (x, scale, shift, *coef, 1.0, 0.0, 0.0, True, False, True, 2),
        (x_bt, scale, shift, *coef, 1.0, 0.0, 0.0, False, True, False, 2),
    ]


def _bn_lif_fwd_packed_samples(dev: str) -> list[tuple]:
    T, B, C, H, W = SAMPLE_SHAPE
    x, _, scale, shift, coef = _bn_lif_inputs(dev)
    whole = 2 * randn(dev, T, B, C, 1, 8)
    return [*_bn_lif_fwd_samples(dev), (whole, scale, shift, *coef, 1.0, 0.0, 0.0, True, False, True, 2)]


def _bn_lif_bwd_samples(dev: str) -> list[tuple]:
    x, x_bt, scale, shift, coef = _bn_lif_inputs(dev)
    C = SAMPLE_SHAPE[2]
    mean, invstd = randn(dev, C), rand(dev, C) + 0.5
    out = []
    for xs, batch_stats, hard, sg in ((x, True, True, Triangle.id), (x_bt, False, False, Sigmoid.id)):
        spikes, ckpt = registered_op("bn_lif_fwd")(xs, scale, shift, *coef, 1.0, 0.0, 0.0, hard, False, True, 2)
        settings = (1.0, 0.0, 0.0, hard, False, not hard, sg, 1.0, 2, batch_stats, True, batch_stats, True)
        out.append((torch.randn_like(spikes), xs, scale, shift, mean, invstd, *coef, ckpt, *settings))
    return out


OPS = (
    triton_entry("bn_lif_stats", __name__, lambda d: [(x,) for x in _bn_lif_inputs(d)[:2]], "bn_lif_stats_kernel"),
    triton_entry("bn_lif_fwd", __name__, _bn_lif_fwd_samples, "bn_lif_fwd_kernel"),
    # S = 20 (SAMPLE_SHAPE's planes): packed after the kernel; S = 8: packed by it
    triton_entry("bn_lif_fwd_packed", __name__, _bn_lif_fwd_packed_samples, "bn_lif_fwd_kernel"),
    triton_entry(
        "bn_lif_bwd",
        __name__,
        _bn_lif_bwd_samples,
        "bn_lif_bwd_kernel",
        "bn_lif_input_grad_kernel",
        autograd=True,
    ),
)
