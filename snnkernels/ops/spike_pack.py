"""The spike packing's backend-independent part: its CPU op, the dispatch to a resolved backend, and the
autograd of the spike layers (conv / linear that keep their input as 1 bit per spike).

``spike_pack_native`` / ``spike_unpack_native``: the CPU kernels of the packing, C++ in the native extension
(csrc/spike_pack/spike_pack_cpu.cpp); their fakes are registered here when the extension loads.

``SpikeConvFunction`` / ``SpikeLinearFunction``: the forward is the plain conv / linear; the saved input is its
packed copy (plus the weight): the one the neuron wrote as it fired when the caller passes it (``packed``,
docs/spike_pack.md "Packed by the neuron"), else packed here. The backward unpacks it for the weight gradient
only and calls the very backward formulas that autograd calls for ``aten.convolution`` / ``aten.linear``
(docs/spike_pack.md "Exactness"), so every gradient is bit-identical to the unpacked layer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..reference.spike_pack import (
    check_binary,
    packed_numel,
    spike_pack_reference,
    spike_unpack_reference,
)
from .registry import NATIVE_MODULE, OpEntry

__all__ = [
    "register_native_fakes",
    "pack",
    "unpack",
    "PackedLayout",
    "pack_in_place_order",
    "saved_copy",
    "SpikeConvFunction",
    "SpikeLinearFunction",
]


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def register_native_fakes() -> None:
    """Fakes (meta functions) of the extension's ``spike_pack_native`` / ``spike_unpack_native``
    (csrc/spike_pack/spike_pack_cpu.cpp), registered when ``snnkernels._ext.load_native`` loads it."""
    torch.library.register_fake("snnkernels::spike_pack_native")(
        lambda x, check: x.new_empty(packed_numel(x.numel()), dtype=torch.uint8)
    )
    torch.library.register_fake("snnkernels::spike_unpack_native")(
        lambda packed, shape, dtype: packed.new_empty(tuple(shape), dtype=dtype)
    )


def _native_pack(x: torch.Tensor, check: bool) -> torch.Tensor:
    try:
        return torch.ops.snnkernels.spike_pack_native.default(x, check)
    except ValueError:
        check_binary(x)  # the error again, naming the element in x's coordinates
        raise


def _samples(name: str):
    def samples(dev: str) -> list[tuple]:
        from . import spike_pack_triton  # its samples; needs Triton only for the import

        return getattr(spike_pack_triton, name)(dev)

    return samples


def pack(x: torch.Tensor, check: bool, backend: str) -> torch.Tensor:
    """Pack on a resolved backend ("native", "triton", else the eager reference)."""
    if backend == "triton":
        from .spike_pack_triton import spike_pack_triton

        return spike_pack_triton(x, check)
    if backend == "native":
        return _native_pack(x, check)
    return spike_pack_reference(x, check)


def unpack(packed: torch.Tensor, shape: Sequence[int], dtype: torch.dtype, backend: str) -> torch.Tensor:
    """Unpack on a resolved backend ("native", "triton", else the eager reference)."""
    if backend == "triton":
        from .spike_pack_triton import spike_unpack_triton

        return spike_unpack_triton(packed, list(shape), dtype)
    if backend == "native":
        return torch.ops.snnkernels.spike_unpack_native.default(packed, list(shape), dtype)
    return spike_unpack_reference(packed, shape, dtype)


@dataclass(frozen=True)
class PackedLayout:
    """Where the elements of a spike tensor packed by ``pack_in_place_order`` go back: ``unpack`` gives the
    tensor with its shape, dtype and strides (a transposed view comes back as the same transposed view of a
    fresh storage), so the gradients computed from it take the strides the original would have given them."""

    shape: tuple[int, ...]
    order: tuple[int, ...]  # the dims in memory order, outermost first
    dtype: torch.dtype
    backend: str

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        flat = unpack(packed, [self.shape[i] for i in self.order], self.dtype, self.backend)
        return flat.permute(sorted(range(len(self.order)), key=self.order.__getitem__))


def saved_copy(x: torch.Tensor, packed: torch.Tensor | None, check: bool, backend: str) -> torch.Tensor:
    """What a spike layer saves of its input x: ``packed`` (x's spikes in the layout, formed by the neuron that
    fired them) when given, after checking that it has x's size, else x packed here."""
    if packed is None:
        return pack(x, check, backend)
    if packed.dtype != torch.uint8 or packed.dim() != 1 or packed.numel() != packed_numel(x.numel()):
        raise ValueError(
            f"the packed copy of an input {tuple(x.shape)} is uint8 [{packed_numel(x.numel())}], got "
            f"{packed.dtype} {tuple(packed.shape)}"
        )
    return packed


