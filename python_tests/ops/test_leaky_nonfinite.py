"""Non-finite values in the leaky neuron family (docs/neuron.md "Non-finite values"), on every backend.

- Inputs +inf / -inf / NaN at several steps: spikes and v_T equal to SpikingJelly 2.0's own modules (LIFNode, IFNode,
  ParametricLIFNode, step_mode='m'), NaN positions included, and the input (and PLIF weight) gradients NaN exactly
  where SpikingJelly's are. A leaking neuron whose membrane is infinite charges to NaN as SpikingJelly's
  ``v + (x - (v - v_reset)) / tau`` does; IF keeps +-inf. Dyadic inputs with tau = 2 keep every finite potential
  exact in both formulas, so the finite values must agree bit for bit too.
- A per-channel learnable decay (no SpikingJelly module): against SpikingJelly's charge with a per-channel rate,
  written out, and the reference.
- Overflow (a tau so small that a * v or b * x overflows), NaN / inf / unstable (|decay| > 1) coefficient tensors:
  the documented result, bit-identical on every backend (NaN positions included) and equal to the reference.
"""

from __future__ import annotations

import pytest
import torch

from snnkernels import functional as F
from snnkernels import surrogate as sg
from snnkernels.backends import backend_problem
from snnkernels.functional import leaky_neuron
from snnkernels.neuron_models import rate_coefficients

from conftest import DEVICE
from utils import assert_equal_verbose

sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron", reason="spikingjelly 2.x not installed")

pytestmark = [
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
]

INF, NAN = float("inf"), float("nan")
T, B, C, L = 8, 2, 3, 12


def backends() -> list:
    """The reference, Triton (its own marker) and the compiled backends that can run here."""
    params = [pytest.param("torch", id="torch"), pytest.param("triton", marks=pytest.mark.triton, id="triton")]
    probe = torch.empty(1, device=DEVICE)
    for name in ("native", "cupy"):
        if backend_problem(name, probe) is None:
            params.append(pytest.param(name, id=name))
    return params


BACKENDS = backends()
# (step, neuron, value): each kind of non-finite value at the first, a middle and the last step, and a neuron that
# sees +inf and later -inf
EVENTS = [
    (0, 0, INF),
    (0, 1, -INF),
    (0, 2, NAN),
    (3, 3, INF),
    (3, 4, -INF),
    (3, 5, NAN),
    (T - 1, 6, INF),
    (T - 1, 7, -INF),
    (T - 1, 8, NAN),
    (2, 9, INF),
    (5, 9, -INF),
    (1, 10, -INF),
    (4, 10, INF),
]


def nonfinite_input() -> torch.Tensor:
    """[T, B, C, L] dyadic currents (multiples of 1/8) with EVENTS in batch 0, channel 0; batch 1 stays finite."""
    x = torch.randint(-8, 24, (T, B, C, L)).float() / 8
    for t, n, value in EVENTS:
        x[t, 0, n % C, n] = value
    return x.to(DEVICE)


