"""``bn_lif`` on the native backend: the neuron's time loop in the C++ kernels of the leaky op
(``snnkernels::leaky_fwd_native`` / ``leaky_bwd_native``, CPU and CUDA), BatchNorm's per-channel work in torch
ops around them (docs/bn_lif.md "Native backend").

Saved for the backward, as on Triton: x (BatchNorm's input) and the neuron's checkpoints, never BatchNorm's
output y. Unlike the Triton kernels, which apply BatchNorm as they load x, y exists here for the length of one
native call in the forward and one in the backward (a transient, rebuilt from x with the same fp32 arithmetic:
``x * scale + shift`` rounded to x's dtype), so each pass moves one more read and write of x's size.
"""

from __future__ import annotations

from typing import Any

import torch

from .bn_lif import run_bn_lif
from .leaky_native import DEFAULT_CHUNK, forward_op
from .leaky_settings import BWD_ARGS, FWD_ARGS, SCALAR_SETTINGS, names, positional
from .registry import SAMPLE_SHAPE, OpEntry, randn

__all__ = ["bn_lif", "bn_lif_stats_native", "OPS"]


@torch.library.custom_op("snnkernels::bn_lif_stats_native", mutates_args=(), device_types=("cpu", "cuda"))
def bn_lif_stats_native(rows: torch.Tensor) -> torch.Tensor:
    """(batch mean, biased variance) per channel of rows [T, B, C, 1, S] over T * B * S values, fp64 [2, C].

    One step at a time in fp64 (a transient of one step's size, not of x's), the steps combined with Chan's
    parallel formula (docs/bn_lif.md "Batch statistics"): every step has the same count B * S."""
    T = rows.shape[0]
    per_step = [torch.stack(torch.var_mean(step.double(), dim=(0, 2, 3), correction=0)) for step in rows]
    var, mean = torch.stack(per_step, dim=1)  # [T, C] each
    overall = mean.mean(dim=0)
    return torch.stack((overall, var.mean(dim=0) + ((mean - overall) ** 2).sum(dim=0) / T))


@bn_lif_stats_native.register_fake
def _(rows):
    return rows.new_empty((2, rows.shape[2]), dtype=torch.float64)


def _bn_output(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """y = x * scale_c + shift_c in fp32 (two roundings, no fused multiply-add, as the Triton kernels), in x's
    dtype: what nn.BatchNorm stores and the neuron reads."""
    channel = (1, 1, -1, 1, 1)
    return (x.float() * scale.view(channel) + shift.view(channel)).to(x.dtype)


def _channel_sums(per_neuron: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-neuron [B * C * S] partial sum of the native backward as per-channel fp64 sums [C]."""
    B, C = x.shape[1:3]
    return per_neuron.view(B, C, -1).sum(dim=(0, 2), dtype=torch.float64)


class _BNLIFNativeFunction(torch.autograd.Function):
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
        neuron: tuple,
        batch_stats: bool,
        chunk: int,
        training: bool,
    ):
        scale = weight * invstd
        shift = bias - mean * scale
        # the neuron's coefficients are the tensors decay, gain, neuron_bias: its float ones are not read
        settings = dict(zip(names(SCALAR_SETTINGS), (0.0, 0.0, 0.0, *neuron[3:]), strict=True))
        spikes, _, ckpt, _ = forward_op()(
            *positional(
                FWD_ARGS,
                **settings,
                x=_bn_output(x, scale, shift),
                v_init=None,
                decay_t=decay,
                gain_t=gain,
                bias_t=neuron_bias,
                training=training,
                store_final_state=False,
                chunk=chunk,
            )
        )
        ctx.neuron, ctx.batch_stats, ctx.chunk = settings, batch_stats, chunk
        ctx.save_for_backward(x, scale, shift, mean, invstd, decay, gain, neuron_bias, ckpt)
        return spikes

    @staticmethod
    def backward(ctx: Any, grad_spikes: torch.Tensor):
        x, scale, shift, mean, invstd, decay, gain, neuron_bias, ckpt = ctx.saved_tensors
        needs = ctx.needs_input_grad
        # grad_spikes in fp32: the native backward then works in fp32 and returns dL/dy unrounded (as the
        # Triton kernel keeps it), whatever x's dtype
        grad_y, _, g_decay, g_gain, g_bias = torch.ops.snnkernels.leaky_bwd_native(
            *positional(
                BWD_ARGS,
                **ctx.neuron,
                grad_spikes=grad_spikes.float(),
                grad_v_final=None,
                x=_bn_output(x, scale, shift),
                v_init=None,
                checkpoints=ckpt,
                decay_t=decay,
                gain_t=gain,
                bias_t=neuron_bias,
                chunk=ctx.chunk,
                need_grad_v_init=False,
                need_grad_decay=needs[3],
                need_grad_gain=needs[4],
                need_grad_bias=needs[5],
            )
        )
        channel = (1, 1, -1, 1, 1)
        x_hat = (x.float() - mean.view(channel)) * invstd.view(channel)
        dims = (0, 1, 3, 4)
        sum_dy = grad_y.sum(dim=dims, dtype=torch.float64)
        sum_dy_xhat = (grad_y * x_hat).sum(dim=dims, dtype=torch.float64)
        if ctx.batch_stats:  # docs/bn_lif.md "Backward": BatchNorm's mean terms
            n = x.numel() // x.shape[2]
            mean_dy, mean_dy_xhat = (sum_dy / n).float(), (sum_dy_xhat / n).float()
            grad_x = scale.view(channel) * (grad_y - mean_dy.view(channel) - x_hat * mean_dy_xhat.view(channel))
        else:
            grad_x = scale.view(channel) * grad_y
        coefficient_grads = [
            _channel_sums(g, x).float() if need else None
            for g, need in zip((g_decay, g_gain, g_bias), needs[3:6], strict=True)
        ]
        return (
            grad_x.to(x.dtype) if needs[0] else None,
            sum_dy_xhat.float() if needs[1] else None,
            sum_dy.float() if needs[2] else None,
            *coefficient_grads,
            None,
            None,
            None,
            None,
            None,
            None,
        )


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
    neuron: tuple,
    chunk: int = DEFAULT_CHUNK,
) -> torch.Tensor:
    """Spikes of the leaky neuron on ``nn.functional.batch_norm(x over [T * B, C, ...])`` (native neuron).

    Args: as ``ops.bn_lif_triton.bn_lif`` (x [T, B, C, *spatial] fp32 / fp16 / bf16 on the CPU, or CUDA where
    the extension was built with it).
    """
    return run_bn_lif(
        _BNLIFNativeFunction, bn_lif_stats_native, x, running_mean, running_var, weight, bias, batch_stats=batch_stats,
        momentum=momentum, eps=eps, coefficients=coefficients, neuron=neuron, chunk=chunk,
    )  # fmt: skip


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck. The neuron's loop runs on the leaky
# op's native entries; the statistics are this module's own op.


def _stats_samples(dev: str) -> list[tuple]:
    T, B, C, H, W = SAMPLE_SHAPE
    return [(randn(dev, T, B, C, 1, H * W),), (randn(dev, 1, 3, C, 1, 1),)]


OPS = (OpEntry("bn_lif_stats_native", __name__, "native", _stats_samples, ("cpu", "cuda")),)
