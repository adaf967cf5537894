"""Arguments of the ops' ``autograd.Function``s, prepared so that eager, ``torch.compile`` and autograd agree."""

from __future__ import annotations

import torch

from .leaky_settings import FWD, SCALAR_SETTINGS

__all__ = ["distinct", "as_tensor", "needs_training", "fresh_float", "fresh_settings", "forward_settings"]

# The scalar settings a neuron's forward op takes: those its forward kernel reads, which lead SCALAR_SETTINGS
FORWARD_SETTINGS = sum(FWD in a.reads for a in SCALAR_SETTINGS)


def distinct(*args):
    """The arguments with a repeated tensor replaced by a view of it: torch.compile cannot trace an
    autograd.Function that gets one tensor twice (e.g. a shared scale), and a view carries the same
    gradient back."""
    seen: list[torch.Tensor] = []
    out = []
    for a in args:
        if isinstance(a, torch.Tensor) and any(a is b for b in seen):
            a = a.view_as(a)
        if isinstance(a, torch.Tensor):
            seen.append(a)
        out.append(a)
    return out


def as_tensor(scale: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """``scale`` as a tensor on ``like``'s device (a Python float becomes a 0-dim tensor of the default dtype)."""
    return scale if isinstance(scale, torch.Tensor) else torch.tensor(float(scale), device=like.device)


def needs_training(*tensors: torch.Tensor | None) -> bool:
    """Whether a forward must keep what its backward needs. Decided before ``Function.apply``:
    ``autograd.Function.forward`` runs with gradients disabled."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def fresh_float(value: float) -> float:
    """``value`` itself (``* 1.0`` is exact for every float, -0.0, inf and NaN included), as a new value: under
    ``torch.compile(dynamic=True)`` a module's float settings are symbolic, and dynamo fails when one
    symbolic float enters several autograd.Functions (a time loop's steps), but not when each gets its own."""
    return value * 1.0


def fresh_settings(settings) -> tuple:
    """A neuron's settings as a tuple, each float through ``fresh_float`` (the others as they are)."""
    return tuple(fresh_float(v) if isinstance(v, float) else v for v in settings)


def forward_settings(settings: tuple) -> tuple:
    """Of a neuron's scalar settings (``nn.fused.neuron_settings``), those its forward op takes: (decay, gain,
    bias, v_threshold, v_reset, v_init_value, hard_reset, strict); the rest (detach_reset and the surrogate)
    only reach the backward."""
    return tuple(settings[:FORWARD_SETTINGS])
