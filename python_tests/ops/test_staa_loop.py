"""STAA-LIF's time loop on Triton, on the step kernels (``ops.staa_step_triton``) and as one persistent kernel per
direction (``ops.staa_loop_triton``), against the eager loop.

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
import triton

from snnkernels import surrogate as sg
from snnkernels.ops import staa_loop_triton
from snnkernels.ops.staa_loop_triton import staa_loop_persistent
from snnkernels.ops.staa_step_triton import staa_loop_fused, staa_step
from snnkernels.reference.staa import SAParams, STAAParams, staa_coefficients, staa_lif_reference

from attention_checks import SUM_RTOL, leaves
from conftest import DEVICE, pick
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
    sa = (
        None
        if case.get("no_sa")
        else SAParams(torch.randn(HIDDEN, C, device=DEVICE) * 0.5, torch.randn(2 * C, HIDDEN, device=DEVICE) * 0.5)
    )
    feat = torch.randn(T, B, C, H, W, device=DEVICE) * 1.5 + 0.3
    x = torch.randn(T, B, C, H, W, device=DEVICE) * 1.5 + 0.3
    mask = {
        "step": torch.tensor([False, True, False, False, True], device=DEVICE),
        "sample": torch.rand(T, B, device=DEVICE) < 0.4,
    }.get(case.get("mask"))
    return x, feat, m, n, sa, mask


def options(case: dict) -> dict:
    return dict(
        alpha=2.0,
        sa_gate=case.get("sa_gate", "sigmoid"),
        coefficient_map=case.get("coefficient_map", "raw"),
        tsrd_scope=case.get("tsrd_scope", "step_attention"),
        v_threshold=1.0,
        v_reset=case.get("v_reset", 0.0),
        detach_reset=case.get("detach_reset", False),
        surrogate_function=case.get("surrogate_function", sg.Rectangle(1.0)),
    )


LOOP_KERNELS = ["steps", "persistent"]


def fused(x, feat, m, n, sa, mask, opts, loop_kernel="steps"):
    """The loop as STAALIFNode(backend="triton", loop_kernel=...) runs it, from given features."""
    Tn, Bn = x.shape[:2]
    if mask is not None:
        mask = mask.reshape(Tn, -1).expand(Tn, Bn)
        if opts["tsrd_scope"] == "all":
            feat = torch.where(mask[:, :, None, None, None], x, feat)
    a, b = staa_coefficients(m, n, opts["coefficient_map"])
    loop = dict(
        alpha=opts["alpha"],
        sa_gate=opts["sa_gate"],
        v_threshold=opts["v_threshold"],
        v_reset=opts["v_reset"],
        detach_reset=opts["detach_reset"],
        surrogate=opts["surrogate_function"],
        spike_dtype=x.dtype,
    )
    if loop_kernel == "persistent":
        return staa_loop_persistent(feat, a, b, sa, mask, **loop)
    spikes, _ = staa_loop_fused(feat, a, b, sa, mask, v_init=None, **loop)
    return spikes


@pytest.mark.parametrize("loop_kernel", LOOP_KERNELS)
@pytest.mark.parametrize("name", pick(list(CASES), ["default", "tsrd-sample-all", "tanh-scalar"]))
def test_loop_matches_reference(name, loop_kernel):
    case = CASES[name]
    x, feat, m, n, sa, mask = make(case)
    opts = options(case)
    tensors = [x, feat, m, n] + ([] if sa is None else list(sa))
    ours_in, ref_in = leaves(*tensors), leaves(*[t.double() for t in tensors])

    def sa_of(ts):
        return None if sa is None else SAParams(ts[4], ts[5])

    out = fused(ours_in[0], ours_in[1], ours_in[2], ours_in[3], sa_of(ours_in), mask, opts, loop_kernel)
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
        # without step attention there are no w1, w2 gradients: the names outnumber the gradients
        for nm, g, g_ref in zip(("M", "N", "w1", "w2"), grads[2:], grads_ref[2:], strict=False):
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
    s, h_next, h_sum = staa_step(
        h,
        y,
        a,
        b,
        ga,
        gb,
        v_threshold=1.0,
        v_reset=0.1,
        detach_reset=False,
        surrogate=sg.Rectangle(1.0),
        spike_dtype=torch.bfloat16,
    )
    u = ga[..., None, None] * (a[:, None, None] * h) + gb[..., None, None] * (b[:, None, None] * y)
    spike = (u - 1.0 >= 0).float()
    assert s.dtype == torch.bfloat16 and torch.equal(s.float(), spike)
    assert torch.equal(h_next, u * (1.0 - spike) + 0.1 * spike)
    torch.testing.assert_close(h_sum, h_next.sum(dim=(2, 3)), rtol=1e-6, atol=1e-5)


def test_module_on_triton_runs_the_step_kernels(monkeypatch):
    from snnkernels.nn import STAALIFNode
    from snnkernels.ops import staa_step_triton

    calls = []
    real = staa_step_triton.staa_step_fwd
    monkeypatch.setattr(staa_step_triton, "staa_step_fwd", lambda *a: calls.append(1) or real(*a))
    node = STAALIFNode(T, C, H, W, m_init=0.5, n_init=1.0, backend="triton").to(DEVICE).eval()
    node(torch.randn(T, B, C, H, W, device=DEVICE))
    assert len(calls) == T
    per_pixel = STAALIFNode(T, C, H, W, coefficient_shape="CHW", backend="triton").to(DEVICE).eval()
    calls.clear()
    per_pixel(torch.randn(T, B, C, H, W, device=DEVICE))
    assert calls == []  # per-pixel M, N: the eager loop


def small_blocks(C, S, hid):
    """Tiles far smaller than the test's sizes, so that every loop of the persistent kernels (row blocks,
    column blocks, the MLP's channel chunks) runs several times, with ragged ends."""
    return dict(BLOCK_R=2, BLOCK_S=8, BLOCK_K=2, BLOCK_HID=triton.next_power_of_2(max(hid, 1)), num_warps=1)


