"""Thin ``nn.Module`` wrappers; SpikingJelly's keyword names where a SpikingJelly counterpart exists, the
official constructors' arguments and parameter names for the papers' attention modules."""

from .attention import CLA, DTA, TCJA, TLA, TNA, TXA
from .bn_lif import BNLIF, bn_fusion_blocker, bn_neuron
from .fused import AttentionNeuron, attention_neuron
from .ma_snn import AttResBlock, MultiDimensionalAttention, TCSALIFNode, TemporalAttentionFC, TemporalWiseAttention
from .memory import MemoryModule, detach_net, reset_net
from .neuron import AttResLIFNode, IFNode, LeakyNode, LIFNode, MASNNLIFNode, ParametricLIFNode, TETLIFNode
from .spike_layers import SpikeConv1d, SpikeConv2d, SpikeLinear
from .staa import GlobalContextBlock, PositionEncoding, STAALIFNode

__all__ = [
    "IFNode",
    "LIFNode",
    "ParametricLIFNode",
    "LeakyNode",
    "TETLIFNode",
    "MASNNLIFNode",
    "AttResLIFNode",
    "TCJA",
    "TLA",
    "CLA",
    "TXA",
    "TNA",
    "DTA",
    "MultiDimensionalAttention",
    "TemporalAttentionFC",
    "TemporalWiseAttention",
    "TCSALIFNode",
    "AttResBlock",
    "STAALIFNode",
    "GlobalContextBlock",
    "PositionEncoding",
    "AttentionNeuron",
    "attention_neuron",
    "SpikeConv1d",
    "SpikeConv2d",
    "SpikeLinear",
    "MemoryModule",
    "reset_net",
    "detach_net",
    "BNLIF",
    "bn_neuron",
    "bn_fusion_blocker",
]
