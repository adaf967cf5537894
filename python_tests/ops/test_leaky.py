"""The fused leaky-neuron kernels against the eager reference, and the reference against the papers' equations.

Kernel (``backend="triton"``, plus the native / CuPy backends when they are available) vs reference
(``backend="torch"``): forward spikes and final state must be bit-identical (both compute the charge
``a*v + b*x + c`` op by op in fp32); every gradient (x, v_init, each learnable coefficient, through spikes
and/or the final state) must agree to the dtype's rounding (``utils.GRAD_TOL``). Outputs come from
NaN-poisoned allocations (conftest), so an element a kernel forgets to write fails the comparison.

The reference itself is checked against hand-written loops of each paper's equations (TET/DTA, MA-SNN,
Att-Res-SNN, SpikingJelly's LIF charge), written here independently of snnkernels.neuron_models.
"""

from __future__ import annotations

import math

import pytest
import torch

from snnkernels import functional as F
from snnkernels import neuron_models as nm
from snnkernels import nn as snn
from snnkernels import surrogate as sg

from conftest import DEVICE, ON_GPU, fused_backends, pick
from utils import (
    FLIP_EPS,
    MAX_FLIP_RATE,
    assert_close_verbose,
    assert_equal_verbose,
    assert_grad_close,
    check_both,
    compare_spikes,
    make_coefficient,
    random_like_layout,
    run_both,
)

SURROGATES = [
    sg.ATan(),
    sg.Sigmoid(),
    sg.Triangle(),
    sg.Rectangle(),
    sg.PiecewiseExp(),
    sg.SoftSign(),
    sg.SuperSpike(),
    sg.Erf(),
]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
RESETS = {"hard0": 0.0, "hard-0.3": -0.3, "soft": None}


FUSED = fused_backends()


@pytest.fixture
def chunk(request, monkeypatch, backend):
    """Set the fused backend's checkpoint chunk, so that short sequences cross several chunks."""
    from snnkernels.ops import leaky_cupy, leaky_native

    modules = {"native": leaky_native, "cupy": leaky_cupy}
    if backend == "triton":
        from snnkernels.ops import leaky_triton

        modules["triton"] = leaky_triton
    monkeypatch.setattr(modules[backend], "DEFAULT_CHUNK", request.param)
    return request.param


# ---------------------------------------------------------------------------------------------------------------
# Inputs


def rand(shape, dtype=torch.float32, scale=1.5, shift=0.3, requires_grad=True, layout="contiguous"):
    t = random_like_layout(shape, dtype, DEVICE, layout, scale=scale, shift=shift)
    return t.requires_grad_(requires_grad)


def coefficient(kind: str, value: float, C: int, spread: float = 0.1, dtype=torch.float32):
    return make_coefficient(kind, value, C, spread, dtype, DEVICE)


# ---------------------------------------------------------------------------------------------------------------
# Kernel vs reference


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("surrogate", SURROGATES, ids=repr)
@pytest.mark.parametrize("reset", pick(list(RESETS), ["hard-0.3", "soft"]))
@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("strict", [False, True], ids=["ge", "gt"])
def test_options(backend, surrogate, reset, detach_reset, strict):
    """Every surrogate x reset x detach x strict, with per-channel learnable decay / gain / bias, a learnable
    v_init and the final state: T = 13 crosses the default chunk of 8 with a partial second chunk."""
    shape = (13, 2, 3, 5, 7)
    x = rand(shape)
    v0 = rand(shape[1:], scale=0.5, shift=0.0)
    coeffs = dict(
        decay=coefficient("channel", 0.6, 3),
        input_gain=coefficient("channel", 0.9, 3),
        bias=coefficient("channel", 0.05, 3, spread=0.05),
    )
    res = run_both(
        F.multistep_leaky,
        backend,
        x,
        v0,
        v_threshold=0.9,
        v_reset=RESETS[reset],
        strict_threshold=strict,
        detach_reset=detach_reset,
        surrogate_function=surrogate,
        return_final_state=True,
        **coeffs,
    )
    check_both(res, backend, x)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("surrogate", [sg.ATan(3.5), sg.Sigmoid(1.5), sg.Triangle(0.4), sg.Rectangle(0.5)], ids=repr)
@pytest.mark.parametrize("reset", ["hard0", "soft"])
def test_surrogate_parameters(backend, surrogate, reset):
    x = rand((7, 3, 4, 6))
    res = run_both(
        F.multistep_leaky,
        backend,
        x,
        decay=0.7,
        input_gain=1.2,
        bias=-0.05,
        v_reset=RESETS[reset],
        surrogate_function=surrogate,
        return_final_state=True,
    )
    check_both(res, backend, x)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("chunk", pick([1, 2, 3, 4, 8], [1, 3]), indirect=True)
@pytest.mark.parametrize("T", pick([1, 3, 8, 13], [1, 13]))
@pytest.mark.parametrize("neurons", pick([(3, 5), (1, 1), (2, 3, 5, 7)], [(2, 3, 5, 7)]), ids=str)
def test_lengths_and_chunks(backend, chunk, T, neurons):
    """T below, at and above the chunk, partial last chunks; per-channel decay of C = x.shape[2]."""
    shape = (T, *neurons)
    x = rand(shape)
    v0 = rand(neurons, scale=0.5, shift=0.0)
    C = shape[2] if len(shape) > 2 else 1
    decay = coefficient("channel" if len(shape) > 2 else "1elem", 0.7, C)
    reset = None if T % 2 else 0.0
    res = run_both(
        F.multistep_leaky,
        backend,
        x,
        v0,
        decay=decay,
        input_gain=1.1,
        v_reset=reset,
        surrogate_function=sg.Sigmoid(),
        return_final_state=True,
    )
    check_both(res, backend, x, min_activity=T > 1)


@pytest.mark.triton
@pytest.mark.parametrize("backend", ["triton"])
@pytest.mark.parametrize("chunk", [2], indirect=True)
def test_chunk_override_takes_effect(monkeypatch, backend, chunk):
    """The chunk tests above rely on DEFAULT_CHUNK being read per call: the training forward must then save
    cdiv(T, chunk) - 1 checkpoint rows."""
    from snnkernels.ops import leaky_triton

    seen = []
    op = leaky_triton.leaky_fwd_triton

    def spy(*args):
        out = op(*args)
        seen.append((args[18], tuple(out[2].shape)))  # chunk: the 19th argument (FWD_SCHEMA)
        return out

    monkeypatch.setattr(leaky_triton, "leaky_fwd_triton", spy)
    x = rand((7, 3, 4))
    F.multistep_leaky(x, decay=0.5, backend=backend)
    assert seen == [(2, (3, 12))]