@pytest.mark.parametrize("name", ["default", "softmax", "tsrd-sample-all", "no-step-attention"])
def test_persistent_loop_with_small_tiles_equals_the_step_kernels(name, monkeypatch):
    """C = 8 rows in blocks of 2, 30 pixels in blocks of 8, the MLP in chunks of 2 channels (hidden 3): the
    persistent loop against the step kernels (which the test above checks against float64): the same
    spikes (the sums differ by rounding only) and gradients to fp32 noise."""
    monkeypatch.setattr(staa_loop_triton, "_blocks", small_blocks)
    case = CASES[name]
    x, feat, m, n, sa, mask = make(case)
    if sa is not None:  # an odd hidden width: a masked hidden unit
        sa = SAParams(torch.randn(3, C, device=DEVICE) * 0.5, torch.randn(2 * C, 3, device=DEVICE) * 0.5)
    opts = options(case)
    tensors = [x, feat, m, n] + ([] if sa is None else list(sa))
    steps_in, ours_in = leaves(*tensors), leaves(*tensors)

    def run(ts, loop_kernel):
        return fused(
            ts[0], ts[1], ts[2], ts[3], None if sa is None else SAParams(ts[4], ts[5]), mask, opts, loop_kernel
        )

    want, out = run(steps_in, "steps"), run(ours_in, "persistent")
    assert 0.02 < want.mean().item() < 0.8
    assert (out != want).double().mean().item() <= MAX_FLIP_RATE
    grad_out = torch.randn_like(want)
    grads = torch.autograd.grad(out, ours_in, grad_out, allow_unused=True)
    grads_ref = torch.autograd.grad(want, steps_in, grad_out, allow_unused=True)
    if torch.equal(out, want):
        for i, (g, g_ref) in enumerate(zip(grads, grads_ref, strict=True)):
            if g_ref is None:
                assert g is None or g.abs().max() == 0
                continue
            top = g_ref.abs().max().item()
            assert top > 0 or i == 0, f"grad {i} is zero: the test cannot fail"
            assert_close_verbose(g, g_ref, SUM_RTOL * top, SUM_RTOL, f"grad {i}")


def test_persistent_loop_without_gradients_keeps_two_states():
    """Inference: the states rotate through two slots; the spikes equal the training forward's."""
    x, feat, m, n, sa, mask = make(CASES["default"])
    a, b = staa_coefficients(m, n, "raw")
    opts = dict(
        alpha=2.0,
        sa_gate="sigmoid",
        v_threshold=1.0,
        v_reset=0.0,
        detach_reset=False,
        surrogate=sg.Rectangle(1.0),
        spike_dtype=torch.float32,
    )
    with torch.no_grad():
        out = staa_loop_persistent(feat, a, b, sa, None, **opts)
        states = staa_loop_triton.staa_loop_fwd(feat, a, b, sa.w1, sa.w2, None, 2.0, 0, 1.0, 0.0, torch.float32, False)[
            1
        ]
    assert states.shape[0] == 2
    train = staa_loop_persistent(feat.requires_grad_(), a, b, sa, None, **opts)
    assert torch.equal(out, train.detach())


def test_module_loop_kernel_option():
    from snnkernels.nn import STAALIFNode

    torch.manual_seed(0)
    steps = STAALIFNode(T, C, H, W, m_init=0.5, n_init=1.0, backend="triton").to(DEVICE).eval()
    persistent = STAALIFNode(T, C, H, W, m_init=0.5, n_init=1.0, backend="triton", loop_kernel="persistent")
    persistent.load_state_dict(steps.state_dict())
    persistent = persistent.to(DEVICE).eval()
    x = torch.randn(T, B, C, H, W, device=DEVICE) * 2
    want, out = steps(x), persistent(x)
    assert want.mean().item() > 0.02
    assert (out != want).double().mean().item() <= MAX_FLIP_RATE
    assert "loop_kernel='persistent'" in repr(persistent)
    with pytest.raises(ValueError, match="loop_kernel"):
        STAALIFNode(T, C, H, W, loop_kernel="fast")


def test_persistent_loop_compiles_without_graph_breaks():
    """The persistent loop's ops have fake implementations: the layer traces whole, and the compiled
    (aot_eager) forward and backward equal eager."""
    from snnkernels.nn import STAALIFNode

    torch._dynamo.reset()
    torch.manual_seed(0)
    node = STAALIFNode(T, C, H, W, m_init=0.5, n_init=1.0, backend="triton", loop_kernel="persistent").to(DEVICE)
    node.eval()
    x = torch.randn(T, B, C, H, W, device=DEVICE) * 2
    explanation = torch._dynamo.explain(node)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(node, backend="aot_eager", fullgraph=True)
    x_eager, x_compiled = leaves(x, x)
    out, want = compiled(x_compiled), node(x_eager)
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    grad_out = torch.randn_like(want)
    (g,), (g_ref,) = torch.autograd.grad(out, [x_compiled], grad_out), torch.autograd.grad(want, [x_eager], grad_out)
    torch.testing.assert_close(g, g_ref, rtol=0, atol=0)
