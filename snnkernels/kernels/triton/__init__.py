"""Triton kernels (``@triton.jit``), free of torch; launched from ``snnkernels.ops``."""