STATE_CASES = [(False, ("spikes",)), (True, ("spikes",)), (True, ("final",)), (True, ("spikes", "final"))]


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("v_init", ["none", "learnable", "constant"])
@pytest.mark.parametrize(
    "final, grad_on", STATE_CASES, ids=["spikes", "final-out_grad-spikes", "grad-final-only", "grad-both"]
)
@pytest.mark.parametrize("reset", ["hard0", "soft"])
def test_state_in_and_out(backend, v_init, final, grad_on, reset):
    """v_init absent / learnable / constant, the final state returned or not, and gradients flowing through
    the spikes only, the final state only (no spike gradient) or both."""
    x = rand((10, 3, 4, 5))
    v0 = None if v_init == "none" else rand((3, 4, 5), scale=0.6, shift=0.1, requires_grad=v_init == "learnable")
    res = run_both(
        F.multistep_leaky,
        backend,
        x,
        v0,
        grad_on=grad_on,
        decay=0.8,
        bias=0.02,
        v_reset=RESETS[reset],
        surrogate_function=sg.ATan(),
        return_final_state=final,
    )
    check_both(res, backend, x)
    assert ("v_init" in res[backend][1]) == (v_init == "learnable")


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize(
    "kinds",
    [
        ("float", "float", "float"),
        ("0d", "float", "float"),
        ("float", "1elem", "0d"),
        ("channel", "float", "float"),
        ("float", "channel", "float"),
        ("float", "float", "channel"),
        ("channel", "channel", "channel"),
        ("channel", "0d", "1elem"),
        ("0d", "0d", "0d"),
        ("channel-nograd", "channel", "0d-nograd"),
        ("1elem-nograd", "channel-nograd", "float"),
    ],
    ids="-".join,
)
@pytest.mark.parametrize("x_grad", [True, False], ids=["x_grad", "x_const"])
def test_coefficient_kinds(backend, kinds, x_grad):
    """decay / input_gain / bias as floats or tensors of shape [], [1] or [C], learnable or constant, mixed; with
    and without a gradient for x (a coefficient alone can make the forward a training one)."""
    C = 5
    x = rand((6, 3, C, 4, 3), requires_grad=x_grad)
    decay, gain, bias = (coefficient(k, v, C) for k, v in zip(kinds, (0.55, 0.9, 0.04), strict=True))
    res = run_both(
        F.multistep_leaky,
        backend,
        x,
        decay=decay,
        input_gain=gain,
        bias=bias,
        v_reset=None,
        surrogate_function=sg.Triangle(1.0),
        return_final_state=True,
    )
    check_both(res, backend, x)
    expected = {"x"} if x_grad else set()
    expected |= {
        n
        for n, t in zip(("decay", "input_gain", "bias"), (decay, gain, bias), strict=True)
        if isinstance(t, torch.Tensor) and t.requires_grad
    }
    assert set(res[backend][1]) == expected


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("coef_dtype", [torch.float64, torch.bfloat16], ids=str)
def test_coefficient_dtype(backend, coef_dtype):
    """Coefficient tensors of another float dtype are used in fp32 and get their gradient in their own dtype."""
    x = rand((5, 2, 3, 7))
    decay = coefficient("channel", 0.6, 3, dtype=coef_dtype)
    gain = coefficient("0d", 1.25, 3, dtype=coef_dtype)
    res = run_both(F.multistep_leaky, backend, x, decay=decay, input_gain=gain, return_final_state=True)
    check_both(res, backend, x)
    assert res[backend][1]["decay"].dtype == coef_dtype


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("per_channel", [False, True], ids=["scalar", "channel"])
@pytest.mark.parametrize("reset", ["hard0", "soft"])
def test_dtypes(backend, dtype, per_channel, reset):
    """fp16 / bf16 input with an fp32 state: spikes (in x's dtype) and the fp32 final state still match exactly;
    gradients of x and v_init (their dtype) to one or two of its ulps, coefficient gradients (fp32) to fp32's."""
    C = 4
    x = rand((9, 2, C, 11), dtype)
    v0 = rand((2, C, 11), dtype, scale=0.5, shift=0.0)
    kind = "channel" if per_channel else "float"
    res = run_both(
        F.multistep_leaky,
        backend,
        x,
        v0,
        decay=coefficient(kind, 0.6, C),
        input_gain=coefficient(kind, 0.9, C),
        bias=coefficient(kind, 0.03, C, spread=0.02),
        v_reset=RESETS[reset],
        surrogate_function=sg.ATan(),
        return_final_state=True,
    )
    check_both(res, backend, x)
    grads = res[backend][1]
    assert grads["x"].dtype == dtype and grads["v_init"].dtype == dtype


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize(
    "x_dtype, v_dtype",
    [
        (torch.float32, torch.float16),
        (torch.float32, torch.float64),
        (torch.float32, torch.bfloat16),
        (torch.bfloat16, torch.float32),
    ],
    ids=str,
)
def test_v_init_of_another_float_dtype(backend, x_dtype, v_dtype):
    """v_init may be any float dtype (it is converted to the fp32 state); its gradient comes back in its dtype."""
    x = rand((6, 3, 8), x_dtype)
    v0 = rand((3, 8), v_dtype, scale=0.5, shift=0.0)
    res = run_both(F.multistep_leaky, backend, x, v0, decay=0.5, return_final_state=True)
    check_both(res, backend, x)
    assert res[backend][1]["v_init"].dtype == v_dtype


TAU_KINDS = {
    "float": lambda C: 3.0,
    "0d": lambda C: torch.tensor(2.5, device=DEVICE, requires_grad=True),
    "1elem": lambda C: torch.tensor([4.0], device=DEVICE, requires_grad=True),
    "channel": lambda C: (2.0 + 3.0 * torch.rand(C, device=DEVICE)).requires_grad_(),
}
LIF_CASES = [(True, 0.0), (False, 0.0), (True, None), (False, None), (False, -0.5), (True, 0.3)]


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("tau_kind", list(TAU_KINDS))
@pytest.mark.parametrize("decay_input, v_reset", pick(LIF_CASES, LIF_CASES[::2]))
@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
def test_multistep_lif(backend, tau_kind, decay_input, v_reset, detach_reset):
    C = 3
    x = rand((7, 4, C, 5), scale=2.0, shift=0.8)
    res = run_both(
        F.multistep_lif,
        backend,
        x,
        tau=TAU_KINDS[tau_kind](C),
        decay_input=decay_input,
        v_reset=v_reset,
        detach_reset=detach_reset,
        surrogate_function=sg.Sigmoid(),
        return_final_state=True,
    )
    check_both(res, backend, x)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_multistep_lif_low_precision(backend, dtype):
    C = 3
    x = rand((8, 2, C, 9), dtype, scale=2.0, shift=0.8)
    v0 = rand((2, C, 9), dtype, scale=0.5, shift=0.0)
    res = run_both(
        F.multistep_lif,
        backend,
        x,
        v0,
        tau=TAU_KINDS["channel"](C),
        decay_input=False,
        v_reset=None,
        surrogate_function=sg.ATan(),
        return_final_state=True,
    )
    check_both(res, backend, x)


