"""MA-SNN's released attention on the Triton sweeps (CPU: the interpreter) against the eager reference,
and the module on backend="triton" against backend="torch".

Ground truth: ``multi_dimensional_attention_reference`` in float64 on the very values the kernels get.
Tolerances as python_tests/ops/test_pooled_attention.py: outputs and dX in the storage dtype within fp32
noise (fp32) or 2 units in the last place (fp16 / bf16); parameter gradients, sums over B * T * H * W...
terms, within 1e-5 of their largest entry. Inputs are continuous, so a max never ties (the only case in
which the max pools' single-index gradient is ambiguous).
"""

from __future__ import annotations

import pytest
import torch

from snnkernels import functional as SF
from snnkernels.reference.ma_snn import multi_dimensional_attention_reference

from attention_checks import DTYPES, OUT_ATOL, OUT_RTOL, SUM_RTOL, check_grads_without_flips, leaves
from conftest import DEVICE, pick
from utils import assert_close_verbose

pytestmark = pytest.mark.triton

ALL_DIMS = ["T", "C", "S", "TC", "TS", "CS", "TCS"]


def make_weights(T: int, C: int, dims: str, reduction_t: int = 2, reduction_c: int = 2, kernel_size: int = 3):
    """(ta, ca, sa) as the reference takes them, None where a branch is absent."""
    ht, hc = max(T // reduction_t, 1), max(C // reduction_c, 1)
    ta = (
        (torch.randn(ht, T, device=DEVICE) / T**0.5, torch.randn(T, ht, device=DEVICE) / ht**0.5)
        if "T" in dims
        else None
    )
    ca = (
        (torch.randn(hc, C, device=DEVICE) / C**0.5, torch.randn(C, hc, device=DEVICE) / hc**0.5)
        if "C" in dims
        else None
    )
    sa = torch.randn(1, 2, kernel_size, kernel_size, device=DEVICE) / kernel_size if "S" in dims else None
    return ta, ca, sa


def flat(ta, ca, sa):
    return [*(ta or ()), *(ca or ()), *([sa] if sa is not None else [])]


def unflat(dims, ws):
    it = iter(ws)
    ta = (next(it), next(it)) if "T" in dims else None
    ca = (next(it), next(it)) if "C" in dims else None
    sa = next(it) if "S" in dims else None
    return ta, ca, sa


def run(fn, inputs, grad_out):
    out = fn(*inputs)
    return out, torch.autograd.grad(out, inputs, grad_out)


def check(dims, x, weights, grad_out):
    inputs = leaves(x, *weights)
    ref_inputs = leaves(*[t.double() for t in inputs])
    out, grads = run(
        lambda x, *w: SF.multi_dimensional_attention(x, dims, *unflat(dims, w), backend="triton"), inputs, grad_out
    )
    want, want_grads = run(
        lambda x, *w: multi_dimensional_attention_reference(x, dims, *unflat(dims, w)), ref_inputs, grad_out.double()
    )
    dtype = x.dtype
    assert out.dtype == dtype
    assert_close_verbose(out, want, OUT_ATOL[dtype], OUT_RTOL[dtype], f"{dims} output")
    assert_close_verbose(grads[0], want_grads[0], OUT_ATOL[dtype], OUT_RTOL[dtype], f"{dims} grad x")
    for i, (g, g_ref) in enumerate(zip(grads[1:], want_grads[1:], strict=True)):
        assert_close_verbose(g, g_ref, SUM_RTOL * g_ref.abs().max().item(), SUM_RTOL, f"{dims} grad weight {i}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dims", ALL_DIMS)
def test_matches_reference(dims, dtype):
    T, B, C, H, W = 5, 3, 8, 4, 6
    x = torch.randn(T, B, C, H, W, device=DEVICE).to(dtype)
    check(dims, x, flat(*make_weights(T, C, dims)), torch.randn(T, B, C, H, W, device=DEVICE).to(dtype))


@pytest.mark.parametrize("layout", pick(["BT", "strided"], ["BT"]))
@pytest.mark.parametrize("kernel_size", [3, 7])
def test_layouts_and_kernel_sizes(kernel_size, layout):
    T, B, C, H, W = 4, 2, 6, 7, 5
    if layout == "BT":
        x = torch.randn(B, T, C, H, W, device=DEVICE).transpose(0, 1)
    else:
        x = torch.randn(T, B, C, H, 2 * W, device=DEVICE)[..., ::2]
    grad_out = torch.randn(B, T, C, H, W, device=DEVICE).transpose(0, 1)
    check("TCS", x, flat(*make_weights(T, C, "TCS", kernel_size=kernel_size)), grad_out)


def test_long_rows_and_many_rows():
    """Rows longer than one tile, and more (t, c) rows than one pixel program's slice."""
    T, B, C, H, W = 3, 2, 5, 70, 66
    x = torch.randn(T, B, C, H, W, device=DEVICE)
    check("TCS", x, flat(*make_weights(T, C, "TCS")), torch.randn_like(x))


def test_deterministic():
    T, B, C, H, W = 4, 2, 6, 5, 3
    x = torch.randn(T, B, C, H, W, device=DEVICE)
    weights = flat(*make_weights(T, C, "TCS"))
    grad_out = torch.randn_like(x)
    runs = [
        run(
            lambda x, *w: SF.multi_dimensional_attention(x, "TCS", *unflat("TCS", w), backend="triton"),
            leaves(x, *weights),
            grad_out,
        )
        for _ in range(2)
    ]
    for a, b in zip([runs[0][0], *runs[0][1]], [runs[1][0], *runs[1][1]], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_max_pooling_gradient_goes_to_one_element():
    """A row whose maximum is far above the rest: the TA max path's gradient lands on that element only
    (an evenly split amax gradient would differ), as the reference's single-index max pooling does."""
    T, B, C, H, W = 4, 1, 3, 3, 3
    x = torch.randn(T, B, C, H, W, device=DEVICE)
    x[1, 0, 2, 1, 1] = 9.0
    check("T", x, flat(*make_weights(T, C, "T")), torch.randn_like(x))


@pytest.mark.parametrize("layout", ["TB", "BT"])
@pytest.mark.parametrize("dims", ["TCS", "CS", "T"])
def test_module_on_triton_matches_torch(dims, layout):
    """MultiDimensionalAttention(backend="triton") with the weights of a backend="torch" twin: same output
    and gradients (input and every parameter) to fp32 rounding."""
    from snnkernels.nn.ma_snn import MultiDimensionalAttention

    T, B, C, H, W = 5, 2, 8, 4, 3
    torch_module = MultiDimensionalAttention(T, C, 2, 2, dims=dims, layout=layout, backend="torch").to(DEVICE)
    fused = MultiDimensionalAttention(T, C, 2, 2, dims=dims, layout=layout, backend="triton").to(DEVICE)
    fused.load_state_dict(torch_module.state_dict())
    shape = (T, B, C, H, W) if layout == "TB" else (B, T, C, H, W)
    x = torch.randn(shape, device=DEVICE)
    grad_out = torch.randn(shape, device=DEVICE)
    results = []
    for module in (fused, torch_module):
        leaf = x.clone().requires_grad_()
        module(leaf).backward(grad_out)
        results.append([leaf.grad] + [p.grad for p in module.parameters()])
        out = module(x)
        results[-1].insert(0, out.detach())
    for i, (a, b) in enumerate(zip(*results, strict=True)):
        torch.testing.assert_close(
            a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item() + 1e-7, msg=lambda m, i=i: f"{i}: {m}"
        )


# --- the paper's in-loop TCSA-LIF with the gates' statistics on the sweeps ---------------------------------
@pytest.mark.parametrize("dims", pick(["T", "C", "S", "CS", "TCS"], ["CS", "TCS"]))
def test_tcsa_lif_paper_on_triton(dims):
    """Against the float64 reference on the same values. A spike may flip where the potential sits within
    rounding of the threshold; every gate is per sample, so a flip perturbs its own sample only: the flip
    rate is capped, and the gradients are compared on the samples without one (all of them when none)."""
    from snnkernels.nn.ma_snn import TCSALIFNode
    from snnkernels.reference.ma_snn import tcsa_lif_paper_reference

    from utils import MAX_FLIP_RATE

    T, B, C, H, W = 5, 4, 8, 5, 6
    node = TCSALIFNode(T, C, 2, 2, 3, dims, backend="triton")
    with torch.no_grad():  # the SA conv sees maxima over C of ~3: small weights, lest it shut every pixel
        for name, p in node.named_parameters():
            p.normal_(0.0, 0.1 if name.startswith("sa.") else 0.5)
    x = torch.randn(T, B, C, H, W, device=DEVICE) * 1.5
    (x_ours,) = leaves(x)
    out = node(x_ours)
    weights = [w.detach().double().requires_grad_(True) for w in flat(*node.weights())]  # the matrices
    x_ref = x.double().requires_grad_(True)
    ta, ca, sa = unflat(dims, weights)
    want = tcsa_lif_paper_reference(x_ref, ta, ca, sa)
    assert 0.01 < want.mean().item() < 0.8
    flipped = (out.double() != want).flatten(2).any(-1).any(0)  # [B]: samples with a flip
    assert (out.double() != want).double().mean().item() <= MAX_FLIP_RATE
    assert not flipped.all(), "every sample flipped: nothing left to compare"
    grad_out = torch.randn(T, B, C, H, W, device=DEVICE)
    grads = torch.autograd.grad(out, [x_ours] + list(node.parameters()), grad_out)
    grads_ref = torch.autograd.grad(want, [x_ref] + weights, grad_out.double())
    check_grads_without_flips(grads, grads_ref, flipped)


@pytest.mark.parametrize("detach_reset", [False, True])
def test_tcsa_step_kernel_is_the_reference_update(detach_reset):
    """One step with given gates: spikes and next state bit for bit; dV, dsc, dgs as autograd of the same
    expression (fp32 sums in another order)."""
    from snnkernels.ops.tcsa_step_triton import tcsa_step
    from snnkernels.surrogate import Rectangle

    from utils import GRAD_TOL

    B, C, H, W = 3, 5, 4, 6
    surrogate = Rectangle(0.5)
    v = torch.randn(B, C, H, W, device=DEVICE)
    sc, gs = torch.rand(B, C, device=DEVICE) + 0.2, torch.rand(B, H * W, device=DEVICE) + 0.2
    ours = leaves(v, sc, gs)
    ref = leaves(v, sc, gs)
    # fp32 spikes here: an fp16 spike output would round dL/ds to fp16 on its way back
    settings = dict(u_th=0.3, v_reset=0.1, beta=0.3, detach_reset=detach_reset, surrogate=surrogate)
    s, h = tcsa_step(*ours, **settings, spike_dtype=torch.float32)
    s16, _ = tcsa_step(v, sc, gs, **settings, spike_dtype=torch.float16)
    assert s16.dtype == torch.float16 and torch.equal(s16.float(), s.detach())
    u = ref[2].view(B, 1, H, W) * (ref[1][..., None, None] * ref[0])
    s_ref = surrogate.spike(u - 0.3)
    s_reset = s_ref.detach() if detach_reset else s_ref
    h_ref = 0.1 * s_reset + 0.3 * u * (1.0 - s_reset)
    assert torch.equal(s, s_ref) and torch.equal(h, h_ref)
    g_s, g_h = torch.randn_like(h), torch.randn_like(h)
    grads = torch.autograd.grad((s * g_s).sum() + (h * g_h).sum(), ours)
    grads_ref = torch.autograd.grad((s_ref * g_s).sum() + (h_ref * g_h).sum(), ref)
    atol, rtol = GRAD_TOL[torch.float32]
    assert_close_verbose(grads[0], grads_ref[0], atol, rtol, "grad V")
    for name, g, g_ref in zip(("sc", "gs"), grads[1:], grads_ref[1:], strict=True):
        assert_close_verbose(g, g_ref, SUM_RTOL * g_ref.abs().max().item(), SUM_RTOL, f"grad {name}")


def test_tcsa_step_writes_the_next_membrane_potential():
    """With the next step's input the kernel writes V' = H' + x_next (the add done in the kernel); x_next's
    gradient is dL/dV', and V's gradient is that of the plain step."""
    from snnkernels.ops.tcsa_step_triton import tcsa_step
    from snnkernels.surrogate import Rectangle

    B, C, H, W = 2, 3, 4, 5
    v = torch.randn(B, C, H, W, device=DEVICE)
    sc, gs = torch.rand(B, C, device=DEVICE) + 0.2, torch.rand(B, H * W, device=DEVICE) + 0.2
    x_next = torch.randn(B, C, H, W, device=DEVICE)
    opts = dict(
        u_th=0.3, v_reset=0.0, beta=0.3, detach_reset=False, surrogate=Rectangle(0.5), spike_dtype=torch.float32
    )
    v1, xn = leaves(v, x_next)
    s, v_next = tcsa_step(v1, sc, gs, x_next=xn, **opts)
    v2 = leaves(v)[0]
    s_ref, h = tcsa_step(v2, sc, gs, **opts)
    assert torch.equal(s, s_ref) and torch.equal(v_next, h + x_next)
    g = torch.randn_like(h)
    dv, dxn = torch.autograd.grad((v_next * g).sum() + s.sum(), [v1, xn])
    (dv_ref,) = torch.autograd.grad((h * g).sum() + s_ref.sum(), [v2])
    assert torch.equal(dxn, g) and torch.equal(dv, dv_ref)
