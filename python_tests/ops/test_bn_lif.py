"""``bn_lif``: BatchNorm over the merged time-batch axis + the leaky neuron, as one op, against the unfused pair.

Ground truths:
- the reference (``backend="torch"``) and the modules' state rules: ``nn.BatchNorm2d`` / ``nn.BatchNorm1d`` on
  [T * B, C, ...] followed by the reference neuron, and a hand-written BatchNorm (batch mean, biased variance,
  running statistics updated with the unbiased one), in fp64;
- the Triton op: the fp32 reference on the same inputs. BatchNorm's statistics are reduced in another order
  (tile-row partials combined in fp64), so BatchNorm's output may differ from torch's in the last bit and a
  spike may flip where the reference potential sits within that bit of the threshold: ``compare_spikes`` fails
  on any other difference; with the seeds here there is none, which the gradient checks need (BatchNorm couples
  every element of a channel). ``test_flip_rate`` measures the rate on a larger layer.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.bn_lif_memory import Unfused, saved_bytes
from snnkernels import functional as SF
from snnkernels import surrogate as sg
from snnkernels.backends import backend_problem
from snnkernels.nn import BNLIF, LeakyNode, LIFNode, ParametricLIFNode, bn_fusion_blocker, bn_neuron
from snnkernels.ops import bn_lif_native
from snnkernels.reference.bn_lif import bn_lif_reference

from conftest import DEVICE
from utils import FLIP_EPS, MAX_FLIP_RATE, assert_close_verbose, assert_grad_close, compare_spikes

# fp32 running statistics: both sides round ``(1 - m) * running + m * batch statistic`` once to fp32 (2 ulps), and
# the batch statistic itself differs: torch's CPU BatchNorm sums in fp64, the kernel sums tile-rows in fp32 (a few
# ulps of the largest value summed) before combining them in fp64, so m * 2^-20 * max|x| (mean), m * 2^-20 * max x^2
# (variance) absolute on top
RUN_RTOL = 2.0**-22
SUM_ULPS = 2.0**-20
# Half precision: BatchNorm's output is rounded to x's dtype on both sides; an fp32 last-bit difference can move it
# by one unit of the half format, so a spike may flip where |h - v_th| < gain * one unit at |y| <= 8 (fp16 2^-7,
# bf16 2^-4)
HALF_FLIP_EPS = {torch.float16: 2.0**-7, torch.bfloat16: 2.0**-4}
# Half-precision gradients: the reference rounds dL/dy to x's dtype (one unit, 2^-11 fp16 / 2^-8 bf16, doubled
# for the interpreter's bf16 truncation), the kernel keeps it in fp32, and BatchNorm's backward mixes every dL/dy of
# a channel into each dL/dx through its mean terms: compared normwise, relative to the largest entry, as the gated
# neuron's gate sums (measured on the ATan, Sigmoid and Triangle cases: <= 5.8e-4 fp16, <= 6.2e-3 bf16)
HALF_GRAD_RTOL = {torch.float16: 2.0**-9, torch.bfloat16: 2.0**-6}

NATIVE_PROBLEM = backend_problem("native", torch.empty(1, device=DEVICE))
# the fused backends: Triton (skipped without CUDA / the interpreter) and the native neuron with BatchNorm in torch
# ops around it (skipped with the reason where the extension is not built)
FUSED = [
    pytest.param("triton", marks=pytest.mark.triton, id="triton"),
    pytest.param(
        "native", marks=pytest.mark.skipif(NATIVE_PROBLEM is not None, reason=str(NATIVE_PROBLEM)), id="native"
    ),
]


def fused_bn_lif(backend):
    """The op's launcher of ``backend`` (``ops.bn_lif_<backend>.bn_lif``)."""
    if backend == "native":
        return bn_lif_native.bn_lif
    from snnkernels.ops import bn_lif_triton

    return bn_lif_triton.bn_lif