@pytest.mark.parametrize("backend", [pytest.param("torch", id="torch")] + FUSED)
@pytest.mark.parametrize("decay_input", [True, False])
def test_lif_starts_at_v_reset(backend, decay_input):
    """SpikingJelly's hard-reset LIF starts at v_reset, not 0: with zero input the state stays at v_reset
    (h = v + (0 - (v - v_reset)) / tau = v_reset); the soft-reset one starts (and stays) at 0."""
    x = torch.zeros(4, 3, 2, device=DEVICE)
    s, v = F.multistep_lif(x, tau=2.0, v_reset=0.5, decay_input=decay_input, backend=backend, return_final_state=True)
    assert torch.equal(v, torch.full_like(v, 0.5)) and not s.any()
    s, v = F.multistep_lif(x, tau=2.0, v_reset=None, decay_input=decay_input, backend=backend, return_final_state=True)
    assert torch.equal(v, torch.zeros_like(v)) and not s.any()
    # with input 2 * v_th * tau the first step fires: h_1 = v_reset + (x - 0) / tau (decay_input) >= 1
    x[0] = 2.0 * 2.0 if decay_input else 1.0
    s = F.multistep_lif(x, tau=2.0, v_reset=0.5, decay_input=decay_input, backend=backend)
    assert s[0].all() and not s[1:].any()


def exact_loop(x, decay, v_th, v_reset, strict):
    """Spikes and pre-reset potentials of the leaky neuron in fp64 (exact for dyadic inputs)."""
    v, spikes, hs = torch.zeros_like(x[0]), [], []
    for x_t in x:
        h = decay * v + x_t
        s = (h > v_th) if strict else (h >= v_th)
        v = torch.where(s, torch.full_like(h, v_reset), h) if v_reset is not None else h - v_th * s.double()
        spikes.append(s.double())
        hs.append(h)
    return torch.stack(spikes), torch.stack(hs)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("strict", [False, True], ids=["ge", "gt"])
@pytest.mark.parametrize("surrogate", [sg.Rectangle(1.0), sg.Triangle(1.0), sg.ATan()], ids=repr)
@pytest.mark.parametrize("reset", ["hard0", "soft"])
def test_exact_threshold_hits(backend, strict, surrogate, reset):
    """Dyadic inputs and decay 1/2 keep every potential exact, so h lands exactly on the threshold (and on the
    Rectangle's window edges |h - v_th| = 1/2) again and again: the strict / non-strict comparison and the
    surrogate's open window must agree with the reference there, and the spikes with an exact fp64 loop."""
    x0 = torch.randint(-4, 9, (12, 3, 4, 25)).double() / 4
    s_exact, h_exact = exact_loop(x0, 0.5, 1.0, RESETS[reset], strict)
    hits = (h_exact == 1.0).sum().item()
    assert hits > 10 and ((h_exact - 1.0).abs() == 0.5).sum().item() > 10, "inputs do not hit the threshold"
    x = x0.float().to(DEVICE).requires_grad_()
    res = run_both(
        F.multistep_leaky,
        backend,
        x,
        decay=0.5,
        v_threshold=1.0,
        v_reset=RESETS[reset],
        strict_threshold=strict,
        surrogate_function=surrogate,
        return_final_state=True,
    )
    check_both(res, backend, x)
    assert_equal_verbose(res[backend][0][0].double().cpu(), s_exact, "spikes vs exact loop")


# ---------------------------------------------------------------------------------------------------------------
# Memory layouts


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("ndim", [5, 6], ids=["channels_last", "channels_last_3d"])
@pytest.mark.parametrize("grad_layout", ["contiguous", "transposed"])
def test_channels_last_input(backend, ndim, grad_layout):
    """x of shape [T, B, C, H, W] (or [T, B, C, D, H, W]) whose steps are channels-last, as convolutions under
    torch.compile produce: the kernels walk it in place (channel stride 1) with per-channel coefficients; the
    spikes and final state keep that layout; grad outputs in another layout are handled."""
    T, B, C = 5, 2, 6
    spatial = (3, 4) if ndim == 5 else (2, 3, 2)
    fmt = torch.channels_last if ndim == 5 else torch.channels_last_3d
    base = torch.randn((T * B, C, *spatial), device=DEVICE).contiguous(memory_format=fmt)
    x = (base * 1.5 + 0.3).view(T, B, C, *spatial).detach().requires_grad_()
    assert not x.is_contiguous() and x[0].is_contiguous(memory_format=fmt)
    v0 = rand((B, C, *spatial), scale=0.5, shift=0.0)  # contiguous: another layout than x[0]
    coeffs = dict(
        decay=coefficient("channel", 0.5, C, spread=0.2),
        input_gain=coefficient("channel", 1.0, C),
        bias=coefficient("channel", 0.0, C, spread=0.05),
    )
    res = run_both(
        F.multistep_leaky,
        backend,
        x,
        v0,
        grad_layout=grad_layout,
        return_final_state=True,
        surrogate_function=sg.Rectangle(),
        **coeffs,
    )
    check_both(res, backend, x)
    spikes, v = res[backend][0]
    assert spikes.stride() == x.stride(), "spikes keep the input's layout"
    assert v.is_contiguous(memory_format=fmt), "the final state follows x[0]'s layout"


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("x_layout", ["transposed", "sliced", "expanded"])
@pytest.mark.parametrize("grad_layout", ["expanded", "sliced", "transposed"])
def test_non_contiguous_tensors(backend, x_layout, grad_layout):
    """Strided x (transposed, a slice, broadcast along T), a transposed v_init and strided grad outputs."""
    C = 4
    x = rand((7, 3, C, 6), layout=x_layout)
    assert not x.is_contiguous()
    v0 = rand((3, C, 6), scale=0.5, shift=0.0, layout="transposed")
    res = run_both(
        F.multistep_leaky,
        backend,
        x,
        v0,
        grad_layout=grad_layout,
        decay=coefficient("channel", 0.6, C),
        input_gain=coefficient("0d", 1.1, C),
        return_final_state=True,
        surrogate_function=sg.Sigmoid(),
    )
    check_both(res, backend, x)


# ---------------------------------------------------------------------------------------------------------------
# Launch geometry


@pytest.mark.triton
@pytest.mark.parametrize("block", [16, 64])
@pytest.mark.parametrize("backend", ["triton"])
@pytest.mark.parametrize("chunk", [3], indirect=True)
def test_many_programs_and_masked_tail(monkeypatch, backend, block, chunk):
    """Small blocks: many programs, the last one partly masked (210 neurons), per-channel coefficients gathered
    across block boundaries."""
    from snnkernels.ops import leaky_triton

    monkeypatch.setattr(leaky_triton, "launch_config", lambda n, backward, **_: leaky_triton.LaunchConfig(block, 1))
    x = rand((8, 2, 3, 5, 7))
    v0 = rand((2, 3, 5, 7), scale=0.5, shift=0.0)
    res = run_both(
        F.multistep_leaky,
        backend,
        x,
        v0,
        decay=coefficient("channel", 0.6, 3),
        input_gain=coefficient("channel", 0.9, 3),
        bias=coefficient("0d", 0.02, 3),
        v_reset=None,
        return_final_state=True,
    )
    check_both(res, backend, x)


