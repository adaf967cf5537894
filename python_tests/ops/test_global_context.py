"""STAA's global-context block with its pooling on the fused Triton sweep (CPU: the interpreter).

Ground truth: ``reference.staa`` in float64 on the very values the kernels get. The context (a softmax-
weighted mean over the pixels) and dX in the storage dtype within the pooled-attention tolerances
(test_pooled_attention.py); the key weight's gradient, a sum over frames and pixels, relative to its
largest entry. The key bias cannot change a softmax: its gradient is exactly 0 on the fused path (the
reference's is rounding noise around 0). The STAA-LIF layer on ``backend="triton"`` is then checked in
two parts: its spatial input port (PE + GC) against the reference's, every gradient; and the whole layer
against ``backend="torch"`` with the spike-flip budget (a context that differs in its last bit may move a
potential sitting at the threshold).
"""

from __future__ import annotations

import pytest
import torch

from snnkernels.nn.staa import GlobalContextBlock, STAALIFNode
from snnkernels.ops.global_context_triton import MAX_CHANNELS, gc_context, global_context_fused
from snnkernels.reference.staa import (
    GCParams,
    global_context_attention_reference,
    global_context_fusion,
    global_context_reference,
    global_context_transform_reference,
    staa_features_reference,
)

from attention_checks import (
    DTYPES,
    OUT_ATOL,
    OUT_RTOL,
    SUM_RTOL,
    assert_within,
    check_global_context_block,
    gc_weights,
    key_weight_atol,
    leaves,
)
from conftest import DEVICE, pick
from utils import MAX_FLIP_RATE, assert_close_verbose

pytestmark = pytest.mark.triton


def context_reference(x, wk, bk):
    att = global_context_attention_reference(x, wk, bk)
    return torch.einsum("...cp,...p->...c", x.flatten(-2), att)


# (T, B, C, H, W): odd planes; C = 1; more pixels than one interpreted tile (32768 / 64 = 512 < 1600),
# so the online softmax rescales across tiles; a 4-D [N, C, H, W] input
SHAPES = pick(
    [(3, 2, 5, 7, 9), (2, 3, 1, 3, 3), (1, 2, 64, 40, 40), (4, 6, 5, 5)], [(3, 2, 5, 7, 9), (1, 2, 64, 40, 40)]
)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_context_matches_reference(shape, dtype):
    C = shape[-3]
    x = (torch.randn(shape, device=DEVICE) * 2).to(dtype)
    wk = torch.randn(C, device=DEVICE)
    bk = torch.randn((), device=DEVICE)
    inputs = leaves(x, wk, bk)
    ref = leaves(*[t.double() for t in inputs])
    out = gc_context(*inputs)
    want = context_reference(*ref)
    assert out.dtype == torch.float32 and out.shape == shape[:-2]
    # fp32 logits carry an error of ~eps * L, L = sum_c |wk x| (up to ~100 here): the softmax weights move
    # by that relative amount, so the context (and dX's att-share) by eps * L * max|x|
    L = torch.einsum("...cp,c->...p", ref[0].flatten(-2).abs(), ref[1].abs()).max().item()
    atol = 2.0**-23 * L * ref[0].abs().max().item()
    assert_close_verbose(out, want, max(atol, OUT_ATOL[torch.float32]), OUT_RTOL[torch.float32], "context")
    grad = torch.randn(want.shape, device=DEVICE)
    dx, dwk, dbk = torch.autograd.grad(out, inputs, grad)
    dx_ref, dwk_ref, _ = torch.autograd.grad(want, ref, grad.double())
    assert dx.dtype == dtype
    dx_atol = 2.0**-23 * L * dx_ref.abs().max().item()
    assert_close_verbose(dx, dx_ref, max(dx_atol, OUT_ATOL[dtype]), OUT_RTOL[dtype], "grad x")
    top = dwk_ref.abs().max().item()
    assert_close_verbose(dwk, dwk_ref, SUM_RTOL * top, SUM_RTOL, "grad key weight")
    assert torch.equal(dbk, torch.zeros_like(dbk))


def test_context_follows_a_late_maximum():
    """The largest logit in the last tile: the running max must rescale what the earlier tiles summed."""
    C = 64
    x = torch.randn(1, 1, C, 40, 40, device=DEVICE) * 0.1
    wk = torch.ones(C, device=DEVICE)
    x[..., -1, -1] += 0.5  # logit +32 at the very last pixel
    out = gc_context(x, wk, None)
    torch.testing.assert_close(out.double(), context_reference(x.double(), wk.double(), None), rtol=1e-5, atol=1e-6)


def test_too_many_channels_is_refused():
    x = torch.zeros(1, 1, MAX_CHANNELS + 1, 1, 1, device=DEVICE)
    with pytest.raises(ValueError, match="backend='torch'"):
        gc_context(x, torch.zeros(MAX_CHANNELS + 1, device=DEVICE), None)


