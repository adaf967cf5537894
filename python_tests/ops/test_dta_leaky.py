"""DTA on the spikes of the neuron that reads the same X, as one kernel (``ops.dta_leaky_triton``,
``nn.fused.neuron_dta``), against the unfused pair.

Ground truths:
- the op ``dta_leaky``: the eager neuron reference on X (in X's dtype, fp32 state: the charges the kernel
  forms, op for op, so the spikes must agree exactly, which the kernel's spike counts check) feeding the
  float64 ``dta_product_reference``: the output within the dtype's tolerance. Every gradient must be no
  worse than 3x the error that the same eager composition makes in the inputs' dtype (both against
  float64): DTA's sigmoid saturates and the 1 - sig of its derivative cancels in fp32, for the eager code
  as for the kernel, so the conditioning, not the kernel, sets the size of the error;
- the modules: ``dta(x, neuron(x))`` on the Triton backends (each tested against its own reference
  elsewhere): the spikes are the same, so the output and every gradient agree to fp32 noise.
"""

from __future__ import annotations

import pytest
import torch

from snnkernels import firing
from snnkernels import surrogate as sg
from snnkernels.models import DTA_SNN_18, resolved_backends
from snnkernels.nn import DTA, LIFNode, ParametricLIFNode, TETLIFNode
from snnkernels.nn.fused import dta_fusion_blocker, neuron_dta, observer_hook
from snnkernels.ops.dta_leaky_triton import dta_leaky
from snnkernels.reference.dta import dta_product_reference

from attention_checks import OUT_ATOL, OUT_RTOL, SUM_RTOL, leaves, make_x, no_worse_than_eager
from conftest import DEVICE, pick
from test_gated_leaky import NEURONS, neuron_reference, settings
from utils import assert_close_verbose, assert_equal_verbose