@pytest.mark.parametrize("backend", FUSED)
def test_many_neurons(backend):
    """More neurons than one interpreter block (8192), or a sizeable layer on a GPU."""
    shape = (13, 4, 16, 128, 129) if ON_GPU else (3, 2, 3, 1501)
    x = rand(shape)
    res = run_both(F.multistep_leaky, backend, x, decay=coefficient("channel", 0.6, shape[2]), return_final_state=True)
    check_both(res, backend, x)


@pytest.mark.parametrize("backend", FUSED)
def test_zero_neurons(backend):
    x = torch.randn(4, 0, 3, device=DEVICE, requires_grad=True)
    decay = coefficient("channel", 0.5, 3)
    s, v = F.multistep_leaky(x, decay=decay, backend=backend, return_final_state=True)
    assert s.shape == x.shape and v.shape == (0, 3)
    gx, gd = torch.autograd.grad(s.sum() + v.sum(), (x, decay))
    assert gx.shape == x.shape and torch.equal(gd, torch.zeros_like(gd))


# ---------------------------------------------------------------------------------------------------------------
# Inference, determinism, unwritten outputs


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_inference_forward(backend, mode):
    """Without gradients the forward gives the same spikes and final state; the outputs carry no graph, so
    backpropagating through them is impossible."""
    x = rand((9, 3, 4, 7))
    decay = coefficient("channel", 0.6, 4)
    kwargs = dict(decay=decay, bias=0.05, v_reset=None, return_final_state=True)
    s_train, v_train = F.multistep_leaky(x, backend=backend, **kwargs)
    ctx = torch.no_grad() if mode == "no_grad" else torch.inference_mode()
    with ctx:
        s, v = F.multistep_leaky(x, backend=backend, **kwargs)
        s_ref, v_ref = F.multistep_leaky(x, backend="torch", **kwargs)
    assert_equal_verbose(s, s_ref, "spikes")
    assert_equal_verbose(v, v_ref, "final state")
    assert_equal_verbose(s, s_train.detach(), "spikes vs training forward")
    assert_equal_verbose(v, v_train.detach(), "final state vs training forward")
    assert not s.requires_grad and not v.requires_grad and s.grad_fn is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        (s.sum() + v.sum()).backward()


@pytest.mark.triton
def test_inference_op_refuses_backward():
    """The registered op run with training=False saves nothing; differentiating it raises a clear error
    instead of returning wrong gradients."""
    from snnkernels.ops import leaky_triton

    x = rand((5, 3, 4))
    args = (x, None, None, None, None, 0.5, 1.0, 0.0, 1.0, 0.0, 0.0, True, False, False, 0, 2.0, False, True, 8)
    spikes, v_final, ckpt, _ = leaky_triton.leaky_fwd_triton(*args)
    assert ckpt.numel() == 0
    with pytest.raises(RuntimeError, match="training=False"):
        torch.autograd.grad(spikes.sum() + v_final.sum(), x)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("module", ["leaky_per_channel", "plif"])
def test_module_determinism(backend, module):
    """Two identical forward/backward passes give bitwise-identical gradients, coefficient gradients
    included (they are reduced with torch sums, no atomics); and they match the reference module."""
    C = 5
    x = rand((9, 3, C, 4, 4))

    def make(b):
        if module == "plif":
            return snn.ParametricLIFNode(
                init_tau=2.5, v_reset=None, step_mode="m", stateful=False, backend=b, surrogate_function=sg.ATan()
            ).to(DEVICE)
        node = snn.LeakyNode(decay=0.6, input_gain=0.8, bias=0.02, channels=C, learnable=True, backend=b)
        with torch.no_grad():
            node.decay.add_(0.1 * torch.randn(C))
        return node.to(DEVICE)

    grad_out = torch.randn(x.shape, device=DEVICE)
    torch.manual_seed(1)
    ref_node = make("torch")
    runs = []
    for _ in range(2):
        node = make(backend)
        node.load_state_dict(ref_node.state_dict())
        s = node(x)
        params = [p for p in node.parameters()]
        runs.append((s, torch.autograd.grad(s, [x, *params], grad_out)))
    (s1, g1), (s2, g2) = runs
    assert 0.01 < s1.float().mean().item() < 0.99, "inputs do not exercise the neuron"
    assert torch.equal(s1, s2)
    for a, b in zip(g1, g2, strict=True):
        assert torch.equal(a, b), "gradients differ between two identical runs"
    s_ref = ref_node(x)
    g_ref = torch.autograd.grad(s_ref, [x, *ref_node.parameters()], grad_out)
    assert_equal_verbose(s1, s_ref, "spikes vs reference module")
    assert_grad_close(g1[0], g_ref[0], "x")
    for name, a, b in zip([n for n, _ in ref_node.named_parameters()], g1[1:], g_ref[1:], strict=True):
        assert_grad_close(a, b, name, reduced=True)


def test_auto_never_picks_the_interpreter(monkeypatch):
    """On CPU tensors "auto" resolves to a compiled backend or the reference, never to Triton's interpreter
    (ENVs.md), so its numbers are the reference's."""
    from snnkernels.backends import resolve_backend

    monkeypatch.delenv("SNNKERNELS_BACKEND", raising=False)
    assert resolve_backend("auto", torch.empty(2, 3)) in ("torch", "native")
    x = torch.randn(5, 2, 3)
    assert torch.equal(F.multistep_lif(x), F.multistep_lif(x, backend="torch"))


@pytest.mark.cuda
@pytest.mark.triton
def test_auto_uses_triton_on_cuda(monkeypatch):
    """On CUDA tensors "auto" runs the Triton kernels (first in AUTO_ORDER) and gives the reference's forward."""
    from snnkernels.backends import resolve_backend

    monkeypatch.delenv("SNNKERNELS_BACKEND", raising=False)
    x = rand((6, 2, 3, 8), requires_grad=False)
    assert resolve_backend("auto", x) == "triton"
    s, v = F.multistep_lif(x, tau=3.0, return_final_state=True)
    s_ref, v_ref = F.multistep_lif(x, tau=3.0, backend="torch", return_final_state=True)
    assert s.device == x.device and v.device == x.device
    assert_equal_verbose(s, s_ref, "spikes")
    assert_equal_verbose(v, v_ref, "final state")


