"""DTA-SNN's MS-ResNets (MnJnKIM/DTA-SNN, models/DTA_SNN.py and models/layers.py).

docs/models.md "DTA-SNN: DTA_SNN_18, DTA_SNN_34, MSResNet".

The network: an input conv3x3 (no bias) + BatchNorm over the T * B samples gives X; S = LIF(X); DTA(X, S)
in the encoding slot; MS-ResNet basic blocks (``out = conv-BN(LIF(conv-BN(LIF(x)))) + shortcut(x)``);
LIF; global average pool; one FC per time step. The neuron is the TET/DTA ``LIFSpike``
(``snnkernels.nn.TETLIFNode``: ``m = 0.5 m + x``, fire on ``m > 1``, hard reset not detached, triangle
surrogate). The official forward returns per-time-step logits [B, T, classes]; its training script
averages them over T before a plain cross-entropy.

Every module sits under its official attribute name (``input_conv``, ``encoding.T_NA`` / ``T_XA``,
``layer1.0.conv1_s`` ...) with the official shapes, including the official duplicate keys (a block's
``conv1`` is also ``conv1_s.layer.module``, each BatchNorm is also ``seqbn.module``), so the official
checkpoints load with ``strict=True`` and the same seed gives the official initial weights.

Deliberate differences from the official code, none of which changes the numbers:

- the library layout [T, B, ...] inside (stateless multi-step neurons, fused over T);
- on Triton the encoding block ``DTA(X, LIF(X))`` is one kernel each way (``nn.fused.neuron_dta``): the
  LIF forms DTA's output as it fires, and the encoding spikes are never stored;
  ``layout="BT"`` (default, official) or ``"TB"`` at the boundaries;
- a static image goes through the input conv once and is then repeated over T (the official code
  repeats it first and convolves T identical copies), and the caller's tensor is not modified (the
  official ``add_dimention`` unsqueezes it in place);
- T, the input rank and the channel count are checked with errors that say what was expected;
- ``DTA_SNN_34``'s released forward reads an undefined attribute (``self.GAC``) and cannot run; here it
  runs the intended path (DTA in the encoding slot when ``DTA_ON``, as in ``DTA_SNN_18``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..nn.attention import DTA
from ..nn.fused import neuron_dta
from ..nn.neuron import TETLIFNode
from ._blocks import (
    StepBatchNorm,
    StepLayer,
    fire_into,
    from_time_major,
    network_options,
    norm_neuron_into,
    spike_conv2d,
    to_time_major,
)

__all__ = ["MSBlock", "MSResNet", "DTA_SNN_18", "DTA_SNN_34"]


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1, *, backend: str) -> nn.Conv2d:
    """A block's conv3x3 on spikes (``spike_conv2d``: packed input under a fused backend)."""
    return spike_conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False, backend=backend)