# DTA's sigmoid is 1 / (1 + exp(-p)): exp overflows to inf for very negative p, which gives the exact 0
pytestmark = [pytest.mark.triton, pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")]

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def make_inputs(shape, dtype, layout, residual, na_layout="TB"):
    T, B, C, H, W = shape
    x = make_x(shape, dtype, layout) * 1.5
    na = make_x(shape, dtype, na_layout)
    txa = [
        torch.randn(T, T, 3, device=DEVICE) / 3,
        torch.randn(C, C, 6, device=DEVICE) / 6,
        0.5 + torch.rand((), device=DEVICE),
        0.5 + torch.rand((), device=DEVICE),
    ]
    bias = [torch.randn(T * C, device=DEVICE)] if residual else []
    return [x, na, *[p.to(dtype) for p in txa + bias]]  # weights in x's dtype, as a model.half() has them


def composition(dtype, neuron, surrogate, residual):
    """The unfused pair as a function of the op's inputs: the eager neuron on X in ``dtype`` (fp32 state:
    the kernel's charges, so the same spikes even when the inputs come in float64), then the eager DTA
    product in the inputs' precision."""

    def run(x, na, conv_t_weight, conv_c_weight, scale_t, scale_c, bias=None):
        T, B, C = x.shape[:3]
        spikes = neuron_reference(x.to(dtype), neuron, surrogate).to(x.dtype)
        if residual:
            na = na + bias.to(x.dtype).view(T, 1, C, 1, 1) + x
        return dta_product_reference(x, na, spikes, conv_t_weight, conv_c_weight, scale_t, scale_c)

    return run


def check_op(shape, dtype, neuron, surrogate, chunk, layout="TB", residual=True, na_layout="TB"):
    """Spikes exactly (the kernel's counts), the output within the dtype's tolerance of the float64
    composition, and every gradient no worse than 3x the eager composition's own error in the same dtype
    (against float64): DTA's sigmoid saturates, and the 1 - sig of its derivative cancels in fp32 for the
    eager code as for the kernel, so an element-wise tolerance would measure the conditioning, not us."""
    inputs = leaves(*make_inputs(shape, dtype, layout, residual, na_layout))
    y, counts = dta_leaky(*inputs[:6], inputs[6] if residual else None, neuron=neuron, chunk=chunk, count_spikes=True)
    reference = composition(dtype, neuron, surrogate, residual)
    with torch.no_grad():
        spikes = neuron_reference(inputs[0], neuron, surrogate)
        want = reference(*[t.double() for t in inputs])
    assert_equal_verbose(counts, spikes.sum(dim=(3, 4), dtype=torch.int32), "spike counts")
    assert 0.05 < spikes.float().mean().item() < 0.9, "the inputs should make the neurons fire sometimes"
    assert y.dtype == dtype and y.shape == want.shape
    assert_close_verbose(y, want, OUT_ATOL[dtype], OUT_RTOL[dtype], "output")
    no_worse_than_eager(
        "dta_leaky",
        inputs,
        lambda *a: dta_leaky(*a[:6], a[6] if residual else None, neuron=neuron, chunk=chunk),
        reference,
        torch.randn(shape, device=DEVICE).to(dtype),
    )


@pytest.mark.parametrize("surrogate", [sg.ATan(), sg.Sigmoid(), sg.Triangle(), sg.Rectangle()], ids=repr)
@pytest.mark.parametrize("neuron", list(NEURONS))
def test_op_matches_reference(neuron, surrogate):
    """Every neuron setting x surrogate (detached reset for half of them); T = 7 with chunk 3 (a partial last
    chunk), H * W = 15."""
    detach = surrogate.id % 2 == 1
    strict = neuron == "soft-bias"
    check_op((7, 2, 3, 5, 3), torch.float32, settings(neuron, surrogate, strict, detach), surrogate, 3)


@pytest.mark.parametrize(
    "layout, na_layout", [("TB", "BT"), ("BT", "TB"), ("BT", "BT"), ("strided", "BT"), ("TB", "strided")]
)
@pytest.mark.parametrize("residual", [True, False])
def test_op_layouts_and_residual(layout, na_layout, residual):
    """X and NA each in the [T, B] or the [B, T] storage (T-NA's output is [B, T]; DTA-SNN's X is [T, B]),
    both walked in place, NA's gradient written in NA's layout; strided tensors copied once; NA as given
    (no residual)."""
    check_op(
        (4, 3, 5, 4, 3),
        torch.float32,
        settings("lif-hard", sg.Triangle()),
        sg.Triangle(),
        2,
        layout,
        residual,
        na_layout,
    )


def test_na_is_read_and_its_gradient_written_in_its_own_layout():
    x, na, *rest = leaves(*make_inputs((3, 2, 4, 3, 5), torch.float32, "TB", True, "BT"))
    y = dta_leaky(x, na, *rest, neuron=settings("lif-hard", sg.Triangle()))
    (grad_na,) = torch.autograd.grad(y, [na], torch.randn_like(y))
    assert grad_na.stride() == na.stride() != x.stride()


@pytest.mark.parametrize("dtype", DTYPES[1:])
def test_op_half_precision(dtype):
    check_op((5, 2, 4, 3, 6), dtype, settings("lif-hard", sg.Sigmoid()), sg.Sigmoid(), 2)


@pytest.mark.parametrize("shape", pick([(3, 3, 5, 1, 1), (6, 1, 2, 40, 30)], [(6, 1, 2, 40, 30)]), ids=str)
def test_op_shapes(shape):
    """1 x 1 planes (many rows per tile) and planes longer than one interpreted tile; default chunk."""
    check_op(shape, torch.float32, settings("lif-hard", sg.Triangle()), sg.Triangle(), 8)


def test_op_without_gradients_keeps_nothing():
    x, na, *txa, bias = make_inputs((4, 2, 3, 4, 4), torch.float32, "TB", True)
    neuron = settings("lif-hard", sg.ATan())
    with torch.no_grad():
        y = dta_leaky(x, na, *txa, bias, neuron=neuron)
    with torch.enable_grad():
        y_training = dta_leaky(*leaves(x, na, *txa, bias), neuron=neuron)
    assert_equal_verbose(y, y_training.detach(), "output")


# --- modules -------------------------------------------------------------------------------------------
T, B, C, H, W = 4, 2, 8, 5, 3
NEURON_MODULES = {
    "tet": lambda: TETLIFNode(step_mode="m", backend="triton"),
    "lif-soft": lambda: LIFNode(
        tau=1.5, v_reset=None, surrogate_function=sg.ATan(), step_mode="m", stateful=False, backend="triton"
    ),
}


def module_pair(neuron: str, seed: int = 0):
    torch.manual_seed(seed)
    dta = DTA(T, C, backend="triton").to(DEVICE)
    with torch.no_grad():  # T-XA's scales away from 1 and every parameter off its init
        for p in dta.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return NEURON_MODULES[neuron](), dta


def check_against_unfused(neu, dta, x, out_fn):
    x_fused, x_ref = leaves(x, x)
    out = out_fn(x_fused)
    want = dta(x_ref, neu(x_ref))
    assert_close_verbose(out, want, 1e-6, 2e-6, "output")
    params = list(dta.parameters())
    grad_out = torch.randn_like(want)
    grads = torch.autograd.grad(out, [x_fused] + params, grad_out)
    grads_ref = torch.autograd.grad(want, [x_ref] + params, grad_out)
    top = grads_ref[0].abs().max().item()
    assert_close_verbose(grads[0], grads_ref[0], SUM_RTOL * top, SUM_RTOL, "grad x")
    for i, (g, g_ref) in enumerate(zip(grads[1:], grads_ref[1:], strict=True)):
        top = g_ref.abs().max().item()
        assert top > 0, f"grad of parameter {i} is zero: the test cannot fail"
        assert_close_verbose(g, g_ref, SUM_RTOL * top, SUM_RTOL, f"grad of parameter {i}")


@pytest.mark.parametrize("neuron", list(NEURON_MODULES))
def test_module_pair_matches_unfused(neuron):
    neu, dta = module_pair(neuron)
    x = torch.randn(T, B, C, H, W, device=DEVICE) * 1.5
    assert dta_fusion_blocker(neu, dta, x) is None
    with torch.no_grad():
        rate = neu(x).mean().item()
    assert 0.05 < rate < 0.9, "the input should make the neuron fire sometimes"
    check_against_unfused(neu, dta, x, lambda x: neuron_dta(neu, dta, x))


def test_blockers_name_the_reason_and_fall_back_to_the_pair():
    neu, dta = module_pair("tet")
    x = torch.randn(T, B, C, H, W, device=DEVICE) * 1.5
    plif = ParametricLIFNode(step_mode="m", stateful=False, backend="triton")
    assert "learnable" in dta_fusion_blocker(plif, dta, x)
    check_against_unfused(plif, dta, x, lambda x: neuron_dta(plif, dta, x))  # the same numbers, unfused
    handle = neu.register_forward_hook(lambda m, args, out: None)
    assert "hooks" in dta_fusion_blocker(neu, dta, x)
    handle.remove()
    handle = neu.register_forward_hook(observer_hook(lambda m, args, out: None))
    assert dta_fusion_blocker(neu, dta, x) is None
    handle.remove()
    handle = dta.register_forward_pre_hook(lambda m, args: None)
    assert "hooks" in dta_fusion_blocker(neu, dta, x)
    handle.remove()
    assert "layout" in dta_fusion_blocker(neu, DTA(T, C, layout="BT", backend="triton"), x)
    assert "'torch'" in dta_fusion_blocker(neu, DTA(T, C, backend="torch"), x)
    assert "not a DTA" in dta_fusion_blocker(neu, torch.nn.Identity(), x)


def test_wrong_time_steps_raise():
    neu, dta = module_pair("tet")
    with pytest.raises(ValueError, match="T"):
        neuron_dta(neu, dta, torch.randn(T + 1, B, C, H, W, device=DEVICE))


def test_firing_record_counts_the_fused_neuron():
    """The kernel counts the spikes it never stores; firing.record sees the same counts as unfused."""
    neu, dta = module_pair("tet")
    model = torch.nn.ModuleDict({"neuron": neu, "dta": dta})
    x = torch.randn(T, B, C, H, W, device=DEVICE) * 1.5
    with firing.record(model) as fused_stats:
        neuron_dta(neu, dta, x)
    with firing.record(model) as plain_stats:
        dta(x, neu(x))
    fused, plain = fused_stats.layers["neuron"], plain_stats.layers["neuron"]
    assert plain.spikes_per_step.sum().item() > 0
    assert_equal_verbose(fused.spikes_per_step, plain.spikes_per_step, "spikes per step")
    assert fused.samples == plain.samples == B


def test_dta_snn_runs_the_fused_encoding():
    """A shrunken DTA-SNN on Triton: resolved_backends reports the fused pair, and output and gradients
    equal the same network with its encoding neuron on the unfused Triton path."""
    kwargs = dict(num_classes=3, time_step=2, dvs=False)
    torch.manual_seed(0)
    net = DTA_SNN_18(**kwargs, backend="triton").to(DEVICE)
    images = torch.randn(2, 3, 8, 8, device=DEVICE)
    found = resolved_backends(net, images)
    assert found["LIF"] == "triton (forms the DTA output as it fires)"
    assert found["encoding"] == "triton (output formed in the neuron's loop)"
    out = net(images)
    handle = net.LIF.register_forward_hook(lambda m, args, out: None)  # blocks the fusion: unfused pair
    want = net(images)
    handle.remove()
    assert_close_verbose(out, want, 1e-5, 1e-5, "logits")
    grads = torch.autograd.grad(out.sum(), list(net.encoding.parameters()))
    grads_ref = torch.autograd.grad(want.sum(), list(net.encoding.parameters()))
    for i, (g, g_ref) in enumerate(zip(grads, grads_ref, strict=True)):
        top = g_ref.abs().max().item()
        assert_close_verbose(g, g_ref, 1e-4 * max(top, 1e-12), 1e-4, f"grad of encoding parameter {i}")
