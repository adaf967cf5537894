"""Eager reference of the 1-bit spike packing (docs/spike_pack.md "Layout"). Never edit it to match a kernel.

Element i of ``x.reshape(-1)`` (the flattened contiguous order, n elements) is bit ``i % 8`` (least significant
first) of byte ``i // 8`` of a uint8 tensor of ``ceil(n / 8)`` bytes; the last byte's unused bits are 0. A bit
is 1 where the element is nonzero; packing is exact (unpack(pack(x)) == x) for tensors of 0s and 1s only, and
``check_binary`` names the first element that is not one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["packed_numel", "check_binary", "non_binary_error", "spike_pack_reference", "spike_unpack_reference"]


def packed_numel(n: int) -> int:
    """Bytes that hold ``n`` spikes."""
    return (n + 7) // 8


def non_binary_error(x: torch.Tensor, index: int) -> ValueError:
    """The error for flat element ``index`` of ``x`` (neither 0 nor 1)."""
    where = tuple(int(i) for i in torch.unravel_index(torch.tensor(index), x.shape)) if x.dim() else ()
    value = x.reshape(-1)[index].item()
    return ValueError(
        f"spike_pack packs spikes (a tensor of 0s and 1s) exactly, but element {where} (flat index {index} of "
        f"shape {tuple(x.shape)}) is {value!r}; pass check=False to pack (x != 0) instead"
    )


def check_binary(x: torch.Tensor) -> None:
    """Raise ``non_binary_error`` for the first element of ``x`` that is neither 0 nor 1 (NaN included)."""
    bad = (x != 0) & (x != 1)
    if bool(bad.any()):
        raise non_binary_error(x, int(bad.reshape(-1).nonzero()[0, 0]))


def spike_pack_reference(x: torch.Tensor, check: bool = True) -> torch.Tensor:
    """uint8 [ceil(n / 8)]: bit j of byte k is ``x.reshape(-1)[8 k + j] != 0``."""
    if check:
        check_binary(x)
    flat = (x.reshape(-1) != 0).to(torch.uint8)
    n = flat.numel()
    bits = torch.zeros(packed_numel(n) * 8, dtype=torch.uint8, device=x.device)
    bits[:n] = flat
    packed = torch.zeros(packed_numel(n), dtype=torch.uint8, device=x.device)
    for j in range(8):
        packed |= bits[j::8] << j
    return packed


def spike_unpack_reference(packed: torch.Tensor, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """The tensor of ``shape`` and ``dtype`` whose flat element i is bit ``i % 8`` of ``packed[i // 8]``."""
    n = 1
    for s in shape:
        n *= int(s)
    bits = torch.empty(packed.numel() * 8, dtype=torch.uint8, device=packed.device)
    for j in range(8):
        bits[j::8] = (packed >> j) & 1
    return bits[:n].to(dtype).reshape(tuple(shape))