class MSBlock(nn.Module):
    """MS-ResNet basic block (official ``BasicBlock_MS``) on [T, B, C, H, W]:
    ``out = conv2_s(LIF(conv1_s(LIF(x)))) + shortcut(x)``, shortcut = ``downsample(x)`` or ``x``.

    Keys as the official block: ``conv1.weight``, ``bn1.{bn,seqbn.module}.*``, ``conv2``, ``bn2``, the same
    tensors again under ``conv1_s`` / ``conv2_s``, and ``downsample.{layer.module,bn.bn,bn.seqbn.module}.*``.
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride, backend=backend)
        self.bn1 = StepBatchNorm(planes)
        self.conv2 = _conv3x3(planes, planes, backend=backend)
        self.bn2 = StepBatchNorm(planes)
        self.downsample = downsample
        self.stride = stride
        # the official block registers each conv and BN twice: on its own and inside the tdLayer
        self.conv1_s = StepLayer(self.conv1, self.bn1)
        self.conv2_s = StepLayer(self.conv2, self.bn2)
        self.spike = TETLIFNode(step_mode="m", backend=backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # conv1 -> bn1 -> LIF as one op where it fuses (norm_neuron); the same modules, so conv1_s's math. Each
        # spike conv gets the packed copy its neuron wrote as it fired (fire_into, norm_neuron_into)
        out = norm_neuron_into(self.conv2_s, self.bn1, self.spike, fire_into(self.conv1_s.layer, self.spike, x))
        return out + (x if self.downsample is None else self.downsample(x))


class MSResNet(nn.Module):
    """MS-ResNet with DTA in the encoding slot (DTA-SNN), any depth and width.

    ``DTA_SNN_18`` and ``DTA_SNN_34`` build the official configurations; the knobs here also build shrunken
    variants (the training example uses one on 8x8 digits).

    Input, ``dvs=False``: images [B, in_channels, H, W], repeated over the T steps inside. ``dvs=True``:
    sequences [B, T, in_channels, H, W] (``layout="BT"``, official) or [T, B, in_channels, H, W]
    (``"TB"``). Output: per-time-step logits [B, T, num_classes] (``"BT"``) or [T, B, num_classes]
    (``"TB"``); the official training averages them over T (``out.mean(1)`` for ``"BT"``).

    Args:
        layers (sequence of int): blocks per stage. Default: ``(3, 3, 2)`` (DTA_SNN_18).
        num_classes (int): outputs of the FC. Default: ``10``.
        time_step (int): T. Default: ``6`` (the official CIFAR setting).
        DTA_ON (bool): DTA in the encoding slot; ``False`` is the official ablation (no encoding LIF or
            attention). Default: ``True``.
        dvs (bool): sequence input instead of static images. Default: ``False``.
        in_channels (int, Optional): input channels. Default: 2 with ``dvs``, else 3.
        stem_channels (int): channels of the input conv (and of DTA). The official DTA's T-XA hard-codes 64,
            so official checkpoints exist for 64 only. Default: ``64``.
        widths (sequence of int): output channels of each stage. Default: ``(128, 256, 512)``.
        strides (sequence of int): first-block stride of each stage. Default: ``(1, 2, 2)``.
        stem (str): ``"cifar"`` (conv3x3 stride 1; keys ``input_conv``, ``layer1..``, ``fc``) or
            ``"imagenet"`` (conv7x7 stride 2; keys ``conv1``, ``bn1``, ``conv1_s``, ``layer0..``, ``fc1_s``,
            as the official ``MS_ResNet_34``). Default: ``"cifar"``.
        layout (str): ``"BT"`` or ``"TB"`` for sequence input and for the output. Default: ``"BT"``.
        backend (str): passed to every snnkernels layer (neurons: ``"auto"``, ``"torch"``, ``"triton"``,
            ``"native"``, ``"cupy"``; DTA: ``"auto"``, ``"torch"``, ``"triton"``, and ``"auto"`` when the
            neurons get ``"native"`` / ``"cupy"``). It changes the speed only, never the numbers beyond
            float rounding. Default: ``"auto"``.
    """

    def __init__(
        self,
        layers: Sequence[int] = (3, 3, 2),
        num_classes: int = 10,
        time_step: int = 6,
        DTA_ON: bool = True,
        dvs: bool = False,
        *,
        in_channels: int | None = None,
        stem_channels: int = 64,
        widths: Sequence[int] = (128, 256, 512),
        strides: Sequence[int] = (1, 2, 2),
        stem: str = "cifar",
        layout: str = "BT",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        neuron_backend, attention_backend = network_options(self, time_step, layout, backend, "time_step")
        if not (len(layers) == len(widths) == len(strides)) or len(layers) == 0:
            raise ValueError(
                f"{owner}: layers, widths and strides need one entry per stage, got "
                f"{list(layers)}, {list(widths)}, {list(strides)}"
            )
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"{owner}: stem must be 'cifar' or 'imagenet', got {stem!r}")
        if stem == "imagenet" and dvs:
            raise ValueError(f"{owner}: the ImageNet stem takes static images only (dvs=False)")
        self.dvs = bool(dvs)
        self.in_channels = int(in_channels if in_channels is not None else (2 if dvs else 3))
        self.stem = stem
        self.inplanes = stem_channels
        self._neuron_backend = neuron_backend

        # Modules are created in the official order, so one seed gives the official initial weights.
        if stem == "cifar":
            self.input_conv = StepLayer(
                nn.Conv2d(self.in_channels, stem_channels, kernel_size=3, stride=1, padding=1, bias=False),
                StepBatchNorm(stem_channels),
            )
            self._stem_name, first_stage, self._fc_name = "input_conv", 1, "fc"
        else:
            self.conv1 = nn.Conv2d(self.in_channels, stem_channels, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = StepBatchNorm(stem_channels)
            self.conv1_s = StepLayer(self.conv1, self.bn1)
            self._stem_name, first_stage, self._fc_name = "conv1_s", 0, "fc1_s"
        self._stage_names = []
        for i, (blocks, width, stride) in enumerate(zip(layers, widths, strides, strict=True)):
            name = f"layer{first_stage + i}"
            setattr(self, name, self._make_layer(width, blocks, stride))
            self._stage_names.append(name)
        setattr(self, self._fc_name, StepLayer(nn.Linear(self.inplanes * MSBlock.expansion, num_classes)))
        self.LIF = TETLIFNode(step_mode="m", backend=neuron_backend)
        self.encoding = DTA(time_step, stem_channels, layout="TB", backend=attention_backend) if DTA_ON else None

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * MSBlock.expansion:
            downsample = StepLayer(
                nn.Conv2d(self.inplanes, planes * MSBlock.expansion, kernel_size=1, stride=stride, bias=False),
                StepBatchNorm(planes * MSBlock.expansion),
            )
        stage = [MSBlock(self.inplanes, planes, stride, downsample, backend=self._neuron_backend)]
        self.inplanes = planes * MSBlock.expansion
        stage += [MSBlock(self.inplanes, planes, backend=self._neuron_backend) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """The stem's output X as [T, B, C, H, W], with the input's shape checked."""
        owner = type(self).__name__
        stem: StepLayer = getattr(self, self._stem_name)
        if self.dvs:
            x_tb = to_time_major(owner, x, self.layout, self.T, 5, f"{self.in_channels}, H, W")
            if x_tb.shape[2] != self.in_channels:
                raise ValueError(
                    f"{owner} was built for {self.in_channels} input channels but the input has "
                    f"{x_tb.shape[2]} at dim 2 (shape {list(x.shape)})"
                )
            return stem(x_tb)
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{owner} (dvs=False) takes images [B, {self.in_channels}, H, W], repeated over T = {self.T} "
                f"inside, got {got}; build it with dvs=True for sequences [B, T, C, H, W]"
            )
        # The T copies of a static image are identical before the BN, so convolve once and repeat; the BN
        # still sees all T * B samples, as the official code's (its running variance counts them).
        y = stem.layer.module(x)
        y = y.unsqueeze(0).expand(self.T, *y.shape)
        return y if stem.bn is None else stem.bn(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._input(x)
        if self.encoding is not None:
            x = neuron_dta(self.LIF, self.encoding, x)  # = encoding(x, LIF(x)), one kernel on Triton
        for name in self._stage_names:
            x = getattr(self, name)(x)
        x = self.LIF(x).mean(dim=(3, 4))  # global average pool: [T, B, C]
        return from_time_major(getattr(self, self._fc_name)(x), self.layout)

    def extra_repr(self) -> str:
        return (
            f"T={self.T}, dvs={self.dvs}, in_channels={self.in_channels}, stem={self.stem!r}, "
            f"layout={self.layout!r}, backend={self.backend!r}"
        )


def DTA_SNN_18(
    num_classes: int = 10,
    time_step: int = 6,
    dvs: bool = False,
    *,
    DTA_ON: bool = True,
    layout: str = "BT",
    backend: str = "auto",
) -> MSResNet:
    """DTA-SNN's MS-ResNet-18 variant for CIFAR-10/100 (``dvs=False``, images [B, 3, H, W]) and
    CIFAR10-DVS (``dvs=True``, frames [B, T, 2, H, W]): stages of (3, 3, 2) blocks with 128, 256, 512
    channels, strides (1, 2, 2). Official settings: T = 6 for CIFAR, 10 for CIFAR10-DVS. Returns
    per-time-step logits [B, T, num_classes] (``layout="BT"``). See ``MSResNet`` for the arguments."""
    return MSResNet((3, 3, 2), num_classes, time_step, DTA_ON, dvs, layout=layout, backend=backend)


def DTA_SNN_34(
    num_classes: int = 1000,
    time_step: int = 6,
    *,
    DTA_ON: bool = True,
    layout: str = "BT",
    backend: str = "auto",
) -> MSResNet:
    """DTA-SNN's ImageNet MS-ResNet-34: conv7x7 stride 2 stem (no max-pool, as released), stages of
    (3, 4, 6, 3) blocks with 64, 128, 256, 512 channels, strides (1, 1, 2, 2); keys as the official
    ``MS_ResNet_34``. The released forward cannot run (it reads an undefined ``self.GAC``); this one
    runs DTA in the encoding slot, as ``DTA_SNN_18`` does. See ``MSResNet`` for the arguments."""
    return MSResNet(
        (3, 4, 6, 3),
        num_classes,
        time_step,
        DTA_ON,
        False,
        widths=(64, 128, 256, 512),
        strides=(1, 1, 2, 2),
        stem="imagenet",
        layout=layout,
        backend=backend,
    )