def test_nan_poisoning_is_active():
    """The conftest guard: allocations made by snnkernels come back NaN-filled (so an output that a kernel does
    not write cannot pass by luck); FakeTensor allocations (torch.compile tracing) pass through untouched."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from snnkernels.ops.leaky import new_bwd_outputs, new_fwd_outputs

    x = torch.randn(17, 3, 5)
    spikes, v_final, ckpt, v_seq = new_fwd_outputs(x, True, True, 4, True)
    assert spikes.shape == x.shape and v_final.shape == (3, 5) and ckpt.shape == (4, 15) and v_seq.shape == x.shape
    for t in (spikes, v_final, ckpt, v_seq, *new_bwd_outputs(x, True, True, True, True)):
        assert t.numel() > 0 and torch.isnan(t).all()
    with FakeTensorMode():
        fake = torch.empty(3, 4)
        out = new_fwd_outputs(fake, True, True, 2)[0]
        assert out.shape == (3, 4)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0, on purpose
def test_charge_overflow_matches_reference(backend):
    """An fp32 charge that overflows to +inf (finite input, x = 3e38 with input_gain 2): the hard reset
    h (1 - s) + v_reset s gives NaN in the reference (inf * 0), and the kernels compute the same arithmetic,
    so the final state and the later spikes agree (NaN compares equal to NaN here)."""
    x = torch.tensor([[3e38, 0.5], [1.5, 0.2]], device=DEVICE)
    outs = {
        b: F.multistep_leaky(x, decay=0.5, input_gain=2.0, backend=b, return_final_state=True)
        for b in (backend, "torch")
    }
    assert_equal_verbose(outs[backend][0], outs["torch"][0], "spikes")
    assert_equal_verbose(outs[backend][1], outs["torch"][1], "final state")


@pytest.mark.parametrize("backend", FUSED)
def test_outputs_fully_written(backend):
    """Every output element written, including the ones past the last full chunk and the gradient rows of steps
    no loss reaches (those must be exact zeros, not leftover NaN)."""
    x = rand((11, 2, 3, 5))
    s, v = F.multistep_leaky(x, decay=0.7, backend=backend, return_final_state=True)
    assert not s.isnan().any() and not v.isnan().any()
    (gx,) = torch.autograd.grad(s[:3].sum(), x)  # no gradient reaches steps 3..10
    assert not gx.isnan().any()
    assert torch.equal(gx[3:], torch.zeros_like(gx[3:]))


# ---------------------------------------------------------------------------------------------------------------
# The papers' neurons, written out from their equations independently of snnkernels.neuron_models


class HeavisideST(torch.autograd.Function):
    """Heaviside of z with a given derivative in the backward."""

    @staticmethod
    def forward(ctx, z, strict, derivative):
        ctx.save_for_backward(z)
        ctx.derivative = derivative
        return (z > 0).to(z.dtype) if strict else (z >= 0).to(z.dtype)

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return g * ctx.derivative(z), None, None


def tet_loop(x):
    """TET/DTA: m_t = 0.5 m_{t-1} + x_t; s_t = 1[m_t - 1 > 0]; m_t <- (1 - s_t) m_t; triangle max(0, 1 - |m - 1|).
    Returns spikes, the final state and the pre-reset potentials (here and below)."""
    m, out, pots = torch.zeros_like(x[0]), [], []
    for x_t in x:
        m = 0.5 * m + x_t
        s = HeavisideST.apply(m - 1.0, True, lambda z: torch.clamp(1 - z.abs(), min=0))
        pots.append(m.detach())
        m = (1 - s) * m
        out.append(s)
    return torch.stack(out), m, torch.stack(pots)  # m: the state after the last reset


def ma_snn_loop(x, width=0.5):
    """MA-SNN: u_t = h_{t-1} + x_t (h_0 = 0); s_t = 1[u_t - 0.3 >= 0]; h_t = 0.3 (0.3 s_t + (1 - s_t) u_t);
    rectangle 1[|u - 0.3| < width / 2] / width."""
    h, out, pots = torch.zeros_like(x[0]), [], []
    for x_t in x:
        u = h + x_t
        s = HeavisideST.apply(u - 0.3, False, lambda z: (z.abs() < width / 2).to(z.dtype) / width)
        pots.append(u.detach())
        h = 0.3 * (0.3 * s + (1 - s) * u)
        out.append(s)
    return torch.stack(out), h, torch.stack(pots)  # h: the decayed state that the next step adds to


def att_res_loop(x):
    """Att-Res: u_1 = x_1; u_t = 0.25 u_{t-1} (1 - detach(s_{t-1})) + x_t; s_t = 1[u_t > 0.5]; ds/du = 1[0 < u < 1]."""
    u, s, out, pots = None, None, [], []
    for x_t in x:
        u = x_t if u is None else 0.25 * u * (1 - s.detach()) + x_t
        s = HeavisideST.apply(u - 0.5, True, lambda z: ((z + 0.5 > 0) & (z + 0.5 < 1)).to(z.dtype))
        pots.append(u.detach())
        out.append(s)
    return torch.stack(out), u * (1 - s.detach()), torch.stack(pots)  # the reset state entering the next step


def _same(v):
    return v


def _ma_final(v):
    return 0.3 * v  # the library keeps the state before the decay: the papers' h_T = 0.3 * v_T


PAPERS = {  # preset, surrogate override, loop, final-state map, random (scale, shift), grid of exact inputs
    "tet": (nm.TET_LIF, None, tet_loop, _same, (0.8, 0.4), lambda s: torch.randint(-4, 12, s) / 8),
    "ma_snn": (nm.MA_SNN_LIF, None, ma_snn_loop, _ma_final, (0.3, 0.1), lambda s: torch.randint(0, 5, s) * 0.1),
    "ma_snn_w1": (
        nm.MA_SNN_LIF,
        sg.Rectangle(1.0),
        lambda x: ma_snn_loop(x, 1.0),
        _ma_final,
        (0.3, 0.1),
        lambda s: torch.randint(0, 5, s) * 0.1,
    ),
    "att_res": (nm.ATT_RES_LIF, None, att_res_loop, _same, (0.5, 0.2), lambda s: torch.randint(-2, 7, s) / 8),
}


@pytest.mark.parametrize("backend", [pytest.param("torch", id="torch")] + FUSED)
@pytest.mark.parametrize("paper", list(PAPERS))
@pytest.mark.parametrize("data", ["random", "grid"])
def test_paper_presets_match_their_equations(backend, paper, data):
    """Spikes, final state and input gradients of each preset against its paper's loop. "grid" inputs land
    exactly on the threshold, where strict / non-strict firing decides."""
    preset, surrogate, loop, final, (scale, shift), grid = PAPERS[paper]
    shape = (11, 3, 4, 6)
    x = rand(shape, scale=scale, shift=shift) if data == "random" else grid(shape).float().to(DEVICE).requires_grad_()
    s, v = F.multistep_leaky(
        x,
        decay=preset.decay,
        v_threshold=preset.v_threshold,
        v_reset=preset.v_reset,
        strict_threshold=preset.strict_threshold,
        detach_reset=preset.detach_reset,
        surrogate_function=surrogate or preset.surrogate,
        backend=backend,
        return_final_state=True,
    )
    s_loop, state_loop, pots = loop(x)
    rate = s.float().mean().item()
    assert 0.05 < rate < 0.95, f"spike rate {rate}: inputs do not exercise the neuron"
    if data == "grid":
        assert (pots == preset.v_threshold).any(), "grid inputs never hit the threshold exactly"
    assert_equal_verbose(s, s_loop, "spikes")
    assert_equal_verbose(final(v), state_loop, "final state")
    g_s, g_v = torch.randn_like(s), torch.randn_like(v)
    (g,) = torch.autograd.grad((s, final(v)), x, (g_s, g_v))
    (g_loop,) = torch.autograd.grad((s_loop, state_loop), x, (g_s, g_v))
    assert_grad_close(g, g_loop, "x")


@pytest.mark.parametrize(
    "paper, cls", [("tet", snn.TETLIFNode), ("ma_snn", snn.MASNNLIFNode), ("att_res", snn.AttResLIFNode)]
)
def test_preset_modules_use_the_presets(paper, cls):
    preset, loop = PAPERS[paper][0], PAPERS[paper][2]
    assert cls.preset is preset
    x = rand((6, 2, 5), scale=0.6, shift=0.3)
    assert_equal_verbose(cls(backend="torch")(x), loop(x)[0], f"{cls.__name__} spikes")


# SpikingJelly's LIF charge, h = v + (x - (v - v_reset)) / tau (decay_input) or h = v - (v - v_reset) / tau + x;
# v starts at v_reset (0 for soft); hard reset v = h (1 - s) + v_reset s, soft v = h - v_th s. It equals our
# (1 - 1/tau) v + g x + v_reset / tau only in exact arithmetic, hence the spike-flip budget.


def _atan_derivative(z):
    return 1.0 / (1 + (math.pi * z) ** 2)  # ATan(alpha=2): (alpha / 2) / (1 + (pi / 2 * alpha * z)^2)


def _sigmoid_derivative(z):
    sig = torch.sigmoid(4.0 * z)
    return 4.0 * sig * (1 - sig)


SJ_SURROGATES = {"atan": (sg.ATan(2.0), _atan_derivative), "sigmoid": (sg.Sigmoid(4.0), _sigmoid_derivative)}


def sj_lif_loop(x, tau, decay_input, v_reset, detach_reset, derivative, v_th=1.0):
    """Returns spikes, pre-reset potentials h (detached) and the final state."""
    if isinstance(tau, torch.Tensor) and tau.numel() > 1:
        tau = tau.reshape((-1,) + (1,) * (x.dim() - 3))
    vr = 0.0 if v_reset is None else v_reset
    v = torch.full_like(x[0], vr)
    spikes, hs = [], []
    for x_t in x:
        if v_reset is None:
            h = v + (x_t - v) / tau if decay_input else v - v / tau + x_t
        else:
            h = v + (x_t - (v - v_reset)) / tau if decay_input else v - (v - v_reset) / tau + x_t
        s = HeavisideST.apply(h - v_th, False, derivative)
        sr = s.detach() if detach_reset else s
        v = h - v_th * sr if v_reset is None else h * (1 - sr) + v_reset * sr
        spikes.append(s)
        hs.append(h.detach())
    return torch.stack(spikes), torch.stack(hs), v


SJ_CASES = [  # tau, decay_input, v_reset, detach_reset, surrogate
    (2.0, True, 0.0, False, "atan"),
    (3.0, True, None, True, "sigmoid"),
    (2.5, False, -0.5, False, "atan"),
    (7.0, False, 0.3, True, "sigmoid"),
    ("channel", True, 0.0, True, "atan"),
    ("channel", False, None, False, "atan"),
    (3.0, False, -0.5, False, "atan"),  # with grid inputs: many exact-threshold ties, so many real flips
]


@pytest.mark.parametrize(
    "precision",
    [
        pytest.param("fp64-torch", id="fp64-torch"),
        pytest.param("fp32-triton", id="fp32-triton", marks=pytest.mark.triton),
    ],
)
@pytest.mark.parametrize("data", ["random", "grid"])
@pytest.mark.parametrize("tau, decay_input, v_reset, detach_reset, surrogate", pick(SJ_CASES, SJ_CASES[::3]))
def test_lif_matches_spikingjelly_formula(precision, data, tau, decay_input, v_reset, detach_reset, surrogate):
    """multistep_lif against SpikingJelly's charge written out. Spikes may differ only by flips at the threshold
    (spike-flip budget); gradients are compared with the flipped neurons' grad outputs zeroed (the neurons are
    independent, so they then contribute nothing to any gradient), in fp64 to near machine precision.
    "grid" inputs (multiples of 1/8) hit the threshold exactly in exact arithmetic, provoking real flips."""
    dtype, backend = (torch.float64, "torch") if precision == "fp64-torch" else (torch.float32, "triton")
    C = 4
    if data == "random":
        x0 = torch.randn(13, 5, C, 100, dtype=torch.float64) * 1.5 + 0.6
    else:
        x0 = torch.randint(-16, 40, (13, 5, C, 100)).double() / 8
    x = x0.to(DEVICE, dtype).requires_grad_()
    tau_t = (
        (2.0 + 3.0 * torch.rand(C, dtype=torch.float64)).to(DEVICE, dtype).requires_grad_() if tau == "channel" else tau
    )
    our_sg, derivative = SJ_SURROGATES[surrogate]
    s, v = F.multistep_lif(
        x,
        tau=tau_t,
        decay_input=decay_input,
        v_reset=v_reset,
        detach_reset=detach_reset,
        surrogate_function=our_sg,
        backend=backend,
        return_final_state=True,
    )
    s_sj, h_sj, v_sj = sj_lif_loop(x, tau_t, decay_input, v_reset, detach_reset, derivative)
    cmp = compare_spikes(
        s, s_sj, h_sj, 1.0, eps=FLIP_EPS[dtype], max_flip_rate=MAX_FLIP_RATE if data == "random" else None
    )
    print(f"spike flip rate {cmp.flip_rate:.2e} ({cmp.flips} neurons flipped)")
    keep = cmp.neuron_mask
    # h differs by a few ulps between the formulas (measured <= 5e-7 in fp32), so the final state does too
    v_tol = (1e-13, 0.0) if dtype == torch.float64 else (4e-6, 0.0)
    assert_close_verbose(v, v_sj, *v_tol, "final state of unflipped neurons", mask=keep)
    leaves = [x] + ([tau_t] if isinstance(tau_t, torch.Tensor) else [])
    g_s = torch.randn(s.shape, dtype=torch.float64).to(DEVICE, dtype) * keep
    g_v = torch.randn(v.shape, dtype=torch.float64).to(DEVICE, dtype) * keep
    grads = torch.autograd.grad((s, v), leaves, (g_s, g_v))
    grads_sj = torch.autograd.grad((s_sj, v_sj), leaves, (g_s, g_v))
    for name, g, g_ref in zip(("x", "tau"), grads, grads_sj, strict=False):  # no "tau" gradient for a float tau
        if dtype == torch.float64:
            assert_grad_close(g, g_ref, name, reduced=name == "tau")
        else:
            # fp32: the two sides evaluate the surrogate at h values a few ulps apart; its slope (<= ~4 for these
            # two) and the recurrence carry that into the gradient: ~1e-6 absolute measured, bounded by 1e-5
            # (normwise for tau, a sum over all neurons and steps)
            atol = 1e-5 * (1 + (g_ref.abs().max().item() if name == "tau" else 0.0))
            assert_close_verbose(g, g_ref, atol, 1e-5, f"grad {name}")


# ---------------------------------------------------------------------------------------------------------------
# The comparison helpers themselves must be able to fail


def test_assert_close_verbose_reports_mismatches():
    a = torch.tensor([1.0, 2.0, float("nan"), 4.0, float("inf")])
    assert_close_verbose(a, a.clone(), 0, 0, "same")
    with pytest.raises(AssertionError, match=r"1 / 5 elements differ.*max abs err 1\.250e-01"):
        assert_close_verbose(a + torch.tensor([0, 0.125, 0, 0, 0]), a, 0.1, 0, "x")
    with pytest.raises(AssertionError, match="NaN mismatches 1"):
        assert_close_verbose(torch.tensor([1.0, 0.0]), torch.tensor([1.0, float("nan")]), 1.0, 1.0, "nan")
    with pytest.raises(AssertionError, match="inf mismatches 1"):
        assert_close_verbose(torch.tensor([float("inf")]), torch.tensor([float("-inf")]), 1.0, 1.0, "inf")
    assert_close_verbose(
        torch.tensor([0.0, 5.0]), torch.tensor([1.0, 5.0]), 0, 0, "masked", mask=torch.tensor([False, True])
    )
    with pytest.raises(AssertionError, match="shape"):
        assert_close_verbose(torch.zeros(2), torch.zeros(3), 0, 0)


def test_compare_spikes_budget():
    T, N = 4, 5
    ref = torch.zeros(T, N)
    h = torch.full((T, N), 0.2)
    h[1, 2] = 1.0 + 1e-7  # neuron 2 sits at the threshold at step 1
    ref[1, 2] = 1.0
    test = ref.clone()
    test[1, 2] = 0.0  # flip at the threshold: allowed
    test[3, 2] = 1.0  # later difference of the same neuron: excluded
    cmp = compare_spikes(test, ref, h, 1.0, eps=1e-5)
    assert cmp.flips == 1 and cmp.flip_rate == 1 / (T * N)
    assert cmp.neuron_mask.tolist() == [True, True, False, True, True]
    assert cmp.step_mask[:, 2].tolist() == [True, False, False, False] and cmp.step_mask[:, 0].all()
    with pytest.raises(AssertionError, match="flip rate"):
        compare_spikes(test, ref, h, 1.0, eps=1e-5, max_flip_rate=1e-3)
    far = ref.clone()
    far[0, 4] = 1.0  # differs where h = 0.2, far from the threshold
    with pytest.raises(AssertionError, match="away from the threshold"):
        compare_spikes(far, ref, h, 1.0, eps=1e-5)
    # a margin tensor can be passed directly
    assert compare_spikes(test, ref, (h - 1.0).abs(), eps=1e-5).flips == 1


# ---------------------------------------------------------------------------------------------------------------
# The membrane sequence (return_v_seq): v_1 .. v_T written by the kernels, differentiable


def run_v_seq(fn, backend, x, v_init=None, *, grad_on=("spikes", "final", "v_seq"), **kwargs):
    """``fn`` with ``backend`` and with the reference, both returning (spikes, v_T, v_seq); the same random grad
    outputs backpropagated through the outputs named in ``grad_on``. Returns ``{backend: (outputs, grads)}``."""
    leaves = {"x": x, "v_init": v_init, **{k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)}}
    leaves = {k: v for k, v in leaves.items() if isinstance(v, torch.Tensor) and v.requires_grad}
    gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))
    results, grad_outs = {}, None
    for b in (backend, "torch"):
        outs = fn(x, v_init, backend=b, return_final_state=True, return_v_seq=True, **kwargs)
        if grad_outs is None:
            grad_outs = [random_like_layout(o.shape, o.dtype, o.device, "contiguous", gen) for o in outs]
        chosen = [(o, g) for o, g, n in zip(outs, grad_outs, ("spikes", "final", "v_seq"), strict=True) if n in grad_on]
        grads = torch.autograd.grad([o for o, _ in chosen], list(leaves.values()), [g for _, g in chosen])
        results[b] = (outs, dict(zip(leaves, grads, strict=True)))
    return results


def check_v_seq(results, backend, x):
    """Spikes, v_T and v_seq bit-exact against the reference (v_seq[-1] is v_T), every gradient within the
    tolerance of its dtype."""
    (outs, grads), (outs_ref, grads_ref) = results[backend], results["torch"]
    spikes, v_final, v_seq = outs
    assert v_seq.shape == x.shape and v_seq.dtype == outs_ref[2].dtype, (v_seq.shape, v_seq.dtype)
    assert not v_seq.isnan().any(), "NaN in v_seq: an element was never written"
    for name, got, want in zip(("spikes", "final state", "v_seq"), outs, outs_ref, strict=True):
        assert_equal_verbose(got, want, name)
    assert_equal_verbose(v_seq[-1], v_final, "v_seq[-1] vs v_T")
    if spikes.numel() >= 200:
        assert 0.01 < spikes.float().mean().item() < 0.99, "inputs do not exercise the neuron"
    assert grads.keys() == grads_ref.keys()
    for name in grads:
        assert not grads[name].isnan().any(), f"NaN in grad {name}"
        assert_grad_close(grads[name], grads_ref[name], name, reduced=name in ("decay", "input_gain", "bias", "tau"))


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("chunk", pick([1, 3, 8], [3]), indirect=True)
@pytest.mark.parametrize("T", pick([1, 5, 13], [5, 13]))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reset", ["hard-0.3", "soft"])
def test_v_seq_matches_reference(backend, chunk, T, dtype, reset):
    """v_seq with every gradient (x, v_init, per-channel decay / gain / bias) flowing through the spikes, v_T and
    v_seq together, across chunk boundaries and partial chunks, odd shapes, every input dtype."""
    C = 3
    x = rand((T, 2, C, 5, 7), dtype)
    v0 = rand((2, C, 5, 7), dtype, scale=0.5, shift=0.0)
    coeffs = dict(
        decay=coefficient("channel", 0.6, C),
        input_gain=coefficient("channel", 0.9, C),
        bias=coefficient("channel", 0.05, C, spread=0.05),
    )
    res = run_v_seq(
        F.multistep_leaky,
        backend,
        x,
        v0,
        v_threshold=0.9,
        v_reset=RESETS[reset],
        surrogate_function=sg.ATan(),
        **coeffs,
    )
    check_v_seq(res, backend, x)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("grad_on", [("v_seq",), ("spikes", "v_seq"), ("final", "v_seq")], ids="+".join)
@pytest.mark.parametrize("surrogate", [sg.Sigmoid(), sg.Triangle(), sg.Erf()], ids=repr)
@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
def test_v_seq_gradient_paths(backend, grad_on, surrogate, detach_reset):
    """dL/dv_seq alone (no gradient on the spikes) and with one other output, every surrogate kind of code path
    (the native backward given dL/dv_seq runs its own instances), attached and detached reset."""
    C = 4
    x = rand((11, 3, C, 9))
    tau = (2.0 + 3.0 * torch.rand(C, device=DEVICE)).requires_grad_()
    res = run_v_seq(
        F.multistep_lif,
        backend,
        x,
        grad_on=grad_on,
        tau=tau,
        v_reset=0.0,
        detach_reset=detach_reset,
        surrogate_function=surrogate,
    )
    check_v_seq(res, backend, x)


@pytest.mark.parametrize("backend", [pytest.param("torch", id="torch")] + FUSED)
def test_v_seq_output_convention(backend):
    """spikes, then v_T if asked, then v_seq; the state dtype (fp32 for 16-bit input, fp64 for fp64 input on the
    torch path); v_seq[t] is the state after step t's reset; channels-last steps keep their layout."""
    x = rand((6, 2, 3, 4, 5), torch.bfloat16)
    s = F.multistep_lif(x, tau=2.0, backend=backend)
    s2, v_seq = F.multistep_lif(x, tau=2.0, backend=backend, return_v_seq=True)
    s3, v_final, v_seq3 = F.multistep_lif(x, tau=2.0, backend=backend, return_final_state=True, return_v_seq=True)
    assert torch.equal(s, s2) and torch.equal(s, s3) and torch.equal(v_seq, v_seq3)
    assert v_seq.dtype == torch.float32 and v_seq.shape == x.shape
    assert torch.equal(v_seq[-1], v_final)
    for t in range(x.shape[0]):  # each row is the final state of the sequence cut after step t
        _, v_t = F.multistep_lif(x[: t + 1], tau=2.0, backend=backend, return_final_state=True)
        assert_equal_verbose(v_seq[t], v_t, f"v_seq[{t}]")
    base = torch.randn((12, 3, 4, 5), device=DEVICE).contiguous(memory_format=torch.channels_last)
    xc = base.view(6, 2, 3, 4, 5)
    _, v_seq_c = F.multistep_lif(xc, tau=2.0, backend=backend, return_v_seq=True)
    if backend != "torch":
        assert v_seq_c.stride() == xc.stride(), "v_seq follows x's layout"
    assert_equal_verbose(
        v_seq_c, F.multistep_lif(xc.contiguous(), tau=2.0, backend="torch", return_v_seq=True)[1], "channels-last v_seq"
    )
    if backend == "torch":
        x64 = x.double()
        assert F.multistep_lif(x64, tau=2.0, backend=backend, return_v_seq=True)[1].dtype == torch.float64


