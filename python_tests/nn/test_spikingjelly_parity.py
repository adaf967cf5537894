"""Drop-in parity with SpikingJelly 2.x: our IFNode / LIFNode / ParametricLIFNode against SpikingJelly's own modules
(step_mode='m', same arguments): same spikes and the same gradients.

SpikingJelly charges ``v + (x - (v - v_reset)) / tau``; we charge ``(1 - 1/tau) v + x/tau + v_reset/tau``.
Equal in exact arithmetic; in fp32 a last-bit difference can flip a spike whose potential sits within
rounding of the threshold. Such flips are the only allowed mismatch: each must sit within ``FLIP_EPS`` of
the threshold in SpikingJelly's own potential, the neuron is excluded from then on (its trajectories
diverge), and the flip rate is capped.
"""

from __future__ import annotations

import pytest
import torch

sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron", reason="spikingjelly 2.x not installed")
sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
sj_lif_reference = pytest.importorskip("spikingjelly._ops.lif.reference")

from snnkernels import nn as snn  # noqa: E402
from snnkernels.backends import backend_problem  # noqa: E402

FLIP_EPS = 1e-5  # a few fp32 ulps of |h| ~ 1..4
MAX_FLIP_RATE = 1e-3


def _backends(x: torch.Tensor) -> list[str]:
    return [b for b in ("torch", "triton", "native") if backend_problem(b, x) is None]


def _sj_potentials(x, tau, decay_input, v_threshold, v_reset):
    """SpikingJelly's own pre-reset potentials h_t (its charge function, detached; forward only)."""
    v = torch.full_like(x[0], 0.0 if v_reset is None else v_reset)
    hs = []
    for x_t in x:
        h = sj_lif_reference.charge(x_t, v, tau, decay_input, v_reset)
        s = (h - v_threshold >= 0).to(h.dtype)
        v = h - s * v_threshold if v_reset is None else s * v_reset + (1.0 - s) * h
        hs.append(h)
    return torch.stack(hs)


def _compare(ours, theirs, x, grads_ours, grads_theirs, h_sj, v_threshold):
    flat = lambda t: t.reshape(t.shape[0], -1)  # noqa: E731
    mismatch = flat(ours) != flat(theirs)
    near = (flat(h_sj) - v_threshold).abs() < FLIP_EPS
    assert not (mismatch & ~near).any(), "a spike differs away from the threshold"
    flipped_neurons = mismatch.any(dim=0)
    flip_rate = mismatch.sum().item() / mismatch.numel()
    assert flip_rate <= MAX_FLIP_RATE, f"flip rate {flip_rate:.2e} above {MAX_FLIP_RATE}"
    keep = ~flipped_neurons
    assert torch.equal(flat(ours)[:, keep], flat(theirs)[:, keep])
    names = ("x",) + tuple(f"param{i}" for i in range(len(grads_ours) - 1))
    for name, g_o, g_t in zip(names, grads_ours, grads_theirs, strict=True):
        if g_o.dim() == x.dim():
            g_o, g_t = flat(g_o)[:, keep], flat(g_t)[:, keep]
        elif flipped_neurons.any():
            continue  # a parameter's gradient sums over every neuron, flipped ones included
        torch.testing.assert_close(g_o, g_t, rtol=2e-5, atol=2e-6, msg=lambda m, name=name: f"grad {name}: {m}")
    return flip_rate


SURROGATES = [
    pytest.param(lambda: sj_surrogate.ATan(alpha=2.0), id="ATan"),
    pytest.param(lambda: sj_surrogate.Sigmoid(alpha=4.0), id="Sigmoid"),
    pytest.param(lambda: sj_surrogate.PiecewiseQuadratic(alpha=1.0), id="PiecewiseQuadratic"),
    pytest.param(lambda: sj_surrogate.PiecewiseExp(alpha=1.0), id="PiecewiseExp"),
    pytest.param(lambda: sj_surrogate.SoftSign(alpha=2.0), id="SoftSign"),
    pytest.param(lambda: sj_surrogate.SuperSpike(alpha=1.0), id="SuperSpike"),
    pytest.param(lambda: sj_surrogate.Erf(alpha=2.0), id="Erf"),
]


