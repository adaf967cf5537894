"""What every Triton launch of the ops shares: compile options, scalar arguments, tile sizes and grids.

Kernels over [T, B, C, H, W] tensors walk R rows of S = H * W contiguous values (``snnkernels.ops.layout``
makes the planes contiguous). Three tilings cover them:

- ``row_tiles``: a program owns BLOCK_R rows x the whole row (sweeps of one pass: the pooled attentions'
  row sums and maps, MA-SNN's and T-NA's sweeps), launched by ``launch_rows``;
- ``half_tiles``: as ``row_tiles`` with half the GPU tile (the STAA step kernels and loop);
- ``channel_tiles``: a program owns all C channels of a block of pixels (global context, the TCSA step);
- ``neuron_tiles`` / ``neuron_grid``: a program owns BLOCK_R rows x BLOCK_S columns of one step and walks
  all T steps with the neuron's state in registers (the gated and DTA neurons).
"""

from __future__ import annotations

import numpy as np
import torch
import triton

from ..backends import triton_interpreter_enabled
from ._device import on_device_of

__all__ = [
    "COMPILE_OPTIONS",
    "f32",
    "per_row",
    "row_tiles",
    "half_tiles",
    "channel_tiles",
    "row_geometry",
    "launch_rows",
    "neuron_tiles",
    "neuron_geometry",
    "neuron_grid",
]

# Round the charge op by op, like the eager reference and the backward's recompute: a contracted
# multiply-add would move h by an ulp and could flip a spike sitting at the threshold.
COMPILE_OPTIONS = {"enable_fp_fusion": False}


def f32(*values: float) -> list[float]:
    """Scalars rounded to fp32, as the compiled kernels receive them. Triton's interpreter would otherwise
    keep a Python float that fp32 cannot hold (e.g. 1e-40) in fp64 and compute differently."""
    return [float(np.float32(v)) for v in values]


def per_row(v: torch.Tensor | None) -> torch.Tensor | None:
    """A per-row input as the kernels index it: dense fp32 (the tiny stages hand over permuted views)."""
    return None if v is None else v.to(torch.float32).contiguous()


def row_tiles(R: int, S: int) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_S, num_warps). On the GPU a tile holds 2048 values (16 per thread of 4 warps), whole
    rows when S <= 1024 so short rows do not waste lanes; the interpreter gets one large tile per program."""
    if triton_interpreter_enabled():
        block_s = min(triton.next_power_of_2(max(S, 1)), 4096)
        return min(max(8192 // block_s, 1), triton.next_power_of_2(R)), block_s, 1
    block_s = min(max(triton.next_power_of_2(S), 16), 1024)
    return max(2048 // block_s, 1), block_s, 4


def half_tiles(R: int, S: int) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_S, num_warps): whole rows walked along S, as ``row_tiles`` but half its GPU tile (1024
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


def row_geometry(x: torch.Tensor) -> tuple[int, int, int, int, int, int, int]:
    """(R = T * B * C, S = H * W, B, C, and x's strides over t, b, c) of a [T, B, C, H, W] tensor."""
    T, B, C, H, W = x.shape
    assert x.stride(4) == 1 and (H == 1 or x.stride(3) == W), "rows must be contiguous H * W planes"
    return T * B * C, H * W, B, C, x.stride(0), x.stride(1), x.stride(2)


def launch_rows(kernel, x: torch.Tensor, *tensors, **constexprs) -> None:
    """Launch a row sweep over ``x``'s rows (``row_tiles``): the kernel takes ``tensors``, then
    (R, S, B, C, st, sb, sc), ``constexprs``, BLOCK_R and BLOCK_S."""
    R, S, B, C, st, sb, sc = row_geometry(x)
    if R == 0 or S == 0:
        return
    block_r, block_s, warps = row_tiles(R, S)
    with on_device_of(x):
        kernel[(triton.cdiv(R, block_r),)](
            *tensors,
            R,
            S,
            B,
            C,
            st,
            sb,
            sc,
            **constexprs,
            BLOCK_R=block_r,
            BLOCK_S=block_s,
            num_warps=warps,
            **COMPILE_OPTIONS,
        )


def neuron_tiles(R1: int, S: int) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_S, num_warps). GPU: 512 values per program forward (4 per thread), 256 backward-sized
    tiles keep the chunk's stashed potentials in registers; whole short rows so small planes waste no lanes.
    The interpreter takes one large tile."""
    if triton_interpreter_enabled():
        block_s = min(triton.next_power_of_2(max(S, 1)), 4096)
        return min(max(8192 // block_s, 1), triton.next_power_of_2(max(R1, 1))), block_s, 1
    block_s = min(max(triton.next_power_of_2(S), 16), 256)
    return max(256 // block_s, 1), block_s, 4


def neuron_geometry(x: torch.Tensor) -> tuple[int, int, int, int, int, int, int, int]:
    """(T, R1 = B * C, S = H * W, B, C, and x's strides over t, b, c) of a [T, B, C, H, W] tensor."""
    T, B, C, H, W = x.shape
    assert x.stride(4) == 1 and (H == 1 or x.stride(3) == W), "rows must be contiguous H * W planes"
    return T, B * C, H * W, B, C, x.stride(0), x.stride(1), x.stride(2)


def neuron_grid(x: torch.Tensor) -> tuple[tuple[int, int], int, int, int]:
    """(grid of row tiles x column tiles, BLOCK_R, BLOCK_S, num_warps) of a neuron kernel over ``x``."""
    _, R1, S, *_ = neuron_geometry(x)
    block_r, block_s, warps = neuron_tiles(R1, S)
    return (triton.cdiv(R1, block_r), triton.cdiv(S, block_s)), block_r, block_s, warps
