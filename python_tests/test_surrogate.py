"""Surrogates: each derivative against autograd of its primitive (fp64) and against the formulas written out
here, the Heaviside forward / surrogate backward of ``spike``, ``coerce_surrogate`` conversions and errors,
and the Triton ``surrogate_derivative`` against the torch formula elementwise."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch

from snnkernels import surrogate as sg

from conftest import DEVICE
from utils import assert_close_verbose

ALL = [
    sg.ATan(),
    sg.ATan(3.5),
    sg.ATan(0.7),
    sg.Sigmoid(),
    sg.Sigmoid(1.5),
    sg.Sigmoid(9.0),
    sg.Triangle(),
    sg.Triangle(0.4),
    sg.Triangle(2.5),
    sg.Rectangle(),
    sg.Rectangle(0.5),
    sg.Rectangle(1.7),
    sg.PiecewiseExp(),
    sg.PiecewiseExp(0.6),
    sg.PiecewiseExp(3.0),
    sg.SoftSign(),
    sg.SoftSign(0.5),
    sg.SoftSign(5.0),
    sg.SuperSpike(),
    sg.SuperSpike(0.5),
    sg.SuperSpike(2.0),
    sg.Erf(),
    sg.Erf(0.8),
    sg.Erf(4.0),
]
IDS = [repr(s) for s in ALL]


def kinks(s: sg.Surrogate) -> tuple[float, ...]:
    """Points where the derivative is discontinuous (Rectangle) or not differentiable (Triangle)."""
    if isinstance(s, sg.Triangle):
        return (-s.param, 0.0, s.param)
    if isinstance(s, sg.Rectangle):
        return (-s.param / 2, s.param / 2)
    if isinstance(s, sg.PiecewiseExp):  # the primitive's |x| has no derivative at 0 (autograd takes 0 there)
        return (0.0,)
    return ()


def grid(s: sg.Surrogate, lo: float = -4.0, hi: float = 4.0, n: int = 16001) -> torch.Tensor:
    x = torch.cat([torch.linspace(lo, hi, n, dtype=torch.float64), torch.randn(2000, dtype=torch.float64) * 2])
    for k in kinks(s):
        x = x[(x - k).abs() > 1e-9]
    return x


# The table of docs/neuron.md "Surrogates", written out independently of snnkernels.surrogate (x = u - V_th).
def spec_derivative(s: sg.Surrogate, x: torch.Tensor) -> torch.Tensor:
    p = s.param
    if isinstance(s, sg.ATan):
        return (p / 2) / (1 + (math.pi / 2 * p * x) ** 2)
    if isinstance(s, sg.Sigmoid):
        e = torch.exp(-p * x)
        return p * e / (1 + e) ** 2
    if isinstance(s, sg.Triangle):
        return torch.where(x.abs() < p, (p - x.abs()) / p**2, torch.zeros_like(x))
    if isinstance(s, sg.Rectangle):
        return torch.where(x.abs() < p / 2, torch.full_like(x, 1 / p), torch.zeros_like(x))
    # SpikingJelly's own spelling of its four (surrogate.py, *_backward)
    if isinstance(s, sg.PiecewiseExp):
        return p / 2 * torch.exp(-p * x.abs())
    if isinstance(s, sg.SoftSign):
        return 1 / (2 * p * (1 / p + x.abs()) ** 2)
    if isinstance(s, sg.SuperSpike):
        return p / (x.abs() + 1) ** 2
    if isinstance(s, sg.Erf):
        return torch.exp(-((x * p) ** 2)) * (p / math.sqrt(math.pi))
    raise TypeError(s)


def peak(s: sg.Surrogate) -> float:
    """The derivative's maximum (at x = 0)."""
    return spec_derivative(s, torch.zeros((), dtype=torch.float64)).item()


def formula_tol(s: sg.Surrogate, dtype: torch.dtype, scale: float = 1.0) -> tuple[float, float]:
    """(atol, rtol) for a derivative evaluated in ``dtype`` against the exact value. A chain of ~5 rounded ops
    gives a few ulps relative (rtol = 8 eps); Sigmoid's ``1 - sig`` and Triangle's ``gamma - |x|`` cancel, so
    there the error is a few ulps of the *peak* value rather than of the result (atol = 32 eps * peak).
    ``scale`` bounds a factor the derivative is multiplied with (a gradient)."""
    eps = torch.finfo(dtype).eps
    return 32 * eps * peak(s) * scale, 8 * eps


