"""STAA-LIF's time loop on the Triton step kernels (``ops.staa_triton``) against the eager loop.

Ground truth: ``staa_lif_reference`` in float64, started from the same PE + GC features (``features=``), so
this file checks the loop alone (the GC sweep has its own tests in test_global_context.py). The step
attention's pooling is summed in another order than the reference's mean, so a potential within rounding
of the threshold may fire differently: the flip rate is capped, and since every gate is per sample, a
flip perturbs its own sample only; the input gradients are compared on the samples without one, the
parameters' gradients when no sample flipped. Every option of the loop is covered: the three gate forms,
TSRD per step and per sample with both scopes, raw and tanh coefficients, per-channel and scalar
coefficients, detached reset, a non-zero reset value, each surrogate.
"""
from __future__ import annotations

import pytest
import torch

from snnkernels import surrogate as sg
from snnkernels.ops.staa_triton import staa_loop_fused, staa_step
from snnkernels.reference.staa import SAParams, STAAParams, staa_coefficients, staa_lif_reference

from conftest import DEVICE, pick
from test_pooled_attention import SUM_RTOL, leaves
from utils import GRAD_TOL, MAX_FLIP_RATE, assert_close_verbose

pytestmark = pytest.mark.triton

T, B, C, H, W = 5, 4, 8, 5, 6
HIDDEN = 2

CASES = {
    "default": dict(),
    "softmax": dict(sa_gate="softmax"),
    "scaled-logits": dict(sa_gate="scaled_logits", surrogate_function=sg.Sigmoid()),
    "tsrd-step": dict(mask="step"),
    "tsrd-sample-all": dict(mask="sample", tsrd_scope="all"),
    "tanh-scalar": dict(coefficient_map="tanh", shape="scalar", surrogate_function=sg.ATan()),
    "detach-reset": dict(detach_reset=True, v_reset=0.2, surrogate_function=sg.Triangle()),
    "no-step-attention": dict(no_sa=True),
}


def make(case: dict):
    m_shape = () if case.get("shape") == "scalar" else (C,)
    m = torch.empty(m_shape, device=DEVICE).uniform_(0.3, 0.9)
    n = torch.empty(m_shape, device=DEVICE).uniform_(0.8, 1.5)
    if case.get("coefficient_map") == "tanh":
        m, n = m + 0.3, n + 0.5  # tanh of them: (0.5, 0.9) and (0.85, 0.98)
    sa = None if case.get("no_sa") else SAParams(torch.randn(HIDDEN, C, device=DEVICE) * 0.5,
                                                 torch.randn(2 * C, HIDDEN, device=DEVICE) * 0.5)
    feat = torch.randn(T, B, C, H, W, device=DEVICE) * 1.5 + 0.3
    x = torch.randn(T, B, C, H, W, device=DEVICE) * 1.5 + 0.3
    mask = {"step": torch.tensor([False, True, False, False, True], device=DEVICE),
            "sample": torch.rand(T, B, device=DEVICE) < 0.4}.get(case.get("mask"))
    return x, feat, m, n, sa, mask


def options(case: dict) -> dict:
    return dict(alpha=2.0, sa_gate=case.get("sa_gate", "sigmoid"), coefficient_map=case.get("coefficient_map", "raw"),
                tsrd_scope=case.get("tsrd_scope", "step_attention"), v_threshold=1.0, v_reset=case.get("v_reset", 0.0),
                detach_reset=case.get("detach_reset", False),
                surrogate_function=case.get("surrogate_function", sg.Rectangle(1.0)))


def fused(x, feat, m, n, sa, mask, opts):
    """The loop as STAALIFNode(backend="triton") runs it, from given features."""
    Tn, Bn = x.shape[:2]
    if mask is not None:
        mask = mask.reshape(Tn, -1).expand(Tn, Bn)
        if opts["tsrd_scope"] == "all":
            feat = torch.where(mask[:, :, None, None, None], x, feat)
    a, b = staa_coefficients(m, n, opts["coefficient_map"])
    spikes, _ = staa_loop_fused(feat, a, b, sa, mask, alpha=opts["alpha"], sa_gate=opts["sa_gate"],
                                v_threshold=opts["v_threshold"], v_reset=opts["v_reset"],
                                detach_reset=opts["detach_reset"], surrogate=opts["surrogate_function"],
                                v_init=None, spike_dtype=x.dtype)
    return spikes


