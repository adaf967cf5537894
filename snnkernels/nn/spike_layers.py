"""Conv / linear layers that take spikes and keep them for the backward at 1 bit each (docs/spike_pack.md).

``SpikeConv1d`` / ``SpikeConv2d`` / ``SpikeLinear`` subclass ``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.Linear``: the
same constructor arguments, parameters and state_dict (an ``nn.Conv2d`` checkpoint loads as is), plus
``backend`` ("torch" is the plain layer) and ``check`` (raise on an input that is not 0 / 1). The forward is
the plain layer's; the input is saved packed (``functional.spike_pack``) and unpacked in the backward for the
weight gradient only, which is bit-identical to the plain layer's. The convs also take multi-step input
[T, B, C, ...] (one more dim than the plain layer), run as [T * B, C, ...]. ``forward(x, packed)`` takes the
input's packed copy when the neuron that fired it wrote one (``functional.leaky_neuron(..., return_packed=True)``,
docs/spike_pack.md "Packed by the neuron"), and saves it instead of packing x again.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import functional as SF
from ..backends import check_backend_name

__all__ = ["SpikeConv1d", "SpikeConv2d", "SpikeLinear", "packing_backend", "takes_packed", "fire_packed"]


def packing_backend(backend: str) -> str | None:
    """The spike layers' backend for a network's or block's ``backend``: None (keep the plain layer) for
    ``"torch"``; the packing has no CuPy kernels, so ``"cupy"`` packs on ``"auto"`` (the neurons' fallback rule
    for a kernel a backend lacks).

    Args:
        backend (str): the network's backend (``"auto"``, ``"torch"``, ``"triton"``, ``"native"``, ``"cupy"``).
    """
    if backend == "torch":
        return None
    return backend if backend in SF.PACKING_BACKENDS else "auto"


class _SpikeConvMixin:
    """The constructor and forward of SpikeConv1d / SpikeConv2d (``dims`` spatial dims)."""

    dims: int

    def __init__(self, *args, backend: str = "auto", check: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backend = check_backend_name(backend, type(self).__name__, SF.PACKING_BACKENDS)
        self.check = check

    def forward(self, x: torch.Tensor, packed: torch.Tensor | None = None) -> torch.Tensor:
        """The conv of spikes x; ``packed``: x's packed copy (``spike_pack``'s layout), saved as it is."""
        return self._spike_forward(x, packed)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, backend={self.backend!r}, check={self.check}"

    def _spike_forward(self, x: torch.Tensor, packed: torch.Tensor | None) -> torch.Tensor:
        if x.dim() == self.dims + 3:  # multi-step [T, B, C, ...]: the same elements in the same order
            return self._spike_forward(x.flatten(0, 1), packed).unflatten(0, x.shape[:2])
        if self.backend == "torch" or x.dim() != self.dims + 2:  # the plain layer (unbatched input included)
            return self._conv_forward(x, self.weight, self.bias)
        padding = self.padding
        if self.padding_mode != "zeros":
            x = nn.functional.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding, packed = 0, None  # the padded x's bits are not those of the copy
        return SF.spike_conv(
            x,
            self.weight,
            self.bias,
            self.stride,
            padding,
            self.dilation,
            self.groups,
            check=self.check,
            backend=self.backend,
            packed=packed,
        )


class SpikeConv1d(_SpikeConvMixin, nn.Conv1d):
    """``nn.Conv1d`` on spikes, its input saved at 1 bit an element.

    Args:
        *args, **kwargs: those of ``nn.Conv1d``.
        backend (str, Optional): "auto", "native", "triton" (the packing's kernels) or "torch" (the plain
            ``nn.Conv1d``, nothing packed). Default: "auto"
        check (bool, Optional): raise a ValueError naming the first input element that is not 0 / 1.
            Default: True
    """

    dims = 1


class SpikeConv2d(_SpikeConvMixin, nn.Conv2d):
    """``nn.Conv2d`` on spikes, its input saved at 1 bit an element.

    Args:
        *args, **kwargs: those of ``nn.Conv2d``.
        backend (str, Optional): as ``SpikeConv1d``. Default: "auto"
        check (bool, Optional): as ``SpikeConv1d``. Default: True
    """

    dims = 2


class SpikeLinear(nn.Linear):
    """``nn.Linear`` on spikes [..., in_features], its input saved at 1 bit an element.

    Args:
        *args, **kwargs: those of ``nn.Linear``.
        backend (str, Optional): as ``SpikeConv1d``. Default: "auto"
        check (bool, Optional): as ``SpikeConv1d``. Default: True
    """

    def __init__(self, *args, backend: str = "auto", check: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backend = check_backend_name(backend, type(self).__name__, SF.PACKING_BACKENDS)
        self.check = check

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, backend={self.backend!r}, check={self.check}"

    def forward(self, x: torch.Tensor, packed: torch.Tensor | None = None) -> torch.Tensor:
        """The linear map of spikes x; ``packed``: x's packed copy, as ``SpikeConv2d.forward``'s."""
        if self.backend == "torch":
            return super().forward(x)
        return SF.spike_linear(x, self.weight, self.bias, check=self.check, backend=self.backend, packed=packed)


def takes_packed(layer: nn.Module) -> bool:
    """Whether ``layer`` keeps its input packed and so takes a neuron's packed copy (``forward(x, packed)``): a
    ``SpikeConv1d`` / ``SpikeConv2d`` / ``SpikeLinear`` on a packing backend."""
    return isinstance(layer, (SpikeConv1d, SpikeConv2d, SpikeLinear)) and layer.backend != "torch"


def fire_packed(neuron: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(neuron(x), its spikes packed or None)``: an snnkernels neuron's ``fire_packed`` (docs/spike_pack.md
    "Packed by the neuron"), else the module's own call and no copy.

    Args:
        neuron (nn.Module): the neuron; x (Tensor): its input.
    """
    from .neuron import SpikingNeuron  # the neurons import functional, as this module does

    if isinstance(neuron, SpikingNeuron):
        return neuron.fire_packed(x)
    return neuron(x), None