@pytest.mark.parametrize("surrogate", ALL, ids=IDS)
def test_derivative_is_autograd_of_primitive(surrogate):
    x = grid(surrogate).requires_grad_()
    (auto,) = torch.autograd.grad(surrogate.primitive(x).sum(), x)
    assert_close_verbose(surrogate.derivative(x.detach()), auto, 1e-13, 1e-12, f"{surrogate!r} derivative")


@pytest.mark.parametrize("surrogate", ALL, ids=IDS)
def test_derivative_matches_spec_formula(surrogate):
    x = grid(surrogate)
    atol, rtol = formula_tol(surrogate, torch.float64)
    assert_close_verbose(surrogate.derivative(x), spec_derivative(surrogate, x), atol, rtol, repr(surrogate))


@pytest.mark.parametrize("surrogate", ALL, ids=IDS)
def test_primitive_goes_from_0_to_1_with_unit_area(surrogate):
    # SuperSpike is SpikingJelly's unnormalised a / (1 + |x|)^2: its primitive runs from -a to a (area 2a)
    p = surrogate.param
    low, high = (-p, p) if isinstance(surrogate, sg.SuperSpike) else (0.0, 1.0)
    far = torch.tensor([-1e7, 1e7], dtype=torch.float64)
    assert_close_verbose(
        surrogate.primitive(far), torch.tensor([low, high], dtype=torch.float64), 1e-6, 0, "primitive limits"
    )
    L = 40.0
    x = torch.linspace(-L, L, 1_600_001, dtype=torch.float64)
    area = torch.trapezoid(surrogate.derivative(x), x).item()
    # Heavy tails: on [-L, L] ATan holds (2/pi) atan(pi alpha L / 2), SoftSign a L / (1 + a L), SuperSpike
    # 2a L / (1 + L); the others hold all of it there (Sigmoid's and the exponentials' tails beyond 40 are
    # < e^-20). The trapezoid rule errs by up to dx * height at each jump of the Rectangle, and by O(dx^2)
    # elsewhere.
    expected = {
        sg.ATan: 2 / math.pi * math.atan(math.pi * p * L / 2),
        sg.SoftSign: p * L / (1 + p * L),
        sg.SuperSpike: 2 * p * L / (1 + L),
    }.get(type(surrogate), 1.0)
    tol = 4 * (x[1] - x[0]).item() * peak(surrogate) + 1e-9
    assert abs(area - expected) < tol, (area, expected)