@pytest.mark.parametrize("name", pick(list(CASES), ["default", "tsrd-sample-all", "tanh-scalar"]))
def test_loop_matches_reference(name):
    case = CASES[name]
    x, feat, m, n, sa, mask = make(case)
    opts = options(case)
    tensors = [x, feat, m, n] + ([] if sa is None else list(sa))
    ours_in, ref_in = leaves(*tensors), leaves(*[t.double() for t in tensors])

    def sa_of(ts):
        return None if sa is None else SAParams(ts[4], ts[5])

    out = fused(ours_in[0], ours_in[1], ours_in[2], ours_in[3], sa_of(ours_in), mask, opts)
    params = STAAParams(None, None, sa_of(ref_in), ref_in[2], ref_in[3])
    want = staa_lif_reference(ref_in[0], params, drop_mask=mask, features=ref_in[1], **opts)
    assert out.dtype == x.dtype and out.shape == x.shape
    assert 0.02 < want.mean().item() < 0.8, "the inputs should make the neurons fire sometimes"
    differ = out.double() != want
    assert differ.double().mean().item() <= MAX_FLIP_RATE
    flipped = differ.flatten(2).any(-1).any(0)  # [B]
    assert not flipped.all()
    grad_out = torch.randn(T, B, C, H, W, device=DEVICE)
    grads = torch.autograd.grad(out, ours_in, grad_out, allow_unused=True)
    grads_ref = torch.autograd.grad(want, ref_in, grad_out.double(), allow_unused=True)
    keep = ~flipped
    atol, rtol = GRAD_TOL[torch.float32]
    for i, nm in enumerate(("x", "features")):
        g, g_ref = grads[i], grads_ref[i]
        if g_ref is None:  # x reaches the loop only through dropped steps with tsrd_scope="all"
            assert g is None or g.abs().max() == 0
            continue
        top = g_ref[:, keep].abs().max().item()
        assert_close_verbose(g[:, keep], g_ref[:, keep], atol + SUM_RTOL * top, rtol, f"grad {nm}")
    if not flipped.any():
        for nm, g, g_ref in zip(("M", "N", "w1", "w2"), grads[2:], grads_ref[2:]):
            top = g_ref.abs().max().item()
            assert top > 0, f"grad {nm} is zero: the test cannot fail"
            assert_close_verbose(g, g_ref, SUM_RTOL * top, SUM_RTOL, f"grad {nm}")


def test_step_kernel_is_the_reference_update():
    """One step with given gates: spikes and next state bit for bit (the same ops in the same order), and
    the state's row sums (the next step's pooling input)."""
    h = torch.randn(B, C, H, W, device=DEVICE)
    y = torch.randn(B, C, H, W, device=DEVICE) * 2
    a, b = torch.rand(C, device=DEVICE) + 0.3, torch.rand(C, device=DEVICE) + 0.5
    ga, gb = torch.rand(B, C, device=DEVICE) * 2, torch.rand(B, C, device=DEVICE) * 2
    s, h_next, h_sum = staa_step(h, y, a, b, ga, gb, v_threshold=1.0, v_reset=0.1, detach_reset=False,
                          surrogate=sg.Rectangle(1.0), spike_dtype=torch.bfloat16)
    u = ga[..., None, None] * (a[:, None, None] * h) + gb[..., None, None] * (b[:, None, None] * y)
    spike = (u - 1.0 >= 0).float()
    assert s.dtype == torch.bfloat16 and torch.equal(s.float(), spike)
    assert torch.equal(h_next, u * (1.0 - spike) + 0.1 * spike)
    torch.testing.assert_close(h_sum, h_next.sum(dim=(2, 3)), rtol=1e-6, atol=1e-5)


def test_module_on_triton_runs_the_step_kernels(monkeypatch):
    from snnkernels.nn import STAALIFNode
    from snnkernels.ops import staa_triton

    calls = []
    real = staa_triton.staa_step_fwd
    monkeypatch.setattr(staa_triton, "staa_step_fwd", lambda *a: calls.append(1) or real(*a))
    node = STAALIFNode(T, C, H, W, m_init=0.5, n_init=1.0, backend="triton").to(DEVICE).eval()
    node(torch.randn(T, B, C, H, W, device=DEVICE))
    assert len(calls) == T
    per_pixel = STAALIFNode(T, C, H, W, coefficient_shape="CHW", backend="triton").to(DEVICE).eval()
    calls.clear()
    per_pixel(torch.randn(T, B, C, H, W, device=DEVICE))
    assert calls == []  # per-pixel M, N: the eager loop
