"""Checks shared by the attention ops' tests (ops/test_pooled_attention.py and the tests that copy it):
per-dtype tolerances of the fused sweeps against the float64 reference, the fused-vs-reference comparison,
the half-precision "no worse than eager" rule, the global-context block's fp32 error bounds, and the
attention modules' backend / layout argument checks.

The tolerances:
- outputs and input gradients in the input dtype: the kernels compute in fp32 and round once, so fp16 /
  bf16 are within 2 units in the last place (OUT_RTOL; the interpreter truncates to bf16, hence 2), and
  fp32 within a few ulps of the fp32 tiny stage;
- parameter gradients are fp32 sums reduced in another order than the fp64 reference: compared relative to
  the largest entry (SUM_RTOL * max|g|).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from snnkernels.backends import BackendUnavailableError
from snnkernels.reference.staa import (
    GCParams,
    global_context_attention_reference,
    global_context_fusion,
    global_context_transform_reference,
)

from conftest import DEVICE
from utils import GRAD_TOL, assert_close_verbose

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
OUT_RTOL = {torch.float32: 2e-6, torch.float16: 2.0**-9, torch.bfloat16: 2.0**-6}
OUT_ATOL = {torch.float32: 1e-6, torch.float16: 1e-4, torch.bfloat16: 1e-3}
SUM_RTOL = 1e-5  # fp32 parameter gradients, relative to the largest entry


def make_x(shape, dtype, layout):
    """Input values in ``dtype`` stored as: TB contiguous, BT (DTA-SNN's storage, a transposed view), or
    strided (every other column of a wider tensor: the launcher must copy)."""
    T, B, C, H, W = shape
    if layout == "TB":
        x = torch.randn(shape, device=DEVICE)
    elif layout == "BT":
        x = torch.randn(B, T, C, H, W, device=DEVICE).transpose(0, 1)
    else:
        x = torch.randn(T, B, C, H, 2 * W, device=DEVICE)[..., ::2]
    return x.to(dtype)


def leaves(*tensors):
    return [t.detach().clone().requires_grad_(True) for t in tensors]


def run(fn, inputs, grad_out):
    out = fn(*inputs)
    grads = torch.autograd.grad(out, [t for t in inputs if t.requires_grad], grad_out)
    return out, grads


def compare(name, fused_inputs, fused_fn, ref_fn, grad_out, n_data, summed=()):
    """Fused run vs float64 reference; the first ``n_data`` inputs are full-size tensors in the input dtype,
    compared element by element unless their index is in ``summed``: a gradient that adds paths of O(1)
    terms which cancel (a tensor used twice, X through T-NA's convolutions and T-XA) is compared relative
    to its largest entry, like the parameter gradients."""
    ref_inputs = [t.detach().double().requires_grad_(t.requires_grad) for t in fused_inputs]
    out, grads = run(fused_fn, fused_inputs, grad_out)
    out_ref, grads_ref = run(ref_fn, ref_inputs, grad_out.double())
    dtype = fused_inputs[0].dtype
    assert out.dtype == dtype and out.shape == out_ref.shape
    assert_close_verbose(out, out_ref, OUT_ATOL[dtype], OUT_RTOL[dtype], f"{name} output")
    with_grad = [i for i, t in enumerate(fused_inputs) if t.requires_grad]
    for i, g, g_ref in zip(with_grad, grads, grads_ref, strict=True):
        assert g.dtype == fused_inputs[i].dtype and g.shape == fused_inputs[i].shape
        if i < n_data and i not in summed:
            assert_close_verbose(g, g_ref, OUT_ATOL[dtype], OUT_RTOL[dtype], f"{name} grad of input {i}")
        elif i < n_data:
            scale = g_ref.abs().max().item()
            assert_close_verbose(g, g_ref, OUT_RTOL[dtype] * scale, OUT_RTOL[dtype], f"{name} grad of input {i}")
        else:
            atol = SUM_RTOL * g_ref.abs().max().item()
            assert_close_verbose(g, g_ref, atol, SUM_RTOL, f"{name} grad of parameter {i}")


def no_worse_than_eager(name, inputs, fused_fn, ref_fn, grad_out, factor=3.0, skip=()):
    """Half precision with half-precision weights and intermediates (convolutions in fp16 / bf16 on both
    sides): each output and gradient of the fused run must be within ``factor`` times the error that the
    eager reference itself makes in that dtype, both measured against the float64 reference. ``skip``:
    gradient indices not compared (see the caller for why)."""
    ref64 = [t.detach().double().requires_grad_() for t in inputs]
    out, grads = run(fused_fn, inputs, grad_out)
    out_e, grads_e = run(ref_fn, leaves(*inputs), grad_out)
    out_r, grads_r = run(ref_fn, ref64, grad_out.double())
    for i, (what, a, e, r) in enumerate(
        zip(
            ["output"] + [f"grad {i}" for i in range(len(grads))],
            [out, *grads],
            [out_e, *grads_e],
            [out_r, *grads_r],
            strict=True,
        )
    ):
        if i - 1 in skip:
            continue
        err = (a.double() - r).abs().max().item()
        eager_err = (e.double() - r).abs().max().item()
        assert err <= factor * eager_err + 1e-6 * r.abs().max().item(), (
            f"{name} {what}: fused error {err:.3e} vs eager {a.dtype} error {eager_err:.3e} (largest entry "
            f"{r.abs().max().item():.3e})"
        )


def key_weight_atol(x: torch.Tensor, gc: GCParams, loss_of_ctx) -> torch.Tensor:
    """Per-channel error bound of dL/dwk in fp32: the softmax backward forms dkappa = att (datt - dctx.ctx)
    from two terms of size ~|dctx| |x| that mostly cancel, so each carries eps * sum_c |dctx_c x_c| of
    error, and dwk_c sums x_c * dkappa over frames and pixels (float64 quantities, 4x margin)."""
    x = x.detach().double().flatten(-2)  # [..., C, S]
    att = global_context_attention_reference(x.unflatten(-1, (1, -1)), gc.key_weight.double(), None)
    ctx = torch.einsum("...cp,...p->...c", x, att).requires_grad_(True)
    (dctx,) = torch.autograd.grad(loss_of_ctx(ctx), ctx)
    term = torch.einsum("...cp,...c->...p", x.abs(), dctx.abs()) + (dctx * ctx).sum(-1, keepdim=True).abs()
    bound = torch.einsum("...cp,...p->...c", x.abs(), att * term)
    return 4 * 2.0**-23 * bound.reshape(-1, x.shape[-2]).sum(0)


def assert_within(actual: torch.Tensor, expected: torch.Tensor, bound: torch.Tensor, name: str) -> None:
    err = (actual.detach().double() - expected.detach().double()).abs()
    assert bound.max() < expected.abs().max(), f"{name}: the bound {bound.max():.2e} would accept anything"
    bad = err > bound
    assert not bad.any(), (
        f"{name}: {int(bad.sum())} / {bad.numel()} entries beyond the fp32 bound; worst "
        f"{(err / bound).max():.2f}x the bound, max error {err.max():.3e}"
    )


def gc_weights(C: int, hidden: int, bias: bool, layer_norm: bool) -> GCParams:
    def r(*shape, scale=0.5):
        return torch.randn(*shape, device=DEVICE) * scale

    return GCParams(
        r(C),
        r(()) if bias else None,
        r(hidden, C),
        r(hidden) if bias else None,
        (1 + r(hidden, scale=0.1)) if layer_norm else None,
        r(hidden, scale=0.1) if layer_norm else None,
        r(C, hidden),
        r(C) if bias else None,
    )


def check_backend_and_layout_arguments(make: Callable[..., object], name: str, available: tuple[str, ...]) -> None:
    """``make(backend=..., layout=...)`` builds the attention module ``name``: it accepts the backends in
    ``available``, refuses the other fused ones (BackendUnavailableError naming it), rejects an unknown backend
    and a layout other than 'TB' / 'BT'."""
    for backend in available:
        make(backend=backend)
    for backend in ("triton", "native", "cupy"):
        if backend not in available:
            with pytest.raises(BackendUnavailableError, match=f"{name} has no {backend} kernels"):
                make(backend=backend)
    with pytest.raises(ValueError, match="backend must be one of"):
        make(backend="cuda")
    with pytest.raises(ValueError, match="layout must be 'TB'"):
        make(layout="TBCHW")


class FusedPair(nn.Module):
    """A fused-pair function ``fn(first, second, x)`` (``nn.fused.neuron_dta``, ...) as a module that owns both
    partners."""

    def __init__(self, fn: Callable[..., torch.Tensor], first: nn.Module, second: nn.Module) -> None:
        super().__init__()
        self.fn, self.first, self.second = fn, first, second

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.first, self.second, x)


def check_global_context_block(
    out: torch.Tensor,
    want: torch.Tensor,
    inputs: list[torch.Tensor],
    ref: list[torch.Tensor],
    params64: GCParams,
    present: list[int],
    fusion: str,
    layer_norm: bool,
) -> None:
    """The fused global-context block's fp32 output ``out`` of ``inputs`` (x, then the GCParams fields numbered
    ``present``) against the float64 reference ``want`` of their copies ``ref`` (``params64``), forward and every
    gradient. dX sums the context's path (through the LayerNorm over C // r features, which amplifies fp32
    noise by 1 / std of the hidden features) into every element: relative to its largest entry, as the sums."""
    assert_close_verbose(out, want, OUT_ATOL[torch.float32], OUT_RTOL[torch.float32] * 4, "output")
    grad = torch.randn_like(out)
    grads = torch.autograd.grad(out, inputs, grad)
    grads_ref = torch.autograd.grad(want, ref, grad.double())
    top_x = grads_ref[0].abs().max().item()
    assert_close_verbose(grads[0], grads_ref[0], SUM_RTOL * top_x, SUM_RTOL, "grad x")

    def loss_of_ctx(ctx):
        v = global_context_transform_reference(ctx, params64, layer_norm=layer_norm)
        return (global_context_fusion(ref[0].detach(), v, fusion) * grad.double()).sum()

    for i, (g, g_ref) in enumerate(zip(grads[1:], grads_ref[1:], strict=True)):
        # the key bias: exactly 0 here (it cannot change a softmax), rounding noise in the reference
        if present[i] == 1:
            assert torch.equal(g, torch.zeros_like(g)) and g_ref.abs().max() < 1e-9
            continue
        if present[i] == 0:
            assert_within(g, g_ref, key_weight_atol(ref[0], params64, loss_of_ctx), "grad key weight")
            continue
        top = g_ref.abs().max().item()
        # the softmax backward subtracts two O(|x| |dctx|) terms: the error is relative to those, not to
        # the (possibly much smaller) result
        scale = max(top, 1e-3 * top_x)
        assert_close_verbose(g, g_ref, SUM_RTOL * scale, SUM_RTOL, f"grad of GC weight {present[i]}")


def check_grads_without_flips(grads: tuple, grads_ref: tuple, flipped: torch.Tensor) -> None:
    """fp32 gradients ``grads`` (dL/dx first, [T, B, ...], then the weights') of a spiking output against their
    float64 reference, where the samples ``flipped`` [B] had a spike flip: dL/dx on the other samples, the
    weights' (sums over every sample, relative to their largest entry) only when no sample flipped."""
    keep = ~flipped
    atol, rtol = GRAD_TOL[torch.float32]
    top = grads_ref[0][:, keep].abs().max().item()
    assert_close_verbose(grads[0][:, keep], grads_ref[0][:, keep], atol + SUM_RTOL * top, rtol, "grad x")
    if not flipped.any():
        for i, (g, g_ref) in enumerate(zip(grads[1:], grads_ref[1:], strict=True)):
            scale = g_ref.abs().max().item()
            assert_close_verbose(g, g_ref.reshape(g.shape), SUM_RTOL * scale, SUM_RTOL, f"grad weight {i}")
