"""snnkernels: fused GPU kernels for spiking neural networks with attention.

Layers of the package, each op in one predictable place:

- ``snnkernels.reference``: eager PyTorch ground truth (also the ``backend="torch"`` path);
- ``snnkernels.kernels``: device code (Triton);
- ``snnkernels.ops``: launchers, registered ``torch.library`` ops, autograd;
- ``snnkernels.functional``: the stateless public functions;
- ``snnkernels.nn``: thin ``nn.Module`` wrappers with SpikingJelly's argument names;
- ``snnkernels.models``: the papers' networks built from those layers;
- ``snnkernels.firing``: firing statistics of a network's neurons (spike counts, NASAR, synaptic operations);
- ``snnkernels.diagnostics``: what will run here (``python -m snnkernels``): versions, backends, per-layer choice.
"""

from . import backends, diagnostics, firing, functional, models, neuron_models, nn, reference, surrogate
from ._version import __version__

__all__ = [
    "__version__",
    "backends",
    "diagnostics",
    "firing",
    "functional",
    "models",
    "neuron_models",
    "nn",
    "reference",
    "surrogate",
]
