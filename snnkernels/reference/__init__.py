"""Eager references: plain loops over T implementing the spec's equations. Ground truth for tests."""
from .neuron import multistep_leaky_reference, multistep_lif_reference, state_dtype

__all__ = ["multistep_leaky_reference", "multistep_lif_reference", "state_dtype"]
