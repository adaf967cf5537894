"""MA-SNN attention sweeps (``snnkernels.kernels.triton.ma_snn``) as ``torch.library`` ops with fakes.

Same layout contract as ``pooled_attention_triton``: every full-size tensor of one call has X's strides with
contiguous H * W planes; per-row tensors are dense fp32 [T, B, C]; per-pixel maps dense fp32 [B, H * W].
Partial results of the pixel programs are combined here in a fixed order (deterministic).
"""

from __future__ import annotations

import torch
import triton

from ..backends import triton_interpreter_enabled
from ..kernels.triton import ma_snn as K
from ._device import on_device_of
from .registry import (
    SAMPLE_SHAPE,
    rand,
    randn,
    registered_op,
    triton_entry,
)
from .triton_launch import COMPILE_OPTIONS, launch_rows, per_row

__all__ = ["row_stats", "pixel_stats", "apply_gates", "bwd_pixel_sums", "row_dot_map", "bwd_input"]


def _pixel_grid(B: int, S: int, rows: int) -> tuple[int, int, int, int]:
    """(BLOCK_P, number of pixel blocks, SPLIT, rows per split). On the GPU enough (b, block, slice)
    programs to fill the machine (~1024); the interpreter takes whole planes but still two slices where
    it can, so the tests cover the combination of partial results."""
    if triton_interpreter_enabled():
        block_p = min(triton.next_power_of_2(max(S, 1)), 4096)
        split = 2 if rows >= 2 else 1
    else:
        block_p = min(max(triton.next_power_of_2(S), 32), 256)
        programs = B * triton.cdiv(S, block_p)
        split = max(1, min(rows, triton.cdiv(1024, max(programs, 1))))
    per_split = triton.cdiv(rows, split)
    return block_p, triton.cdiv(S, block_p), triton.cdiv(rows, per_split), per_split


def _launch_pixels(kernel, x: torch.Tensor, *tensors, extra=(), **constexprs) -> None:
    T, B, C, H, W = x.shape
    S = H * W
    if x.numel() == 0:  # before the grid: T * C = 0 would divide by zero there
        return
    block_p, n_pblk, split, per_split = _pixel_grid(B, S, T * C)
    with on_device_of(x):
        kernel[(B * n_pblk, split)](
            *tensors,
            T,
            B,
            C,
            S,
            x.stride(0),
            x.stride(1),
            x.stride(2),
            per_split,
            *extra,
            **constexprs,
            BLOCK_P=block_p,
            num_warps=4 if block_p >= 128 else 1,
            **COMPILE_OPTIONS,
        )


def _rows(x):
    return torch.empty(x.shape[:3], dtype=torch.float32, device=x.device)


def _plane(x, dtype=torch.float32, lead: int | None = None):
    shape = (x.shape[1], x.shape[3] * x.shape[4]) if lead is None else (lead, x.shape[1], x.shape[3] * x.shape[4])
    return torch.empty(shape, dtype=dtype, device=x.device)


def _empty(x):
    return x.new_empty((0,), dtype=torch.float32)


@torch.library.custom_op("snnkernels::ma_row_stats", mutates_args=(), device_types=("cpu", "cuda"))
def row_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per (t, b, c): sum over H * W, max, and the max's first position (int32)."""
    sums, maxima, at = _rows(x), _rows(x), torch.empty(x.shape[:3], dtype=torch.int32, device=x.device)
    launch_rows(K.row_sum_max_kernel, x, x, sums, maxima, at)
    return sums, maxima, at


@row_stats.register_fake
def _(x):
    return _rows(x), _rows(x), torch.empty(x.shape[:3], dtype=torch.int32, device=x.device)