def neuron_kwargs(surrogate, *, v_threshold=0.8, v_reset=0.0, strict=False, detach=False, v_init=0.0):
    return dict(
        v_threshold=v_threshold,
        v_reset=v_reset,
        strict_threshold=strict,
        detach_reset=detach,
        surrogate_function=surrogate,
        v_init_value=v_init,
    )


def charges(y, decay, gain, bias, neuron):
    """The reference neuron's pre-reset potentials h_t on BatchNorm's output y (fp64), for the flip margins."""

    def shaped(c):
        if not isinstance(c, torch.Tensor):
            return c
        c = c.detach().double().reshape(-1)
        return c.reshape((c.numel(),) + (1,) * (y.dim() - 3)) if c.numel() > 1 else c.reshape(())

    a, b, c = shaped(decay), shaped(gain), shaped(bias)
    v = torch.full_like(y[0], neuron["v_init_value"], dtype=torch.float64)
    hs = []
    for t in range(y.shape[0]):
        h = a * v + b * y[t].double() + c
        s = (h > neuron["v_threshold"]) if neuron["strict_threshold"] else (h >= neuron["v_threshold"])
        s = s.double()
        v = h - neuron["v_threshold"] * s if neuron["v_reset"] is None else h * (1 - s) + neuron["v_reset"] * s
        hs.append(h)
    return torch.stack(hs)


def bn_output(x, rm, rv, w, b, training, momentum, eps=1e-5):
    """BatchNorm's output as the reference computes it (for the margins; running statistics copied)."""
    T, B = x.shape[:2]
    rm = None if rm is None else rm.clone()
    rv = None if rv is None else rv.clone()
    y = torch.nn.functional.batch_norm(x.detach().flatten(0, 1), rm, rv, w, b, training, momentum, eps)
    return y.unflatten(0, (T, B))


def coefficient(kind, value, C):
    if kind == "float":
        return value
    if kind == "0d":
        return torch.tensor(value, device=DEVICE, requires_grad=True)
    return (value + 0.1 * torch.randn(C, device=DEVICE)).requires_grad_(True)


# (layout shape, batch statistics, decay kind, gain kind, bias kind, reset, strict, detach)
CASES = {
    "ATan": ((5, 2, 3, 3, 5), True, "channel", "float", "float", 0.0, False, False),
    "Sigmoid": ((5, 3, 3, 7), True, "float", "0d", "channel", None, True, False),
    "Triangle": ((7, 3, 5), True, "0d", "channel", "float", 0.0, False, True),
    "Rectangle": ((5, 2, 3, 3, 5), False, "channel", "channel", "channel", -0.1, False, False),
    "PiecewiseExp": ((3, 2, 5, 2, 3), True, "float", "float", "float", None, False, True),
    "SoftSign": ((5, 2, 3, 9), False, "float", "0d", "float", 0.0, True, False),
    "SuperSpike": ((9, 2, 3, 5), True, "channel", "float", "0d", 0.2, False, False),
    "Erf": ((5, 1, 3, 4, 3), True, "float", "float", "channel", None, False, False),
}


def run_case(name, dtype=torch.float32, chunk=2, backend="triton"):
    shape, batch_stats, dk, gk, bk, v_reset, strict, detach = CASES[name]
    surrogate = getattr(sg, name)()
    C = shape[2]
    x = (torch.randn(shape, device=DEVICE) * 1.5 + 0.7).to(dtype).requires_grad_(True)
    w = (torch.rand(C, device=DEVICE) + 0.5).requires_grad_(True)
    b = (0.3 * torch.randn(C, device=DEVICE)).requires_grad_(True)
    rm = 0.2 * torch.randn(C, device=DEVICE)
    rv = torch.rand(C, device=DEVICE) + 0.5
    coefs = (coefficient(dk, 0.6, C), coefficient(gk, 0.9, C), coefficient(bk, 0.05, C))
    neuron = neuron_kwargs(surrogate, v_reset=v_reset, strict=strict, detach=detach, v_init=0.1)
    settings = (
        0.0,
        0.0,
        0.0,
        neuron["v_threshold"],
        0.0 if v_reset is None else v_reset,
        0.1,
        v_reset is not None,
        strict,
        detach,
        surrogate.id,
        surrogate.param,
    )
    rm_k, rv_k, rm_r, rv_r = rm.clone(), rv.clone(), rm.clone(), rv.clone()
    out = fused_bn_lif(backend)(
        x,
        rm_k,
        rv_k,
        w,
        b,
        batch_stats=batch_stats,
        momentum=0.1,
        eps=1e-5,
        coefficients=coefs,
        neuron=settings,
        chunk=chunk,
    )
    ref = bn_lif_reference(
        x,
        rm_r,
        rv_r,
        w,
        b,
        training=batch_stats,
        momentum=0.1,
        decay=coefs[0],
        input_gain=coefs[1],
        neuron_bias=coefs[2],
        **neuron,
    )
    y = bn_output(x, rm, rv, w.detach(), b.detach(), batch_stats, 0.1)
    h = charges(y, *coefs, neuron)
    return out, ref, h, (x, w, b, *[c for c in coefs if isinstance(c, torch.Tensor)]), (rm_k, rv_k, rm_r, rv_r)


