"""MA-SNN's networks (BICLab/MA-SNN at ad80e7b; docs/models.md "MA-SNN: MASNN*, AttResSNN*").

Two families, both from the released code:

- the plain conv nets of ``MA_SNN/*/CNN/Networks/Att_SNN.py`` (``MASNN``, ``MASNN_DVSGesture``,
  ``MASNN_CIFAR10DVS``): ``ConvAttLIF`` layers (``Conv2d(bias) -> BatchNorm2d over B*T -> AvgPool2d (if any)
  -> MultiDimensionalAttention on the whole sequence -> MA-SNN LIF loop``), then two ``AttLIF`` layers
  (``Linear -> BatchNorm1d -> TemporalAttentionFC (when the conv attention contains T) -> MA-SNN LIF``);
  output = mean over T of the last layer's spikes (the official loss is MSE against one-hot labels).
  The neuron is ``snnkernels.nn.MASNNLIFNode`` (``u = h + x``, fire on ``u >= 0.3``, reset to 0.3 then
  decay by 0.3, rectangle surrogate of width ``a`` from the dataset's ``Config.py``).
- the ImageNet Att-Res-SNN-1 of ``Att_Res_SNN/models/resnet_2.py`` (``AttResSNN``, ``AttResSNN18``,
  ``AttResSNN34``): MS-ResNet with ``snnkernels.nn.AttResBlock`` (CSA on the residual branch).

Every module sits under its official attribute name (``convAttLIF0.conv2d``, ``convAttLIF0.BNLayer``,
``convAttLIF0.attention.ta.sharedMLP.0.weight``, ``FC0.linear``, ``conv2_x.0.residual_function.1`` ...)
with the official shapes, so official state dicts (without the ``module.`` prefix of ``nn.DataParallel``)
load with ``strict=True``. See ``docs/models.md`` for the remaining differences.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..nn.fused import attention_neuron
from ..nn.ma_snn import AttResBlock, MultiDimensionalAttention, StepConv2d, TemporalAttentionFC, TimeBatchNorm
from ..nn.neuron import AttResLIFNode, MASNNLIFNode
from ..nn.pooling import AvgPool2d
from ..reference.ma_snn import check_dims
from ..surrogate import Rectangle
from ._blocks import check_positive, network_options, norm_neuron, spike_conv2d, spike_linear, to_time_major

__all__ = [
    "MASNNPreset",
    "MASNN_DVS_GESTURE",
    "MASNN_CIFAR10_DVS",
    "MASNN_DVS_GAIT",
    "MASNN_PRESETS",
    "ConvAttLIF",
    "AttLIF",
    "MASNN",
    "MASNN_DVSGesture",
    "MASNN_CIFAR10DVS",
    "MASNN_DVSGait",
    "AttResSNN",
    "AttResSNN18",
    "AttResSNN34",
]

# official attention flag -> dims of MultiDimensionalAttention
OFFICIAL_ATTENTION = {"TCSA": "TCS", "TCA": "TC", "TSA": "TS", "CSA": "CS", "TA": "T", "CA": "C", "SA": "S", "no": None}


@dataclass(frozen=True)
class MASNNPreset:
    """The settings of one official MA-SNN plain conv net (``Networks/Att_SNN.py`` + ``Config.py``).

    ``channels`` / ``pools``: output channels and AvgPool2d size (1 = none) of each ``ConvAttLIF``;
    ``input_size``: frame height = width (``128 // config.ds``); ``hidden``: the first FC's width;
    ``surrogate_width``: ``config.a`` (the rectangle is ``1[|u - 0.3| < a / 2] / a``).
    """

    name: str
    T: int
    t_ratio: int
    c_ratio: int
    surrogate_width: float
    channels: tuple[int, ...]
    pools: tuple[int, ...]
    input_size: int
    hidden: int
    num_classes: int
    source: str


MASNN_DVS_GESTURE = MASNNPreset(
    "DVS Gesture",
    T=60,
    t_ratio=5,
    c_ratio=8,
    surrogate_width=0.5,
    channels=(64, 128, 128),
    pools=(1, 2, 2),
    input_size=32,
    hidden=256,
    num_classes=11,
    source="BICLab/MA-SNN MA_SNN/DVSGestures/CNN/Networks/Att_SNN.py, CNN/Config.py (T 60, dt 25, ds 4, a 0.5)",
)
MASNN_CIFAR10_DVS = MASNNPreset(
    "CIFAR10-DVS",
    T=20,
    t_ratio=2,
    c_ratio=8,
    surrogate_width=1.0,
    channels=(32, 64, 128, 256, 512),
    pools=(2, 2, 2, 2, 4),
    input_size=128,
    hidden=256,
    num_classes=10,
    source="BICLab/MA-SNN MA_SNN/CIFAR10DVS/CNN/Networks/Att_SNN.py, CNN/Config.py (T 20, dt 10, ds 1, a 1)",
)
MASNN_DVS_GAIT = MASNNPreset(
    "DVS Gait",
    T=8,
    t_ratio=2,
    c_ratio=8,
    surrogate_width=0.5,
    channels=(32, 64, 128, 256, 512),
    pools=(2, 2, 2, 2, 4),
    input_size=128,
    hidden=256,
    num_classes=21,
    source="BICLab/MA-SNN MA_SNN/DVSGait/CNN/Networks/Att_SNN.py (= the CIFAR10-DVS net), CNN/Config.py "
    "(T 8, dt 500, ds 1, a 0.5, 21 classes)",
)
MASNN_PRESETS: dict[str, MASNNPreset] = {
    "dvs_gesture": MASNN_DVS_GESTURE,
    "cifar10_dvs": MASNN_CIFAR10_DVS,
    "dvs_gait": MASNN_DVS_GAIT,
}


def _check_dims_or_none(owner: str, dims: str | None) -> str | None:
    if dims in (None, "", "no"):
        return None
    if isinstance(dims, str) and dims in OFFICIAL_ATTENTION and OFFICIAL_ATTENTION[dims] is not None:
        return OFFICIAL_ATTENTION[dims]  # the official names ("TCSA", ...) are accepted too
    try:
        return check_dims(dims)
    except ValueError as e:
        raise ValueError(f"{owner}: {e}; or None / 'no' for no attention") from None


class ConvAttLIF(nn.Module):
    """One official ``ConvAttLIF`` layer on [T, B, C, H, W] (docs/ma_snn.md "Released attention").

    ``conv2d`` (3x3, padding 1, bias) and ``BNLayer`` (BatchNorm2d over the T * B samples) per step, then
    ``pooling`` (AvgPool2d, only when ``pooling_kernel_size > 1``; off the eager path ``nn.pooling.AvgPool2d``,
    which keeps only its input's shape for the backward, same numbers), then ``attention``
    (``MultiDimensionalAttention`` on the whole sequence, absent when ``dims`` is None), then the MA-SNN
    LIF loop (``network.ConvIF``, no parameters). When both run on Triton, the neuron applies the
    attention's gates and ReLU inside its time loop (``snnkernels.nn.fused``: the attention output is never
    stored; same spikes). Keys: ``conv2d.{weight,bias}``, ``BNLayer.*``,
    ``attention.{ta,ca}.sharedMLP.{0,2}.weight``, ``attention.sa.conv.weight``.
    """

    def __init__(
        self,
        in_planes: int,
        planes: int,
        T: int,
        dims: str | None,
        *,
        pooling_kernel_size: int = 1,
        t_ratio: int = 16,
        c_ratio: int = 16,
        surrogate_width: float = 0.5,
        neuron_backend: str = "auto",
        attention_backend: str = "auto",
        spike_input: bool = False,
    ) -> None:
        super().__init__()
        # a conv on the previous layer's spikes keeps them packed (spike_conv2d); on the input frames, plain
        conv_backend = neuron_backend if spike_input else "torch"
        self.conv2d = spike_conv2d(in_planes, planes, kernel_size=3, padding=1, bias=True, backend=conv_backend)
        self.BNLayer = nn.BatchNorm2d(planes)
        self.pooling_kernel_size = int(pooling_kernel_size)
        if self.pooling_kernel_size > 1:
            # off the eager path the pool keeps only its input's shape, so BatchNorm's output is not held for the
            # backward (docs/ma_snn.md "Memory of the backward"); same numbers
            self.pooling = AvgPool2d(self.pooling_kernel_size, lean=neuron_backend != "torch")
        self.dims = dims
        if dims is not None:
            self.attention = MultiDimensionalAttention(
                T,
                planes,
                reduction_t=t_ratio,
                reduction_c=c_ratio,
                kernel_size=3,
                dims=dims,
                layout="TB",
                backend=attention_backend,
            )
        self.network = nn.Sequential(
            OrderedDict(ConvIF=MASNNLIFNode(surrogate_function=Rectangle(surrogate_width), backend=neuron_backend))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pooling_kernel_size == 1 and self.dims is None:  # conv -> BN -> LIF: one op where it fuses
            return norm_neuron(
                self.BNLayer, self.network.ConvIF, self.conv2d(x.flatten(0, 1)).unflatten(0, x.shape[:2])
            )
        y = self.BNLayer(self.conv2d(x.flatten(0, 1)))
        if self.pooling_kernel_size > 1:
            y = self.pooling(y)
        y = y.unflatten(0, x.shape[:2])
        if self.dims is not None:
            # on Triton the neuron applies the attention's gates as it loads y (nn.fused): same spikes
            return attention_neuron(self.attention, self.network.ConvIF, y)
        return self.network(y)


class AttLIF(nn.Module):
    """One official ``AttLIF`` layer on [T, B, L]: ``linear`` (bias) and ``BNLayer`` (BatchNorm1d) per
    step, ``attention`` (``TemporalAttentionFC``, keys ``attention.ta.sharedMLP.{0,2}.weight``) when
    ``temporal_attention``, then the MA-SNN LIF loop (``network.IF``)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        T: int,
        temporal_attention: bool,
        *,
        t_ratio: int = 16,
        surrogate_width: float = 0.5,
        neuron_backend: str = "auto",
        attention_backend: str = "auto",
    ) -> None:
        super().__init__()
        # its input is always spikes (the last conv layer's, flattened, or FC0's): kept packed (spike_linear)
        self.linear = spike_linear(in_features, out_features, bias=True, backend=neuron_backend)
        self.BNLayer = nn.BatchNorm1d(out_features)
        self.temporal_attention = bool(temporal_attention)
        if self.temporal_attention:
            self.attention = TemporalAttentionFC(
                T, t_ratio, layout="TB", backend="torch" if attention_backend == "torch" else "auto"
            )
        self.network = nn.Sequential(
            OrderedDict(IF=MASNNLIFNode(surrogate_function=Rectangle(surrogate_width), backend=neuron_backend))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.temporal_attention:  # linear -> BN -> LIF: one op where it fuses
            return norm_neuron(self.BNLayer, self.network.IF, self.linear(x.flatten(0, 1)).unflatten(0, x.shape[:2]))
        y = self.BNLayer(self.linear(x.flatten(0, 1))).unflatten(0, x.shape[:2])
        if self.temporal_attention:
            y = self.attention(y)
        return self.network(y)


class MASNN(nn.Module):
    """MA-SNN's plain conv net (official ``Att_SNN.py`` ``Net``), any widths.

    docs/models.md "MA-SNN: MASNN*, AttResSNN*".

    ``ConvAttLIF`` layers ``convAttLIF0, convAttLIF1, ...`` (3x3 convs, stride 1, padding 1, each followed
    by its AvgPool2d), then ``FC0 = AttLIF(C_last * h * w, hidden)`` and ``FC1 = AttLIF(hidden,
    num_classes)``; the FC layers carry TA when ``dims`` contains ``'T'`` (the official rule: no TA for
    ``"no"``, CA, SA, CSA). Output: the firing rate of ``FC1`` over T, [B, num_classes] (the official
    ``sum(dim=1) / t``); the official loss is MSE against one-hot labels.

    Input: event frames [B, T, in_channels, S, S] (``layout="BT"``, official) or [T, B, ...] (``"TB"``),
    with S = ``input_size`` (the FC width depends on it).

    Args:
        dims (str, Optional): the attention of every conv layer, ``"TCS"`` (official ``TCSA``), ``"TC"``,
            ``"TS"``, ``"CS"``, ``"T"``, ``"C"``, ``"S"`` (or the official names ``"TCSA"`` ...), or None /
            ``"no"`` for none (the configs' default ``"no"``). Default: ``"TCS"``.
        T (int): time steps (the TA width). Default: ``60``.
        num_classes (int): Default: ``11``.
        channels (sequence of int): conv widths. Default: ``(64, 128, 128)`` (DVS Gesture).
        pools (sequence of int): AvgPool2d size after each conv, 1 = none. Default: ``(1, 2, 2)``.
        input_size (int): frame height and width. Default: ``32``.
        hidden (int): the first FC's width. Default: ``256``.
        in_channels (int): input channels (polarities). Default: ``2``.
        t_ratio (int): TA's MLP reduction (``config.t_ratio``), at most T. Default: ``5``.
        c_ratio (int): CA's MLP reduction (``config.c_ratio``), at most every conv width. Default: ``8``.
        surrogate_width (float): the rectangle surrogate's width (``config.a``). Default: ``0.5``.
        layout (str): ``"BT"`` or ``"TB"`` for the input. Default: ``"BT"``.
        backend (str): passed to every neuron (``"auto"``, ``"torch"``, ``"triton"``, ``"native"``, ``"cupy"``)
            and attention (``"auto"``, ``"torch"``, ``"triton"``; ``"auto"`` for native / cupy; the FC
            layers' TA is eager on ``"auto"``). Changes the speed only. Default: ``"auto"``.
    """

    def __init__(
        self,
        dims: str | None = "TCS",
        *,
        T: int = MASNN_DVS_GESTURE.T,
        num_classes: int = MASNN_DVS_GESTURE.num_classes,
        channels: Sequence[int] = MASNN_DVS_GESTURE.channels,
        pools: Sequence[int] = MASNN_DVS_GESTURE.pools,
        input_size: int = MASNN_DVS_GESTURE.input_size,
        hidden: int = MASNN_DVS_GESTURE.hidden,
        in_channels: int = 2,
        t_ratio: int = MASNN_DVS_GESTURE.t_ratio,
        c_ratio: int = MASNN_DVS_GESTURE.c_ratio,
        surrogate_width: float = MASNN_DVS_GESTURE.surrogate_width,
        layout: str = "BT",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        neuron_backend, attention_backend = network_options(self, T, layout, backend)
        self.dims = _check_dims_or_none(owner, dims)
        self.in_channels = check_positive(owner, in_channels, "in_channels")
        self.input_size = check_positive(owner, input_size, "input_size")
        channels, pools = tuple(channels), tuple(pools)
        if len(channels) != len(pools) or not channels:
            raise ValueError(f"{owner}: channels and pools need one entry per conv layer, got {channels}, {pools}")
        size = self.input_size
        for p in pools:
            check_positive(owner, p, "each pool")
            size //= p
        if size < 1:
            raise ValueError(f"{owner}: input_size {input_size} is too small for the pools {pools}")
        self.num_convs = len(channels)
        kw = dict(
            t_ratio=t_ratio,
            surrogate_width=surrogate_width,
            neuron_backend=neuron_backend,
            attention_backend=attention_backend,
        )
        cin = self.in_channels
        for i, (cout, p) in enumerate(zip(channels, pools, strict=True)):
            setattr(
                self,
                f"convAttLIF{i}",
                ConvAttLIF(
                    cin, cout, self.T, self.dims, pooling_kernel_size=p, c_ratio=c_ratio, spike_input=i > 0, **kw
                ),
            )
            cin = cout
        fc_ta = self.dims is not None and "T" in self.dims
        self.FC0 = AttLIF(cin * size * size, hidden, self.T, fc_ta, **kw)
        self.FC1 = AttLIF(hidden, num_classes, self.T, fc_ta, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        owner = type(self).__name__
        s, c = self.input_size, self.in_channels
        x_tb = to_time_major(owner, x, self.layout, self.T, 5, f"{c}, {s}, {s}")
        if tuple(x_tb.shape[2:]) != (c, s, s):
            raise ValueError(
                f"{owner} was built for frames [{c}, {s}, {s}] (the FC width depends on the size), "
                f"got {list(x.shape)} (layout={self.layout!r})"
            )
        for i in range(self.num_convs):
            x_tb = getattr(self, f"convAttLIF{i}")(x_tb)
        return self.FC1(self.FC0(x_tb.flatten(2))).mean(0)

    def extra_repr(self) -> str:
        return (
            f"T={self.T}, dims={self.dims!r}, input_size={self.input_size}, layout={self.layout!r}, "
            f"backend={self.backend!r}"
        )


def _from_preset(preset: MASNNPreset, dims, T, num_classes, layout, backend) -> MASNN:
    return MASNN(
        dims,
        T=T,
        num_classes=num_classes,
        channels=preset.channels,
        pools=preset.pools,
        input_size=preset.input_size,
        hidden=preset.hidden,
        t_ratio=preset.t_ratio,
        c_ratio=preset.c_ratio,
        surrogate_width=preset.surrogate_width,
        layout=layout,
        backend=backend,
    )


def MASNN_DVSGesture(
    dims: str | None = "TCS",
    *,
    T: int = MASNN_DVS_GESTURE.T,
    num_classes: int = MASNN_DVS_GESTURE.num_classes,
    layout: str = "BT",
    backend: str = "auto",
) -> MASNN:
    """MA-SNN for DVS128 Gesture (``MASNN_DVS_GESTURE``): ConvAttLIF 2->64, 64->128 + AvgPool2,
    128->128 + AvgPool2 on 32x32 frames, AttLIF 128*8*8->256->11; t_ratio 5, c_ratio 8, surrogate width
    0.5, T = 60. Input [B, T, 2, 32, 32] (``"BT"``); output [B, 11] firing rates. See ``MASNN``."""
    return _from_preset(MASNN_DVS_GESTURE, dims, T, num_classes, layout, backend)


def MASNN_CIFAR10DVS(
    dims: str | None = "TCS",
    *,
    T: int = MASNN_CIFAR10_DVS.T,
    num_classes: int = MASNN_CIFAR10_DVS.num_classes,
    layout: str = "BT",
    backend: str = "auto",
) -> MASNN:
    """MA-SNN for CIFAR10-DVS (``MASNN_CIFAR10_DVS``): ConvAttLIF 2->32->64->128->256->512 with AvgPools
    2, 2, 2, 2, 4 on 128x128 frames, AttLIF 512*2*2->256->10; t_ratio 2, c_ratio 8, surrogate width 1,
    T = 20. Input [B, T, 2, 128, 128] (``"BT"``); output [B, 10] firing rates. See ``MASNN``."""
    return _from_preset(MASNN_CIFAR10_DVS, dims, T, num_classes, layout, backend)


def MASNN_DVSGait(
    dims: str | None = "TCS",
    *,
    T: int = MASNN_DVS_GAIT.T,
    num_classes: int = MASNN_DVS_GAIT.num_classes,
    layout: str = "BT",
    backend: str = "auto",
) -> MASNN:
    """MA-SNN for DVS Gait (``MASNN_DVS_GAIT``): the CIFAR10-DVS network on 128x128 frames, 21 classes;
    t_ratio 2, c_ratio 8, surrogate width 0.5, T = 8. See ``MASNN``."""
    return _from_preset(MASNN_DVS_GAIT, dims, T, num_classes, layout, backend)


class AttResSNN(nn.Module):
    """Att-Res-SNN-1 (official ``ResNet_origin`` of ``Att_Res_SNN/models/resnet_2.py``).

    Its block: docs/ma_snn.md "Att-Res-SNN-1 block".

    Stem ``conv1`` = conv7x7 stride 2 (no bias) + BatchNorm3d over (B, T, H, W) (weight 0.5); no max-pool
    (the official one is defined but unused, and has no parameters); stages ``conv2_x`` ... of
    ``AttResBlock`` (CSA on the residual branch), the first block of every stage with stride 2; head
    ``mem_update`` (Att-Res LIF) -> global average pool -> mean over T -> ``dropout`` (0.2) -> ``fc``.
    Output: logits [B, num_classes].

    Input: images [B, in_channels, H, W], repeated over the T steps inside (the official input), or
    sequences [T, B, in_channels, H, W] (``layout="TB"``) / [B, T, ...] (``"BT"``). H and W must stay even
    before every stride-2 stage (e.g. multiples of 32: 224 official, 32 for a quick run).

    Args:
        layers (sequence of int): blocks per stage. Default: ``(2, 2, 2, 2)`` (resnet18).
        num_classes (int): Default: ``1000``.
        T (int): time steps (official ``time_window = 1``). Default: ``1``.
        widths (sequence of int): channels of each stage. Default: ``(64, 128, 256, 512)``.
        stem_channels (int): channels of the stem. Default: ``64``.
        strides (sequence of int): stride of each stage's first block, 1 or 2. Default: all 2 (official).
        in_channels (int): Default: ``3``.
        c_ratio (int): CA's MLP reduction in every block. Default: ``8``.
        dropout (float): before the FC. Default: ``0.2``.
        layout (str): ``"TB"`` or ``"BT"`` for sequence input. Default: ``"TB"``.
        backend (str): passed to every neuron and attention (see ``MASNN``). Default: ``"auto"``.
    """

    def __init__(
        self,
        layers: Sequence[int] = (2, 2, 2, 2),
        num_classes: int = 1000,
        *,
        T: int = 1,
        widths: Sequence[int] = (64, 128, 256, 512),
        stem_channels: int = 64,
        strides: Sequence[int] | None = None,
        in_channels: int = 3,
        c_ratio: int = 8,
        dropout: float = 0.2,
        layout: str = "TB",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        neuron_backend, _ = network_options(self, T, layout, backend)
        self.in_channels = check_positive(owner, in_channels, "in_channels")
        strides = tuple(strides) if strides is not None else (2,) * len(layers)
        if not (len(layers) == len(widths) == len(strides)) or not layers:
            raise ValueError(
                f"{owner}: layers, widths and strides need one entry per stage, got "
                f"{list(layers)}, {list(widths)}, {list(strides)}"
            )
        # created in the official order (conv1, [pool], [mem_update], stages, fc, dropout)
        self.conv1 = nn.Sequential(
            StepConv2d(self.in_channels, stem_channels, kernel_size=7, padding=3, bias=False, stride=2),
            TimeBatchNorm(stem_channels, 0.5),
        )
        self.mem_update = AttResLIFNode(backend=neuron_backend)
        self._stage_names = []
        planes_in = stem_channels
        for i, (blocks, width, stride) in enumerate(zip(layers, widths, strides, strict=True)):
            check_positive(owner, blocks, "blocks per stage")
            stage = []
            for s in [stride] + [1] * (blocks - 1):
                stage.append(AttResBlock(planes_in, width, s, c_ratio, layout="TB", backend=backend))
                planes_in = width
            name = f"conv{i + 2}_x"
            setattr(self, name, nn.Sequential(*stage))
            self._stage_names.append(name)
        self.fc = nn.Linear(planes_in, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        owner = type(self).__name__
        conv, bn = self.conv1
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            if x.shape[1] != self.in_channels:
                raise ValueError(f"{owner} takes images [B, {self.in_channels}, H, W], got {list(x.shape)}")
            # the T copies are identical: convolve once and repeat, the BN still sees all T * B samples
            y = nn.Conv2d.forward(conv, x)
            return bn(y.unsqueeze(0).expand(self.T, *y.shape))
        x_tb = to_time_major(owner, x, self.layout, self.T, 5, f"{self.in_channels}, H, W")
        if x_tb.shape[2] != self.in_channels:
            raise ValueError(
                f"{owner} was built for {self.in_channels} input channels, got {list(x.shape)} (layout={self.layout!r})"
            )
        return bn(conv(x_tb))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._input(x)
        for name in self._stage_names:
            out = getattr(self, name)(out)
        out = self.mem_update(out).mean(dim=(3, 4)).mean(0)  # [B, C]
        return self.fc(self.dropout(out))

    def extra_repr(self) -> str:
        return f"T={self.T}, layout={self.layout!r}, backend={self.backend!r}"


def AttResSNN18(num_classes: int = 1000, *, T: int = 1, layout: str = "TB", backend: str = "auto") -> AttResSNN:
    """Att-Res-SNN-1 ResNet-18 (official ``resnet18``): stages (2, 2, 2, 2), 64..512 channels, every stage
    stride 2 (224 -> 112 -> 56 -> 28 -> 14 -> 7). See ``AttResSNN``."""
    return AttResSNN((2, 2, 2, 2), num_classes, T=T, layout=layout, backend=backend)


def AttResSNN34(num_classes: int = 1000, *, T: int = 1, layout: str = "TB", backend: str = "auto") -> AttResSNN:
    """Att-Res-SNN-1 ResNet-34 (official ``resnet34``): stages (3, 4, 6, 3). See ``AttResSNN``."""
    return AttResSNN((3, 4, 6, 3), num_classes, T=T, layout=layout, backend=backend)
