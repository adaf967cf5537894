"""An ``nn.AvgPool2d`` that keeps only its input's shape for the backward (docs/ma_snn.md "Memory of the backward"),
and an ``nn.MaxPool2d`` that keeps one byte per window (docs/models.md "Lean pools in TCJA-SNN").

``nn.AvgPool2d``'s autograd saves its whole input although the gradient reads only the input's shape: for
non-overlapping windows (stride = kernel, no padding, floor mode) every input element lies in at most one
window and gets ``dY / (kh * kw)`` of it, the elements past the last full window none. ``AvgPool2d`` here
computes that gradient from dY alone, so a BatchNorm output that only the pool reads is not kept for the
backward. Forward and gradient are bit-identical to ``nn.AvgPool2d``'s: the forward is its call, and the
gradient is the one division the ATen kernels make, by a power of two (the lean path is taken only then, so
dividing and multiplying by the reciprocal round alike), added to zero.

``nn.MaxPool2d``'s autograd saves its input and the int64 flat index of each window's maximum, although the
gradient reads only the indices. Over non-overlapping windows each index is the maximum's position inside its
window, ``(h % kh) * kw + w % kw``; ``MaxPool2d`` here keeps that position as uint8 (1 byte a window instead of
an int64 and the window's kh * kw input elements) and routes dY to it, added to zero as the ATen kernels do:
forward and gradient bit-identical.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AvgPool2d", "MaxPool2d"]


class _ShapeOnlyAvgPool2d(torch.autograd.Function):
    """avg_pool2d with stride = kernel, no padding, floor mode; saves x's shape, not x."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
        ctx.shape, ctx.kernel = x.shape, kernel
        return F.avg_pool2d(x, kernel, kernel)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        kh, kw = ctx.kernel
        height, width = ctx.shape[-2:]
        lead, (rows, cols) = grad.shape[:-2], grad.shape[-2:]
        share = (grad / (kh * kw))[..., :, None, :, None].expand(*lead, rows, kh, cols, kw)
        grad_x = share.reshape(*lead, rows * kh, cols * kw)
        if rows * kh != height or cols * kw != width:  # the rows / columns no window covers
            grad_x = F.pad(grad_x, (0, width - cols * kw, 0, height - rows * kh))
        return grad_x, None


class _WindowIndexMaxPool2d(torch.autograd.Function):
    """max_pool2d with stride = kernel, no padding, dilation 1, floor mode; saves the maximum's position inside
    each window (uint8) and x's shape."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
        y, flat = F.max_pool2d(x, kernel, kernel, return_indices=True)
        kh, kw = kernel
        width = x.shape[-1]
        # windows start at multiples of (kh, kw), so the row / column inside the window is h % kh / w % kw
        where = (flat // width % kh * kw + flat % width % kw).to(torch.uint8)
        ctx.save_for_backward(where)
        ctx.shape, ctx.kernel = x.shape, kernel
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (where,) = ctx.saved_tensors
        kh, kw = ctx.kernel
        height, width = ctx.shape[-2:]
        lead, (rows, cols) = grad.shape[:-2], grad.shape[-2:]
        slots = torch.arange(kh * kw, device=grad.device, dtype=torch.uint8)
        # 0 + dY at the maximum (the ATen kernels accumulate into zeros: -0.0 becomes +0.0), 0 elsewhere
        picked = torch.where(where[..., None] == slots, (grad + 0)[..., None], grad.new_zeros(()))
        grad_x = picked.reshape(*lead, rows, cols, kh, kw).transpose(-3, -2).reshape(*lead, rows * kh, cols * kw)
        if rows * kh != height or cols * kw != width:  # the rows / columns no window covers
            grad_x = F.pad(grad_x, (0, width - cols * kw, 0, height - rows * kh))
        return grad_x, None


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class _LeanPool:
    """What the two lean pools share: the ``lean`` switch, the tiling test and the dispatch. A subclass names its
    autograd Function (``_lean``) and adds its own conditions (``_allows``)."""

    _lean: type[torch.autograd.Function]

    def lean_for(self, x: torch.Tensor) -> bool:
        """Whether a call on ``x`` takes the lean backward: windows that tile x (stride = kernel size, no padding,
        floor mode) and the subclass's own conditions."""
        kernel = _pair(self.kernel_size)
        stride = _pair(self.stride if self.stride else self.kernel_size)
        return (
            self.lean
            and x.requires_grad
            and x.dim() in (3, 4)
            and stride == kernel
            and _pair(self.padding) == (0, 0)
            and not self.ceil_mode
            and x.shape[-2] >= kernel[0]
            and x.shape[-1] >= kernel[1]
            and self._allows(kernel)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.lean_for(x):
            return self._lean.apply(x, _pair(self.kernel_size))
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, lean={self.lean}"


class AvgPool2d(_LeanPool, nn.AvgPool2d):
    """``nn.AvgPool2d`` (same arguments, no parameters, same numbers) whose backward needs only the input's shape
    where the windows tile the input: stride = kernel size, no padding, ``ceil_mode=False``, no
    ``divisor_override``, a window area that is a power of two, and ``lean=True``. Otherwise the plain layer.

    Args:
        *args: ``nn.AvgPool2d``'s.
        lean (bool): keep only the shape for the backward where the settings allow. Default: ``True``.
        **kwargs: ``nn.AvgPool2d``'s.
    """

    _lean = _ShapeOnlyAvgPool2d

    def __init__(self, *args, lean: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lean = bool(lean)

    def _allows(self, kernel: tuple[int, int]) -> bool:
        area = kernel[0] * kernel[1]
        return self.divisor_override is None and area & (area - 1) == 0


class MaxPool2d(_LeanPool, nn.MaxPool2d):
    """``nn.MaxPool2d`` (same arguments, no parameters, same numbers) whose backward keeps, per window, only the
    position of its maximum (uint8) where the windows tile the input: stride = kernel size, no padding, dilation
    1, ``ceil_mode=False``, ``return_indices=False``, at most 256 elements a window, and ``lean=True``. Otherwise
    the plain layer.

    Args:
        *args: ``nn.MaxPool2d``'s.
        lean (bool): keep only the window positions for the backward where the settings allow. Default: ``True``.
        **kwargs: ``nn.MaxPool2d``'s.
    """

    _lean = _WindowIndexMaxPool2d

    def __init__(self, *args, lean: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lean = bool(lean)

    def _allows(self, kernel: tuple[int, int]) -> bool:
        return _pair(self.dilation) == (1, 1) and not self.return_indices and kernel[0] * kernel[1] <= 256
