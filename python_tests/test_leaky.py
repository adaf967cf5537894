"""The fused leaky-neuron kernels (every fused backend present) against the eager reference.

Forward spikes and final state must be bit-identical in every dtype (both sides keep an fp32 state and
round the charge op by op); gradients agree to the dtype's rounding (``utils.GRAD_TOL``). Inputs are
fresh random odd shapes; outputs come from NaN-poisoned allocations (conftest), so an unwritten element
fails the comparison.
"""
from __future__ import annotations

import pytest
import torch
from conftest import DEVICE
from utils import assert_close_verbose, assert_grads_close

from snnkernels import functional as F
from snnkernels import surrogate as sg
from snnkernels.backends import backend_problem

SURROGATES = [sg.ATan(), sg.Sigmoid(), sg.Triangle(), sg.Rectangle(0.8)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def fused_backends() -> list:
    probe = torch.empty(1, device=DEVICE)
    out = []
    for name in ("triton", "native", "cupy"):
        problem = backend_problem(name, probe)
        marks = [pytest.mark.triton] if name == "triton" else []
        if problem is not None and name != "triton":
            marks.append(pytest.mark.skip(reason=problem))
        out.append(pytest.param(name, marks=marks, id=name))
    return out


BACKENDS = fused_backends()


@pytest.fixture
def chunk(request, monkeypatch, backend):
    """Override the backend's checkpoint chunk (so short sequences still cross several chunks)."""
    from snnkernels.ops import leaky_cupy, leaky_native, leaky_triton

    module = {"triton": leaky_triton, "native": leaky_native, "cupy": leaky_cupy}[backend]
    monkeypatch.setattr(module, "DEFAULT_CHUNK", request.param)
    return request.param


def run(fn, x, leaves, backend, grad_seed=0, **kwargs):
    """Forward with ``backend`` and the reference; returns (ours, ref) as (outputs, grads)."""
    results = []
    for b in (backend, "torch"):
        out = fn(x, backend=b, **kwargs)
        outs = out if isinstance(out, tuple) else (out,)
        gen = torch.Generator(device=x.device).manual_seed(grad_seed)
        grad_outs = [torch.randn(o.shape, generator=gen, device=o.device, dtype=torch.float32).to(o.dtype)
                     for o in outs]
        diff = [t for t in leaves if t.requires_grad]
        grads = torch.autograd.grad(outs, diff, grad_outs, allow_unused=True)
        results.append((outs, grads))
    return results


def check(ours, ref, dtype, names):
    (outs, grads), (outs_ref, grads_ref) = ours, ref
    for o, r in zip(outs, outs_ref):
        assert not torch.isnan(o).any(), "NaN in output: an element was not written"
        assert_close_verbose(o, r, 0, 0, "forward output")  # bit-exact
    assert_grads_close(grads, grads_ref, dtype, names)


def rand_x(shape, dtype=torch.float32, scale=1.5, shift=0.3):
    return (torch.randn(shape, device=DEVICE) * scale + shift).to(dtype).requires_grad_()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("surrogate", SURROGATES, ids=repr)
@pytest.mark.parametrize("v_reset", [0.0, -0.2, None], ids=["hard0", "hard-0.2", "soft"])
@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("strict", [False, True], ids=["ge", "gt"])
def test_options(backend, surrogate, v_reset, detach_reset, strict):
    x = rand_x((13, 2, 3, 5, 7))
    v0 = (torch.randn(2, 3, 5, 7, device=DEVICE) * 0.5).requires_grad_()
    ours, ref = run(F.multistep_leaky, x, [x, v0], backend, v_init=v0, decay=0.6, input_gain=0.8, bias=0.05,
                    v_threshold=0.9, v_reset=v_reset, strict_threshold=strict, detach_reset=detach_reset,
                    surrogate_function=surrogate, return_final_state=True)
    check(ours, ref, torch.float32, ["x", "v_init"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chunk", [1, 3, 8], indirect=True)
@pytest.mark.parametrize("T", [1, 2, 3, 8, 9, 17])
def test_lengths_and_chunks(backend, chunk, T):
    x = rand_x((T, 2, 3, 37))
    decay = torch.tensor([0.7, 0.5, 0.9], device=DEVICE, requires_grad=True)
    ours, ref = run(F.multistep_leaky, x, [x, decay], backend, decay=decay, input_gain=1.1,
                    surrogate_function=sg.Sigmoid(), return_final_state=True)
    check(ours, ref, torch.float32, ["x", "decay"])


COEFFICIENT_KINDS = {
    "float": lambda v, c: v,
    "0d": lambda v, c: torch.tensor(v, device=DEVICE, requires_grad=True),
    "1elem": lambda v, c: torch.tensor([v], device=DEVICE, requires_grad=True),
    "channel": lambda v, c: (v + 0.1 * torch.randn(c, device=DEVICE)).requires_grad_(),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kinds", [("float", "float", "float"), ("channel", "channel", "channel"),
                                   ("0d", "float", "1elem"), ("channel", "0d", "float"), ("float", "channel", "0d"),
                                   ("1elem", "1elem", "channel")], ids="-".join)
def test_coefficient_kinds(backend, kinds):
    C = 5
    x = rand_x((6, 3, C, 4, 3))
    decay, gain, bias = (COEFFICIENT_KINDS[k](v, C) for k, v in zip(kinds, (0.55, 0.9, 0.04)))
    leaves = [x] + [t for t in (decay, gain, bias) if isinstance(t, torch.Tensor)]
    ours, ref = run(F.multistep_leaky, x, leaves, backend, decay=decay, input_gain=gain, bias=bias,
                    v_reset=None, surrogate_function=sg.Triangle(1.0), return_final_state=True)
    check(ours, ref, torch.float32, ["x", "coef1", "coef2", "coef3"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("per_channel", [False, True], ids=["scalar", "channel"])
def test_dtypes(backend, dtype, per_channel):
    C = 4
    x = rand_x((9, 2, C, 11), dtype)
    v0 = torch.randn(2, C, 11, device=DEVICE, dtype=dtype).requires_grad_()
    decay = torch.linspace(0.3, 0.9, C, device=DEVICE, requires_grad=True) if per_channel else 0.5
    gain = torch.linspace(0.8, 1.2, C, device=DEVICE, requires_grad=True) if per_channel else 1.0
    leaves = [x, v0] + ([decay, gain] if per_channel else [])
    ours, ref = run(F.multistep_leaky, x, leaves, backend, v_init=v0, decay=decay, input_gain=gain,
                    surrogate_function=sg.ATan(), return_final_state=True)
    assert ours[0][0].dtype == dtype and ours[0][1].dtype == torch.float32
    check(ours, ref, dtype, ["x", "v_init", "decay", "gain"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tau_kind", ["float", "tensor", "channel"])
@pytest.mark.parametrize("decay_input, v_reset", [(True, 0.0), (False, 0.0), (True, None), (False, -0.5),
                                                  (True, 0.3)])
def test_multistep_lif(backend, tau_kind, decay_input, v_reset):
    C = 3
    x = rand_x((7, 4, C, 5))
    tau = {"float": 3.0, "tensor": torch.tensor(2.5, device=DEVICE, requires_grad=True),
           "channel": torch.tensor([2.0, 3.0, 4.5], device=DEVICE, requires_grad=True)}[tau_kind]
    leaves = [x] + ([tau] if isinstance(tau, torch.Tensor) else [])
    ours, ref = run(F.multistep_lif, x, leaves, backend, tau=tau, decay_input=decay_input, v_reset=v_reset,
                    detach_reset=True, surrogate_function=sg.ATan(), return_final_state=True)
    check(ours, ref, torch.float32, ["x", "tau"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_lif_starts_at_v_reset(backend):
    """SpikingJelly's hard-reset LIF starts at v_reset, not 0: with zero input and v_reset = 0.5 the state stays 0.5."""
    x = torch.zeros(4, 3, 2, device=DEVICE)
    _, v = F.multistep_lif(x, v_reset=0.5, decay_input=False, backend=backend, return_final_state=True)
    assert torch.equal(v, torch.full_like(v, 0.5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_channels_last_and_strided_grads(backend):
    T, B, C, H, W = 5, 2, 6, 3, 4
    base = torch.randn(T * B, C, H, W, device=DEVICE).to(memory_format=torch.channels_last)
    x = (base * 1.5 + 0.3).view(T, B, C, H, W).detach().requires_grad_()
    assert not x.is_contiguous() and x[0].is_contiguous(memory_format=torch.channels_last)
    decay = torch.linspace(0.2, 0.8, C, device=DEVICE, requires_grad=True)
    # grad_output broadcast along T (stride 0): not the layout of x
    g = torch.randn(1, B, C, H, W, device=DEVICE).expand(T, B, C, H, W)
    for b in (backend, "torch"):
        s, v = F.multistep_leaky(x, decay=decay, backend=b, return_final_state=True)
        grads = torch.autograd.grad((s * g).sum() + v.square().sum(), (x, decay))
        if b == backend:
            ours = (s, v, grads)
            assert s.stride() == x.stride(), "spikes keep the input's layout"
        else:
            ref = (s, v, grads)
    assert_close_verbose(ours[0], ref[0], 0, 0, "spikes")
    assert_close_verbose(ours[1], ref[1], 0, 0, "v_final")
    assert_grads_close(ours[2], ref[2], torch.float32, ["x", "decay"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_through_final_state_only(backend):
    x = rand_x((10, 3, 9))
    v0 = torch.randn(3, 9, device=DEVICE, requires_grad=True)
    grads = {}
    for b in (backend, "torch"):
        _, v = F.multistep_leaky(x, v0, decay=0.8, v_reset=None, backend=b, return_final_state=True)
        grads[b] = torch.autograd.grad(v.sum(), (x, v0))
    assert_grads_close(grads[backend], grads["torch"], torch.float32, ["x", "v_init"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_inference_forward_saves_nothing(backend):
    x = rand_x((6, 4, 7))
    with torch.no_grad():
        s = F.multistep_leaky(x, decay=0.5, backend=backend)
    assert not s.requires_grad
    assert torch.equal(s, F.multistep_leaky(x.detach(), decay=0.5, backend="torch"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_deterministic(backend):
    x = rand_x((9, 4, 3, 6))
    decay = torch.tensor([0.3, 0.6, 0.9], device=DEVICE, requires_grad=True)
    gain = torch.tensor([1.0, 0.5, 2.0], device=DEVICE, requires_grad=True)
    runs = []
    for _ in range(2):
        s = F.multistep_leaky(x, decay=decay, input_gain=gain, bias=0.1, backend=backend)
        runs.append(torch.autograd.grad(s.sum(), (x, decay, gain)))
    for a, b in zip(*runs):
        assert torch.equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch(backend):
    x = torch.randn(4, 0, 3, device=DEVICE, requires_grad=True)
    s, v = F.multistep_leaky(x, decay=0.5, backend=backend, return_final_state=True)
    assert s.shape == x.shape and v.shape == (0, 3)
    (g,) = torch.autograd.grad(s.sum() + v.sum(), x)
    assert g.shape == x.shape


# The papers' neurons, written out from spec section 0.1 independently of snnkernels.neuron_models.
def _tet_loop(x):
    m, out = torch.zeros_like(x[0]), []
    for x_t in x:
        m = 0.5 * m + x_t
        s = sg.Triangle(1.0).spike(m - 1.0, strict=True)
        m = (1 - s) * m
        out.append(s)
    return torch.stack(out)


def _ma_snn_loop(x, width):
    h, out = torch.zeros_like(x[0]), []
    for x_t in x:
        u = h + x_t
        s = sg.Rectangle(width).spike(u - 0.3)
        h = 0.3 * (0.3 * s + (1 - s) * u)
        out.append(s)
    return torch.stack(out)


def _att_res_loop(x):
    u, s, out = None, None, []
    for x_t in x:
        u = x_t if u is None else 0.25 * u * (1 - s.detach()) + x_t
        s = sg.Rectangle(1.0).spike(u - 0.5, strict=True)
        out.append(s)
    return torch.stack(out)


PAPER_NEURONS = {
    "tet": (lambda: __import__("snnkernels.nn", fromlist=["x"]).TETLIFNode, _tet_loop),
    "ma_snn": (lambda: __import__("snnkernels.nn", fromlist=["x"]).MASNNLIFNode, lambda x: _ma_snn_loop(x, 0.5)),
    "att_res": (lambda: __import__("snnkernels.nn", fromlist=["x"]).AttResLIFNode, _att_res_loop),
}


@pytest.mark.parametrize("backend", [pytest.param("torch", id="torch")] + BACKENDS)
@pytest.mark.parametrize("name", sorted(PAPER_NEURONS))
def test_paper_neurons(backend, name):
    make_node, loop = PAPER_NEURONS[name]
    x = rand_x((11, 3, 4, 6), scale=0.8, shift=0.25)
    node = make_node()(backend=backend)
    ours = node(x)
    theirs = loop(x)
    assert_close_verbose(ours, theirs, 0, 0, "spikes")
    g = torch.randn_like(ours)
    (g_ours,), (g_theirs,) = torch.autograd.grad(ours, x, g), torch.autograd.grad(theirs, x, g)
    assert_grads_close([g_ours], [g_theirs], torch.float32, ["x"])


def _manual_bptt(x, v0, a, b, c, v_th, v_reset, strict, detach, surrogate, grad_s, grad_vT):
    """The backward recursion of docs/neuron.md, written out (fp64), independent of autograd."""
    hs, vs, v = [], [v0], v0
    for x_t in x:
        h = a * v + b * x_t + c
        s = (h - v_th > 0) if strict else (h - v_th >= 0)
        v = torch.where(s, torch.full_like(h, v_reset), h) if v_reset is not None else h - v_th * s.double()
        hs.append(h)
        vs.append(v)
    g_v, g_x, g_a, g_b, g_c = grad_vT, [], 0.0, 0.0, 0.0
    for t in reversed(range(x.shape[0])):
        h = hs[t]
        s = ((h - v_th > 0) if strict else (h - v_th >= 0)).double()
        sgv = surrogate.derivative(h - v_th)
        if v_reset is not None:
            dv = (1 - s) + (0.0 if detach else (v_reset - h) * sgv)
        else:
            dv = 1 - (0.0 if detach else v_th * sgv)
        g_h = grad_s[t] * sgv + g_v * dv
        g_x.append(g_h * b)
        g_a, g_b, g_c = g_a + (g_h * vs[t]).sum(), g_b + (g_h * x[t]).sum(), g_c + g_h.sum()
        g_v = g_h * a
    return torch.stack(g_x[::-1]), g_v, g_a, g_b, g_c


@pytest.mark.parametrize("surrogate", SURROGATES, ids=repr)
@pytest.mark.parametrize("v_reset, detach, strict", [(0.0, False, False), (-0.3, True, True), (None, False, True),
                                                     (None, True, False)])
def test_reference_backward_is_the_documented_recursion(surrogate, v_reset, detach, strict):
    """fp64: autograd through the eager reference equals the hand-derived BPTT that the kernels implement."""
    x = torch.randn(9, 4, 6, dtype=torch.float64) * 1.5 + 0.3
    v0 = torch.randn(4, 6, dtype=torch.float64)
    a, b, c = (torch.tensor(v, dtype=torch.float64) for v in (0.7, 0.9, 0.05))
    leaves = [t.requires_grad_() for t in (x, v0, a, b, c)]
    s, vT = F.multistep_leaky(x, v0, decay=a, input_gain=b, bias=c, v_threshold=0.8, v_reset=v_reset,
                              strict_threshold=strict, detach_reset=detach, surrogate_function=surrogate,
                              backend="torch", return_final_state=True)
    assert s.dtype == torch.float64
    grad_s, grad_vT = torch.randn_like(s), torch.randn_like(vT)
    auto = torch.autograd.grad((s, vT), leaves, (grad_s, grad_vT))
    manual = _manual_bptt(x.detach(), v0.detach(), a.detach(), b.detach(), c.detach(), 0.8, v_reset, strict, detach,
                          surrogate, grad_s, grad_vT)
    for name, g_auto, g_manual in zip(["x", "v_init", "decay", "gain", "bias"], auto, manual):
        torch.testing.assert_close(g_auto, g_manual, rtol=1e-12, atol=1e-12, msg=lambda m: f"{name}: {m}")