def check_running(rm, rv, rm_ref, rv_ref, x, momentum):
    top = x.detach().abs().max().item()
    assert_close_verbose(rm, rm_ref, momentum * SUM_ULPS * top, RUN_RTOL, "running_mean")
    assert_close_verbose(rv, rv_ref, momentum * SUM_ULPS * top * top, RUN_RTOL, "running_var")


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", list(CASES))
def test_fused_matches_reference(name, backend):
    """Every surrogate once, each with its own layout (conv [T, B, C, H, W], tokens [T, B, C, N], features
    [T, B, C]), statistics (batch / running), reset (hard / soft / to a nonzero value), strict or not, detached
    or not, and learnable neuron coefficients (per channel, 0-d); T up to 9 with chunk 2 (partial last chunks)."""
    out, ref, h, inputs, (rm_k, rv_k, rm_r, rv_r) = run_case(name, backend=backend)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    cmp = compare_spikes(out, ref, h, 0.8, eps=FLIP_EPS[torch.float32])
    assert not cmp.any_flip, f"{cmp.flips} spike(s) flipped at a threshold tie: the gradients are not comparable"
    assert 0.03 < ref.float().mean().item() < 0.9, "the neurons should fire sometimes"
    check_running(rm_k, rv_k, rm_r, rv_r, inputs[0], 0.1)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, inputs, grad_out)
    grads_ref = torch.autograd.grad(ref, inputs, grad_out)
    assert_grad_close(grads[0], grads_ref[0], "x")
    for i, (g, g_ref) in enumerate(zip(grads[1:], grads_ref[1:], strict=True)):
        assert g_ref.abs().max() > 0, f"gradient {i + 1} is all zero: the test cannot fail"
        assert_grad_close(g, g_ref, f"parameter {i + 1}", reduced=True)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", ["ATan", "Sigmoid"])
