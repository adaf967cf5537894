"""The gated neuron (an attention's gate applied inside the neuron's time loop) against the unfused paths.

Ground truths:
- the op ``gated_leaky``: the eager neuron reference driven by ``(pre(x) * scale * spatial)`` computed in
  fp32 and stored in x's dtype, which is what the unfused attention hands to the neuron. Both sides then
  charge the same values in the same op order, so the spikes must agree exactly in every dtype; the
  gradients within the neuron tests' tolerances (fp32), or, in fp16 / bf16, within the rounding of dL/dy
  that the reference stores in x's dtype and the kernel keeps in fp32 (see GATE_SUM_RTOL);
- the modules (``nn.fused``): ``neuron(attention(x))`` on the Triton backends (each tested against its own
  eager reference elsewhere): the same gate values reach the same charge, so the spikes agree exactly, and
  all gradients (x, every attention weight) within fp32 noise.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from snnkernels import surrogate as sg
from snnkernels.models import SeqToANN
from snnkernels.nn import CLA, TCJA, TLA, LIFNode, MASNNLIFNode, MultiDimensionalAttention, ParametricLIFNode
from snnkernels.nn.fused import AttentionNeuron, attention_neuron, fusion_blocker, neuron_settings, neuron_tcja_pool
from snnkernels.ops.gated_leaky_triton import gated_leaky
from snnkernels.reference.leaky import multistep_leaky_reference

from attention_checks import OUT_ATOL, OUT_RTOL, SUM_RTOL, leaves
from conftest import DEVICE, pick
from utils import GRAD_TOL, assert_close_verbose, assert_equal_verbose

pytestmark = pytest.mark.triton

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# dL/dscale and dL/dspatial are sums of dL/dy * x terms; the reference rounds each dL/dy to x's dtype (one
# ulp: 2^-11 fp16, 2^-8 bf16, doubled for the interpreter's bf16 truncation), the kernel does not. Relative
# to the largest entry, as every reduced gradient in the suite.
GATE_SUM_RTOL = {torch.float32: SUM_RTOL, torch.float16: 2.0**-9, torch.bfloat16: 2.0**-6}
# (decay, gain, bias, v_threshold, v_reset or None for soft reset, v_init_value)
NEURONS = {
    "lif-hard": (0.5, 0.5, 0.0, 1.0, 0.0, 0.0),
    "soft-bias": (0.8, 1.0, 0.05, 0.6, None, 0.0),
    "ma-snn": (0.3, 1.0, 0.0, 0.3, 0.3, 0.0),
    "offset-start": (0.6, 0.9, 0.0, 1.0, -0.2, -0.2),
}


def settings(name: str, surrogate: sg.Surrogate, strict: bool = False, detach: bool = False) -> tuple:
    decay, gain, bias, v_th, v_reset, v_init = NEURONS[name]
    return (
        decay,
        gain,
        bias,
        v_th,
        0.0 if v_reset is None else v_reset,
        v_init,
        v_reset is not None,
        strict,
        detach,
        surrogate.id,
        surrogate.param,
    )


def neuron_reference(x: torch.Tensor, neuron: tuple, surrogate: sg.Surrogate) -> torch.Tensor:
    """Spikes of the eager leaky neuron on ``x`` with the kernels' settings tuple ``neuron`` (``settings``)."""
    decay, gain, bias, v_th, v_reset, v_init, hard, strict, detach, _, _ = neuron
    return multistep_leaky_reference(
        x,
        decay=decay,
        input_gain=gain,
        bias=bias,
        v_threshold=v_th,
        v_reset=v_reset if hard else None,
        strict_threshold=strict,
        detach_reset=detach,
        surrogate_function=surrogate,
        v_init_value=v_init,
    )