@torch.library.custom_op("snnkernels::ma_pixel_stats", mutates_args=(), device_types=("cpu", "cuda"))
def pixel_stats(x: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per (b, pixel) over all (t, c): sum and max of scale[t, b, c] * X, and the max's first (t, c) index
    j = t * C + c (int32). [B, H * W] each."""
    scale = per_row(scale)
    T, B, C, H, W = x.shape
    _, _, split, _ = _pixel_grid(B, H * W, T * C)
    sums, maxima = _plane(x, lead=split), _plane(x, lead=split)
    at = _plane(x, torch.int32, lead=split)
    _launch_pixels(K.pixel_stats_kernel, x, x, scale, sums, maxima, at)
    # slices are in increasing j: the first slice holding the maximum holds its first index
    best = maxima.amax(dim=0)
    first = (maxima == best).to(torch.int8).argmax(dim=0, keepdim=True)
    return sums.sum(dim=0), best, at.gather(0, first.long()).squeeze(0)


@pixel_stats.register_fake
def _(x, scale):
    return _plane(x), _plane(x), _plane(x, torch.int32)


@torch.library.custom_op("snnkernels::ma_apply", mutates_args=(), device_types=("cpu", "cuda"))
def apply_gates(x: torch.Tensor, scale: torch.Tensor, spatial: torch.Tensor | None) -> torch.Tensor:
    """relu(X) * scale[t, b, c] (* spatial[b, p]) in X's layout and dtype."""
    scale, spatial = per_row(scale), per_row(spatial)
    y = torch.empty_like(x)
    launch_rows(K.apply_kernel, x, x, scale, scale if spatial is None else spatial, y, HAS_MAP=spatial is not None)
    return y


@apply_gates.register_fake
def _(x, scale, spatial):
    return torch.empty_like(x)


@torch.library.custom_op("snnkernels::ma_bwd_pixel_sums", mutates_args=(), device_types=("cpu", "cuda"))
def bwd_pixel_sums(
    grad_y: torch.Tensor, x: torch.Tensor, scale: torch.Tensor, spatial: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """With GR = dY * relu(X): (sum_(t,c) GR * scale per pixel [B, H * W] (empty without ``spatial``),
    sum_p GR * spatial per (t, b, c))."""
    scale, spatial = per_row(scale), per_row(spatial)
    T, B, C, H, W = x.shape
    _, n_pblk, split, _ = _pixel_grid(B, H * W, T * C)
    dmap = _plane(x, lead=split) if spatial is not None else _empty(x)
    dscale = torch.empty((n_pblk, T, B, C), dtype=torch.float32, device=x.device)
    _launch_pixels(
        K.bwd_pixel_sums_kernel,
        x,
        grad_y,
        x,
        scale,
        scale if spatial is None else spatial,
        dmap if spatial is not None else dscale,
        dscale,
        extra=(n_pblk,),
        HAS_MAP=spatial is not None,
    )
    return (dmap.sum(dim=0) if spatial is not None else dmap), dscale.sum(dim=0)


@bwd_pixel_sums.register_fake
def _(grad_y, x, scale, spatial):
    return (_plane(x) if spatial is not None else _empty(x)), _rows(x)


@torch.library.custom_op("snnkernels::ma_row_dot_map", mutates_args=(), device_types=("cpu", "cuda"))
def row_dot_map(x: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
    """sum_p X[t, b, c, p] * spatial[b, p], fp32 [T, B, C]."""
    out = _rows(x)
    launch_rows(K.row_dot_map_kernel, x, x, per_row(spatial), out)
    return out


@row_dot_map.register_fake
def _(x, spatial):
    return _rows(x)


@torch.library.custom_op("snnkernels::ma_bwd_input", mutates_args=(), device_types=("cpu", "cuda"))
def bwd_input(
    grad_y: torch.Tensor | None,
    x: torch.Tensor,
    scale: torch.Tensor,
    spatial: torch.Tensor | None,
    avg_map: torch.Tensor | None,
    max_map: torch.Tensor | None,
    max_at: torch.Tensor | None,
    row_add: torch.Tensor,
    row_max_grad: torch.Tensor,
    row_at: torch.Tensor,
    grad_x_part: torch.Tensor | None = None,
) -> torch.Tensor:
    """dX of the whole attention (see ``bwd_input_kernel``), in X's layout and dtype; without ``grad_y``
    the poolings' paths only, plus ``grad_x_part`` (X's layout) when given: the apply pass's share that
    the gated neuron's backward computed."""
    scale, spatial, avg_map, max_map = per_row(scale), per_row(spatial), per_row(avg_map), per_row(max_map)
    row_add, row_max_grad = per_row(row_add), per_row(row_max_grad)
    has_map = spatial is not None
    dx = torch.empty_like(x)
    gy = grad_y if grad_y is not None else (grad_x_part if grad_x_part is not None else x)
    launch_rows(
        K.bwd_input_kernel,
        x,
        gy,
        x,
        scale,
        spatial if has_map else scale,
        avg_map if has_map else scale,
        max_map if has_map else scale,
        max_at.contiguous() if has_map else row_at,
        row_add,
        row_max_grad,
        row_at.contiguous(),
        dx,
        HAS_MAP=has_map,
        HAS_DIRECT=grad_y is not None,
        ADD_PART=grad_y is None and grad_x_part is not None,
    )
    return dx


@bwd_input.register_fake
def _(grad_y, x, scale, spatial, avg_map, max_map, max_at, row_add, row_max_grad, row_at, grad_x_part=None):
    return torch.empty_like(x)


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck, the Triton kernels launched.


def _ma_inputs(dev: str) -> tuple:
    T, B, C, H, W = SAMPLE_SHAPE
    return randn(dev, T, B, C, H, W), rand(dev, T, B, C), rand(dev, B, H * W)


def _ma_bwd_input_samples(dev: str) -> list[tuple]:
    T, B, C, H, W = SAMPLE_SHAPE
    x, scale, spatial = _ma_inputs(dev)
    _, _, row_at = registered_op("ma_row_stats")(x)
    _, _, pix_at = registered_op("ma_pixel_stats")(x, scale)
    avg, top, row_add, row_max = rand(dev, B, H * W), rand(dev, B, H * W), randn(dev, T, B, C), randn(dev, T, B, C)
    return [
        (torch.randn_like(x), x, scale, spatial, avg, top, pix_at, row_add, row_max, row_at, None),
        (None, x, scale, None, None, None, None, row_add, row_max, row_at, torch.randn_like(x)),
    ]


OPS = (
    triton_entry("ma_row_stats", __name__, lambda d: [_ma_inputs(d)[:1]], "row_sum_max_kernel"),
    triton_entry("ma_pixel_stats", __name__, lambda d: [_ma_inputs(d)[:2]], "pixel_stats_kernel"),
    triton_entry("ma_apply", __name__, lambda d: [(*_ma_inputs(d)[:2], None), _ma_inputs(d)], "apply_kernel"),
    triton_entry(
        "ma_bwd_pixel_sums",
        __name__,
        lambda d: [(torch.randn_like(x), x, s, m) for x, s, g in [_ma_inputs(d)] for m in (g, None)],
        "bwd_pixel_sums_kernel",
    ),
    triton_entry("ma_row_dot_map", __name__, lambda d: [_ma_inputs(d)[::2]], "row_dot_map_kernel"),
    triton_entry("ma_bwd_input", __name__, _ma_bwd_input_samples, "bwd_input_kernel"),
)
