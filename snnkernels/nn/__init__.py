"""Thin ``nn.Module`` wrappers; SpikingJelly's keyword names where a SpikingJelly counterpart exists."""
from .neuron import AttResLIFNode, LeakyNode, LIFNode, MASNNLIFNode, ParametricLIFNode, TETLIFNode

__all__ = ["LIFNode", "ParametricLIFNode", "LeakyNode", "TETLIFNode", "MASNNLIFNode", "AttResLIFNode"]