def test_fused_half_precision(dtype, name, backend):
    """fp16 / bf16 x: BatchNorm's output rounded to x's dtype as nn.BatchNorm stores it, the state fp32; the
    running statistics from the same half values; every gradient (HALF_GRAD_RTOL)."""
    out, ref, h, inputs, (rm_k, rv_k, rm_r, rv_r) = run_case(name, dtype, backend=backend)
    assert out.dtype == dtype
    cmp = compare_spikes(out, ref, h, 0.8, eps=HALF_FLIP_EPS[dtype], max_flip_rate=MAX_FLIP_RATE)
    assert 0.03 < ref.float().mean().item() < 0.9
    check_running(rm_k, rv_k, rm_r, rv_r, inputs[0], 0.1)
    assert not cmp.any_flip, "the gradients below need equal spike trains"
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, inputs, grad_out)
    grads_ref = torch.autograd.grad(ref, inputs, grad_out)
    for i, (g, g_ref) in enumerate(zip(grads, grads_ref, strict=True)):
        top = g_ref.detach().abs().max().item()
        assert top > 0, f"gradient {i} is all zero: the test cannot fail"
        assert_close_verbose(g, g_ref, HALF_GRAD_RTOL[dtype] * top, HALF_GRAD_RTOL[dtype], f"grad {i}")


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("batch_stats", [True, False], ids=["batch", "running"])
def test_flip_rate(batch_stats, backend):
    """A larger layer (T = 4, B = 4, C = 8, 16 x 16; 32768 neuron-steps) forward in fp32 under batch or running
    statistics: spikes differ from the reference only at threshold ties, at a rate within the suite's budget."""
    T, B, C, H, W = 4, 4, 8, 16, 16
    x = torch.randn(T, B, C, H, W, device=DEVICE) * 2 + 0.3
    w, b = torch.rand(C, device=DEVICE) + 0.5, 0.3 * torch.randn(C, device=DEVICE)
    neuron = neuron_kwargs(sg.ATan())
    settings = (0.0, 0.0, 0.0, 0.8, 0.0, 0.0, True, False, False, sg.ATan.id, 2.0)
    rm, rv = 0.3 * torch.randn(C, device=DEVICE), torch.rand(C, device=DEVICE) * 3 + 0.5
    stats = (rm.clone(), rv.clone())
    out = fused_bn_lif(backend)(
        x, rm, rv, w, b, batch_stats=batch_stats, momentum=0.1, eps=1e-5, coefficients=(0.5, 1.0, 0.0), neuron=settings
    )
    ref = bn_lif_reference(x, *stats, w, b, training=batch_stats, decay=0.5, **neuron)
    h = charges(bn_output(x, *stats, w, b, batch_stats, 0.1), 0.5, 1.0, 0.0, neuron)
    cmp = compare_spikes(out, ref, h, 0.8, eps=FLIP_EPS[torch.float32], max_flip_rate=MAX_FLIP_RATE)
    print(f"{backend} fp32 flips ({'batch' if batch_stats else 'running'} statistics): {cmp.flips} of {out.numel()}")


def hand_batch_norm(x, rm, rv, w, b, training, momentum, eps):
    """BatchNorm written out (fp64): batch mean and biased variance per channel over every dim but 2; the
    running statistics updated in place with the unbiased variance."""
    dims = [d for d in range(x.dim()) if d != 2]
    shape = [1, 1, -1] + [1] * (x.dim() - 3)
    if training:
        mean, var = x.mean(dims), x.var(dims, correction=0)
        if rm is not None:
            n = x.numel() // x.shape[2]
            with torch.no_grad():
                rm.mul_(1 - momentum).add_(momentum * mean)
                rv.mul_(1 - momentum).add_(momentum * var * n / (n - 1))
    else:
        mean, var = rm, rv
    y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
    return y * w.view(shape) + b.view(shape) if w is not None else y