def reference(x, scale, spatial, relu, neuron, surrogate):
    """Spikes of the eager neuron on the attention output as the unfused path stores it."""
    T, B, C, H, W = x.shape
    y = (x.float().clamp_min(0) if relu else x.float()) * scale.float()[..., None, None]
    if spatial is not None:
        y = y * spatial.float().view(1, B, 1, H, W)
    return neuron_reference(y.to(x.dtype), neuron, surrogate)


def make_inputs(shape, dtype, has_map, spread=2.0):
    T, B, C, H, W = shape
    x = (torch.randn(shape, device=DEVICE) * spread).to(dtype)
    scale = torch.rand(T, B, C, device=DEVICE) * 1.5 + 0.1
    spatial = torch.rand(B, H * W, device=DEVICE) + 0.2 if has_map else None
    return x, scale, spatial


def check_op(shape, dtype, relu, has_map, neuron, surrogate, chunk):
    x, scale, spatial = make_inputs(shape, dtype, has_map)
    inputs = leaves(*[t for t in (x, scale, spatial) if t is not None])
    ref_inputs = leaves(*inputs)

    def split(ts):
        return ts[0], ts[1], (ts[2] if has_map else None)

    out = gated_leaky(*split(inputs), relu=relu, neuron=neuron, chunk=chunk)
    want = reference(*split(ref_inputs), relu, neuron, surrogate)
    assert out.dtype == dtype and out.shape == x.shape
    assert_equal_verbose(out, want, "spikes")
    assert 0.02 < want.float().mean().item() < 0.9, "the inputs should make the neurons fire sometimes"
    grad_out = torch.randn(shape, device=DEVICE).to(dtype)
    grads = torch.autograd.grad(out, inputs, grad_out)
    grads_ref = torch.autograd.grad(want, ref_inputs, grad_out)
    atol, rtol = GRAD_TOL[dtype]
    assert_close_verbose(grads[0], grads_ref[0], atol, rtol, "grad x")
    # without a spatial map there is no "spatial" gradient: the names outnumber the gradients
    for name, g, g_ref in zip(("scale", "spatial"), grads[1:], grads_ref[1:], strict=False):
        top = g_ref.abs().max().item()
        assert top > 0, f"grad {name} is all zero: the test cannot fail"
        assert_close_verbose(g, g_ref, GATE_SUM_RTOL[dtype] * top, GATE_SUM_RTOL[dtype], f"grad {name}")


@pytest.mark.parametrize("surrogate", [sg.ATan(), sg.Sigmoid(), sg.Triangle(), sg.Rectangle()], ids=repr)
@pytest.mark.parametrize("relu, has_map", [(False, False), (True, True), (True, False)], ids=["tcja", "ma", "ma-no-sa"])
@pytest.mark.parametrize("neuron", list(NEURONS))
def test_op_matches_reference(neuron, relu, has_map, surrogate):
    """Every gate form x surrogate x neuron setting; T = 7 with chunk 3 (a partial last chunk), H * W = 35."""
    detach = surrogate.id % 2 == 1
    strict = neuron == "soft-bias"
    check_op((7, 2, 3, 5, 7), torch.float32, relu, has_map, settings(neuron, surrogate, strict, detach), surrogate, 3)


@pytest.mark.parametrize("dtype", DTYPES[1:])
@pytest.mark.parametrize("relu, has_map", [(False, False), (True, True)], ids=["tcja", "ma"])
def test_op_half_precision(dtype, relu, has_map):
    check_op((5, 2, 4, 3, 6), dtype, relu, has_map, settings("lif-hard", sg.Sigmoid()), sg.Sigmoid(), 2)


@pytest.mark.parametrize(
    "shape", pick([(3, 3, 5, 1, 1), (9, 1, 2, 40, 30), (2, 4, 33, 2, 3)], [(9, 1, 2, 40, 30)]), ids=str
)
def test_op_shapes(shape):
    """1 x 1 planes (many rows per tile), planes longer than one interpreted tile (1200 > 1024 wide x 8
    rows), many channels; default chunk."""
    check_op(shape, torch.float32, True, True, settings("ma-snn", sg.Rectangle(0.5)), sg.Rectangle(0.5), 8)