def same_values(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    """Bit-equal where finite, +-inf where +-inf, NaN where NaN."""
    assert_equal_verbose(actual, expected.to(actual.dtype), name)


def same_nan_pattern(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    diff = actual.detach().isnan().cpu() != expected.detach().isnan().cpu()
    assert not diff.any(), f"{name}: NaN at {int(diff.sum())} other positions, first {diff.nonzero()[:4].tolist()}"


def run_pair(ours, theirs, x0, weights=()):
    """Both sides on copies of x0 (and of the weight tensors), the same grad outputs through spikes and v_T.
    ``fn(x, *weights)`` returns (spikes, v_T, the weight leaves it used). Returns ((spikes, v_T, grads),
    (spikes, v_T, grads)) for ours and SpikingJelly's, grads of x then of the weights."""
    results = []
    gen = torch.Generator().manual_seed(3)
    grad_s = torch.randn(x0.shape, generator=gen).to(DEVICE)
    grad_v = torch.randn(x0.shape[1:], generator=gen).to(DEVICE)
    for fn in (ours, theirs):
        x = x0.clone().requires_grad_()
        spikes, v, leaves = fn(x, *[w.detach().clone().requires_grad_() for w in weights])
        grads = torch.autograd.grad((spikes, v), (x, *leaves), (grad_s, grad_v))
        results.append((spikes, v, grads))
    return results


def check_pair(results) -> None:
    (s, v, grads), (s_sj, v_sj, grads_sj) = results
    same_values(s, s_sj, "spikes")
    same_values(v, v_sj, "v_T")
    assert v.isnan().any() and v[1].isfinite().all(), "the events must reach the final state, batch 1 stays finite"
    for i, (g, g_sj) in enumerate(zip(grads, grads_sj, strict=True)):
        same_nan_pattern(g, g_sj, f"grad {i}")


SJ_SURROGATES = {"sigmoid": ("Sigmoid", sg.Sigmoid(4.0)), "atan": ("ATan", sg.ATan(2.0))}


def sj_surrogate(name: str):
    from spikingjelly.activation_based import surrogate as sj_sg

    return getattr(sj_sg, SJ_SURROGATES[name][0])()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("v_reset", [0.0, -0.5, None], ids=["hard0", "hard-0.5", "soft"])
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("surrogate", list(SJ_SURROGATES))
def test_lif_matches_spikingjelly(backend, v_reset, decay_input, detach_reset, surrogate):
    def ours(x):
        return *F.multistep_lif(
            x,
            tau=2.0,
            decay_input=decay_input,
            v_reset=v_reset,
            detach_reset=detach_reset,
            surrogate_function=SJ_SURROGATES[surrogate][1],
            backend=backend,
            return_final_state=True,
        ), ()

    def theirs(x):
        node = sj_neuron.LIFNode(
            tau=2.0,
            decay_input=decay_input,
            v_reset=v_reset,
            detach_reset=detach_reset,
            surrogate_function=sj_surrogate(surrogate),
            step_mode="m",
        )
        return node(x), node.v, ()

    check_pair(run_pair(ours, theirs, nonfinite_input()))


def sigmoid_leaky(
    x: torch.Tensor, coefficients: tuple, v_reset: float | None, detach_reset: bool, backend: str
) -> tuple:
    """(spikes, final state) of the leaky neuron with (decay, input_gain, bias) = ``coefficients``, threshold 1
    and a Sigmoid(4) surrogate, from v_reset (0 for soft reset): SpikingJelly's IF / PLIF in this form."""
    decay, gain, bias = coefficients
    return leaky_neuron(
        x,
        None,
        decay=decay,
        input_gain=gain,
        bias=bias,
        v_reset=v_reset,
        v_init_value=0.0 if v_reset is None else v_reset,
        v_threshold=1.0,
        strict_threshold=False,
        surrogate_function=sg.Sigmoid(4.0),
        detach_reset=detach_reset,
        backend=backend,
        return_final_state=True,
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("v_reset", [0.0, -0.5, None], ids=["hard0", "hard-0.5", "soft"])
@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
def test_if_matches_spikingjelly(backend, v_reset, detach_reset):
    """IF (decay 1) keeps +-inf membranes, as SpikingJelly's v + x does."""

    def ours(x):
        return *sigmoid_leaky(x, (1.0, 1.0, 0.0), v_reset, detach_reset, backend), ()

    def theirs(x):
        node = sj_neuron.IFNode(v_reset=v_reset, detach_reset=detach_reset, step_mode="m")
        return node(x), node.v, ()

    results = run_pair(ours, theirs, nonfinite_input())
    check_pair(results)
    assert results[0][1].isinf().any(), "an IF membrane stays infinite"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("v_reset", [0.0, None], ids=["hard0", "soft"])
@pytest.mark.parametrize("decay_input", [True, False])
def test_plif_matches_spikingjelly(backend, v_reset, decay_input):
    """PLIF's rate sigmoid(w) = 1/2 (init_tau = 2): the input gradient and the weight's NaN where SpikingJelly's."""

    def ours(x, w):
        coefficients = rate_coefficients(torch.sigmoid(w), decay_input, v_reset)
        return *sigmoid_leaky(x, coefficients, v_reset, False, backend), (w,)

    def theirs(x, w):
        node = sj_neuron.ParametricLIFNode(init_tau=2.0, decay_input=decay_input, v_reset=v_reset, step_mode="m")
        with torch.no_grad():
            node.w.copy_(w)
        return node(x), node.v, (node.w,)

    w = torch.zeros((), device=DEVICE)
    check_pair(run_pair(ours, theirs, nonfinite_input(), (w,)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("v_reset", [0.0, None], ids=["hard0", "soft"])
def test_per_channel_learnable_decay(backend, v_reset):
    """A per-channel rate k (one channel at k = 0: decay exactly 1, the IF rule) against SpikingJelly's charge
    ``v + (x - (v - v_reset)) * k`` written out, and the gradients' NaN pattern against autograd through it."""
    rate = torch.tensor([0.5, 0.25, 0.0], device=DEVICE)

    def ours(x, k):
        return *sigmoid_leaky(x, rate_coefficients(k, True, v_reset), v_reset, False, backend), (k,)

    def theirs(x, k):
        vr = 0.0 if v_reset is None else v_reset
        v, spikes = torch.full_like(x[0], vr), []
        for x_t in x:
            h = v + (x_t - (v - vr)) * k[:, None]
            s = sg.Sigmoid(4.0).spike(h - 1.0, False)
            v = h - s if v_reset is None else s * vr + (1.0 - s) * h
            spikes.append(s)
        return torch.stack(spikes), v, (k,)

    check_pair(run_pair(ours, theirs, nonfinite_input(), (rate,)))


# ---------------------------------------------------------------------------------------------------------------
# Coefficients and overflow: the documented result, identical on every backend


COEFFICIENT_CASES = {
    # name: (decay [C], input_gain [C], bias [C]) as lists; x finite
    "nan-decay": ([0.5, NAN, 0.9], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]),
    "inf-gain": ([0.5, 0.5, 0.5], [1.0, INF, -INF], [0.0, 0.0, 0.0]),
    "inf-bias": ([0.5, 0.5, 0.5], [1.0, 1.0, 1.0], [INF, -INF, NAN]),
    "unstable-decay": ([1e7, -1e7, 4.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]),  # |decay| > 1: grows until +-inf, then NaN
    "inf-decay": ([INF, -INF, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]),
}


def runnable_backends() -> list[str]:
    """Every backend that runs here: the reference first."""
    from conftest import triton_skip_reason

    names = [p.values[0] for p in BACKENDS]
    return [n for n in names if n != "triton" or triton_skip_reason() is None]


def check_identical(run, grads_like_reference: bool = True) -> dict:
    """``run(backend) -> (outputs, grads)`` on every backend: outputs bit-identical to the reference's (NaN
    positions included); gradients NaN at the same positions on every fused backend (one backward formula), and
    where the reference's autograd has them unless ``grads_like_reference`` is False (a backward that overflows
    itself: autograd groups the terms of dL/dh differently, docs/neuron.md). Returns the results by backend."""
    outs = {name: run(name) for name in runnable_backends()}
    values_ref, grads_ref = outs["torch"]
    fused = [name for name in outs if name != "torch"]
    for name, (values, grads) in outs.items():
        for i, (a, b) in enumerate(zip(values, values_ref, strict=True)):
            same_values(a, b, f"{name} output {i}")
        pivot = grads_ref if grads_like_reference or not fused else outs[fused[0]][1]
        if name != "torch" or grads_like_reference:
            for i, (a, b) in enumerate(zip(grads, pivot, strict=True)):
                same_nan_pattern(a, b, f"{name} grad {i}")
    return outs


@pytest.mark.parametrize("case", list(COEFFICIENT_CASES))
@pytest.mark.parametrize("v_reset", [0.0, None], ids=["hard0", "soft"])
def test_nonfinite_coefficients_identical_on_every_backend(case, v_reset):
    decay, gain, bias = (torch.tensor(c, device=DEVICE) for c in COEFFICIENT_CASES[case])
    x0 = torch.randint(-8, 24, (T, B, C, L), device=DEVICE).float() / 8

    def run(backend):
        x = x0.clone().requires_grad_()
        coeffs = [t.clone().requires_grad_() for t in (decay, gain, bias)]
        outs = F.multistep_leaky(
            x,
            decay=coeffs[0],
            input_gain=coeffs[1],
            bias=coeffs[2],
            v_reset=v_reset,
            backend=backend,
            return_final_state=True,
            return_v_seq=True,
        )
        grads = torch.autograd.grad(outs, (x, *coeffs), [torch.ones_like(o) for o in outs])
        return [o.detach() for o in outs], grads

    v_seq = check_identical(run, grads_like_reference=case != "unstable-decay")["torch"][0][2]
    assert not v_seq.isfinite().all(), "the case must produce non-finite states"


@pytest.mark.parametrize("tau", [1e-30, 1e-39], ids=["gain-overflows", "gain-inf"])
@pytest.mark.parametrize("v_reset", [0.0, None], ids=["hard0", "soft"])
def test_overflow_identical_on_every_backend(tau, v_reset):
    """tau so small that 1/tau overflows fp32 (input_gain = +inf, decay = -inf) or that b * x does (1e30 * x):
    whatever the charge gives, every backend gives the same."""
    x0 = torch.randint(-8, 24, (T, B, C, L), device=DEVICE).float() / 8 * 1e10

    def run(backend):
        x = x0.clone().requires_grad_()
        outs = F.multistep_lif(x, tau=tau, v_reset=v_reset, backend=backend, return_final_state=True, return_v_seq=True)
        grads = torch.autograd.grad(outs, (x,), [torch.ones_like(o) for o in outs])
        return [o.detach() for o in outs], grads

    v_seq = check_identical(run)["torch"][0][2]
    assert not v_seq.isfinite().all(), "the charge must overflow"