@pytest.mark.parametrize("make_surrogate", SURROGATES)
@pytest.mark.parametrize("tau, decay_input", [(2.0, True), (3.0, True), (2.5, False)])
@pytest.mark.parametrize("v_reset, detach_reset", [(0.0, False), (0.0, True), (None, False), (-0.25, True)])
def test_lif_node_matches_spikingjelly(make_surrogate, tau, decay_input, v_reset, detach_reset):
    x = (torch.randn(7, 3, 5, 9) * 1.5 + 0.4).requires_grad_()
    kwargs = dict(
        tau=tau,
        decay_input=decay_input,
        v_threshold=1.0,
        v_reset=v_reset,
        surrogate_function=make_surrogate(),
        detach_reset=detach_reset,
        step_mode="m",
    )
    theirs = sj_neuron.LIFNode(**kwargs)(x)
    grad_out = torch.randn_like(theirs)
    (g_theirs,) = torch.autograd.grad(theirs, x, grad_out)
    h_sj = _sj_potentials(x.detach(), tau, decay_input, 1.0, v_reset)
    for backend in _backends(x):
        ours = snn.LIFNode(**kwargs, backend=backend)(x)
        (g_ours,) = torch.autograd.grad(ours, x, grad_out)
        rate = _compare(ours, theirs, x, (g_ours,), (g_theirs,), h_sj, 1.0)
        print(f"backend={backend}: spike flip rate {rate:.2e}")


@pytest.mark.parametrize("make_surrogate", SURROGATES)
@pytest.mark.parametrize("v_reset, detach_reset", [(0.0, False), (0.0, True), (None, False), (-0.25, True)])
def test_if_node_matches_spikingjelly(make_surrogate, v_reset, detach_reset):
    # IF charges v + x on both sides (ours as 1 * v + 1 * x + 0: the same value), so no spike may flip
    x = (torch.randn(7, 3, 5, 9) * 0.8 + 0.2).requires_grad_()
    kwargs = dict(
        v_threshold=1.0, v_reset=v_reset, surrogate_function=make_surrogate(), detach_reset=detach_reset, step_mode="m"
    )
    theirs = sj_neuron.IFNode(**kwargs)(x)
    assert 0.02 < theirs.mean().item() < 0.5, "the test input must make the neurons fire, and not always"
    grad_out = torch.randn_like(theirs)
    (g_theirs,) = torch.autograd.grad(theirs, x, grad_out)
    for backend in _backends(x):
        ours = snn.IFNode(**kwargs, backend=backend)(x)
        (g_ours,) = torch.autograd.grad(ours, x, grad_out)
        assert torch.equal(ours, theirs), backend
        torch.testing.assert_close(
            g_ours, g_theirs, rtol=2e-5, atol=2e-6, msg=lambda m, backend=backend: f"{backend}: {m}"
        )


@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("v_reset", [0.0, None])
def test_parametric_lif_matches_spikingjelly(decay_input, v_reset):
    x = (torch.randn(6, 4, 3, 7) * 1.5 + 0.4).requires_grad_()
    kwargs = dict(
        init_tau=3.0, decay_input=decay_input, v_reset=v_reset, step_mode="m", surrogate_function=sj_surrogate.ATan()
    )
    sj = sj_neuron.ParametricLIFNode(**kwargs)
    theirs = sj(x)
    grad_out = torch.randn_like(theirs)
    g_theirs = torch.autograd.grad(theirs, (x, sj.w), grad_out)
    for backend in _backends(x):
        node = snn.ParametricLIFNode(**kwargs, backend=backend)
        node.load_state_dict(sj.state_dict())  # official weights load unchanged
        ours = node(x)
        g_ours = torch.autograd.grad(ours, (x, node.w), grad_out)
        # PLIF's rate is sigmoid(w) in both, so the potentials are SpikingJelly's own formula at tau = 1/rate
        h_sj = _sj_potentials(x.detach(), 1.0 / torch.sigmoid(sj.w.detach()), decay_input, 1.0, v_reset)
        _compare(ours, theirs, x, g_ours, g_theirs, h_sj, 1.0)


def test_defaults_and_positional_order_match_spikingjelly():
    import inspect

    for ours, theirs in (
        (snn.IFNode, sj_neuron.IFNode),
        (snn.LIFNode, sj_neuron.LIFNode),
        (snn.ParametricLIFNode, sj_neuron.ParametricLIFNode),
    ):
        p_ours = [p for p in inspect.signature(ours.__init__).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        p_theirs = [
            p for p in inspect.signature(theirs.__init__).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD
        ]
        assert [p.name for p in p_ours] == [p.name for p in p_theirs]
        for a, b in zip(p_ours[1:], p_theirs[1:], strict=True):
            if b.name == "surrogate_function":
                assert type(a.default).__name__ == type(b.default).__name__ and a.default.param == b.default.alpha
            else:
                assert a.default == b.default, b.name


def test_reset_net_clears_our_state():
    from spikingjelly.activation_based import functional as sj_functional

    net = torch.nn.Sequential(snn.LIFNode(step_mode="m", backend="torch"))
    net(torch.randn(3, 2, 4))
    assert isinstance(net[0].v, torch.Tensor)
    sj_functional.reset_net(net)
    assert net[0].v == 0.0 and type(net[0].v) is float