def test_op_no_gradient_keeps_nothing():
    x, scale, spatial = make_inputs((4, 2, 3, 4, 4), torch.float32, True)
    with torch.no_grad():
        out = gated_leaky(x, scale, spatial, relu=True, neuron=settings("lif-hard", sg.ATan()))
    want = reference(x, scale, spatial, True, settings("lif-hard", sg.ATan()), sg.ATan())
    assert_equal_verbose(out, want, "spikes")


# --- modules -------------------------------------------------------------------------------------------
T, B, C, H, W = 6, 2, 8, 5, 6


def tcja(cls=TCJA):
    return cls(3, 2, T, C, backend="triton")


def ma(dims="TCS"):
    return MultiDimensionalAttention(T, C, reduction_t=2, reduction_c=2, dims=dims, backend="triton")


ATTENTIONS = {
    "tcja": tcja,
    "tla": lambda: tcja(TLA),
    "cla": lambda: tcja(CLA),
    **{f"ma-{d}": (lambda d=d: ma(d)) for d in pick(["T", "C", "S", "TC", "TS", "CS", "TCS"], ["CS", "TCS"])},
}
NEURON_MODULES = {
    # thresholds below the default so that the gated inputs (every gate < 1) make them fire
    "lif": lambda: LIFNode(
        tau=2.0, v_threshold=0.5, detach_reset=True, step_mode="m", stateful=False, backend="triton"
    ),
    "lif-soft": lambda: LIFNode(
        tau=1.5, v_reset=None, surrogate_function=sg.ATan(), step_mode="m", stateful=False, backend="triton"
    ),
    "ma-snn": lambda: MASNNLIFNode(backend="triton"),
}


