"""The CUDA device a Triton launch runs on.

Triton launches on ``torch.cuda.current_device()`` and that device's current stream, whatever device the
tensors live on. A model moved with ``.to("cuda:1")`` while device 0 is current would otherwise run its
kernels on device 0 against device 1's memory. The native CUDA ops (``CUDAGuard``) and the CuPy path
(``cupy.cuda.Device``) set the device themselves; every Triton launch goes through ``on_device_of``.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager

import torch

__all__ = ["on_device_of"]


def on_device_of(t: torch.Tensor) -> AbstractContextManager:
    """Makes ``t``'s CUDA device the current one for the block (and its current stream Triton's); a no-op
    for CPU tensors (the interpreter)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()
