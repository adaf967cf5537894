"""Triton sweeps of the pooled attentions as ``torch.library`` ops (``snnkernels::rowwise_*``).

Each op is one pass over full-size [T, B, C, H, W] tensors (kernels in
``snnkernels.kernels.triton.pooled_attention``); the tiny per-(t, b, c) stages between them are plain torch in
``snnkernels.ops.pooled_attention``, which also owns the autograd. The ops have fake implementations so
``torch.compile`` traces through them, and run on CUDA tensors, or on CPU tensors under Triton's
interpreter (tests).

Layout contract: every full-size tensor passed to one call has the strides of the first one (DTA's NA
may have its own: T-NA's [B, T] output is read in place), and each H * W plane is contiguous (``rows_layout`` / ``match_layout`` make it so); per-row tensors are dense fp32
[T, B, C].
"""
from __future__ import annotations

import torch
import triton

from ..backends import triton_interpreter_enabled
from ..kernels.triton import pooled_attention as K
from ._device import on_device_of
from .leaky_triton import COMPILE_OPTIONS

__all__ = ["rows_layout", "row_sums", "row_map_fwd", "row_map_bwd", "dta_fwd", "dta_bwd", "GATE", "CROSS"]

GATE, CROSS = K.GATE, K.CROSS


def rows_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` [T, B, C, H, W] itself when its planes are contiguous rows in the [T, B, C] or [B, T, C]
    storage order (the two layouts the modules take), else a contiguous copy."""
    if x.is_contiguous() or x.transpose(0, 1).is_contiguous():
        return x
    return x.contiguous()


def fresh_float(value: float) -> float:
    """``value`` itself (``* 1.0`` is exact for every float, -0.0, inf and NaN included), as a new value: under
    ``torch.compile(dynamic=True)`` a module's float settings are symbolic, and dynamo fails when one
    symbolic float enters several autograd.Functions (a time loop's steps), but not when each gets its own."""
    return value * 1.0


def fresh_settings(settings) -> tuple:
    """A neuron's settings as a tuple, each float through ``fresh_float`` (the others as they are)."""
    return tuple(fresh_float(v) if isinstance(v, float) else v for v in settings)


def _tiles(R: int, S: int) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_S, num_warps). On the GPU a tile holds 2048 values (16 per thread of 4 warps), whole
    rows when S <= 1024 so short rows do not waste lanes; the interpreter gets one large tile per program."""
    if triton_interpreter_enabled():
        block_s = min(triton.next_power_of_2(max(S, 1)), 4096)
        return min(max(8192 // block_s, 1), triton.next_power_of_2(R)), block_s, 1
    block_s = min(max(triton.next_power_of_2(S), 16), 1024)
    return max(2048 // block_s, 1), block_s, 4


def half_tiles(R: int, S: int) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_S, num_warps): whole rows walked along S, as ``_tiles`` but half its GPU tile (1024
    values), for sweeps whose backward keeps four row accumulators live besides its loads (the STAA step
    kernels and loop)."""
    if triton_interpreter_enabled():
        block_s = min(triton.next_power_of_2(max(S, 1)), 4096)
        return min(max(8192 // block_s, 1), triton.next_power_of_2(max(R, 1))), block_s, 1
    block_s = min(max(triton.next_power_of_2(S), 16), 512)
    return max(1024 // block_s, 1), block_s, 4


def channel_tiles(C: int, S: int, min_pixels: int) -> tuple[int, int, int]:
    """(BLOCK_C, BLOCK_P, num_warps) of kernels whose program holds ALL C channels of a block of pixels (the
    global-context sweeps, the TCSA step): 2048 values a tile on the GPU, at least ``min_pixels`` pixels,
    8 warps from C = 256; the interpreter takes bigger tiles."""
    block_c = triton.next_power_of_2(max(C, 1))
    s_cap = triton.next_power_of_2(max(S, 1))
    if triton_interpreter_enabled():
        return block_c, max(min((1 << 15) // block_c, s_cap), 1), 1
    return block_c, max(min(2048 // block_c, s_cap), min_pixels), 8 if block_c >= 256 else 4


def _geometry(x: torch.Tensor) -> tuple[int, int, int, int, int, int, int]:
    T, B, C, H, W = x.shape
    assert x.stride(4) == 1 and (H == 1 or x.stride(3) == W), "rows must be contiguous H * W planes"
    return T * B * C, H * W, B, C, x.stride(0), x.stride(1), x.stride(2)


def _launch(kernel, x: torch.Tensor, *tensors, **constexprs) -> None:
    R, S, B, C, st, sb, sc = _geometry(x)
    if R == 0 or S == 0:
        return
    block_r, block_s, warps = _tiles(R, S)
    with on_device_of(x):
        kernel[(triton.cdiv(R, block_r),)](
            *tensors, R, S, B, C, st, sb, sc, **constexprs,
            BLOCK_R=block_r, BLOCK_S=block_s, num_warps=warps, **COMPILE_OPTIONS,
        )


def na_strides(na: torch.Tensor) -> tuple[int, int, int]:
    """DTA's NA (and dNA) strides over (t, b, c): NA is read in place in its own storage order."""
    T, B, C, H, W = na.shape
    assert na.stride(4) == 1 and (H == 1 or na.stride(3) == W), "NA's H * W planes must be contiguous"
    return na.stride(0), na.stride(1), na.stride(2)


def _na_kwargs(na: torch.Tensor) -> dict[str, int]:
    return dict(zip(("nst", "nsb", "nsc"), na_strides(na)))


def _per_row(v: torch.Tensor | None) -> torch.Tensor | None:
    """A per-row input as the kernels index it: dense fp32 (the tiny stages hand over permuted views)."""
    return None if v is None else v.to(torch.float32).contiguous()


def _row_vector(x: torch.Tensor) -> torch.Tensor:
    return torch.empty(x.shape[:3], dtype=torch.float32, device=x.device)


@torch.library.custom_op("snnkernels::rowwise_sums", mutates_args=(), device_types=("cpu", "cuda"))
def row_sums(a: torch.Tensor, b: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum_hw a, sum_hw a * b) per (t, b, c), fp32 [T, B, C]; the second is empty without ``b``."""
    sums = _row_vector(a)
    dots = _row_vector(a) if b is not None else a.new_empty((0,), dtype=torch.float32)
    if sums.numel() and a.shape[3] * a.shape[4] == 0:
        sums.zero_(), dots.zero_()
    _launch(K.row_sums_kernel, a, a, a if b is None else b, sums, sums if b is None else dots, HAS_B=b is not None)
    return sums, dots


@row_sums.register_fake
def _(a, b):
    return _row_vector(a), _row_vector(a) if b is not None else a.new_empty((0,), dtype=torch.float32)


@torch.library.custom_op("snnkernels::rowwise_map_fwd", mutates_args=(), device_types=("cpu", "cuda"))
def row_map_fwd(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor | None, mode: int) -> torch.Tensor:
    """``x * a`` (mode GATE) or ``(x + a) * (x + b)`` (mode CROSS), a and b per row, in x's layout."""
    a, b = _per_row(a), _per_row(b)
    y = torch.empty_like(x)
    _launch(K.row_map_fwd_kernel, x, x, a, a if b is None else b, y, MODE=mode)
    return y


@row_map_fwd.register_fake
def _(x, a, b, mode):
    return torch.empty_like(x)


@torch.library.custom_op("snnkernels::rowwise_map_bwd", mutates_args=(), device_types=("cpu", "cuda"))
def row_map_bwd(grad_y: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor | None,
                dz: torch.Tensor, mode: int) -> torch.Tensor:
    """dL/dx of the map plus the pooled path's per-row ``dz`` (already divided by H * W)."""
    a, b, dz = _per_row(a), _per_row(b), _per_row(dz)
    dx = torch.empty_like(x)
    _launch(K.row_map_bwd_kernel, x, grad_y, x, a, a if b is None else b, dz, dx, MODE=mode)
    return dx


@row_map_bwd.register_fake
def _(grad_y, x, a, b, dz, mode):
    return torch.empty_like(x)


@torch.library.custom_op("snnkernels::rowwise_dta_fwd", mutates_args=(), device_types=("cpu", "cuda"))
def dta_fwd(x: torch.Tensor, na: torch.Tensor, s: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
            na_bias: torch.Tensor | None) -> torch.Tensor:
    """``sig(na * (x + a) * (x + b)) * s``, in x's layout and dtype; with ``na_bias`` (per row) the given
    ``na`` is T-NA's bias-free decoding output and ``na + na_bias + x`` is used."""
    a, b, na_bias = _per_row(a), _per_row(b), _per_row(na_bias)
    y = torch.empty_like(x)
    _launch(K.dta_fwd_kernel, x, x, na, s, a, b, a if na_bias is None else na_bias, y, **_na_kwargs(na),
            NA_RESIDUAL=na_bias is not None)
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
def dta_bwd(grad_y: torch.Tensor, x: torch.Tensor, na: torch.Tensor, s: torch.Tensor, a: torch.Tensor,
            b: torch.Tensor, na_bias: torch.Tensor | None, need_grad_s: bool
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One sweep: (dx of the T-XA product (and of the residual with ``na_bias``) without the pooled path
    (fp32), dna, ds, sum_hw dxa, sum_hw dxa * x, sum_hw dna (with ``na_bias``, else empty))."""
    a, b, na_bias = _per_row(a), _per_row(b), _per_row(na_bias)
    residual = na_bias is not None
    dx, dna, ds, sums, dots, na_sums = _dta_bwd_outputs(x, na, s, need_grad_s, residual)
    if sums.numel() and x.shape[3] * x.shape[4] == 0:
        sums.zero_(), dots.zero_(), na_sums.zero_()
    _launch(K.dta_bwd_kernel, x, grad_y, x, na, s, a, b, na_bias if residual else a, dx, dna,
            ds if need_grad_s else dna, sums, dots, na_sums if residual else sums, **_na_kwargs(na),
            NEED_DS=need_grad_s, NA_RESIDUAL=residual)
    return dx, dna, ds, sums, dots, na_sums


@dta_bwd.register_fake
def _(grad_y, x, na, s, a, b, na_bias, need_grad_s):
    return _dta_bwd_outputs(x, na, s, need_grad_s, na_bias is not None)