def randomize(module: torch.nn.Module) -> None:
    """Weights large enough that every gate varies (the official inits can leave them near 0.5); the SA conv
    sees maxima of ~5 over (t, c), so it gets smaller weights, lest its sigmoid shut every pixel."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.normal_(0.0, 0.1 if name.startswith("sa.") else 0.7)


def check_gradients(out, want, x_fused, x_ref, params):
    """dL/dx (fp32 tolerance) and every parameter's gradient (relative to its largest entry) of the fused
    and the plain path, for one random dL/dout."""
    grad_out = torch.randn_like(want)
    grads = torch.autograd.grad(out, [x_fused] + params, grad_out)
    grads_ref = torch.autograd.grad(want, [x_ref] + params, grad_out)
    atol, rtol = GRAD_TOL[torch.float32]
    assert_close_verbose(grads[0], grads_ref[0], atol, rtol, "grad x")
    for i, (g, g_ref) in enumerate(zip(grads[1:], grads_ref[1:], strict=True)):
        top = g_ref.abs().max().item()
        assert top > 0, f"grad of parameter {i} is zero: the test cannot fail"
        assert_close_verbose(g, g_ref, SUM_RTOL * top, SUM_RTOL, f"grad of parameter {i}")


@pytest.mark.parametrize("neuron", list(NEURON_MODULES))
@pytest.mark.parametrize("attention", list(ATTENTIONS))
def test_module_matches_unfused(attention, neuron):
    att, neu = ATTENTIONS[attention](), NEURON_MODULES[neuron]()
    randomize(att)
    x = torch.randn(T, B, C, H, W, device=DEVICE) * 4  # gates < 1 and LIF(tau=2) needs y >= 2 to fire
    assert fusion_blocker(att, neu, x) is None
    x_fused, x_ref = leaves(x, x)
    out = attention_neuron(att, neu, x_fused)
    want = neu(att(x_ref))
    assert_equal_verbose(out, want, "spikes")
    assert 0.01 < want.mean().item() < 0.95, "the inputs should make the neurons fire sometimes"
    check_gradients(out, want, x_fused, x_ref, list(att.parameters()))


def test_module_half_precision():
    """fp16: the gated input is rounded to fp16 exactly as the unfused attention stores it. (bf16 is covered by
    the op tests against the reference: Triton 3.6's interpreter truncates the unfused path's bf16 stores,
    while the gated kernel rounds to nearest in bits, as the GPU does both.)"""
    att, neu = ma("TCS"), NEURON_MODULES["ma-snn"]()
    randomize(att)
    att.half()  # an fp32 attention refuses fp16 input outside autocast (docs/tcja_dta.md "Empty input and dtypes")
    x = (torch.randn(T, B, C, H, W, device=DEVICE) * 2).to(torch.float16)
    assert fusion_blocker(att, neu, x) is None
    assert_equal_verbose(attention_neuron(att, neu, x), neu(att(x)), "spikes")


def test_container_keys_and_forward():
    pair = AttentionNeuron(tcja(), NEURON_MODULES["lif"]())
    plain = torch.nn.Sequential(OrderedDict(attention=pair.attention, neuron=pair.neuron))
    assert list(pair.state_dict()) == list(plain.state_dict())
    x = torch.randn(T, B, C, H, W, device=DEVICE)
    assert pair.fused_for(x)
    assert_equal_verbose(pair(x), plain(x), "spikes")


@pytest.mark.parametrize(
    "case",
    ["plif", "stateful", "single-step", "layout-bt", "torch-attention", "torch-neuron", "not-attention", "4d-input"],
)
def test_unfusable_pairs_run_unfused(case):
    """Each obstacle is named by fusion_blocker, and the pair still computes neuron(attention(x))."""
    att, neu = tcja(), NEURON_MODULES["lif"]()
    x = torch.randn(T, B, C, H, W, device=DEVICE)
    expected_reason = {
        "plif": "learnable",
        "stateful": "stateless",
        "single-step": "stateless",
        "layout-bt": "layout",
        "torch-attention": "attention runs on 'torch'",
        "torch-neuron": "neuron runs on 'torch'",
        "not-attention": "no gated-neuron path",
        "4d-input": "[T, B, C, H, W]",
    }[case]
    if case == "plif":
        neu = ParametricLIFNode(step_mode="m", stateful=False, backend="triton")
    elif case == "stateful":
        neu = LIFNode(step_mode="m", backend="triton", stateful=True)
    elif case == "single-step":
        neu = LIFNode(step_mode="s", backend="triton")
    elif case == "layout-bt":
        att = TCJA(3, 2, T, C, layout="BT", backend="triton")
    elif case == "torch-attention":
        att = TCJA(3, 2, T, C, backend="torch")
    elif case == "torch-neuron":
        neu = LIFNode(step_mode="m", stateful=False, backend="torch")
    elif case == "not-attention":
        att = torch.nn.ReLU()
    else:
        x = x[0]
    reason = fusion_blocker(att, neu, x)
    assert reason is not None and expected_reason in reason, reason
    if case in ("single-step", "4d-input", "layout-bt"):
        return  # the composition itself is not a multi-step [T, B, C, H, W] pipeline
    got = attention_neuron(att, neu, x)
    if case == "stateful":
        neu.reset()  # both runs from rest
    torch.testing.assert_close(got, neu(att(x)), rtol=0, atol=0)
    if isinstance(att, TCJA):  # the neuron -> TCJA -> pool entry point falls back the same way
        pool = SeqToANN(torch.nn.MaxPool2d(2))
        neu.reset()  # a stateful neuron starts both runs from rest
        got = neuron_tcja_pool(neu, att, pool, x)
        neu.reset()
        torch.testing.assert_close(got, pool(att(neu(x))), rtol=0, atol=0)


def test_neuron_settings_of_presets():
    neu = MASNNLIFNode(surrogate_function=sg.Rectangle(1.0))
    assert neuron_settings(neu) == (0.3, 1.0, 0.0, 0.3, 0.3, 0.0, True, False, False, sg.Rectangle.id, 1.0)
    with pytest.raises(ValueError, match="leaky neurons"):
        neuron_settings(torch.nn.ReLU())


@pytest.mark.parametrize("attention", ["tcja", "ma-TCS"])
def test_compiles_without_graph_breaks(attention):
    att, neu = ATTENTIONS.get(attention, lambda: ma("TCS"))(), NEURON_MODULES["lif"]()
    x = torch.randn(T, B, C, H, W, device=DEVICE, requires_grad=True)

    def fn(x):
        return attention_neuron(att, neu, x).sum(0)

    explanation = torch._dynamo.explain(fn)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    torch._dynamo.reset()
    backend = "inductor" if DEVICE == "cuda" else "aot_eager"
    compiled = torch.compile(fn, backend=backend, fullgraph=True)
    out, want = compiled(x), fn(x)
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    g, g_want = torch.autograd.grad(out.sum(), x), torch.autograd.grad(want.sum(), x)
    torch.testing.assert_close(g, g_want, rtol=1e-6, atol=1e-6)


def test_conv_att_lif_layer_applies_the_gates_in_its_neuron():
    """MA-SNN's ConvAttLIF on Triton runs the gated neuron (reported by resolved_backends) and gives the
    spikes of its attention followed by its neuron."""
    from snnkernels.models import ConvAttLIF, resolved_backends

    layer = ConvAttLIF(2, C, T, "TCS", t_ratio=2, c_ratio=2, neuron_backend="triton", attention_backend="triton")
    randomize(layer.attention)
    x = torch.randn(T, B, 2, H, W, device=DEVICE) * 3
    found = resolved_backends(layer, x)
    assert found["attention"].startswith("triton (gates") and found["network.ConvIF"].startswith("triton (gated")
    layer.eval()
    y = layer.BNLayer(layer.conv2d(x.flatten(0, 1))).unflatten(0, x.shape[:2])
    want = layer.network(layer.attention(y))
    assert want.mean().item() > 0.01
    assert_equal_verbose(layer(x), want, "spikes")


# --- the gate after the following pool (models.GatedPoolSequential) --------------------------------------
@pytest.mark.parametrize("neuron", ["lif", "plif"])
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_gate_after_pool_matches_the_plain_sequence(pool, neuron):
    """LIF -> TCJA -> pool as in the TCJA-SNN nets: with the gate applied after the pool (Triton) the output
    is the plain sequence's, exactly for a max pool (a positive factor keeps the maximum and the rounding
    of its product) and to the mean's rounding for an average pool; every gradient within fp32 noise.
    With a LIF the gated kernel runs, TCJA's mean comes from the neuron's spike counts (no pass over the
    spikes); a PLIF (learnable) runs on its own kernel and TCJA's mean takes its sweep."""
    from snnkernels.models import GatedPoolSequential, SeqToANN, resolved_backends

    layer = torch.nn.MaxPool2d(2, 2) if pool == "max" else torch.nn.AvgPool2d(2, 2)
    first = (
        NEURON_MODULES["lif"]()
        if neuron == "lif"
        else ParametricLIFNode(step_mode="m", stateful=False, backend="triton")
    )
    seq = GatedPoolSequential(first, tcja(), SeqToANN(layer))
    randomize(seq[1])
    x = torch.randn(T, B, C, 6, 8, device=DEVICE) * 3
    found = resolved_backends(seq, x)
    if neuron == "lif":
        assert found["0"].startswith("triton (counts") and found["1"].startswith("triton (mean from the neuron")
    else:
        assert found["1"] == "triton (gate applied after the pool)"
    x_fused, x_ref = leaves(x, x)
    out = seq(x_fused)
    seq.gate_after_pool = False
    want = seq(x_ref)
    assert out.shape == (T, B, C, 3, 4)
    if pool == "max":
        assert_equal_verbose(out, want, "output")
    else:
        assert_close_verbose(out, want, OUT_ATOL[torch.float32], OUT_RTOL[torch.float32], "output")
    check_gradients(out, want, x_fused, x_ref, list(seq.parameters()))


