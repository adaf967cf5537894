"""DTA's output-product terms, shared by its sweep (``rowwise``) and its fused neuron (``dta_leaky``)."""

import triton
import triton.language as tl


@triton.jit
def sigmoid(p):
    return 1.0 / (1.0 + tl.exp(-p))


@triton.jit
def na_of(na, bias, x, NA_RESIDUAL: tl.constexpr):
    """T-NA's output from the loaded NA (fp32): as given, or the decoding conv's bias-free output plus its bias and
    the residual X."""
    if NA_RESIDUAL:
        na = (na + bias) + x
    return na


@triton.jit
def na_value(na_ptr, bias, x, offs, mask, NA_RESIDUAL: tl.constexpr):
    """T-NA's output read from ``na_ptr`` (``na_of``)."""
    return na_of(tl.load(na_ptr + offs, mask=mask, other=0.0).to(tl.float32), bias, x, NA_RESIDUAL)
