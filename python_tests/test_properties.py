"""Property-based: hypothesis draws shapes, dtypes, options and coefficients; the fused backend must equal
the eager reference (spikes and final state exactly, gradients to the dtype's rounding)."""
from __future__ import annotations

import pytest
import torch
from conftest import DEVICE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from utils import assert_close_verbose, assert_grads_close

from snnkernels import functional as F
from snnkernels import surrogate as sg

pytestmark = pytest.mark.triton

SURROGATES = st.sampled_from([sg.ATan(2.0), sg.ATan(5.0), sg.Sigmoid(4.0), sg.Triangle(1.0), sg.Triangle(0.3),
                              sg.Rectangle(1.0), sg.Rectangle(0.5)])


@st.composite
def cases(draw):
    T = draw(st.integers(1, 12))
    B = draw(st.integers(1, 3))
    C = draw(st.integers(1, 5))
    spatial = draw(st.lists(st.integers(1, 6), min_size=0, max_size=2))
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
    per_channel = draw(st.booleans())
    return dict(
        shape=(T, B, C, *spatial), dtype=dtype, per_channel=per_channel,
        decay=draw(st.floats(0.0, 1.0)), gain=draw(st.floats(0.1, 2.0)), bias=draw(st.floats(-0.2, 0.2)),
        v_threshold=draw(st.floats(0.2, 1.5)), v_reset=draw(st.sampled_from([0.0, -0.3, 0.2, None])),
        strict=draw(st.booleans()), detach=draw(st.booleans()), surrogate=draw(SURROGATES),
        with_v_init=draw(st.booleans()), final=draw(st.booleans()), scale=draw(st.floats(0.1, 3.0)),
    )


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_triton_matches_reference(case):
    torch.manual_seed(0)
    T, B, C = case["shape"][:3]
    x = (torch.randn(case["shape"], device=DEVICE) * case["scale"]).to(case["dtype"]).requires_grad_()
    leaves = [x]
    v0 = None
    if case["with_v_init"]:
        v0 = torch.randn(case["shape"][1:], device=DEVICE).requires_grad_()
        leaves.append(v0)
    decay, gain = case["decay"], case["gain"]
    if case["per_channel"]:
        decay = (decay + 0.05 * torch.randn(C, device=DEVICE)).requires_grad_()
        gain = (gain + 0.05 * torch.randn(C, device=DEVICE)).requires_grad_()
        leaves += [decay, gain]
    kwargs = dict(decay=decay, input_gain=gain, bias=case["bias"], v_threshold=case["v_threshold"],
                  v_reset=case["v_reset"], strict_threshold=case["strict"], detach_reset=case["detach"],
                  surrogate_function=case["surrogate"], return_final_state=case["final"])
    results = []
    for backend in ("triton", "torch"):
        out = F.multistep_leaky(x, v0, backend=backend, **kwargs)
        outs = out if isinstance(out, tuple) else (out,)
        gen = torch.Generator(device=DEVICE).manual_seed(1)
        gouts = [torch.randn(o.shape, generator=gen, device=DEVICE).to(o.dtype) for o in outs]
        results.append((outs, torch.autograd.grad(outs, leaves, gouts, allow_unused=True)))
    (outs, grads), (outs_ref, grads_ref) = results
    for o, r in zip(outs, outs_ref):
        assert_close_verbose(o, r, 0, 0, "forward")
    assert_grads_close(grads, grads_ref, case["dtype"], ["x", "v0/decay", "decay/gain", "gain"])