def test_gate_after_pool_needs_triton_and_the_tb_layout():
    from snnkernels.models import GatedPoolSequential, SeqToANN

    x = torch.randn(T, B, C, 4, 4, device=DEVICE)
    for att in (TCJA(3, 2, T, C, backend="torch"), TCJA(3, 2, T, C, layout="BT", backend="triton")):
        seq = GatedPoolSequential(att, SeqToANN(torch.nn.MaxPool2d(2)))
        assert not seq._gate_then_pool(seq[0], seq[1], x)


@pytest.mark.parametrize("attention", ["tcja", "ma-TCS"])
def test_firing_statistics_of_a_fused_pair(attention):
    """firing.record sees the gated neuron: the kernel counts its spikes per step (exact), and the neuron's
    hooks run although its forward does not."""
    from snnkernels import firing

    att, neu = ATTENTIONS.get(attention, lambda: ma("TCS"))(), NEURON_MODULES["lif"]()
    randomize(att)
    pair = AttentionNeuron(att, neu)
    x = torch.randn(T, B, C, H, W, device=DEVICE) * 4
    seen = []
    neu.register_forward_hook(lambda m, args, out: seen.append(out))
    with firing.record(pair) as stats:
        out = pair(x)
    assert pair.fused_for(x) and len(seen) == 1 and seen[0] is out
    assert stats.unrecorded == []
    assert stats.spike_counts()["neuron"] == out.sum(dim=(1, 2, 3, 4)).long().tolist()
    assert neu.record_spike_counts is False  # restored


