"""Device code only. Importing ``snnkernels.kernels.triton`` requires Triton."""