@pytest.mark.parametrize("surrogate", ALL, ids=IDS)
@pytest.mark.parametrize("strict", [False, True], ids=["ge", "gt"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_spike_forward_is_heaviside_and_backward_is_derivative(surrogate, strict, dtype):
    special = torch.tensor([-math.inf, -1.0, -1e-30, -0.0, 0.0, 1e-30, 0.3, 2.0, math.inf, math.nan])
    x = torch.cat([special, torch.randn(500) * 2]).to(dtype).requires_grad_()
    s = surrogate.spike(x, strict)
    assert s.dtype == dtype and s.shape == x.shape
    xd = x.detach()
    expected = torch.where(xd > 0, 1.0, 0.0) if strict else torch.where(xd >= 0, 1.0, 0.0)  # NaN -> 0
    assert_close_verbose(s.detach(), expected.to(dtype), 0, 0, "spike forward")
    assert s.detach()[special.numel() - 7].item() == (0.0 if strict else 1.0)  # -0.0: fires only non-strict
    g = torch.randn(x.shape).to(dtype)
    (gx,) = torch.autograd.grad(s, x, g)
    finite = xd.isfinite()
    expected_grad = g.double() * spec_derivative(surrogate, xd.double())
    # the library evaluates derivative(x) in x's dtype, then multiplies by g (one more rounding)
    atol, rtol = formula_tol(surrogate, dtype, scale=g.abs().max().item())
    assert_close_verbose(gx[finite], expected_grad[finite], atol, rtol, "spike backward")
    # calling the object is the same as .spike (non-strict)
    assert torch.equal(surrogate(xd), heaviside_ge(xd))


def heaviside_ge(x):
    return torch.where(x >= 0, 1.0, 0.0).to(x.dtype)


def test_formulas_at_hand_computed_points():
    x = torch.tensor([0.0, 0.25, -0.7, 1.2], dtype=torch.float64)
    # ATan(2): 1 / (1 + (pi x)^2)
    expected = 1 / (1 + (math.pi * x) ** 2)
    assert_close_verbose(sg.ATan(2.0).derivative(x), expected, 0, 1e-15, "ATan(2)")
    # Sigmoid(4) at 0: 4 * 0.5 * 0.5 = 1
    assert sg.Sigmoid(4.0).derivative(torch.zeros(1, dtype=torch.float64)).item() == 1.0
    assert_close_verbose(
        sg.Triangle(1.0).derivative(x),
        torch.tensor([1.0, 0.75, 0.3, 0.0], dtype=torch.float64),
        1e-15,
        0,
        "Triangle(1)",
    )
    assert_close_verbose(
        sg.Triangle(0.5).derivative(x),
        torch.tensor([2.0, 1.0, 0.0, 0.0], dtype=torch.float64),
        1e-15,
        0,
        "Triangle(0.5)",
    )
    assert_close_verbose(
        sg.Rectangle(1.0).derivative(x), torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64), 0, 0, "Rectangle(1)"
    )
    assert_close_verbose(
        sg.Rectangle(0.5).derivative(x), torch.tensor([2.0, 0.0, 0.0, 0.0], dtype=torch.float64), 0, 0, "Rectangle(0.5)"
    )
    # Rectangle's window is open: |x| < width / 2
    edge = torch.tensor([-0.5, 0.5], dtype=torch.float64)
    assert torch.equal(sg.Rectangle(1.0).derivative(edge), torch.zeros(2, dtype=torch.float64))


def test_defaults_and_parameter_names():
    assert sg.ATan().alpha == 2.0 and sg.Sigmoid().alpha == 4.0
    assert sg.Triangle().gamma == 1.0 and sg.Rectangle().width == 1.0
    assert repr(sg.ATan(3.0)) == "ATan(alpha=3.0)" and repr(sg.Rectangle(0.5)) == "Rectangle(width=0.5)"
    assert sg.ATan(2) == sg.ATan(2.0) and hash(sg.ATan(2)) == hash(sg.ATan(2.0))
    assert sg.ATan(2.0) != sg.Sigmoid(2.0) and sg.Triangle(1.0) != sg.Triangle(0.5)


@pytest.mark.parametrize("cls", [sg.ATan, sg.Sigmoid, sg.Triangle, sg.Rectangle])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_parameter_rejected(cls, bad):
    with pytest.raises(ValueError, match="must be a positive finite number"):
        cls(bad)


def test_ids_unique_and_by_id_roundtrip():
    classes = (sg.ATan, sg.Sigmoid, sg.Triangle, sg.Rectangle, sg.PiecewiseExp, sg.SoftSign, sg.SuperSpike, sg.Erf)
    assert [c.id for c in classes] == list(range(8))
    assert sorted(sg.SURROGATE_IDS) == list(range(8))
    for s in ALL:
        back = sg.by_id(s.id, s.param)
        assert type(back) is type(s) and back.param == s.param
    with pytest.raises(ValueError, match="unknown surrogate id 8"):
        sg.by_id(8, 1.0)


def _fake_sj(name: str, **attrs):
    """An object whose class looks like SpikingJelly's (module name contains 'spikingjelly')."""
    cls = types.new_class(name)
    cls.__module__ = "spikingjelly.activation_based.surrogate"
    obj = cls()
    for k, v in attrs.items():
        setattr(obj, k, v)
    return obj


def test_coerce_passes_ours_through():
    for s in ALL:
        assert sg.coerce_surrogate(s) is s


@pytest.mark.parametrize(
    "name, alpha, expected",
    [
        ("ATan", 3.0, sg.ATan(3.0)),
        ("Sigmoid", 5.0, sg.Sigmoid(5.0)),
        ("PiecewiseQuadratic", 2.0, sg.Triangle(0.5)),
        ("PiecewiseQuadratic", 1.0, sg.Triangle(1.0)),
        ("PiecewiseExp", 2.0, sg.PiecewiseExp(2.0)),
        ("SoftSign", 3.0, sg.SoftSign(3.0)),
        ("SuperSpike", 0.5, sg.SuperSpike(0.5)),
        ("Erf", 1.5, sg.Erf(1.5)),
    ],
)
def test_coerce_converts_spikingjelly_lookalikes(name, alpha, expected):
    out = sg.coerce_surrogate(_fake_sj(name, alpha=alpha, spiking=True))
    assert type(out) is type(expected) and out.param == expected.param


@pytest.mark.parametrize(
    "obj, error, match",
    [
        (_fake_sj("ATan", alpha=2.0, spiking=False), ValueError, "spiking=False"),
        (_fake_sj("PiecewiseLeakyReLU", alpha=2.0), TypeError, "unsupported surrogate_function"),
        (_fake_sj("ATan"), TypeError, "unsupported surrogate_function"),  # no alpha
        (torch.nn.ReLU(), TypeError, "unsupported surrogate_function"),
        (torch.sigmoid, TypeError, "unsupported surrogate_function"),
        ("atan", TypeError, "unsupported surrogate_function"),
        (None, TypeError, "unsupported surrogate_function"),
        (sg.Surrogate, TypeError, "unsupported surrogate_function"),  # the class, not an instance
    ],
)
def test_coerce_errors(obj, error, match):
    with pytest.raises(error, match=match):
        sg.coerce_surrogate(obj)


def test_coerce_real_spikingjelly_surrogates():
    sj = pytest.importorskip("spikingjelly.activation_based.surrogate", reason="spikingjelly not installed")
    assert sg.coerce_surrogate(sj.ATan(alpha=3.0)) == sg.ATan(3.0)
    assert sg.coerce_surrogate(sj.Sigmoid(alpha=5.0)) == sg.Sigmoid(5.0)
    assert sg.coerce_surrogate(sj.PiecewiseQuadratic(alpha=2.0)) == sg.Triangle(0.5)
    with pytest.raises(ValueError, match="spiking=False"):
        sg.coerce_surrogate(sj.ATan(spiking=False))
    with pytest.raises(TypeError, match="unsupported"):
        sg.coerce_surrogate(sj.PiecewiseLeakyReLU())
    # the converted surrogates have SpikingJelly's own gradients
    x = torch.linspace(-2, 2, 801, dtype=torch.float64)
    x = x[(x.abs() - 0.5).abs() > 1e-9].requires_grad_()
    pairs = [
        (sj.PiecewiseQuadratic(alpha=2.0), sg.Triangle(0.5)),
        (sj.ATan(alpha=3.0), sg.ATan(3.0)),
        (sj.Sigmoid(alpha=5.0), sg.Sigmoid(5.0)),
    ]
    pairs += [
        (getattr(sj, cls.__name__)(alpha=a), cls(a))
        for cls, a in ((sg.PiecewiseExp, 1.5), (sg.SoftSign, 3.0), (sg.SuperSpike, 0.7), (sg.Erf, 2.5))
    ]
    for theirs, ours in pairs:
        assert sg.coerce_surrogate(theirs) == ours
        (g,) = torch.autograd.grad(theirs(x).sum(), x)
        assert_close_verbose(ours.derivative(x.detach()), g, 1e-14, 1e-12, type(theirs).__name__)


try:  # a tiny wrapper kernel; it must live at module level (Triton resolves names in the function's globals)
    import triton
    import triton.language as tl

    from snnkernels.kernels.triton.surrogate import surrogate_derivative

    @triton.jit
    def _derivative_kernel(x_ptr, out_ptr, n, param, SG_ID: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(x_ptr + offs, mask=mask, other=0.0)
        tl.store(out_ptr + offs, surrogate_derivative(x, SG_ID, param), mask=mask)
except ImportError:  # pragma: no cover
    _derivative_kernel = None


@pytest.mark.triton
@pytest.mark.parametrize("surrogate", ALL, ids=IDS)
def test_triton_derivative_matches_torch_formula(surrogate):
    param = float(np.float32(surrogate.param))  # what the launchers pass: the parameter rounded to fp32
    edges = [k for k in kinks(type(surrogate)(param))]  # exactly on Rectangle's edges: both must use |x| < w/2
    x = torch.cat(
        [
            torch.linspace(-4, 4, 4001),
            torch.randn(2000) * 2,
            torch.tensor([0.0, -0.0, 1e-30, -1e-30]),
            torch.tensor(edges, dtype=torch.float32),
        ]
    ).to(DEVICE)
    out = torch.full_like(x, float("nan"))
    _derivative_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), param, SG_ID=surrogate.id, BLOCK=1024)
    expected = type(surrogate)(param).derivative(x)  # the torch formula, fp32
    # rtol 1e-6: a few fp32 ulps. Sigmoid's sig * (1 - sig) cancels where sig ~ 1, so there the error is a few
    # ulps of 1 times alpha (absolute), whatever the size of the result: atol = 4 * 2^-24 * alpha.
    atol = 4 * 2.0**-24 * param if isinstance(surrogate, sg.Sigmoid) else 0.0
    assert_close_verbose(out, expected, atol, 1e-6, f"triton {surrogate!r}")
    # and both against the exact value (fp64 of the same fp32 input)
    exact = spec_derivative(type(surrogate)(param), x.double())
    assert_close_verbose(out, exact, 8 * 2.0**-24 * param, 2e-6, f"triton {surrogate!r} vs fp64")
