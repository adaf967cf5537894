"""STAA-SNN's CIFAR ResNet-20 with STAA-LIF neurons (docs/staa.md). RECONSTRUCTED: no official code.

The STAA paper (CVPR 2025) uses STAA-LIF as a drop-in replacement for the LIF of ResNet-19/20 backbones
and gives no network code. The ResNet-20 here is the one of the STAA authors' sibling repository,
yukairong/FSTA-SNN @ ec456f5 (``models/resnet.py``: ``ResNet20`` / ``DctResnet20_LIF``, the model its
``train.py`` trains), read for facts only. Its topology is that of yfguo91/MPBN @ 524aed9
``resnet20_cifar_modified``; MPBN's ResNet-20 is the row STAA's CIFAR table compares against:

- stem: three conv3x3 (stride 1, no bias) + BN + neuron: in -> 64 -> 64 -> 64, then AvgPool2d(2);
- four stages of two basic blocks, 64 / 128 / 256 / 512 channels, first-block strides 1 / 2 / 2 / 2;
  block ``out = neuron(bn2(conv2(neuron(bn1(conv1(x))))) + shortcut(x))``, shortcut = identity, or
  AvgPool2d(stride, ceil_mode, count_include_pad=False) -> conv1x1 -> BN when the shape changes;
- global average pool -> one Linear per step -> mean over T: logits [B, num_classes].

3 stem convs + 16 block convs + the FC = 20 weight layers; 19 neurons. Every BatchNorm normalises over the
T * B samples (the sibling's BatchNorm3d over (B, T, H, W) has the same statistics). Initialisation as
the sibling: convs Kaiming-normal (fan-out), BN weight 1 / bias 0, FC weight N(0, (1 / in_features)^2),
bias 0; the STAA layers keep their own initialisation.

INFERRED (not stated by STAA): that STAA's ResNet-20 is this one; every neuron is an ``STAALIFNode``
(the 3 stem neurons too); each STAA layer draws its own TSRD mask; the static image is repeated over T;
the output is the mean over T of the per-step logits (as the sibling's forward). The sibling's neuron
(a DCT-attention LIF with decay 0.25) is not used: the neuron is STAA-LIF (``docs/staa.md``).

``staa=False`` builds the same network with the STAA-LIF minus PE, GC and step attention: the adaptive
LIF ``U = M H + N X`` of the paper's Eq. 6 (``snnkernels.nn.LeakyNode``, learnable decay M and gain N,
same constants). A fresh STAA network computes exactly what the baseline with the same weights computes.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from ..nn.neuron import LeakyNode
from ..nn.staa import STAALIFNode
from ._blocks import (
    SeqToANN,
    check_positive,
    conv_norm_neuron,
    network_options,
    norm_neuron,
    spike_conv2d,
    to_time_major,
)

__all__ = ["STAABasicBlock", "STAAResNet", "STAA_ResNet20"]

_STAA_PARAMS = {
    name: p.default
    for name, p in inspect.signature(STAALIFNode.__init__).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
}
# STAALIFNode arguments the network sets itself: the option names the right network argument instead
_RESERVED = {
    "T": "T",
    "C": "widths",
    "H": "input_size",
    "W": "input_size",
    "layout": "layout",
    "backend": "backend",
    "seed": "seed",
}
STAA_OPTIONS = tuple(sorted(k for k in _STAA_PARAMS if k not in _RESERVED))

Size = tuple[int, int]
NeuronFactory = Callable[[int, Size], nn.Module]


def _check_staa_options(owner: str, options: Mapping[str, object] | None) -> dict:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"{owner}: staa_options must be a dict of STAALIFNode options, got {type(options).__name__}")
    for key in options:
        if key in _RESERVED:
            raise ValueError(
                f"{owner}: staa_options may not set {key!r}: the network sets it (argument {_RESERVED[key]!r})"
            )
        if key not in _STAA_PARAMS:
            raise ValueError(f"{owner}: unknown STAA option {key!r}; the options are {', '.join(STAA_OPTIONS)}")
    return dict(options)


def _baseline_neuron(owner: str, C: int, options: Mapping[str, object], backend: str) -> LeakyNode:
    """STAA-LIF without PE, GC and step attention: ``U = M H + N X`` with learnable M, N (Eq. 6)."""
    opt = {**_STAA_PARAMS, **options}
    if opt["coefficient_map"] != "raw":
        raise ValueError(
            f"{owner}: staa=False supports coefficient_map='raw' only (LeakyNode learns decay and "
            f"gain directly), got {opt['coefficient_map']!r}"
        )
    if opt["coefficient_shape"] not in ("C", "scalar"):
        raise ValueError(
            f"{owner}: staa=False supports coefficient_shape 'C' or 'scalar' (LeakyNode's decay is "
            f"per channel at most), got {opt['coefficient_shape']!r}"
        )
    return LeakyNode(
        decay=opt["m_init"],
        input_gain=opt["n_init"],
        v_threshold=opt["v_threshold"],
        v_reset=opt["v_reset"],
        strict_threshold=False,
        detach_reset=opt["detach_reset"],
        surrogate_function=opt["surrogate_function"],
        channels=C if opt["coefficient_shape"] == "C" else None,
        learnable=True,
        backend=backend,
    )


def _neuron_factory(owner: str, staa: bool, T: int, options: dict, seed: int | None, backend: str) -> NeuronFactory:
    """``make(C, (H, W))`` builds the next neuron; STAA layer i gets TSRD seed ``seed + i``."""
    count = [0]

    def make(C: int, size: Size) -> nn.Module:
        if not staa:
            return _baseline_neuron(owner, C, options, backend)
        layer_seed = None if seed is None else seed + count[0]
        count[0] += 1
        return STAALIFNode(T, C, *size, seed=layer_seed, layout="TB", backend=backend, **options)

    return make


def _conv(in_planes: int, out_planes: int, kernel_size: int, stride: int = 1, backend: str = "torch") -> nn.Conv2d:
    """A conv (``spike_conv2d``: input kept packed where ``backend`` is a fused one, i.e. on spikes)."""
    conv = spike_conv2d(
        in_planes, out_planes, kernel_size, stride=stride, padding=kernel_size // 2, bias=False, backend=backend
    )
    # the sibling's init: N(0, 2 / (k * k * out_channels)), i.e. Kaiming-normal on the fan-out
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def _conv_bn(in_planes: int, out_planes: int, stride: int = 1, backend: str = "torch") -> SeqToANN:
    """conv3x3 + BN; ``backend`` the network's where the conv's input is a neuron's spikes, else "torch"."""
    return SeqToANN(_conv(in_planes, out_planes, 3, stride, backend), nn.BatchNorm2d(out_planes))


