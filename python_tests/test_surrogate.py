"""Surrogates: each derivative against autograd of its primitive (fp64), the Heaviside forward, the
SpikingJelly conversions, and the Triton derivative against the torch formula elementwise."""
from __future__ import annotations

import math

import pytest
import torch

from snnkernels import surrogate as sg

ALL = [sg.ATan(), sg.ATan(3.5), sg.Sigmoid(), sg.Sigmoid(1.5), sg.Triangle(), sg.Triangle(0.4), sg.Rectangle(),
       sg.Rectangle(0.5)]
KINKS = {sg.Triangle: lambda p: (-p, 0.0, p), sg.Rectangle: lambda p: (-p / 2, p / 2)}


def _grid(surrogate: sg.Surrogate) -> torch.Tensor:
    x = torch.linspace(-3.0, 3.0, 6001, dtype=torch.float64)
    for k in KINKS.get(type(surrogate), lambda p: ())(surrogate.param):
        x = x[(x - k).abs() > 1e-6]  # the derivative jumps there: compare off the kinks
    return x


@pytest.mark.parametrize("surrogate", ALL, ids=repr)
def test_derivative_is_gradient_of_primitive(surrogate):
    x = _grid(surrogate).requires_grad_()
    (auto,) = torch.autograd.grad(surrogate.primitive(x).sum(), x)
    torch.testing.assert_close(surrogate.derivative(x.detach()), auto, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("surrogate", ALL, ids=repr)
def test_unit_area_and_primitive_limits(surrogate):
    # integral of the derivative over [-6, 6] (trapezoid, fine grid) = primitive(6) - primitive(-6), and the
    # primitive goes from 0 to 1: unit total area
    x = torch.linspace(-6.0, 6.0, 1200001, dtype=torch.float64)
    area = torch.trapezoid(surrogate.derivative(x), x).item()
    ends = surrogate.primitive(torch.tensor([-6.0, 6.0], dtype=torch.float64))
    # the trapezoid rule errs by up to dx * height at each jump of Rectangle's derivative
    tol = 2 * (x[1] - x[0]).item() * surrogate.derivative(x).max().item()
    assert abs(area - (ends[1] - ends[0]).item()) < tol, area
    lim = surrogate.primitive(torch.tensor([-1e6, 1e6], dtype=torch.float64))
    torch.testing.assert_close(lim, torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-6, rtol=0)


@pytest.mark.parametrize("surrogate", ALL, ids=repr)
@pytest.mark.parametrize("strict", [False, True])
def test_spike_forward_heaviside_backward_derivative(surrogate, strict):
    x = torch.tensor([-1.0, -1e-7, 0.0, 1e-7, 0.3, 2.0], dtype=torch.float64, requires_grad=True)
    s = surrogate.spike(x, strict)
    expected = torch.tensor([0.0, 0.0, 0.0 if strict else 1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    assert torch.equal(s.detach(), expected)
    g = torch.randn_like(x)
    (gx,) = torch.autograd.grad(s, x, g)
    torch.testing.assert_close(gx, g * surrogate.derivative(x.detach()), rtol=0, atol=0)


def test_formulas_match_spec():
    # spec 0.1: values at a few points, written out independently
    x = torch.tensor([0.0, 0.25, -0.7], dtype=torch.float64)
    a = 2.0
    atan = (a / 2) / (1 + (math.pi / 2 * a * x) ** 2)
    torch.testing.assert_close(sg.ATan(a).derivative(x), atan)
    s = torch.sigmoid(4.0 * x)
    torch.testing.assert_close(sg.Sigmoid(4.0).derivative(x), 4.0 * s * (1 - s))
    torch.testing.assert_close(sg.Triangle(1.0).derivative(x), torch.tensor([1.0, 0.75, 0.3], dtype=torch.float64))
    torch.testing.assert_close(sg.Rectangle(1.0).derivative(x), torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(sg.Rectangle(0.5).derivative(x), torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64))


def test_ids_are_unique_and_roundtrip():
    assert sorted(sg.SURROGATE_IDS) == [0, 1, 2, 3]
    for s in ALL:
        assert sg.by_id(s.id, s.param) == s
    with pytest.raises(ValueError, match="unknown surrogate id"):
        sg.by_id(9, 1.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_parameter_rejected(bad):
    with pytest.raises(ValueError, match="positive finite"):
        sg.ATan(bad)


def test_coerce_rejects_unknown_objects():
    with pytest.raises(TypeError, match="unsupported surrogate_function"):
        sg.coerce_surrogate(torch.nn.ReLU())
    assert sg.coerce_surrogate(sg.Rectangle(0.5)) == sg.Rectangle(0.5)


def test_coerce_spikingjelly_surrogates():
    sj = pytest.importorskip("spikingjelly.activation_based.surrogate")
    assert sg.coerce_surrogate(sj.ATan(alpha=3.0)) == sg.ATan(3.0)
    assert sg.coerce_surrogate(sj.Sigmoid(alpha=5.0)) == sg.Sigmoid(5.0)
    assert sg.coerce_surrogate(sj.PiecewiseQuadratic(alpha=2.0)) == sg.Triangle(0.5)
    with pytest.raises(ValueError, match="spiking=False"):
        sg.coerce_surrogate(sj.ATan(spiking=False))
    with pytest.raises(TypeError):
        sg.coerce_surrogate(sj.PiecewiseExp())
    # the converted triangle has SpikingJelly's own gradient
    x = torch.linspace(-2, 2, 401, dtype=torch.float64, requires_grad=True)
    (g_sj,) = torch.autograd.grad(sj.PiecewiseQuadratic(alpha=2.0)(x).sum(), x)
    torch.testing.assert_close(sg.Triangle(0.5).derivative(x.detach()), g_sj)


try:  # the kernel must live at module level: Triton resolves names in the function's globals
    import triton
    import triton.language as tl

    from snnkernels.kernels.triton.surrogate import surrogate_derivative

    @triton.jit
    def _derivative_kernel(x_ptr, out_ptr, n, param, SG_ID: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        m = offs < n
        tl.store(out_ptr + offs, surrogate_derivative(tl.load(x_ptr + offs, mask=m), SG_ID, param), mask=m)
except ImportError:
    _derivative_kernel = None


@pytest.mark.triton
@pytest.mark.parametrize("surrogate", ALL, ids=repr)
def test_triton_derivative_matches_torch(surrogate):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.cat([torch.linspace(-3, 3, 3001), torch.randn(999)]).to(device)
    out = torch.full_like(x, float("nan"))
    _derivative_kernel[(triton.cdiv(x.numel(), 4096),)](x, out, x.numel(), surrogate.param, SG_ID=surrogate.id,
                                                          BLOCK=4096)
    # Sigmoid's sig * (1 - sig) loses relative accuracy where sig ~ 1, so the absolute error is a few fp32
    # ulps of 1 times the derivative's scale (param), whatever the size of the result
    torch.testing.assert_close(out, surrogate.derivative(x), rtol=2e-6, atol=4 * 2**-23 * surrogate.param)
