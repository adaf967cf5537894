"""Native implementation of the leaky-neuron ops (C++ CPU / CUDA, csrc/leaky/).

The ops ``snnkernels::leaky_fwd_native`` / ``leaky_bwd_native`` are defined and implemented by the
compiled extension ``snnkernels._C``; ``snnkernels._ext.load_native`` imports it and registers the
shared fakes and autograd (``ops/leaky.py``). This module only names them for the dispatcher.
"""

from __future__ import annotations

import torch

from .leaky import CHECKPOINT_CHUNK, leaky_entries
from .registry import NATIVE_MODULE

DEFAULT_CHUNK = CHECKPOINT_CHUNK  # recompute granularity of the backward (ops/leaky.py)


def forward_op():
    return torch.ops.snnkernels.leaky_fwd_native.default


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck, the Triton kernels launched.


OPS = leaky_entries("native", NATIVE_MODULE, ("cpu", "cuda"))  # the ops are the extension's
