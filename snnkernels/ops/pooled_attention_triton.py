"""Triton sweeps of the pooled attentions as ``torch.library`` ops (``snnkernels::rowwise_*``).

Each op is one pass over full-size [T, B, C, H, W] tensors (kernels in
``snnkernels.kernels.triton.pooled_attention``); the tiny per-(t, b, c) stages between them are plain torch in
``snnkernels.ops.pooled_attention``, which also owns the autograd. The ops have fake implementations so
``torch.compile`` traces through them, and run on CUDA tensors, or on CPU tensors under Triton's
interpreter (tests).

Layout contract: every full-size tensor passed to one call has the strides of the first one (DTA's NA
may have its own: T-NA's [B, T] output is read in place), and each H * W plane is contiguous (``rows_layout`` /
``match_layout`` of ``snnkernels.ops.layout`` make it so); per-row tensors are dense fp32 [T, B, C].
"""

from __future__ import annotations

import torch

from ..kernels.triton import pooled_attention as K
from .layout import na_strides, rows_layout
from .registry import (
    SAMPLE_SHAPE,
    rand,
    randn,
    triton_entry,
)
from .triton_launch import launch_rows, per_row

__all__ = ["rows_layout", "row_sums", "row_map_fwd", "row_map_bwd", "dta_fwd", "dta_bwd", "GATE", "CROSS"]

GATE, CROSS = K.GATE, K.CROSS


def _na_kwargs(na: torch.Tensor) -> dict[str, int]:
    return dict(zip(("nst", "nsb", "nsc"), na_strides(na), strict=True))


def _row_vector(x: torch.Tensor) -> torch.Tensor:
    return torch.empty(x.shape[:3], dtype=torch.float32, device=x.device)


@torch.library.custom_op("snnkernels::rowwise_sums", mutates_args=(), device_types=("cpu", "cuda"))
def row_sums(a: torch.Tensor, b: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum_hw a, sum_hw a * b) per (t, b, c), fp32 [T, B, C]; the second is empty without ``b``."""
    sums = _row_vector(a)
    dots = _row_vector(a) if b is not None else a.new_empty((0,), dtype=torch.float32)
    if sums.numel() and a.shape[3] * a.shape[4] == 0:
        sums.zero_(), dots.zero_()
    launch_rows(K.row_sums_kernel, a, a, a if b is None else b, sums, sums if b is None else dots, HAS_B=b is not None)
    return sums, dots


@row_sums.register_fake
def _(a, b):
    return _row_vector(a), _row_vector(a) if b is not None else a.new_empty((0,), dtype=torch.float32)


@torch.library.custom_op("snnkernels::rowwise_map_fwd", mutates_args=(), device_types=("cpu", "cuda"))
def row_map_fwd(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor | None, mode: int) -> torch.Tensor:
    """``x * a`` (mode GATE) or ``(x + a) * (x + b)`` (mode CROSS), a and b per row, in x's layout."""
    a, b = per_row(a), per_row(b)
    y = torch.empty_like(x)
    launch_rows(K.row_map_fwd_kernel, x, x, a, a if b is None else b, y, MODE=mode)
    return y


@row_map_fwd.register_fake
def _(x, a, b, mode):
    return torch.empty_like(x)


@torch.library.custom_op("snnkernels::rowwise_map_bwd", mutates_args=(), device_types=("cpu", "cuda"))
def row_map_bwd(
    grad_y: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor | None, dz: torch.Tensor, mode: int
) -> torch.Tensor:
    """dL/dx of the map plus the pooled path's per-row ``dz`` (already divided by H * W)."""
    a, b, dz = per_row(a), per_row(b), per_row(dz)
    dx = torch.empty_like(x)
    launch_rows(K.row_map_bwd_kernel, x, grad_y, x, a, a if b is None else b, dz, dx, MODE=mode)
    return dx


@row_map_bwd.register_fake
def _(grad_y, x, a, b, dz, mode):
    return torch.empty_like(x)


@torch.library.custom_op("snnkernels::rowwise_dta_fwd", mutates_args=(), device_types=("cpu", "cuda"))
def dta_fwd(
    x: torch.Tensor, na: torch.Tensor, s: torch.Tensor, a: torch.Tensor, b: torch.Tensor, na_bias: torch.Tensor | None
) -> torch.Tensor:
    """``sig(na * (x + a) * (x + b)) * s``, in x's layout and dtype; with ``na_bias`` (per row) the given
    ``na`` is T-NA's bias-free decoding output and ``na + na_bias + x`` is used."""
    a, b, na_bias = per_row(a), per_row(b), per_row(na_bias)
    y = torch.empty_like(x)
    launch_rows(
        K.dta_fwd_kernel,
        x,
        x,
        na,
        s,
        a,
        b,
        a if na_bias is None else na_bias,
        y,
        **_na_kwargs(na),
        NA_RESIDUAL=na_bias is not None,
    )
    return y