def test_hooks_that_replace_values_are_refused():
    att, neu = tcja(), NEURON_MODULES["lif"]()
    x = torch.randn(T, B, C, H, W, device=DEVICE)
    handle = neu.register_forward_hook(lambda m, args, out: out * 2)
    with pytest.raises(RuntimeError, match="forward hook of LIFNode returned a value"):
        attention_neuron(att, neu, x)
    handle.remove()
    att.register_forward_hook(lambda m, args, out: None)
    assert "forward hooks" in fusion_blocker(att, neu, x)


@pytest.mark.parametrize("shape", [(7, 2, 3, 5, 7), (3, 1, 2, 70, 70)], ids=["one-column-tile", "two-column-tiles"])
def test_op_counts_spikes_exactly(shape):
    """Spikes per (t, b, c); 70 x 70 planes span two interpreted column tiles, whose partials add up."""
    x, scale, spatial = make_inputs(shape, torch.float16, True)
    neuron = settings("lif-hard", sg.ATan())
    spikes, counts = gated_leaky(x, scale, spatial, relu=True, neuron=neuron, chunk=3, count_spikes=True)
    assert counts.dtype == torch.int32 and counts.tolist() == spikes.sum(dim=(3, 4)).int().tolist()
    assert torch.equal(spikes, gated_leaky(x, scale, spatial, relu=True, neuron=neuron, chunk=3))


def test_firing_statistics_of_a_neuron_feeding_tcja_and_pool():
    from snnkernels import firing
    from snnkernels.models import GatedPoolSequential, SeqToANN

    seq = GatedPoolSequential(NEURON_MODULES["lif"](), tcja(), SeqToANN(torch.nn.MaxPool2d(2)))
    x = torch.randn(T, B, C, 4, 6, device=DEVICE) * 3
    with firing.record(seq) as stats:
        seq(x)
    want = NEURON_MODULES["lif"]()(x).sum(dim=(1, 2, 3, 4)).long().tolist()
    assert stats.spike_counts()["0"] == want and sum(want) > 0