def _strided(size: Size, stride: int) -> Size:
    # conv3x3 (padding 1) and the ceil-mode shortcut pool agree: ceil(h / stride)
    return (math.ceil(size[0] / stride), math.ceil(size[1] / stride))


class STAABasicBlock(nn.Module):
    """Post-activation basic block on [T, B, C, H, W]:
    ``lif2(conv2(lif1(conv1(x))) + shortcut(x))``, each ``conv`` a conv3x3 + BN over the T * B samples.

    Keys: ``conv1.0.weight``, ``conv1.1.*`` (BN), ``lif1.*``, ``conv2.{0,1}.*``, ``lif2.*`` and, when the
    shape changes, ``downsample.1.weight`` (conv1x1) and ``downsample.2.*`` (BN; ``downsample.0`` is the
    parameter-free AvgPool2d).

    Args:
        inplanes (int): input channels.
        planes (int): output channels.
        stride (int): stride of ``conv1`` and of the shortcut.
        size (tuple of int): the output's (H, W), which the STAA layers need.
        neuron (callable): ``neuron(C, (H, W))`` builds each neuron.
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int,
        size: Size,
        neuron: NeuronFactory,
        *,
        backend: str = "torch",
        spike_input: bool = False,
    ) -> None:
        super().__init__()
        # conv1 takes the block's input: spikes (the previous block's lif2) except after the stem's average pool
        self.conv1 = _conv_bn(inplanes, planes, stride, backend if spike_input else "torch")
        self.lif1 = neuron(planes, size)
        self.conv2 = _conv_bn(planes, planes, backend=backend)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = SeqToANN(
                nn.AvgPool2d(stride, stride=stride, ceil_mode=True, count_include_pad=False),
                _conv(inplanes, planes, 1),
                nn.BatchNorm2d(planes),
            )
        self.lif2 = neuron(planes, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(conv_norm_neuron(self.conv1, self.lif1, x))  # BN -> lif1 as one op where it fuses
        return self.lif2(out + (x if self.downsample is None else self.downsample(x)))


class STAAResNet(nn.Module):
    """The CIFAR ResNet of STAA-SNN's sibling code with STAA-LIF neurons, any depth and width.

    ``STAA_ResNet20`` builds the ResNet-20; the knobs here also build shrunken variants. See the module
    docstring for the source and what is inferred.

    Input: images [B, in_channels, H, W], repeated over the T steps inside, or sequences
    [B, T, in_channels, H, W] (``layout="BT"``, default) / [T, B, ...] (``"TB"``); (H, W) must equal
    ``input_size`` (the STAA layers' position encodings have a fixed size). Output: logits
    [B, num_classes], the mean over T of one Linear applied per step.

    Args:
        layers (sequence of int): blocks per stage. Default: ``(2, 2, 2, 2)`` (ResNet-20).
        num_classes (int): outputs of the FC. Default: ``10``.
        T (int): time steps (the paper: 1 to 4 on static images). Default: ``4``.
        staa (bool): STAA-LIF neurons; ``False`` builds the adaptive-LIF baseline (``LeakyNode``, learnable
            per-channel decay M and gain N, the same constants and options). Default: ``True``.
        staa_options (dict, Optional): keyword options of every ``STAALIFNode`` (``reduction``,
            ``drop_prob``, ``pe_shape``, ... ; see ``docs/staa.md``). T, C, H, W, ``layout``, ``backend``
            and ``seed`` are set by the network. With ``staa=False`` only the neuron constants apply
            (``m_init``, ``n_init``, ``v_threshold``, ``v_reset``, ``detach_reset``, ``surrogate_function``,
            ``coefficient_shape`` "C" / "scalar", ``coefficient_map`` "raw"). Default: ``None`` (the defaults).
        seed (int, Optional): TSRD seed; STAA layer i (in construction order) gets ``seed + i``. ``None``:
            the masks come from the global RNG (``torch.manual_seed`` reproduces them). Default: ``None``.
        input_size (int or pair of int): (H, W) of the input. Default: ``32`` (CIFAR).
        in_channels (int): Default: ``3``.
        stem_channels (int): channels of the three stem convs. Default: ``64``.
        widths (sequence of int): channels of each stage. Default: ``(64, 128, 256, 512)``.
        strides (sequence of int): first-block stride of each stage. Default: ``(1, 2, 2, 2)``.
        layout (str): ``"BT"`` or ``"TB"`` for sequence input. Default: ``"BT"``.
        backend (str): passed to every neuron. STAA-LIF runs on ``"auto"``, ``"torch"`` (the eager
            reference) or ``"triton"`` (its global-context pooling fused), and raises
            ``BackendUnavailableError`` for ``"native"`` / ``"cupy"``; the baseline takes every neuron
            backend. Default: ``"auto"``.
    """

    def __init__(
        self,
        layers: Sequence[int] = (2, 2, 2, 2),
        num_classes: int = 10,
        T: int = 4,
        *,
        staa: bool = True,
        staa_options: Mapping[str, object] | None = None,
        seed: int | None = None,
        input_size: int | Sequence[int] = 32,
        in_channels: int = 3,
        stem_channels: int = 64,
        widths: Sequence[int] = (64, 128, 256, 512),
        strides: Sequence[int] = (1, 2, 2, 2),
        layout: str = "BT",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        neuron_backend, _ = network_options(self, T, layout, backend)
        self.in_channels = check_positive(owner, in_channels, "in_channels")
        self.input_size = self._check_input_size(owner, input_size)
        layers, widths, strides = self._check_stages(owner, layers, widths, strides)
        if not isinstance(staa, bool):
            raise ValueError(f"{owner}: staa must be True or False, got {staa!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"{owner}: seed must be an int or None, got {seed!r}")
        self.staa = staa
        self.staa_options = _check_staa_options(owner, staa_options)
        neuron = _neuron_factory(owner, staa, self.T, self.staa_options, seed, neuron_backend)
        self.seed = seed

        stem_channels = check_positive(owner, stem_channels, "stem_channels")
        size = self.input_size
        self.stem = nn.Sequential(
            _conv_bn(self.in_channels, stem_channels),
            neuron(stem_channels, size),
            _conv_bn(stem_channels, stem_channels, backend=neuron_backend),
            neuron(stem_channels, size),
            _conv_bn(stem_channels, stem_channels, backend=neuron_backend),
            neuron(stem_channels, size),
        )
        self.avgpool = SeqToANN(nn.AvgPool2d(2))
        size = (size[0] // 2, size[1] // 2)
        inplanes, self._stage_names = stem_channels, []
        for i, (blocks, width, stride) in enumerate(zip(layers, widths, strides, strict=True)):
            size = _strided(size, stride)
            stage = []
            for s in [stride] + [1] * (blocks - 1):
                spike_input = bool(self._stage_names) or bool(stage)  # not the first block: after the stem's pool
                stage.append(
                    STAABasicBlock(inplanes, width, s, size, neuron, backend=neuron_backend, spike_input=spike_input)
                )
                inplanes = width
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            self._stage_names.append(f"layer{i + 1}")
        self.fc = nn.Linear(inplanes, check_positive(owner, num_classes, "num_classes"))
        # the sibling's FC init: N(0, (1 / in_features)^2), zero bias
        nn.init.normal_(self.fc.weight, 0.0, 1.0 / inplanes)
        nn.init.zeros_(self.fc.bias)

    @staticmethod
    def _check_input_size(owner: str, input_size: int | Sequence[int]) -> Size:
        hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        if len(hw) != 2:
            raise ValueError(f"{owner}: input_size must be an int or (H, W), got {input_size!r}")
        h, w = (check_positive(owner, v, "input_size") for v in hw)
        if h < 2 or w < 2:
            raise ValueError(f"{owner}: input_size {hw} is too small: the stem's AvgPool2d(2) needs at least 2x2")
        return (h, w)

    @staticmethod
    def _check_stages(owner: str, layers, widths, strides) -> tuple[tuple[int, ...], ...]:
        layers, widths, strides = tuple(layers), tuple(widths), tuple(strides)
        if not (len(layers) == len(widths) == len(strides)) or not layers:
            raise ValueError(
                f"{owner}: layers, widths and strides need one entry per stage, got "
                f"{list(layers)}, {list(widths)}, {list(strides)}"
            )
        for values, name in ((layers, "each entry of layers"), (widths, "each width"), (strides, "each stride")):
            for v in values:
                check_positive(owner, v, name)
        return layers, widths, strides

    def manual_seed(self, seed: int) -> None:
        """Re-seed the TSRD generators: STAA layer i gets ``seed + i`` (as the constructor's ``seed``)."""
        self.seed = seed
        for i, layer in enumerate(m for m in self.modules() if isinstance(m, STAALIFNode)):
            layer.manual_seed(seed + i)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """The first conv's output [T, B, C, H, W] (before its BN), with the input's shape checked."""
        owner = type(self).__name__
        c, (h, w) = self.in_channels, self.input_size
        first = self.stem[0]
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            if tuple(x.shape[1:]) != (c, h, w):
                raise ValueError(
                    f"{owner} takes images [B, {c}, {h}, {w}] (repeated over T = {self.T}) or "
                    f"sequences, got {list(x.shape)}"
                )
            # the T copies are identical before the BN: convolve once, then the BN sees all T * B samples
            y = first[0](x)
            return y.unsqueeze(0).expand(self.T, *y.shape)
        x_tb = to_time_major(owner, x, self.layout, self.T, 5, f"{c}, {h}, {w}")
        if tuple(x_tb.shape[2:]) != (c, h, w):
            raise ValueError(
                f"{owner} was built for frames [{c}, {h}, {w}] (input_size fixes the STAA layers' "
                f"sizes), got {list(x.shape)} (layout={self.layout!r})"
            )
        return first[0](x_tb.flatten(0, 1)).unflatten(0, x_tb.shape[:2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # each conv -> BN -> neuron of the stem: BN and neuron as one op where they fuse (norm_neuron)
        out = norm_neuron(self.stem[0][1], self.stem[1], self._input(x))
        for i in (2, 4):
            out = conv_norm_neuron(self.stem[i], self.stem[i + 1], out)
        out = self.avgpool(out)
        for name in self._stage_names:
            out = getattr(self, name)(out)
        return self.fc(out.mean(dim=(3, 4))).mean(0)  # per-step logits [T, B, K], averaged over T

    def extra_repr(self) -> str:
        return (
            f"T={self.T}, staa={self.staa}, input_size={self.input_size}, seed={self.seed}, "
            f"layout={self.layout!r}, backend={self.backend!r}"
        )


def STAA_ResNet20(
    num_classes: int = 10,
    T: int = 4,
    *,
    staa: bool = True,
    staa_options: Mapping[str, object] | None = None,
    seed: int | None = None,
    input_size: int | Sequence[int] = 32,
    in_channels: int = 3,
    layout: str = "BT",
    backend: str = "auto",
) -> STAAResNet:
    """STAA-SNN ResNet-20 for CIFAR-10/100 (images [B, 3, 32, 32]): a 3-conv 64-channel stem, AvgPool2d(2),
    stages of (2, 2, 2, 2) blocks with 64, 128, 256, 512 channels and strides (1, 2, 2, 2), 19 STAA-LIF
    neurons; logits [B, num_classes]. Architecture from the authors' sibling code (yukairong/FSTA-SNN
    ``ResNet20``); RECONSTRUCTED. ``in_channels=2`` with ``input_size`` of the frames for DVS sequences.
    See ``STAAResNet`` for the arguments."""
    return STAAResNet(
        (2, 2, 2, 2),
        num_classes,
        T,
        staa=staa,
        staa_options=staa_options,
        seed=seed,
        input_size=input_size,
        in_channels=in_channels,
        layout=layout,
        backend=backend,
    )