@pytest.mark.parametrize("backend", [pytest.param("torch", id="torch")] + FUSED)
@pytest.mark.parametrize("final", [False, True], ids=["spikes", "spikes-final"])
def test_v_seq_with_spike_counts(backend, final):
    """The counted forward (firing statistics) with v_seq: the same outputs as without counting, the counts equal
    to the spikes' per-step sums; on Triton the kernel counts and stores v_seq in one pass."""
    from snnkernels.functional import leaky_neuron

    x = rand((9, 2, 3, 11))
    kwargs = dict(
        decay=0.7,
        input_gain=1.0,
        bias=0.0,
        v_threshold=1.0,
        v_reset=0.0,
        strict_threshold=False,
        detach_reset=False,
        surrogate_function=sg.ATan(),
        backend=backend,
        return_final_state=final,
        v_init_value=0.0,
        return_v_seq=True,
    )
    out, counts = leaky_neuron(x, None, count_spikes=True, **kwargs)
    plain = leaky_neuron(x, None, **kwargs)
    assert len(out) == len(plain) == 2 + final
    for a, b in zip(out, plain, strict=True):
        assert_equal_verbose(a, b, "counted vs plain")
    assert torch.equal(counts, out[0].detach().reshape(9, -1).sum(1).to(torch.int64))
    g = torch.randn_like(out[-1])
    (gx,) = torch.autograd.grad(out[-1], x, g)
    (gx_plain,) = torch.autograd.grad(plain[-1], x, g)
    assert torch.equal(gx, gx_plain)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("mode", ["no_grad", "training"])
