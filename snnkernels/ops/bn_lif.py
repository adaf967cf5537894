"""What every backend of ``bn_lif`` shares (docs/bn_lif.md "What is computed"): the per-channel arguments and the
running statistics' update, done on the host from the fp64 batch statistics whichever kernels computed them."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .autograd_helpers import fresh_settings, needs_training
from .layout import rows_layout

__all__ = ["as_rows", "per_channel", "normalising_statistics", "run_bn_lif"]


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """x [T, B, C, *spatial] as the [T, B, C, 1, S] rows the kernels walk (a view where the storage allows)."""
    T, B, C = x.shape[:3]
    return rows_layout(x.reshape(T, B, C, 1, -1))


def per_channel(value: float | torch.Tensor | None, channels: int, like: torch.Tensor, default: float) -> torch.Tensor:
    """A float, a 0-d / [1] / [C] tensor, or None (``default``) as an fp32 [C] tensor that carries its gradient."""
    if value is None:
        value = default
    if not isinstance(value, torch.Tensor):
        return torch.full((channels,), float(value), dtype=torch.float32, device=like.device)
    value = value.to(torch.float32).reshape(-1)
    return (value.expand(channels) if value.numel() != channels else value).contiguous()


def normalising_statistics(
    rows: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    *,
    batch_stats: bool,
    momentum: float,
    eps: float,
    batch_statistics: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 (mean, invstd) [C] that normalise ``rows`` [T, B, C, 1, S]: its batch statistics
    (``batch_statistics(rows)``: fp64 [2, C] mean and biased variance), which also update the running ones in
    place as ``nn.functional.batch_norm`` does (unbiased variance, rounded once), or the running statistics."""
    T, B = rows.shape[:2]
    if batch_stats:
        stats = batch_statistics(rows.detach())
        mean64, var64 = stats[0], stats[1]
        if running_mean is not None and running_var is not None:
            n = T * B * rows.shape[-1]
            with torch.no_grad():
                unbiased = var64 * (n / (n - 1)) if n > 1 else var64 * float("nan")
                running_mean.copy_(momentum * mean64 + (1.0 - momentum) * running_mean.double())
                running_var.copy_(momentum * unbiased + (1.0 - momentum) * running_var.double())
    else:
        mean64, var64 = running_mean.detach().double(), running_var.detach().double()
    return mean64.float(), torch.rsqrt(var64 + eps).float()


def run_bn_lif(
    function: type[torch.autograd.Function],
    batch_statistics: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    *,
    batch_stats: bool,
    momentum: float,
    eps: float,
    coefficients: tuple,
    neuron: tuple,
    chunk: int,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """A backend's bn_lif: the statistics (``batch_statistics``), the running update, the per-channel arguments,
    then the backend's autograd ``function`` on x's rows; spikes in x's shape (where ``function`` returns
    (spikes, their packed copy), so does this). Arguments as ``ops.bn_lif_triton.bn_lif``."""
    C = x.shape[2]
    rows = as_rows(x)
    mean, invstd = normalising_statistics(
        rows, running_mean, running_var, batch_stats=batch_stats, momentum=momentum, eps=eps,
        batch_statistics=batch_statistics,
    )  # fmt: skip
    w = per_channel(weight, C, x, 1.0)
    b = per_channel(bias, C, x, 0.0)
    decay, gain, neuron_bias = (per_channel(c, C, x, 0.0) for c in coefficients)
    training = needs_training(x, w, b, decay, gain, neuron_bias)
    out = function.apply(
        rows, w, b, decay, gain, neuron_bias, mean, invstd, fresh_settings(neuron), batch_stats, chunk, training
    )
    return (out[0].reshape(x.shape), out[1]) if isinstance(out, tuple) else out.reshape(x.shape)