@pytest.mark.triton
@pytest.mark.parametrize(
    "shape, bn_cls", [((5, 3, 4, 3, 5), nn.BatchNorm2d), ((5, 3, 4, 7), nn.BatchNorm1d), ((7, 3, 4), nn.BatchNorm1d)]
)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_reference_is_batch_norm_then_neuron(shape, bn_cls, momentum):
    """fp64, backend="torch": BNLIF over three training batches and one eval batch equals ``nn.BatchNorm2d`` /
    ``1d`` on the merged [T * B, C, ...] samples + the neuron module (spikes, running statistics,
    num_batches_tracked, every gradient: x, BatchNorm's weight and bias, PLIF's w), and BatchNorm written out by
    hand (the statistics, the running update, momentum=None's cumulative average)."""
    C = shape[2]
    bn = bn_cls(C, momentum=momentum).double().to(DEVICE)
    neuron = ParametricLIFNode(step_mode="m", stateful=False, backend="torch").double().to(DEVICE)
    fused = BNLIF(C, ParametricLIFNode(step_mode="m", stateful=False), momentum=momentum, backend="torch")
    fused = fused.double().to(DEVICE)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-0.3, 0.3), neuron.w.fill_(0.3)
    fused.load_state_dict({**bn.state_dict(), **{f"neuron.{k}": v for k, v in neuron.state_dict().items()}})
    hand_rm, hand_rv = bn.running_mean.clone(), bn.running_var.clone()
    for step in range(4):
        train = step < 3
        bn.train(train), neuron.train(train), fused.train(train)
        x = (torch.randn(shape, dtype=torch.float64, device=DEVICE) * 2 + 0.5).requires_grad_(True)
        want = neuron(bn(x.flatten(0, 1)).unflatten(0, shape[:2]))
        got = fused(x)
        assert torch.equal(got, want)
        factor = (1.0 / (step + 1) if momentum is None else momentum) if train else 0.0
        y_hand = hand_batch_norm(
            x.detach(), hand_rm, hand_rv, bn.weight.detach(), bn.bias.detach(), train, factor, 1e-5
        )
        y_ref = bn(x.detach().flatten(0, 1)).unflatten(0, shape[:2]) if not train else None
        assert_close_verbose(bn.running_mean, hand_rm, 1e-14, 1e-12, "running_mean vs hand")
        assert_close_verbose(bn.running_var, hand_rv, 1e-14, 1e-12, "running_var vs hand")
        if y_ref is not None:
            assert_close_verbose(y_hand, y_ref, 1e-12, 1e-12, "eval output vs hand")
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            assert torch.equal(getattr(fused, name), getattr(bn, name)), name
        grad_out = torch.randn_like(want)
        leaves = [x, bn.weight, bn.bias, neuron.w]
        fused_leaves = [x, fused.weight, fused.bias, fused.neuron.w]
        grads = torch.autograd.grad(got, fused_leaves, grad_out)
        grads_ref = torch.autograd.grad(want, leaves, grad_out)
        for g, g_ref, n in zip(grads, grads_ref, ("x", "weight", "bias", "w"), strict=True):
            assert_grad_close(g, g_ref, n)
    assert int(fused.num_batches_tracked) == 3


@pytest.mark.parametrize(
    "neuron_factory",
    [
        lambda: LIFNode(tau=2.0, step_mode="m", stateful=False, surrogate_function=sg.Sigmoid()),
        lambda: ParametricLIFNode(step_mode="m", stateful=False, v_reset=None),
        lambda: LeakyNode(decay=0.5, channels=5, learnable=True, detach_reset=True),
    ],
    ids=["lif", "plif-soft", "leaky-learnable"],
)
@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("momentum, affine, track", [(0.1, True, True), (None, True, True), (0.1, False, False)])
def test_module_fused_matches_modules(neuron_factory, momentum, affine, track, backend):
    """fp32: ``bn_neuron(nn.BatchNorm2d, neuron)`` fused over two training batches and one eval batch
    against the unfused modules on backend="torch": spikes, running statistics, num_batches_tracked and every
    gradient (x, BatchNorm's weight and bias, the neuron's learnable coefficients)."""
    C, shape = 5, (5, 2, 5, 3, 3)
    bns = [nn.BatchNorm2d(C, momentum=momentum, affine=affine, track_running_stats=track).to(DEVICE) for _ in "ab"]
    neurons = [neuron_factory().to(DEVICE) for _ in "ab"]
    neurons[1].load_state_dict(neurons[0].state_dict())
    if affine:
        with torch.no_grad():
            bns[0].weight.uniform_(0.5, 1.5), bns[0].bias.uniform_(-0.3, 0.3)
    bns[1].load_state_dict(bns[0].state_dict())
    for step in range(3):
        for m in (*bns, *neurons):
            m.train(step < 2)
        x = (torch.randn(shape, device=DEVICE) * 2 + 0.5).requires_grad_(True)
        assert bn_fusion_blocker(bns[0], neurons[0], x, backend) is None
        got = bn_neuron(bns[0], neurons[0], x, backend=backend)
        neurons[1].backend = "torch"
        want = neurons[1](bns[1](x.flatten(0, 1)).unflatten(0, shape[:2]))
        y = bn_output(x, None, None, bns[1].weight, bns[1].bias, True, 0.0) if step < 2 or not track else None
        if y is None:
            y = bns[1](x.detach().flatten(0, 1)).unflatten(0, shape[:2])
        decay, gain, bias = neurons[1].coefficients()
        nk = dict(v_init_value=neurons[1].v_init_value, v_threshold=neurons[1].v_threshold)
        nk.update(v_reset=neurons[1].v_reset, strict_threshold=neurons[1].strict_threshold)
        cmp = compare_spikes(got, want, charges(y.detach(), decay, gain, bias, nk), 1.0, eps=FLIP_EPS[torch.float32])
        assert not cmp.any_flip
        if track:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                a, e = getattr(bns[0], name), getattr(bns[1], name)
                assert_close_verbose(a, e, SUM_ULPS * x.abs().max().item() ** 2, RUN_RTOL, name)
        leaves = [x] + [p for p in (*bns[1].parameters(), *neurons[1].parameters())]
        fused_leaves = [x] + [p for p in (*bns[0].parameters(), *neurons[0].parameters())]
        grad_out = torch.randn_like(want)
        grads = torch.autograd.grad(got, fused_leaves, grad_out)
        grads_ref = torch.autograd.grad(want, leaves, grad_out)
        assert_grad_close(grads[0], grads_ref[0], "x")
        for i, (g, g_ref) in enumerate(zip(grads[1:], grads_ref[1:], strict=True)):
            assert_grad_close(g, g_ref, f"parameter {i}", reduced=True)