def test_v_seq_absent_unless_asked(backend, mode):
    """Without return_v_seq the op's v_seq output is a 0-element tensor (nothing written), with or without
    gradients; asked for, it equals the reference in inference too."""
    from snnkernels.functional import _fused_forward

    x = rand((5, 3, 7), requires_grad=mode == "training")
    op, chunk = _fused_forward(backend)
    args = (
        x,
        None,
        None,
        None,
        None,
        0.6,
        1.0,
        0.0,
        1.0,
        0.0,
        0.0,
        True,
        False,
        False,
        0,
        2.0,
        mode == "training",
        False,
        chunk,
    )
    assert op(*args)[3].numel() == 0 and op(*args, False)[3].numel() == 0
    with torch.no_grad():
        v_seq = op(*args, True)[3]
        assert_equal_verbose(v_seq, F.multistep_leaky(x, decay=0.6, backend="torch", return_v_seq=True)[1], "v_seq")


@pytest.mark.parametrize("backend", FUSED)
def test_v_seq_against_fp64_reference(backend):
    """fp32 kernels against the reference run in fp64 on the same input: the same spikes (no potential within
    rounding of the threshold here), v_seq and every gradient within fp32 rounding of the fp64 truth."""
    C = 3
    x = rand((10, 2, C, 13))
    v0 = rand((2, C, 13), scale=0.5, shift=0.0)
    decay = coefficient("channel", 0.7, C)
    outs = F.multistep_leaky(
        x, v0, decay=decay, input_gain=0.8, v_reset=None, backend=backend, return_final_state=True, return_v_seq=True
    )
    x64, v064, d64 = (t.detach().double().requires_grad_() for t in (x, v0, decay))
    outs64 = F.multistep_leaky(
        x64, v064, decay=d64, input_gain=0.8, v_reset=None, backend="torch", return_final_state=True, return_v_seq=True
    )
    assert torch.equal(outs[0].double(), outs64[0]), "spikes differ from the fp64 reference"
    assert_close_verbose(outs[2], outs64[2], 1e-6, 1e-6, "v_seq vs fp64")
    grad_outs = [torch.randn(o.shape, dtype=torch.float64, device=DEVICE) for o in outs64]
    grads = torch.autograd.grad(outs, (x, v0, decay), [g.float() for g in grad_outs])
    grads64 = torch.autograd.grad(outs64, (x64, v064, d64), grad_outs)
    for name, g, g64 in zip(("x", "v_init", "decay"), grads, grads64, strict=True):
        scale = 1.0 + (g64.abs().max().item() if name == "decay" else 0.0)
        assert_close_verbose(g, g64, 1e-5 * scale, 1e-5, f"grad {name} vs fp64")
