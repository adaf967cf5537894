"""Networks of the papers, built from the library's layers, with the official parameter names and shapes.

- ``DTA_SNN_18`` / ``DTA_SNN_34`` (``MSResNet``): DTA-SNN's MS-ResNets, DTA in the encoding slot.
- ``TCJA_DVS128`` / ``TCJA_CIFAR10DVS``: TCJA-SNN's VGG-style networks, with the paper settings in
  ``PRESETS``.
- ``MASNN_DVSGesture`` / ``MASNN_CIFAR10DVS`` / ``MASNN_DVSGait`` (``MASNN``): MA-SNN's plain conv nets with the
  released attention; ``AttResSNN18`` / ``AttResSNN34`` (``AttResSNN``): Att-Res-SNN-1 ResNets.
- ``STAA_ResNet20`` (``STAAResNet``, ``STAABasicBlock``): STAA-SNN's CIFAR ResNet-20 with STAA-LIF neurons
  (RECONSTRUCTED; architecture from the authors' sibling code), ``staa=False`` for the LIF baseline.
- Spiking transformers with the official keywords, keys and initialisation (docs/spiking_transformers.md):
  ``Spikformer`` / ``SpikformerImageNet``, ``Spikingformer`` (alias ``vit_snn``), ``SpikeDrivenTransformer``,
  ``Spiking_vit_MetaFormer`` (``metaspikformer_8_384`` / ``_8_512`` / ``_8_768``), ``QKFormer`` (alias
  ``spiking_transformer``) and ``hierarchical_spiking_transformer`` (``QKFormer_10_384`` / ``_512`` / ``_768``).
  They take images as the official ``forward`` does (``SpikeDrivenTransformer`` also [B, T, ...]).

Every network runs in the library layout [T, B, ...] inside, takes ``layout="BT"`` (the official data
loaders' [B, T, ...], default) or ``"TB"`` at its boundary, checks T against its constructor, and passes
one ``backend`` to all of its snnkernels layers. ``resolved_backends(model, x)`` reports what each layer
runs. ``SeqToANN`` (SpikingJelly's ``SeqToANNContainer``), ``SharedMaskDropout``, ``VotingLayer`` and
``GatedPoolSequential`` (TCJA's gate applied after the following pool, on Triton) are the building blocks
they share. See ``docs/models.md``.
"""

from ._blocks import GatedPoolSequential, SeqToANN, SharedMaskDropout, VotingLayer, resolved_backends
from .dta_snn import DTA_SNN_18, DTA_SNN_34, MSBlock, MSResNet
from .ma_snn_nets import (
    MASNN,
    MASNN_CIFAR10_DVS,
    MASNN_CIFAR10DVS,
    MASNN_DVS_GAIT,
    MASNN_DVS_GESTURE,
    MASNN_PRESETS,
    AttLIF,
    AttResSNN,
    AttResSNN18,
    AttResSNN34,
    ConvAttLIF,
    MASNN_DVSGait,
    MASNN_DVSGesture,
    MASNNPreset,
)
from .meta_spikformer import Spiking_vit_MetaFormer, metaspikformer_8_384, metaspikformer_8_512, metaspikformer_8_768
from .qkformer import (
    QKFormer,
    QKFormer_10_384,
    QKFormer_10_512,
    QKFormer_10_768,
    hierarchical_spiking_transformer,
    spiking_transformer,
)
from .spike_driven_transformer import SpikeDrivenTransformer
from .spikformer import Spikformer, SpikformerImageNet
from .spikingformer import Spikingformer, vit_snn
from .staa_nets import STAA_ResNet20, STAABasicBlock, STAAResNet
from .tcja_nets import CIFAR10_DVS, DVS128_GESTURE, PRESETS, TCJA_CIFAR10DVS, TCJA_DVS128, TCJANetPreset

__all__ = [
    "DTA_SNN_18",
    "DTA_SNN_34",
    "MSResNet",
    "MSBlock",
    "TCJA_DVS128",
    "TCJA_CIFAR10DVS",
    "TCJANetPreset",
    "PRESETS",
    "DVS128_GESTURE",
    "CIFAR10_DVS",
    "MASNN",
    "MASNN_DVSGesture",
    "MASNN_CIFAR10DVS",
    "MASNN_DVSGait",
    "MASNNPreset",
    "MASNN_PRESETS",
    "MASNN_DVS_GESTURE",
    "MASNN_CIFAR10_DVS",
    "MASNN_DVS_GAIT",
    "ConvAttLIF",
    "AttLIF",
    "AttResSNN",
    "AttResSNN18",
    "AttResSNN34",
    "STAA_ResNet20",
    "STAAResNet",
    "STAABasicBlock",
    "Spikformer",
    "SpikformerImageNet",
    "Spikingformer",
    "vit_snn",
    "SpikeDrivenTransformer",
    "Spiking_vit_MetaFormer",
    "metaspikformer_8_384",
    "metaspikformer_8_512",
    "metaspikformer_8_768",
    "QKFormer",
    "spiking_transformer",
    "hierarchical_spiking_transformer",
    "QKFormer_10_384",
    "QKFormer_10_512",
    "QKFormer_10_768",
    "SeqToANN",
    "SharedMaskDropout",
    "VotingLayer",
    "GatedPoolSequential",
    "resolved_backends",
]
