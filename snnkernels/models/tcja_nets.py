"""TCJA-SNN's VGG-style networks (ridgerchu/TCJA at 5f21162, src/dvs128.py and src/cifar10dvs.py).

Placement (docs/models.md "TCJA-SNN: TCJA_DVS128, TCJA_CIFAR10DVS"): ``Conv2d -> BatchNorm2d -> LIF -> TCJA ->
pooling``, so TCJA gates the spikes of the LIF before it. The neuron is SpikingJelly's multi-step LIF (tau 2,
V_th 1, hard reset to 0, ``decay_input``, ``detach_reset``), with ATan(2) for DVS128 Gesture and
PiecewiseQuadratic(1) (= ``Triangle(1)``) for CIFAR10-DVS.

Each network keeps the official ``nn.Sequential`` indices and SpikingJelly's ``SeqToANNContainer``
(an ``nn.Sequential``), so the keys are the official ones (``conv.0.0.weight``, ``conv.11.conv.weight``,
``fc.2.0.weight`` ...) and the official checkpoints (``checkpoint["net"]``) load with ``strict=True``.
Off the eager path the pools are ``nn.pooling.MaxPool2d`` / ``AvgPool2d`` (subclasses of torch's, same numbers):
their backward keeps one byte a window / only the input's shape instead of the input (docs/models.md "Lean pools
in TCJA-SNN"). The conv stack is a ``GatedPoolSequential``: on Triton each TCJA's gate is applied after the pool that
follows it (exact for DVS128's max pools, to the rounding of the mean for CIFAR10-DVS's average pools),
and its mean comes from the LIF's spike counts (no pass over the spikes).

The paper settings are in ``PRESETS`` (from the official scripts: T and kernel sizes are hard-coded
in the networks there; the scripts' ``-T`` flag defaults to 16 and the README passes ``-T 20`` for
CIFAR10-DVS, both of which would break the hard-coded T = 10: here T is one argument used everywhere and
checked against the input).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..nn.attention import TCJA
from ..nn.neuron import LIFNode
from ..nn.pooling import AvgPool2d, MaxPool2d
from ..surrogate import ATan, Surrogate, Triangle
from ._blocks import (
    GatedPoolSequential,
    SeqToANN,
    SharedMaskDropout,
    VotingLayer,
    from_time_major,
    network_options,
    spike_conv2d,
    to_time_major,
)

__all__ = ["TCJANetPreset", "DVS128_GESTURE", "CIFAR10_DVS", "PRESETS", "TCJA_DVS128", "TCJA_CIFAR10DVS"]


@dataclass(frozen=True)
class TCJANetPreset:
    """The settings of one official TCJA-SNN network (docs/models.md "TCJA-SNN: TCJA_DVS128, TCJA_CIFAR10DVS").

    ``kernel_size_t`` / ``kernel_size_c`` follow the official TCJA constructor: ``kernel_size_t`` is the
    conv over the T steps sliding along channels (the paper's K_C), ``kernel_size_c`` the conv over the C
    channels sliding along time (K_T).
    """

    name: str
    T: int
    channels: int
    num_classes: int
    kernel_size_t: int
    kernel_size_c: int
    tau: float
    surrogate: Surrogate
    conv_bias: bool
    source: str


DVS128_GESTURE = TCJANetPreset(
    "DVS128 Gesture",
    T=20,
    channels=128,
    num_classes=11,
    kernel_size_t=4,
    kernel_size_c=4,
    tau=2.0,
    surrogate=ATan(2.0),
    conv_bias=False,
    source="ridgerchu/TCJA src/dvs128.py (CextNet; TCJA(4, 4, 20, 128); T = 20 from the README command)",
)
CIFAR10_DVS = TCJANetPreset(
    "CIFAR10-DVS",
    T=10,
    channels=512,
    num_classes=10,
    kernel_size_t=4,
    kernel_size_c=4,
    tau=2.0,
    surrogate=Triangle(1.0),
    conv_bias=True,
    source="ridgerchu/TCJA src/cifar10dvs.py (VGGNet; TCJA(4, 4, 10, 512), PiecewiseQuadratic(1))",
)
PRESETS: dict[str, TCJANetPreset] = {"dvs128_gesture": DVS128_GESTURE, "cifar10_dvs": CIFAR10_DVS}


def _conv_bn_lif(
    cin: int, cout: int, bias: bool, preset: TCJANetPreset, backend: str, spike_input: bool
) -> list[nn.Module]:
    """conv3x3 -> BN -> LIF; the conv keeps its input packed (``spike_conv2d``) when that input is spikes (a LIF's
    output, or its max pool), plain after a TCJA or an average pool (non-binary). ``GatedPoolSequential`` runs the
    BN -> LIF pair as one op where it fuses."""
    conv_backend = backend if spike_input else "torch"
    return [
        SeqToANN(
            spike_conv2d(cin, cout, kernel_size=3, padding=1, bias=bias, backend=conv_backend), nn.BatchNorm2d(cout)
        ),
        LIFNode(
            tau=preset.tau,
            surrogate_function=preset.surrogate,
            detach_reset=True,
            step_mode="m",
            stateful=False,
            backend=backend,
        ),
    ]


def _input(owner: str, x: torch.Tensor, layout: str, T: int) -> torch.Tensor:
    x_tb = to_time_major(owner, x, layout, T, 5, "2, H, W")
    if x_tb.shape[2] != 2:
        raise ValueError(f"{owner} takes event frames with 2 polarity channels at dim 2, got {list(x.shape)}")
    return x_tb


class TCJA_DVS128(nn.Module):
    """TCJA-SNN for DVS128 Gesture (official ``CextNet``): five ``conv3x3-BN-LIF -> MaxPool2d(2)`` blocks
    of ``channels`` channels, TCJA after the LIF of blocks 4 and 5, then ``Flatten -> Dropout(0.5) ->
    Linear(C*4*4, C*2*2, no bias) -> LIF -> Dropout(0.5) -> Linear(C*2*2, classes*10, no bias) -> LIF``,
    firing rate over T, and a voting layer (mean of 10 outputs per class).

    Input: 128x128 event frames [B, T, 2, 128, 128] (``layout="BT"``, what the official script feeds)
    or [T, B, 2, 128, 128] (``"TB"``). Output: class scores [B, num_classes] (firing rates in [0, 1]); the
    official loss is MSE against one-hot labels.

    Args:
        channels (int): conv channels. The official TCJA layers hard-code 128 whatever ``-channels`` says;
            here they follow ``channels``. Default: ``128``.
        T (int): time steps. Default: ``20``.
        num_classes (int): Default: ``11``.
        kernel_size_t (int): TCJA's ``kernel_size_t``. Default: ``4``.
        kernel_size_c (int): TCJA's ``kernel_size_c``. Default: ``4``.
        voters (int): outputs per class of the last layer. Default: ``10``.
        dropout (float): probability of the two time-shared dropouts. Default: ``0.5``.
        layout (str): ``"BT"`` or ``"TB"`` for the input. Default: ``"BT"``.
        backend (str): passed to every LIF and TCJA layer (see ``snnkernels.models.MSResNet``); changes the
            speed only. Default: ``"auto"``.
    """

    preset = DVS128_GESTURE

    def __init__(
        self,
        channels: int = DVS128_GESTURE.channels,
        T: int = DVS128_GESTURE.T,
        num_classes: int = DVS128_GESTURE.num_classes,
        *,
        kernel_size_t: int = DVS128_GESTURE.kernel_size_t,
        kernel_size_c: int = DVS128_GESTURE.kernel_size_c,
        voters: int = 10,
        dropout: float = 0.5,
        layout: str = "BT",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        neuron_backend, attention_backend = network_options(self, T, layout, backend)
        p = self.preset
        conv: list[nn.Module] = []
        lean = backend != "torch"  # the pools' backward keeps the window positions only (same numbers)
        for i in range(5):
            # the input of conv i: the frames (i = 0), max-pooled spikes (binary) or a max-pooled TCJA output (i = 4)
            spikes_in = 0 < i < 4
            conv += _conv_bn_lif(2 if i == 0 else channels, channels, p.conv_bias, p, neuron_backend, spikes_in)
            if i >= 3:
                conv.append(TCJA(kernel_size_t, kernel_size_c, T, channels, backend=attention_backend))
            conv.append(SeqToANN(MaxPool2d(2, 2, lean=lean)))
        self.conv = GatedPoolSequential(*conv)
        self.fc = nn.Sequential(
            nn.Flatten(2),
            SharedMaskDropout(dropout),
            SeqToANN(nn.Linear(channels * 4 * 4, channels * 2 * 2, bias=False)),
            LIFNode(
                tau=p.tau,
                surrogate_function=p.surrogate,
                detach_reset=True,
                step_mode="m",
                stateful=False,
                backend=neuron_backend,
            ),
            SharedMaskDropout(dropout),
            SeqToANN(nn.Linear(channels * 2 * 2, num_classes * voters, bias=False)),
            LIFNode(
                tau=p.tau,
                surrogate_function=p.surrogate,
                detach_reset=True,
                step_mode="m",
                stateful=False,
                backend=neuron_backend,
            ),
        )
        self.vote = VotingLayer(voters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        owner = type(self).__name__
        x_tb = _input(owner, x, self.layout, self.T)
        if x_tb.shape[-2:] != (128, 128):
            raise ValueError(
                f"{owner} takes 128x128 frames (five 2x2 pools down to the 4x4 the first Linear "
                f"expects), got {list(x.shape)}"
            )
        return self.vote(self.fc(self.conv(x_tb)).mean(0))

    def extra_repr(self) -> str:
        return f"T={self.T}, layout={self.layout!r}, backend={self.backend!r}"


class TCJA_CIFAR10DVS(nn.Module):
    """TCJA-SNN for CIFAR10-DVS (official ``VGGNet``): ``AdaptiveAvgPool2d(48)``, then eight
    ``conv3x3(bias)-BN-LIF`` layers (64, 128 | 256, 256 | 512, 512 | 512, 512, ``|`` = AvgPool2d(2)),
    TCJA after the 6th and 8th LIF, and ``Linear(512*3*3, num_classes)`` per time step.

    Input: event frames of any size [B, T, 2, H, W] (``layout="BT"``) or [T, B, 2, H, W] (``"TB"``).
    Output: per-time-step logits in the same layout, [B, T, num_classes] or [T, B, num_classes]. (The
    official network takes [B, T] and returns [T, B]; its script averages with ``.mean(0)``. Here the
    output follows the input's layout: average with ``.mean(1)`` for ``"BT"``.)

    Args:
        num_classes (int): Default: ``10``.
        T (int): time steps (hard-coded 10 in the official TCJA layers). Default: ``10``.
        kernel_size_t (int): TCJA's ``kernel_size_t``. Default: ``4``.
        kernel_size_c (int): TCJA's ``kernel_size_c``. Default: ``4``.
        layout (str): ``"BT"`` or ``"TB"`` for the input and the output. Default: ``"BT"``.
        backend (str): passed to every LIF and TCJA layer; changes the speed only. Default: ``"auto"``.
    """

    preset = CIFAR10_DVS

    def __init__(
        self,
        num_classes: int = CIFAR10_DVS.num_classes,
        T: int = CIFAR10_DVS.T,
        *,
        kernel_size_t: int = CIFAR10_DVS.kernel_size_t,
        kernel_size_c: int = CIFAR10_DVS.kernel_size_c,
        layout: str = "BT",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        neuron_backend, attention_backend = network_options(self, T, layout, backend)
        p = self.preset
        conv: list[nn.Module] = [SeqToANN(nn.AdaptiveAvgPool2d(48))]
        # (in, out[, mark]) per conv: an AvgPool2d(2) follows every marked conv, TCJA comes before it on "tcja"
        plan = [
            (2, 64),
            (64, 128, "pool"),
            (128, 256),
            (256, 256, "pool"),
            (256, 512),
            (512, 512, "tcja"),
            (512, 512),
            (512, 512, "tcja"),
        ]
        lean = backend != "torch"  # the pools' backward keeps only the input's shape (same numbers)
        spikes_in = False  # the first conv takes the pooled frames; after an AvgPool2d the input is not binary
        for cin, cout, *after in plan:
            conv += _conv_bn_lif(cin, cout, p.conv_bias, p, neuron_backend, spikes_in)
            spikes_in = not after
            if "tcja" in after:
                conv.append(TCJA(kernel_size_t, kernel_size_c, T, cout, backend=attention_backend))
            if after:
                conv.append(SeqToANN(AvgPool2d(2, 2, lean=lean)))
        self.conv = GatedPoolSequential(*conv)
        self.fc = nn.Sequential(nn.Flatten(2), SeqToANN(nn.Linear(512 * 3 * 3, num_classes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_tb = _input(type(self).__name__, x, self.layout, self.T)
        return from_time_major(self.fc(self.conv(x_tb)), self.layout)

    def extra_repr(self) -> str:
        return f"T={self.T}, layout={self.layout!r}, backend={self.backend!r}"