@dta_fwd.register_fake
def _(x, na, s, a, b, na_bias):
    return torch.empty_like(x)


def _dta_bwd_outputs(x, na, s, need_grad_s, residual):
    dx = torch.empty_like(x, dtype=torch.float32)  # fp32: the pooled path is added to it afterwards
    dna = torch.empty_like(na)
    ds = torch.empty_like(s) if need_grad_s else s.new_empty((0,))
    na_sums = _row_vector(x) if residual else x.new_empty((0,), dtype=torch.float32)
    return dx, dna, ds, _row_vector(x), _row_vector(x), na_sums


@torch.library.custom_op("snnkernels::rowwise_dta_bwd", mutates_args=(), device_types=("cpu", "cuda"))
def dta_bwd(
    grad_y: torch.Tensor,
    x: torch.Tensor,
    na: torch.Tensor,
    s: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    na_bias: torch.Tensor | None,
    need_grad_s: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One sweep: (dx of the T-XA product (and of the residual with ``na_bias``) without the pooled path
    (fp32), dna, ds, sum_hw dxa, sum_hw dxa * x, sum_hw dna (with ``na_bias``, else empty))."""
    a, b, na_bias = per_row(a), per_row(b), per_row(na_bias)
    residual = na_bias is not None
    dx, dna, ds, sums, dots, na_sums = _dta_bwd_outputs(x, na, s, need_grad_s, residual)
    if sums.numel() and x.shape[3] * x.shape[4] == 0:
        sums.zero_(), dots.zero_(), na_sums.zero_()
    launch_rows(
        K.dta_bwd_kernel,
        x,
        grad_y,
        x,
        na,
        s,
        a,
        b,
        na_bias if residual else a,
        dx,
        dna,
        ds if need_grad_s else dna,
        sums,
        dots,
        na_sums if residual else sums,
        **_na_kwargs(na),
        NEED_DS=need_grad_s,
        NA_RESIDUAL=residual,
    )
    return dx, dna, ds, sums, dots, na_sums


@dta_bwd.register_fake
def _(grad_y, x, na, s, a, b, na_bias, need_grad_s):
    return _dta_bwd_outputs(x, na, s, need_grad_s, na_bias is not None)


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck, the Triton kernels launched.


def _rows(dev: str) -> tuple:
    """(x, na, s, per-row values) of the pooled attentions' sweeps."""
    T, B, C, H, W = SAMPLE_SHAPE
    x = randn(dev, T, B, C, H, W)
    return x, torch.randn_like(x), (torch.rand_like(x) > 0.5).float(), rand(dev, T, B, C)


def _row_sums_samples(dev: str) -> list[tuple]:
    x, na, _, _ = _rows(dev)
    return [(x, None), (x, na)]


def _row_map_fwd_samples(dev: str) -> list[tuple]:
    x, _, _, r = _rows(dev)
    return [(x, r, r * 2, mode) for mode in (0, 1)]  # GATE, CROSS (kernels/triton/rowwise.py)


def _row_map_bwd_samples(dev: str) -> list[tuple]:
    x, na, _, r = _rows(dev)
    return [(na, x, r, r * 2, r / 3, mode) for mode in (0, 1)]


def _dta_fwd_samples(dev: str) -> list[tuple]:
    x, na, s, r = _rows(dev)
    return [(x, na, s, r, r * 2, bias) for bias in (None, r / 5)]


def _dta_bwd_samples(dev: str) -> list[tuple]:
    x, na, s, r = _rows(dev)
    return [
        (na, x, na, s, r, r * 2, None, True),
        (na, x, na, s, r, r * 2, r / 5, True),
        (na, x, na, s, r, r * 2, None, False),
    ]


OPS = (
    triton_entry("rowwise_sums", __name__, _row_sums_samples, "row_sums_kernel"),
    triton_entry("rowwise_map_fwd", __name__, _row_map_fwd_samples, "row_map_fwd_kernel"),
    triton_entry("rowwise_map_bwd", __name__, _row_map_bwd_samples, "row_map_bwd_kernel"),
    triton_entry("rowwise_dta_fwd", __name__, _dta_fwd_samples, "dta_fwd_kernel"),
    triton_entry("rowwise_dta_bwd", __name__, _dta_bwd_samples, "dta_bwd_kernel"),
)
