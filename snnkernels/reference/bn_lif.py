"""Eager reference of ``bn_lif``: ``nn.functional.batch_norm`` over the merged time-batch axis, then the leaky neuron.

The zoo's Conv -> BatchNorm -> neuron chains normalise [T, B, C, ...] as [T * B, C, ...] (``nn.BatchNorm2d`` on
conv outputs [T, B, C, H, W], ``nn.BatchNorm1d`` on tokens [T, B, C, N] or features [T, B, C]): statistics per
channel over T x B x the spatial positions. This is that composition, literally: the ground truth the fused
kernels are tested against and the ``backend="torch"`` path (docs/bn_lif.md). Never edit it to match a kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..neuron_models import Number
from ..surrogate import ATan, Surrogate
from .leaky import multistep_leaky_reference

__all__ = ["bn_lif_reference"]


def bn_lif_reference(
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
    decay: Number,
    input_gain: Number = 1.0,
    neuron_bias: Number = 0.0,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    strict_threshold: bool = False,
    detach_reset: bool = False,
    # B008: one shared default surrogate, as in SpikingJelly's signatures (surrogates are never mutated)
    surrogate_function: Surrogate = ATan(),  # noqa: B008
    v_init_value: float = 0.0,
) -> torch.Tensor:
    """Spikes (x's dtype) of the leaky neuron on ``batch_norm(x)``, x [T, B, C, ...]; ``training``, ``momentum``
    and ``eps`` as ``nn.functional.batch_norm`` takes them (the running statistics are updated in place there)."""
    T, B = x.shape[:2]
    y = F.batch_norm(x.flatten(0, 1), running_mean, running_var, weight, bias, training, momentum, eps)
    return multistep_leaky_reference(
        y.unflatten(0, (T, B)),
        decay=decay,
        input_gain=input_gain,
        bias=neuron_bias,
        v_threshold=v_threshold,
        v_reset=v_reset,
        strict_threshold=strict_threshold,
        detach_reset=detach_reset,
        surrogate_function=surrogate_function,
        v_init_value=v_init_value,
    )
