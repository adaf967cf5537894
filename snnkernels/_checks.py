"""Argument checks shared by the functional API: every bad input gets a message that says what to fix."""

from __future__ import annotations

import math

import torch

from .neuron_models import Number


def check_sequence(x_seq: object, name: str = "x_seq", min_dim: int = 2) -> torch.Tensor:
    """A floating [T, ...] tensor with T >= 1 and at least ``min_dim`` dimensions (the modules take [T])."""
    if not isinstance(x_seq, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x_seq).__name__}")
    if not x_seq.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (fp32, fp16, bf16 or fp64), got {x_seq.dtype}")
    if x_seq.dim() < min_dim:
        neurons = " with at least one neuron dimension" if min_dim > 1 else ""
        hint = " (for a single neuron use x_seq[:, None])" if min_dim > 1 else ""
        raise ValueError(f"{name} must have shape [T, ...]{neurons}, got shape {tuple(x_seq.shape)}{hint}")
    if x_seq.shape[0] == 0:
        raise ValueError(f"{name} has T = 0 time steps (shape {tuple(x_seq.shape)}); T must be at least 1")
    return x_seq


def check_state(v_init: object, x_seq: torch.Tensor, name: str = "v_init") -> torch.Tensor | None:
    if v_init is None:
        return None
    if not isinstance(v_init, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of shape x_seq.shape[1:] or None, got {type(v_init).__name__}")
    if not v_init.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {v_init.dtype}")
    if v_init.shape != x_seq.shape[1:]:
        raise ValueError(
            f"{name} must have shape x_seq.shape[1:] = {tuple(x_seq.shape[1:])}, got {tuple(v_init.shape)}"
        )
    if v_init.device != x_seq.device:
        raise ValueError(f"{name} is on {v_init.device} but x_seq is on {x_seq.device}")
    return v_init


def check_scalar(value: object, name: str, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if torch.compiler.is_compiling() and isinstance(value, (int, float, torch.SymFloat, torch.SymInt)):
        # torch.compile(dynamic=True) traces Python numbers as symbols: finiteness cannot be asked of one
        # without specialising the graph on its value, so the compiled path takes numbers as given
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_coefficient(value: object, name: str, x_seq: torch.Tensor) -> Number:
    """A float, or a tensor of shape [], [1] or [C] with C = x_seq.shape[2] (per channel)."""
    if not isinstance(value, torch.Tensor):
        return check_scalar(value, name)
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a float or a floating-point tensor, got {value.dtype}")
    if value.device != x_seq.device:
        raise ValueError(f"{name} is on {value.device} but x_seq is on {x_seq.device}")
    if value.numel() == 1 and value.dim() <= 1:
        return value
    if value.dim() != 1:
        raise ValueError(f"{name} must be a scalar or of shape [C], got shape {tuple(value.shape)}")
    if x_seq.dim() < 3:
        raise ValueError(
            f"a per-channel {name} of shape {tuple(value.shape)} needs x_seq of shape [T, B, C, ...], "
            f"got {tuple(x_seq.shape)}"
        )
    if value.shape[0] != x_seq.shape[2]:
        raise ValueError(
            f"{name} has {value.shape[0]} channels but x_seq has C = x_seq.shape[2] = {x_seq.shape[2]} "
            f"(shape {tuple(x_seq.shape)}; channels are dim 2 of [T, B, C, ...])"
        )
    return value
