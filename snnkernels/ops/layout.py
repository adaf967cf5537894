"""Memory layouts the kernels walk: which tensors are read in place and which are copied first.

The neuron kernels walk ``x`` as [T, N]; the attention sweeps walk [T, B, C, H, W] as rows of contiguous
H * W planes in x's own order of (t, b, c) (the library's [T, B] or DTA-SNN's [B, T] storage). Gradients and
other full-size inputs of one launch are brought to the strides of the tensor that sets the layout.
"""

from __future__ import annotations

import torch

__all__ = ["match_layout", "rows_layout", "na_strides", "plane_size"]


def match_layout(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` with the strides of ``like`` (same shape), copying only when they differ."""
    if t.stride() == like.stride():
        return t
    # empty_strided, not empty_like(like): the copy overwrites every element, and the test suite's NaN
    # poisoning wraps empty_like in a function torch.compile cannot trace inside an autograd.Function
    return torch.empty_strided(like.shape, like.stride(), dtype=t.dtype, device=t.device).copy_(t)


def rows_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` [T, B, C, H, W] itself when its planes are contiguous rows in the [T, B, C] or [B, T, C]
    storage order (the two layouts the modules take), else a contiguous copy."""
    if x.is_contiguous() or x.transpose(0, 1).is_contiguous():
        return x
    return x.contiguous()


def na_strides(na: torch.Tensor) -> tuple[int, int, int]:
    """DTA's NA (and dNA) strides over (t, b, c): NA is read in place in its own storage order."""
    T, B, C, H, W = na.shape
    assert na.stride(4) == 1 and (H == 1 or na.stride(3) == W), "NA's H * W planes must be contiguous"
    return na.stride(0), na.stride(1), na.stride(2)


def plane_size(x: torch.Tensor) -> int:
    """H * W of a [T, B, C, H, W] tensor: the values a row sum adds up."""
    return x.shape[3] * x.shape[4]
