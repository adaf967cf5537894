"""The leaky neuron's eager reference under its former module path; it lives in ``snnkernels.reference.leaky``."""

from .leaky import multistep_leaky_reference, multistep_lif_reference, state_dtype

__all__ = ["multistep_leaky_reference", "multistep_lif_reference", "state_dtype"]
