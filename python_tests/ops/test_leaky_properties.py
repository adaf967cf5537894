"""Property-based: hypothesis draws T, shapes, dtypes, options, coefficients, layouts and the recompute chunk;
the Triton kernels must equal the eager reference (spikes and final state bit for bit, gradients to the
dtype's rounding), exactly as in test_leaky but over combinations nobody wrote down. Derandomized, so CI
sees the same examples every run."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnkernels import functional as F
from snnkernels import surrogate as sg

from conftest import DEVICE
from utils import check_both, make_coefficient, random_like_layout, run_both

pytestmark = pytest.mark.triton

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SURROGATES = st.sampled_from(
    [
        sg.ATan(2.0),
        sg.ATan(5.0),
        sg.Sigmoid(4.0),
        sg.Sigmoid(1.0),
        sg.Triangle(1.0),
        sg.Triangle(0.3),
        sg.Rectangle(1.0),
        sg.Rectangle(0.5),
        sg.PiecewiseExp(1.0),
        sg.SoftSign(2.0),
        sg.SuperSpike(1.0),
        sg.Erf(2.0),
    ]
)
COEFFICIENT_KINDS = st.sampled_from(["float", "0d", "1elem", "channel", "channel-nograd"])


@st.composite
def shapes(draw):
    T = draw(st.integers(1, 13))
    B = draw(st.integers(1, 3))
    C = draw(st.integers(1, 5))
    spatial = draw(st.lists(st.integers(1, 6), min_size=0, max_size=2))
    return (T, B, C, *spatial)


@st.composite
def common(draw):
    shape = draw(shapes())
    layouts = ["contiguous", "transposed", "sliced"] + (["channels_last"] if len(shape) == 5 else [])
    return dict(
        shape=shape,
        dtype=draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16])),
        v_reset=draw(st.sampled_from([0.0, -0.3, 0.2, None])),
        detach=draw(st.booleans()),
        surrogate=draw(SURROGATES),
        v_init=draw(st.sampled_from(["none", "learnable", "constant"])),
        final=draw(st.booleans()),
        scale=draw(st.floats(0.3, 3.0)),
        shift=draw(st.floats(-0.5, 1.0)),
        chunk=draw(st.sampled_from([1, 2, 3, 8])),
        layout=draw(st.sampled_from(layouts)),
        grad_layout=draw(st.sampled_from(["contiguous", "expanded", "transposed"])),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def _inputs(case):
    torch.manual_seed(case["seed"])
    shape, dtype = case["shape"], case["dtype"]
    x = random_like_layout(shape, dtype, DEVICE, case["layout"], scale=case["scale"], shift=case["shift"])
    x.requires_grad_()
    v0 = None
    if case["v_init"] != "none":
        v0 = random_like_layout(shape[1:], dtype, DEVICE, scale=0.5).requires_grad_(case["v_init"] == "learnable")
    return x, v0


def _run(fn, case, **kwargs):
    from snnkernels.ops import leaky_triton

    x, v0 = _inputs(case)
    with mock.patch.object(leaky_triton, "DEFAULT_CHUNK", case["chunk"]):
        res = run_both(
            fn,
            "triton",
            x,
            v0,
            grad_layout=case["grad_layout"],
            v_reset=case["v_reset"],
            detach_reset=case["detach"],
            surrogate_function=case["surrogate"],
            return_final_state=case["final"],
            **kwargs,
        )
    check_both(res, "triton", x, min_activity=False)


@SETTINGS
@given(case=common(), data=st.data())
def test_leaky_triton_matches_reference(case, data):
    C = case["shape"][2]
    kinds = [data.draw(COEFFICIENT_KINDS, label=n) for n in ("decay kind", "gain kind", "bias kind")]
    values = (
        data.draw(st.floats(0.0, 1.0), label="decay"),
        data.draw(st.floats(0.1, 2.0), label="gain"),
        data.draw(st.floats(-0.2, 0.2), label="bias"),
    )
    strict = data.draw(st.booleans(), label="strict")
    v_threshold = data.draw(st.floats(0.2, 1.5), label="v_threshold")
    torch.manual_seed(case["seed"] + 1)
    decay, gain, bias = (
        make_coefficient(k, v, C, 0.05, torch.float32, DEVICE) for k, v in zip(kinds, values, strict=True)
    )
    _run(
        F.multistep_leaky,
        case,
        decay=decay,
        input_gain=gain,
        bias=bias,
        v_threshold=v_threshold,
        strict_threshold=strict,
    )


@SETTINGS
@given(case=common(), data=st.data())
def test_lif_triton_matches_reference(case, data):
    C = case["shape"][2]
    tau_kind = data.draw(st.sampled_from(["float", "0d", "channel"]), label="tau kind")
    tau_value = data.draw(st.floats(1.2, 8.0), label="tau")
    torch.manual_seed(case["seed"] + 1)
    if tau_kind == "channel":
        tau = (tau_value + torch.rand(C)).to(DEVICE).requires_grad_()
    else:
        tau = make_coefficient(tau_kind, tau_value, C, device=DEVICE)
    _run(F.multistep_lif, case, tau=tau, decay_input=data.draw(st.booleans(), label="decay_input"))
