"""Second derivatives through the fused neurons (docs/neuron.md "Second derivatives").

The fused backward ops have no derivative of their own. A double backward through one must raise a RuntimeError
that names the op and the way out, instead of returning zeros (the leaky ops did, with only a PyTorch warning) or
PyTorch's generic message; first-order gradients taken with ``create_graph=True``, and second derivatives that only
pass through the neuron's forward, keep working.
"""

from __future__ import annotations

import pytest
import torch

from snnkernels import functional as F
from snnkernels import surrogate as sg

from conftest import DEVICE
from test_leaky import FUSED, coefficient, rand

MESSAGE = r"second derivative was requested through snnkernels::{op}.*backend='torch'"


def _lif(x, decay, backend):
    return F.multistep_leaky(
        x, decay=decay, surrogate_function=sg.ATan(), backend=backend, return_final_state=True, return_v_seq=True
    )


@pytest.mark.parametrize("backend", FUSED)
def test_leaky_double_backward_raises(backend):
    x = rand((6, 2, 3, 5))
    decay = coefficient("channel", 0.6, 3)
    outs = _lif(x, decay, backend)
    g_outs = [torch.randn_like(o) for o in outs]
    grads = torch.autograd.grad(outs, (x, decay), g_outs, create_graph=True)
    plain = torch.autograd.grad(_lif(x, decay, backend), (x, decay), g_outs)
    for g, p in zip(grads, plain, strict=True):  # first-order gradients: the same with create_graph
        assert torch.equal(g, p)
    with pytest.raises(RuntimeError, match=MESSAGE.format(op=f"leaky_bwd_{backend}")):
        torch.autograd.grad(grads[0].square().sum(), x)
    with pytest.raises(RuntimeError, match=MESSAGE.format(op=f"leaky_bwd_{backend}")):
        torch.autograd.grad(grads[1].sum(), decay)


@pytest.mark.parametrize("backend", FUSED)
def test_second_derivative_through_the_forward_only(backend):
    """A gradient penalty on a layer after the neuron: d/dW (L) = spikes-dependent, differentiated w.r.t. x
    passes through the neuron's forward once (a first derivative of it), never through its backward. Equal to
    the reference's."""
    results = []
    x0, w0 = rand((5, 2, 3, 4), requires_grad=False), torch.randn(4, 6, device=DEVICE)
    for b in (backend, "torch"):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        spikes = F.multistep_lif(x, tau=2.0, surrogate_function=sg.Sigmoid(), backend=b)
        (g_w,) = torch.autograd.grad((spikes @ w).square().sum(), w, create_graph=True)
        results.append(torch.autograd.grad(g_w.square().sum(), x))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-5)


def test_reference_keeps_its_second_derivative():
    x = rand((5, 2, 3, 4))
    s = F.multistep_lif(x, tau=2.0, surrogate_function=sg.Sigmoid(), backend="torch")
    (g,) = torch.autograd.grad((s * torch.randn_like(s)).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), x)
    assert gg.abs().sum() > 0


@pytest.mark.triton
def test_gated_and_dta_neurons_refuse_clearly():
    from snnkernels.ops.dta_leaky_triton import dta_leaky
    from snnkernels.ops.gated_leaky_triton import gated_leaky

    neuron = (0.5, 0.5, 0.0, 1.0, 0.0, 0.0, True, False, False, sg.ATan().id, sg.ATan().param)
    T, B, C = 4, 2, 3
    x = (torch.randn(T, B, C, 4, 4, device=DEVICE) * 1.5).requires_grad_()
    scale = (torch.rand(T, B, C, device=DEVICE) + 0.5).requires_grad_()
    na = torch.randn(T, B, C, 4, 4, device=DEVICE).requires_grad_()
    txa = [
        torch.randn(T, T, 3, device=DEVICE) / 3,
        torch.randn(C, C, 6, device=DEVICE) / 6,
        torch.tensor(0.7, device=DEVICE),
        torch.tensor(0.9, device=DEVICE),
    ]
    cases = (
        ("gated_leaky_bwd", lambda: gated_leaky(x, scale, None, relu=False, neuron=neuron)),
        ("dta_leaky_bwd", lambda: dta_leaky(x, na, *txa, None, neuron=neuron)),
    )
    for op, run in cases:
        out = run()
        (g,) = torch.autograd.grad((out * torch.randn_like(out)).sum(), x, create_graph=True)
        with pytest.raises(RuntimeError, match=rf"snnkernels::{op}.*backend='torch'"):
            torch.autograd.grad(g.square().sum(), x)