def pack_in_place_order(x: torch.Tensor, check: bool, backend: str) -> tuple[torch.Tensor, PackedLayout]:
    """``x`` packed in the order its elements lie in memory (no copy when ``x`` is dense: a transposed view is
    read as stored) and the layout that unpacks it with the same strides."""
    order = sorted(range(x.dim()), key=lambda i: (-x.stride(i), i))
    stored = x.permute(order)
    if not stored.is_contiguous():  # overlapping or gapped strides: pack the contiguous copy
        order, stored = list(range(x.dim())), x.contiguous()
    try:
        packed = pack(stored, check, backend)
    except ValueError:
        check_binary(x)  # the error again, naming the element in x's own coordinates
        raise
    return packed, PackedLayout(tuple(x.shape), tuple(order), x.dtype, backend)


class SpikeConvFunction(torch.autograd.Function):
    """``aten.convolution`` (not transposed) whose saved input is packed to 1 bit an element."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: list[int],
        padding: list[int],
        dilation: list[int],
        groups: int,
        check: bool,
        backend: str,
        packed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        out = torch.ops.aten.convolution(x, weight, bias, stride, padding, dilation, False, [0] * len(stride), groups)
        ctx.save_for_backward(saved_copy(x, packed, check, backend), weight)
        ctx.geometry = (list(x.shape), x.dtype, stride, padding, dilation, groups, backend)
        ctx.bias_shape = None if bias is None else list(bias.shape)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        packed, weight = ctx.saved_tensors
        shape, dtype, stride, padding, dilation, groups, backend = ctx.geometry
        x = unpack(packed, shape, dtype, backend)
        need = ctx.needs_input_grad
        mask = [need[0], need[1], ctx.bias_shape is not None and need[2]]
        dx, dw, db = torch.ops.aten.convolution_backward(
            grad, x, weight, ctx.bias_shape, stride, padding, dilation, False, [0] * len(stride), groups, mask
        )
        return dx, dw, db, None, None, None, None, None, None, None


class SpikeLinearFunction(torch.autograd.Function):
    """``aten.linear`` whose saved input is packed to 1 bit an element."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        check: bool,
        backend: str,
        packed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        out = torch.nn.functional.linear(x, weight, bias)
        ctx.save_for_backward(saved_copy(x, packed, check, backend), weight)
        # a column-major 2-D input makes autograd's mm backward take its transposed branch
        col_major = x.dim() == 2 and x.stride(0) == 1 and x.stride(1) == x.shape[0]
        ctx.geometry = (list(x.shape), x.dtype, col_major, bias is not None, backend)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        packed, weight = ctx.saved_tensors
        shape, dtype, col_major, has_bias, backend = ctx.geometry
        need = ctx.needs_input_grad
        g2 = grad.reshape(-1, grad.shape[-1])
        dx = dw = db = None
        if need[0]:  # mm_mat1_backward of x2 @ weight.t()
            dx = (weight.t().mm(g2.t()).t() if col_major else g2.mm(weight)).reshape(shape)
        if need[1]:  # mm_mat2_backward with weight.t() column-major, then the transpose's backward
            x2 = unpack(packed, shape, dtype, backend).reshape(-1, shape[-1])
            if col_major:
                x2 = x2.t().contiguous().t()
            dw = g2.t().mm(x2)
        if has_bias and need[2]:  # the broadcast bias: sum_to over every leading dim
            db = grad.sum(tuple(range(grad.dim() - 1))) if grad.dim() > 1 else grad
        return dx, dw, db, None, None, None


# The op registry's entries (ops/registry.py): the extension's CPU ops, with the Triton ops' samples.
OPS = (
    OpEntry("spike_pack_native", NATIVE_MODULE, "native", _samples("spike_pack_samples"), ("cpu",)),
    OpEntry("spike_unpack_native", NATIVE_MODULE, "native", _samples("spike_unpack_samples"), ("cpu",)),
)