@pytest.mark.triton
def test_state_dict_is_batch_norms():
    """BNLIF's state dict is nn.BatchNorm2d's (plus the neuron's, under ``neuron.``), both ways."""
    bn = nn.BatchNorm2d(6)
    fused = BNLIF(6, ParametricLIFNode(step_mode="m", stateful=False))
    assert set(fused.state_dict()) == set(bn.state_dict()) | {"neuron.w"}
    fused.load_state_dict({**bn.state_dict(), "neuron.w": torch.tensor(0.2)})
    bn.load_state_dict({k: v for k, v in fused.state_dict().items() if not k.startswith("neuron.")})


@pytest.mark.triton
def test_errors():
    x = torch.randn(2, 3, 4, 5)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        SF.bn_lif(torch.randn(1, 1, 4), None, None, training=True, decay=0.5)
    empty = torch.randn(3, 0, 4, 5, requires_grad=True)
    rm, rv = torch.zeros(4), torch.ones(4)
    out = SF.bn_lif(empty, rm, rv, torch.ones(4), None, training=True, decay=0.5, backend="triton")
    assert out.shape == empty.shape and torch.equal(rm, torch.zeros(4)) and torch.equal(rv, torch.ones(4))
    with pytest.raises(ValueError, match="given together"):
        SF.bn_lif(x, torch.zeros(4), None, training=True, decay=0.5)
    with pytest.raises(ValueError, match="running statistics"):
        SF.bn_lif(x, None, None, training=False, decay=0.5)
    with pytest.raises(ValueError, match="stateless multi-step"):
        BNLIF(4, LIFNode())
    with pytest.raises(ValueError, match=r"takes \[T, B, 4"):
        BNLIF(4, LIFNode(step_mode="m", stateful=False))(torch.randn(2, 3, 5, 2))


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("T", [6, 10])
def test_bytes_held_for_backward(T, backend):
    """bn_lif keeps x (which BatchNorm keeps anyway), the neuron's checkpoints and 7 per-channel fp32 vectors
    (scale, shift, mean, invstd and the neuron's 3 coefficients); the unfused pair with the fused neuron also keeps
    BatchNorm's output (docs/bn_lif.md "Memory")."""
    B, C, H, W = 2, 4, 3, 5
    x = torch.randn(T, B, C, H, W, device=DEVICE, requires_grad=True)
    fused = saved_bytes(BNLIF(C, backend=backend).to(DEVICE).train(), x)
    unfused = saved_bytes(Unfused(C, backend).to(DEVICE).train(), x)
    x_bytes, step_bytes = x.numel() * 4, x[0].numel() * 4
    checkpoints = ((T + 7) // 8 - 1) * step_bytes
    assert fused == {"x": x_bytes, "steps": checkpoints, "small": 7 * C * 4}
    assert unfused["x"] == x_bytes and unfused["steps"] == x_bytes + checkpoints


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_compiles_in_one_graph(train, backend):
    """``torch.compile(BNLIF, dynamic=True, fullgraph=True)`` (aot_eager: the interpreter's Triton cannot run under
    Inductor on the CPU): one graph for two batch sizes, the same spikes, gradients and running statistics as the
    eager module (momentum=None's ``1 / num_batches_tracked`` reads a tensor as a number, so it is tested eager)."""
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    eager = BNLIF(5, ParametricLIFNode(step_mode="m", stateful=False), backend=backend).to(DEVICE).train(train)
    with torch.no_grad():
        eager.weight.uniform_(0.5, 1.5), eager.bias.uniform_(-0.3, 0.3), eager.running_var.uniform_(0.5, 1.5)
    module = BNLIF(5, ParametricLIFNode(step_mode="m", stateful=False), backend=backend).to(DEVICE).train(train)
    module.load_state_dict(eager.state_dict())
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(module, backend=counter, dynamic=True, fullgraph=True)
    frames = []
    for batch in (2, 3):
        x = torch.randn(5, batch, 5, 3, 3, device=DEVICE) * 2 + 0.3
        x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        with torch._dynamo.config.patch(error_on_recompile=batch > 2):
            got = compiled(x1)
        frames.append(counter.frame_count)
        want = eager(x2)
        assert torch.equal(got, want)
        grad_out = torch.randn_like(want)
        grads = torch.autograd.grad(got, [x1, *module.parameters()], grad_out)
        grads_ref = torch.autograd.grad(want, [x2, *eager.parameters()], grad_out)
        for g, g_ref in zip(grads, grads_ref, strict=True):
            assert torch.equal(g, g_ref)
        for name, buf in module.named_buffers():
            assert torch.equal(buf, dict(eager.named_buffers())[name]), name
    assert frames[0] >= 1 and frames[1] == frames[0], f"graphs compiled after each call: {frames}"


@pytest.mark.parametrize("backend", FUSED)
def test_double_backward_raises(backend):
    """A first-order gradient with create_graph works; differentiating it again through the fused op raises."""
    x = (torch.randn(3, 2, 3, 4, device=DEVICE) * 2).requires_grad_(True)
    w = torch.ones(3, device=DEVICE, requires_grad=True)
    out = SF.bn_lif(x, None, None, w, None, training=True, decay=0.5, v_threshold=0.5, backend=backend)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    # the backward op that has no derivative: bn_lif's own, or on native the neuron's
    with pytest.raises(RuntimeError, match="bn_lif_bwd" if backend == "triton" else "leaky_bwd_native"):
        g.sum().backward()


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("layout", ["bt", "channels_last", "sliced"])
def test_layouts(layout, backend):
    """x in DTA-SNN's [B, T] storage (read in place), each step channels-last, or every other element of a
    larger buffer (copied once); a transposed dL/ds. Spikes, running statistics and gradients as the reference."""
    T, B, C, H, W = 5, 3, 4, 3, 5
    if layout == "bt":
        base = torch.randn(B, T, C, H, W, device=DEVICE).transpose(0, 1)
    elif layout == "channels_last":
        base = torch.randn(T * B, C, H, W, device=DEVICE).contiguous(memory_format=torch.channels_last)
        base = base.view(T, B, C, H, W)
    else:
        base = torch.randn(T, B, C, H, 2 * W, device=DEVICE)[..., ::2]
    x = (base * 2 + 0.5).requires_grad_(True)
    w = (torch.rand(C, device=DEVICE) + 0.5).requires_grad_(True)
    b = (0.3 * torch.randn(C, device=DEVICE)).requires_grad_(True)
    runs = []
    for run_on in (backend, "torch"):
        rm, rv = torch.zeros(C, device=DEVICE), torch.ones(C, device=DEVICE)
        out = SF.bn_lif(x, rm, rv, w, b, training=True, decay=0.5, v_threshold=0.8, backend=run_on)
        grad_out = torch.randn(W, H, C, B, T, device=DEVICE, generator=torch.Generator(DEVICE).manual_seed(1))
        grads = torch.autograd.grad(out, [x, w, b], grad_out.permute(4, 3, 2, 1, 0))
        runs.append((out, rm, rv, grads))
    (out, rm, rv, grads), (ref, rm_r, rv_r, grads_ref) = runs
    h = charges(bn_output(x, None, None, w.detach(), b.detach(), True, 0.1), 0.5, 1.0, 0.0, neuron_kwargs(sg.ATan()))
    assert not compare_spikes(out, ref, h, 0.8, eps=FLIP_EPS[torch.float32]).any_flip
    check_running(rm, rv, rm_r, rv_r, x, 0.1)
    assert_grad_close(grads[0], grads_ref[0], "x")
    assert_grad_close(grads[1], grads_ref[1], "weight", reduced=True)
    assert_grad_close(grads[2], grads_ref[2], "bias", reduced=True)


@pytest.mark.triton
def test_bn_neuron_falls_back_to_the_modules():
    """``bn_neuron`` runs bn_lif where ``bn_fusion_blocker`` finds nothing, and the two modules' own calls
    otherwise (a stateful neuron, the CuPy backend, hooks, spike recording, a GroupNorm), with the same result; a
    BatchNorm3d over [B, C, T, H, W] (MA-SNN's ``TimeBatchNorm``) fuses to the same spikes and running statistics."""
    C, shape = 3, (4, 2, 3, 2, 3)
    x = torch.randn(shape, device=DEVICE) * 2 + 0.5

    def pair(**neuron_options):
        return nn.BatchNorm2d(C).to(DEVICE), LIFNode(step_mode="m", **neuron_options).to(DEVICE)

    bn, neuron = pair(stateful=False, backend="triton")
    assert bn_fusion_blocker(bn, neuron, x) is None
    assert "stateless" in bn_fusion_blocker(*pair(stateful=True, backend="triton"), x)
    assert "'cupy' kernels" in bn_fusion_blocker(*pair(stateful=False, backend="cupy"), x)
    assert "runs on 'torch'" in bn_fusion_blocker(*pair(stateful=False, backend="torch"), x)
    assert "GroupNorm" in bn_fusion_blocker(nn.GroupNorm(1, C), neuron, x)
    assert bn_fusion_blocker(nn.BatchNorm3d(C), neuron, x) is None  # MA-SNN's BatchNorm3d over (B, T, H, W)
    hooked = pair(stateful=False, backend="triton")
    hooked[1].register_forward_hook(lambda *args: None)
    assert "hooks" in bn_fusion_blocker(*hooked, x)
    recording = pair(stateful=False, backend="triton")
    recording[1].record_spike_counts = True
    assert "spike counts" in bn_fusion_blocker(*recording, x)
    fused = bn_neuron(bn, neuron, x)
    for bn2, neuron2 in (recording, pair(stateful=True, backend="torch")):
        want = bn_neuron(bn2, neuron2, x)
        assert torch.equal(want, fused)
        assert int(bn2.num_batches_tracked) == 1
    assert torch.equal(recording[1].spike_counts, fused.reshape(4, -1).sum(1))
    bn3d, bn3d_ref = nn.BatchNorm3d(C).to(DEVICE), nn.BatchNorm3d(C).to(DEVICE)
    got = bn_neuron(bn3d, neuron, x)
    want = neuron.__class__(step_mode="m", stateful=False, backend="torch")(
        bn3d_ref(x.permute(1, 2, 0, 3, 4)).permute(2, 0, 1, 3, 4)
    )
    assert torch.equal(got, want)
    check_running(bn3d.running_mean, bn3d.running_var, bn3d_ref.running_mean, bn3d_ref.running_var, x, 0.1)
    assert torch.equal(bn_neuron(nn.BatchNorm3d(C).to(DEVICE), LIFNode(step_mode="m").to(DEVICE), x), want)
