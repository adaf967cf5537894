"""Triton launchers of the spike packing (``kernels.triton.spike_pack``) as ``torch.library`` ops.

``spike_pack_triton(x, check)``: uint8 [ceil(n / 8)] in the layout of docs/spike_pack.md "Layout"; with
``check`` the kernel also reports the first element that is neither 0 nor 1 (one int64 flag, min over the
programs) and the op raises a ValueError naming it: one pass over x, the flag read back once (a sync).
``spike_unpack_triton(packed, shape, dtype)``: the 0 / 1 tensor of ``shape`` and ``dtype``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton

from ..backends import triton_interpreter_enabled
from ..kernels.triton.spike_pack import spike_pack_fwd_kernel, spike_unpack_fwd_kernel
from ..reference.spike_pack import non_binary_error, packed_numel
from ._device import on_device_of
from .registry import SAMPLE_SHAPE, triton_entry
from .triton_launch import COMPILE_OPTIONS

__all__ = ["spike_pack_triton", "spike_unpack_triton", "pack_block"]


def pack_block(n_bytes: int) -> tuple[int, int]:
    """(BLOCK bytes a program, num_warps): 1024 elements a program on the GPU (8 per thread of 4 warps, the
    tile's 8 bits of a byte in one thread's registers); the interpreter takes large tiles."""
    if triton_interpreter_enabled():
        return min(triton.next_power_of_2(max(n_bytes, 1)), 4096), 1
    return 128, 4


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


@torch.library.custom_op("snnkernels::spike_pack_triton", mutates_args=(), device_types=("cpu", "cuda"))
def spike_pack_triton(x: torch.Tensor, check: bool) -> torch.Tensor:
    """uint8 [ceil(x.numel() / 8)] of the spikes of x (any float dtype; read in its contiguous order)."""
    x = x.contiguous()
    n = x.numel()
    n_bytes = packed_numel(n)
    packed = torch.empty(n_bytes, dtype=torch.uint8, device=x.device)
    if n == 0:
        return packed
    first_bad = torch.full((1,), n, dtype=torch.int64, device=x.device)
    block, warps = pack_block(n_bytes)
    with on_device_of(x):
        spike_pack_fwd_kernel[(triton.cdiv(n_bytes, block),)](
            x, packed, first_bad, n, n_bytes, BLOCK=block, num_warps=warps, **COMPILE_OPTIONS
        )
    if check:
        index = int(first_bad.item())
        if index < n:
            raise non_binary_error(x, index)
    return packed


@spike_pack_triton.register_fake
def _(x, check):
    return x.new_empty(packed_numel(x.numel()), dtype=torch.uint8)


@torch.library.custom_op("snnkernels::spike_unpack_triton", mutates_args=(), device_types=("cpu", "cuda"))
def spike_unpack_triton(packed: torch.Tensor, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """The 0 / 1 tensor of ``shape`` and ``dtype`` that ``packed`` (uint8, contiguous) holds."""
    n = _numel(shape)
    out = torch.empty(tuple(shape), dtype=dtype, device=packed.device)
    n_bytes = packed_numel(n)
    if packed.numel() < n_bytes:
        raise ValueError(f"spike_unpack: {tuple(shape)} needs {n_bytes} packed bytes, got {packed.numel()}")
    if n == 0:
        return out
    block, warps = pack_block(n_bytes)
    with on_device_of(packed):
        spike_unpack_fwd_kernel[(triton.cdiv(n_bytes, block),)](
            packed.contiguous(), out, n, n_bytes, BLOCK=block, num_warps=warps, **COMPILE_OPTIONS
        )
    return out


@spike_unpack_triton.register_fake
def _(packed, shape, dtype):
    return packed.new_empty(tuple(shape), dtype=dtype)


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck, the Triton kernels launched.


def spike_samples(dev: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (torch.rand(*SAMPLE_SHAPE, device=dev) > 0.5).to(dtype)


def spike_pack_samples(dev: str) -> list[tuple]:
    """A 0 / 1 tensor whose element count is not a multiple of 8, checked and not, in fp32 and bf16."""
    return [(spike_samples(dev), True), (spike_samples(dev, torch.bfloat16), False)]


def spike_unpack_samples(dev: str) -> list[tuple]:
    T, B, C, H, W = SAMPLE_SHAPE
    packed = torch.randint(0, 256, ((T * B * C * H * W + 7) // 8,), dtype=torch.uint8, device=dev)
    return [(packed, [T, B, C, H, W], torch.float32), (packed, [T * B, C, H * W], torch.float16)]


OPS = (
    triton_entry("spike_pack_triton", __name__, spike_pack_samples, "spike_pack_fwd_kernel"),
    triton_entry("spike_unpack_triton", __name__, spike_unpack_samples, "spike_unpack_fwd_kernel"),
)