@pytest.mark.parametrize("fusion, layer_norm, bias", [("add", True, True), ("mul", False, False), ("mul", True, True)])
def test_block_matches_reference(fusion, layer_norm, bias):
    T, B, C, H, W = 3, 2, 16, 5, 7
    x = torch.randn(T, B, C, H, W, device=DEVICE)
    weights = [t for t in gc_weights(C, 4, bias, layer_norm)]
    present = [i for i, t in enumerate(weights) if t is not None]
    inputs = leaves(x, *[weights[i] for i in present])
    ref = leaves(*[t.double() for t in inputs])

    def params(ts):
        full = [None] * len(weights)
        for i, t in zip(present, ts[1:], strict=True):
            full[i] = t
        return GCParams(*full)

    out = global_context_fused(inputs[0], params(inputs), fusion=fusion, layer_norm=layer_norm)
    want = global_context_reference(ref[0], params(ref), fusion=fusion, layer_norm=layer_norm)
    check_global_context_block(out, want, inputs, ref, params(ref), present, fusion, layer_norm)


def test_module_backend_switch():
    torch.manual_seed(0)
    eager = GlobalContextBlock(6, 2, backend="torch")
    fused = GlobalContextBlock(6, 2, backend="triton")
    with torch.no_grad():
        for p in eager.parameters():
            p.normal_(0, 0.5)
    fused.load_state_dict(eager.state_dict())
    x = torch.randn(2, 3, 6, 4, 5, device=DEVICE)
    torch.testing.assert_close(fused(x), eager(x), rtol=1e-5, atol=1e-6)


T_, B_, C_, H_, W_ = 4, 3, 16, 5, 6  # C // 4 = 4 hidden features: a LayerNorm over 2 is ill-conditioned


def staa_pair(**options):
    eager = STAALIFNode(T_, C_, H_, W_, m_init=0.5, n_init=1.0, backend="torch", **options)
    with torch.no_grad():
        for p in eager.parameters():
            p.normal_(0, 0.3)
        eager.M.uniform_(0.3, 0.9)
        eager.N.uniform_(0.8, 1.5)
    fused = STAALIFNode(T_, C_, H_, W_, m_init=0.5, n_init=1.0, backend="triton", **options)
    fused.load_state_dict(eager.state_dict())
    return eager.to(DEVICE), fused.to(DEVICE)


@pytest.mark.parametrize("gc_fusion", ["add", "mul"])
def test_staa_input_port_matches_reference(gc_fusion):
    """PE + GC of STAA-LIF with the fused pooling against the reference, forward and every gradient."""
    eager, _ = staa_pair(gc_fusion=gc_fusion)
    x = torch.randn(T_, B_, C_, H_, W_, device=DEVICE) * 2
    params = eager.params()
    names = ["x", "pe"] + [f"gc.{i}" for i in range(len(params.gc))]
    tensors = [x, params.position, *params.gc]
    inputs, ref = leaves(*tensors), leaves(*[t.double() for t in tensors])

    def port(ts, fused):
        p = params._replace(position=ts[1], gc=GCParams(*ts[2:]))
        if fused:
            feat = ts[0] + ts[1][:, None]
            return global_context_fused(feat, p.gc, fusion=gc_fusion)
        return staa_features_reference(ts[0], p, gc_fusion=gc_fusion)

    out, want = port(inputs, True), port(ref, False)
    assert_close_verbose(out, want, OUT_ATOL[torch.float32], OUT_RTOL[torch.float32] * 4, "features")
    grad = torch.randn_like(out)
    grads = torch.autograd.grad(out, inputs, grad)
    grads_ref = torch.autograd.grad(want, ref, grad.double())
    top_x = grads_ref[0].abs().max().item()
    p64 = GCParams(*ref[2:])
    feat64 = (ref[0] + ref[1][:, None]).detach()

    def loss_of_ctx(ctx):
        v = global_context_transform_reference(ctx, p64)
        return (global_context_fusion(feat64, v, gc_fusion) * grad.double()).sum()

    for name, g, g_ref in zip(names, grads, grads_ref, strict=True):
        if name == "gc.1":
            assert torch.equal(g, torch.zeros_like(g))
            continue
        if name == "gc.0":
            assert_within(g, g_ref, key_weight_atol(feat64, p64, loss_of_ctx), "grad key weight")
            continue
        scale = max(g_ref.abs().max().item(), 1e-3 * top_x)
        assert_close_verbose(g, g_ref, SUM_RTOL * scale, SUM_RTOL, f"grad {name}")


@pytest.mark.parametrize("training", [True, False])
def test_staa_layer_on_triton(training):
    eager, fused = staa_pair(seed=5)
    eager.train(training), fused.train(training)
    x = torch.randn(T_, B_, C_, H_, W_, device=DEVICE) * 2
    mask = torch.tensor([False, True, False, False]) if training else None
    out = fused(x, mask)
    want = eager(x, mask)
    flips = (out != want).float().mean().item()
    assert flips <= MAX_FLIP_RATE, f"spike flip rate {flips:.2e}"
    assert 0.01 < want.mean().item() < 0.9
