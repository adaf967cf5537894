"""MA-SNN networks of snnkernels.models.ma_snn_nets: official state-dict keys and shapes, layouts, backends,
T checks, checkpoint round trips.

The key names and shapes below are written here from the official code (BICLab/MA-SNN at ad80e7b:
MA_SNN/module/LIF_Module.py ``ConvAttLIF`` / ``AttLIF``, MA_SNN/module/Attention.py, the two
``Networks/Att_SNN.py`` and ``Config.py``; Att_Res_SNN/models/resnet_2.py), independently of the module.
"""

from __future__ import annotations

import pytest
import torch

from snnkernels import functional as SF
from snnkernels.models.ma_snn_nets import (
    MASNN,
    MASNN_CIFAR10_DVS,
    MASNN_CIFAR10DVS,
    MASNN_DVS_GAIT,
    MASNN_DVS_GESTURE,
    MASNN_PRESETS,
    AttResSNN,
    AttResSNN18,
    AttResSNN34,
    MASNN_DVSGait,
    MASNN_DVSGesture,
)
from snnkernels.nn import AttResBlock, SpikeConv2d
from snnkernels.nn.ma_snn import StepConv2d

from test_models import assert_state_dict_round_trip
from utils import (
    FLIP_EPS,
    MAX_FLIP_RATE,
    assert_close_verbose,
    assert_grad_close,
    assert_same_training_step,
    compare_spikes,
)


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _bn(prefix):
    return [f"{prefix}.{n}" for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]


def _official_masnn_keys(n_conv, fc_ta=True, conv_att="TCSA"):
    keys = []
    for i in range(n_conv):
        p = f"convAttLIF{i}"
        keys += [f"{p}.conv2d.weight", f"{p}.conv2d.bias"] + _bn(f"{p}.BNLayer")
        if "T" in conv_att:
            keys += [f"{p}.attention.ta.sharedMLP.0.weight", f"{p}.attention.ta.sharedMLP.2.weight"]
        if "C" in conv_att:
            keys += [f"{p}.attention.ca.sharedMLP.0.weight", f"{p}.attention.ca.sharedMLP.2.weight"]
        if "S" in conv_att:
            keys += [f"{p}.attention.sa.conv.weight"]
    for p in ("FC0", "FC1"):
        keys += [f"{p}.linear.weight", f"{p}.linear.bias"] + _bn(f"{p}.BNLayer")
        if fc_ta:
            keys += [f"{p}.attention.ta.sharedMLP.0.weight", f"{p}.attention.ta.sharedMLP.2.weight"]
    return keys


def _tiny_masnn(**kw):
    args = dict(T=4, num_classes=3, channels=(8, 8), pools=(1, 2), input_size=8, hidden=16, t_ratio=2, c_ratio=4)
    args.update(kw)
    return MASNN(**args)


def _tiny_attres(**kw):
    args = dict(layers=(1, 1), num_classes=5, T=2, widths=(8, 16), stem_channels=8, c_ratio=4)
    args.update(kw)
    return AttResSNN(**args)


# ---------------------------------------------------------------------------------------------------------
# official keys and shapes


def test_masnn_dvs_gesture_official_keys_and_shapes():
    m = MASNN_DVSGesture()  # dims "TCS" = official attention "TCSA", T = 60, t_ratio 5, c_ratio 8
    s = _shapes(m)
    assert sorted(s) == sorted(_official_masnn_keys(3))
    assert len(s) == 54
    assert s["convAttLIF0.conv2d.weight"] == (64, 2, 3, 3)
    assert s["convAttLIF0.attention.ta.sharedMLP.0.weight"] == (12, 60, 1, 1, 1)  # 60 // t_ratio 5
    assert s["convAttLIF1.attention.ca.sharedMLP.0.weight"] == (16, 128, 1, 1, 1)  # 128 // c_ratio 8
    assert s["convAttLIF2.attention.ca.sharedMLP.2.weight"] == (128, 16, 1, 1, 1)
    assert s["convAttLIF2.attention.sa.conv.weight"] == (1, 2, 3, 3)
    assert s["FC0.linear.weight"] == (256, 128 * 8 * 8)
    assert s["FC0.attention.ta.sharedMLP.0.weight"] == (12, 60, 1)  # Conv1d (TA fc=True)
    assert s["FC1.linear.weight"] == (11, 256)
    assert s["FC1.BNLayer.running_var"] == (11,)
    assert repr(m.convAttLIF0.network.ConvIF.surrogate_function) == "Rectangle(width=0.5)"  # config.a


def test_masnn_cifar10dvs_official_keys_and_shapes():
    m = MASNN_CIFAR10DVS()
    s = _shapes(m)
    assert sorted(s) == sorted(_official_masnn_keys(5))
    assert len(s) == 78
    assert [s[f"convAttLIF{i}.conv2d.weight"][0] for i in range(5)] == [32, 64, 128, 256, 512]
    assert s["convAttLIF0.attention.ta.sharedMLP.0.weight"] == (10, 20, 1, 1, 1)  # 20 // t_ratio 2
    assert s["convAttLIF4.attention.ca.sharedMLP.0.weight"] == (64, 512, 1, 1, 1)
    assert s["FC0.linear.weight"] == (256, 512 * 2 * 2)
    assert s["FC1.linear.weight"] == (10, 256)
    assert [m.get_submodule(f"convAttLIF{i}").pooling.kernel_size for i in range(5)] == [2, 2, 2, 2, 4]


@pytest.mark.parametrize(
    "dims, official, fc_ta",
    [
        ("CS", "CSA", False),
        ("TC", "TCA", True),
        ("S", "SA", False),
        (None, "no", False),
        ("no", "no", False),
        ("TSA", "TSA", True),
    ],
)
def test_masnn_attention_variants_keys(dims, official, fc_ta):
    m = _tiny_masnn(dims=dims)
    assert sorted(m.state_dict()) == sorted(_official_masnn_keys(2, fc_ta, official if official != "no" else ""))


def test_masnn_presets():
    assert MASNN_PRESETS == {
        "dvs_gesture": MASNN_DVS_GESTURE,
        "cifar10_dvs": MASNN_CIFAR10_DVS,
        "dvs_gait": MASNN_DVS_GAIT,
    }
    gait = _shapes(MASNN_DVSGait())
    assert sorted(gait) == sorted(_official_masnn_keys(5)) and gait["FC1.linear.weight"] == (21, 256)
    assert gait["convAttLIF0.attention.ta.sharedMLP.0.weight"] == (4, 8, 1, 1, 1)
    assert repr(MASNN_DVSGait().FC0.network.IF.surrogate_function) == "Rectangle(width=0.5)"
    g, c = MASNN_DVS_GESTURE, MASNN_CIFAR10_DVS
    assert (g.T, g.t_ratio, g.c_ratio, g.surrogate_width, g.input_size) == (60, 5, 8, 0.5, 32)
    assert (c.T, c.t_ratio, c.c_ratio, c.surrogate_width, c.input_size) == (20, 2, 8, 1.0, 128)
    m = MASNN_CIFAR10DVS(T=4)
    assert repr(m.FC1.network.IF.surrogate_function) == "Rectangle(width=1.0)"
    assert repr(m.convAttLIF3.network.ConvIF.surrogate_function) == "Rectangle(width=1.0)"


def test_attres_official_keys_and_shapes():
    s18 = _shapes(AttResSNN18())
    assert len(s18) == 152
    assert s18["conv1.0.weight"] == (64, 3, 7, 7)
    assert set(_bn("conv1.1.bn")) <= set(s18)
    # every stage starts with stride 2, so even conv2_x.0 (64 -> 64) has the pooled 1x1 shortcut
    assert s18["conv2_x.0.shortcut.1.weight"] == (64, 64, 1, 1)
    assert set(_bn("conv2_x.0.shortcut.2.bn")) <= set(s18)
    assert not any(k.startswith("conv2_x.1.shortcut") for k in s18)
    assert s18["conv3_x.0.residual_function.1.weight"] == (128, 64, 3, 3)
    assert set(_bn("conv3_x.0.residual_function.2.bn")) <= set(s18)
    assert s18["conv3_x.0.residual_function.4.weight"] == (128, 128, 3, 3)
    assert set(_bn("conv3_x.0.residual_function.5.bn")) <= set(s18)
    assert s18["conv5_x.1.residual_function.6.attention.ca.sharedMLP.0.weight"] == (64, 512, 1, 1, 1)
    assert s18["conv5_x.1.residual_function.6.attention.sa.conv.weight"] == (1, 2, 3, 3)
    assert s18["fc.weight"] == (1000, 512) and s18["fc.bias"] == (1000,)
    s34 = _shapes(AttResSNN34(num_classes=10))
    assert len(s34) == 272
    assert "conv4_x.5.residual_function.6.attention.ca.sharedMLP.2.weight" in s34
    assert "conv5_x.3.residual_function.1.weight" not in s34 and s34["fc.weight"] == (10, 512)
    m = AttResSNN18()
    assert m.conv1[1].bn.weight.eq(0.5).all() and m.conv2_x[0].residual_function[5].bn.weight.eq(0.1).all()


# ---------------------------------------------------------------------------------------------------------
# forward: shapes, layouts, official sizes


def test_masnn_official_size_forward():
    torch.manual_seed(0)
    y = MASNN_DVSGesture(T=5)(torch.rand(1, 5, 2, 32, 32))
    assert y.shape == (1, 11) and ((y >= 0) & (y <= 1)).all()
    y = MASNN_CIFAR10DVS(T=2, layout="TB").eval()(torch.rand(2, 1, 2, 128, 128))
    assert y.shape == (1, 10)


def test_masnn_layouts_agree():
    torch.manual_seed(0)
    bt = _tiny_masnn()
    tb = _tiny_masnn(layout="TB")
    tb.load_state_dict(bt.state_dict())
    x = torch.randn(3, 4, 2, 8, 8)
    torch.testing.assert_close(bt(x), tb(x.transpose(0, 1)), rtol=0, atol=0)


def test_attres_forward_shapes_and_static_equals_repeated():
    torch.manual_seed(0)
    y = AttResSNN18().eval()(torch.randn(1, 3, 32, 32))
    assert y.shape == (1, 1000)
    m = _tiny_attres()
    img = torch.randn(2, 3, 32, 32)
    seq = img.unsqueeze(0).expand(2, -1, -1, -1, -1)
    m.eval()
    torch.testing.assert_close(m(img), m(seq))
    bt = _tiny_attres(layout="BT").eval()
    bt.load_state_dict(m.state_dict())
    torch.testing.assert_close(bt(seq.transpose(0, 1)), m(seq))


def test_attres34_forward_small_input():
    y = AttResSNN34(num_classes=7).eval()(torch.randn(1, 3, 32, 32))
    assert y.shape == (1, 7)


# ---------------------------------------------------------------------------------------------------------
# backends: "torch" vs "auto"


def _compare_backends(make, x, backend="auto"):
    torch.manual_seed(0)
    ref = make("torch")
    auto = make(backend)
    auto.load_state_dict(ref.state_dict())
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    outs = [m(xi) for m, xi in zip((ref, auto), xs, strict=True)]
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    w = torch.randn_like(outs[0])
    for o in outs:
        (o * w).sum().backward()
    torch.testing.assert_close(xs[1].grad, xs[0].grad, rtol=1e-4, atol=1e-5)
    scale = max(p.grad.abs().max().item() for p in ref.parameters())
    assert scale > 0, "no parameter gradient at all: the tiny network never fires on this input"
    for (n, p), (_, q) in zip(ref.named_parameters(), auto.named_parameters(), strict=True):
        if n.endswith((".conv2d.bias", ".linear.bias")):
            # a bias right before a BatchNorm gets zero gradient in exact arithmetic: both are rounding noise
            assert p.grad.abs().max() < 1e-5 * scale and q.grad.abs().max() < 1e-5 * scale, n
            continue
        atol = 1e-6 * max(1.0, p.grad.abs().max().item())
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=atol, msg=n)
    for (n, b), (_, c) in zip(ref.named_buffers(), auto.named_buffers(), strict=True):
        torch.testing.assert_close(c, b, msg=n)


def test_masnn_backends_agree():
    # an input on which the tiny network fires (on some draws none of its output neurons does, and every gradient
    # is zero): fixed, so that the check does not depend on the test's seed
    x = torch.randn(3, 4, 2, 8, 8, generator=torch.Generator().manual_seed(2))
    _compare_backends(lambda b: _tiny_masnn(backend=b), x)


def test_attres_backends_agree():
    _compare_backends(lambda b: _tiny_attres(backend=b, dropout=0.0), torch.randn(2, 3, 16, 16))


# ---------------------------------------------------------------------------------------------------------
# Att-Res-SNN memory-lean layers (docs/models.md "Memory-lean layers: packed spikes and BatchNorm folded into
# the neuron"): spike convs after each LIF, BN1 -> LIF through bn_lif; same keys, numbers and gradients


def _spike_convs(model):
    return {n: type(m) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and "attention" not in n}


@pytest.mark.parametrize(
    "backend, packing", [("auto", "auto"), ("triton", "triton"), ("native", "native"), ("cupy", "auto")]
)
def test_attres_spike_convs_and_keys(backend, packing):
    """Under a fused backend each block's two 3x3 convs (a LIF's spikes in) are SpikeConv2d; the stem conv
    (images) and the shortcut conv1x1 (the block input x, not 0 / 1) stay StepConv2d; "torch" has only plain
    StepConv2d. Same keys, shapes and seeded initial tensors, so checkpoints load either way."""
    torch.manual_seed(0)
    plain = _tiny_attres(backend="torch")
    torch.manual_seed(0)
    lean = _tiny_attres(backend=backend)
    assert set(_spike_convs(plain).values()) == {StepConv2d}
    kinds = _spike_convs(lean)
    packed = {n for n, k in kinds.items() if k is SpikeConv2d}
    assert packed == {f"conv{s}_x.0.residual_function.{i}" for s in (2, 3) for i in (1, 4)}
    assert {k for n, k in kinds.items() if n not in packed} == {StepConv2d}
    assert all(lean.get_submodule(n).backend == packing for n in packed)
    a, b = plain.state_dict(), lean.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    lean.load_state_dict(a, strict=True)
    plain.load_state_dict(b, strict=True)


def _randomised_block(stride, backend):
    """AttResBlock(5, 7, stride, c_ratio=3) with random weights and BN affine parameters in place of the
    official init (BN weights 0.5 / 0.1), under which the second LIF barely fires on a small input."""
    block = AttResBlock(5, 7, stride, 3, backend=backend)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(
                torch.rand(p.shape, generator=g) * 2 - 1
                if p.dim() > 1
                else 0.3 + 1.2 * torch.rand(p.shape, generator=g)
            )
    return block


def _attres_lif(y):
    """The official mem_update on [T, ...], written out: u = 0.25 u (1 - s) + y, fire on u > 0.5. Returns the
    spikes and the pre-reset potentials."""
    u, s, spikes, potentials = torch.zeros_like(y[0]), torch.zeros_like(y[0]), [], []
    for t in range(y.shape[0]):
        u = 0.25 * u * (1 - s) + y[t]
        s = (u > 0.5).to(y.dtype)
        spikes.append(s)
        potentials.append(u)
    return torch.stack(spikes), torch.stack(potentials)


@pytest.mark.triton
@pytest.mark.parametrize("stride, size", [(1, (5, 7)), (2, (6, 4))], ids=["stride1-5x7", "stride2-6x4"])
def test_attres_block_triton_fuses_and_matches_torch(monkeypatch, stride, size):
    """fp32 (bn_lif's kernels take no fp64), training mode: on "triton" the block runs its two convs through
    spike_conv and BN1 -> LIF as one bn_lif op; the LIF's spikes equal the official neuron's on "torch"'s BN1
    output up to threshold ties (none at this seed), and the output, the input gradient, every parameter
    gradient and the running statistics equal the plain eager block's."""
    calls = []
    for name in ("bn_lif", "spike_conv"):
        op = getattr(SF, name)
        monkeypatch.setattr(
            SF, name, lambda *a, _op=op, _n=name, **kw: calls.append((_n, kw["backend"])) or _op(*a, **kw)
        )
    eager, fused = _randomised_block(stride, "torch"), _randomised_block(stride, "triton")
    seen = {}
    eager.residual_function[2].register_forward_hook(lambda m, a, out: seen.__setitem__("bn1", out.detach()))
    for key, block in (("eager", eager), ("fused", fused)):  # the spikes into conv2 (a hook there blocks nothing)
        block.residual_function[4].register_forward_pre_hook(lambda m, a, key=key: seen.__setitem__(key, a[0].detach()))
    g = torch.Generator().manual_seed(1)
    x = 1.5 * torch.randn(3, 2, 5, *size, generator=g)
    xs = [x.clone().requires_grad_() for _ in range(2)]
    out_e = eager(xs[0])
    assert calls == []
    out_f = fused(xs[1])
    assert calls == [("spike_conv", "triton"), ("bn_lif", "triton"), ("spike_conv", "triton")]

    spikes, h = _attres_lif(seen["bn1"])
    assert torch.equal(seen["eager"], spikes)
    assert 0.05 < spikes.mean() < 0.95, "the LIF must fire on part of the neurons"
    flips = compare_spikes(seen["fused"], spikes, h, 0.5, eps=FLIP_EPS[torch.float32], max_flip_rate=MAX_FLIP_RATE)
    assert not flips.any_flip, "a threshold tie at this seed: everything after the LIF differs, pick another seed"

    atol, rtol = 1e-6, 1e-5  # utils.GRAD_TOL[fp32]; each output mixes BatchNorm's sums over the batch: normwise
    assert_close_verbose(out_f, out_e, atol + rtol * out_e.abs().max().item(), rtol, "output")
    w = torch.randn(out_e.shape, generator=g)
    (out_e * w).sum().backward()
    (out_f * w).sum().backward()
    assert_grad_close(xs[1].grad, xs[0].grad, "x", reduced=True)
    for (n, p), (_, q) in zip(eager.named_parameters(), fused.named_parameters(), strict=True):
        assert p.grad.abs().max() > 0, n
        assert_grad_close(q.grad, p.grad, n, reduced=True)
    for (n, b), (_, c) in zip(eager.named_buffers(), fused.named_buffers(), strict=True):
        assert_close_verbose(c, b, 1e-6, 1e-5, n)


def test_attres_auto_fp64_matches_torch(monkeypatch):
    """fp64 on the CPU, training mode: "auto" (packed spike convs; BN1 -> LIF unfused here, bn_lif has no CPU
    kernels) gives the plain eager network's output, input gradient, every parameter gradient and running
    statistics to fp64 rounding."""
    calls = []
    op = SF.spike_conv
    monkeypatch.setattr(SF, "spike_conv", lambda *a, **kw: calls.append(kw["backend"]) or op(*a, **kw))
    torch.manual_seed(0)
    eager = _tiny_attres(backend="torch", dropout=0.0).double()
    lean = _tiny_attres(backend="auto", dropout=0.0).double()
    lean.load_state_dict(eager.state_dict())
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    xs = [x.clone().requires_grad_() for _ in range(2)]
    outs = [m(xi) for m, xi in zip((eager, lean), xs, strict=True)]
    assert calls == ["auto"] * 4  # two blocks, two spike convs each
    atol, rtol = 1e-12, 1e-10  # utils.GRAD_TOL[fp64]
    assert_close_verbose(outs[1], outs[0], atol, rtol, "output")
    w = torch.randn(outs[0].shape, dtype=torch.float64)
    for o in outs:
        (o * w).sum().backward()
    assert_grad_close(xs[1].grad, xs[0].grad, "x", reduced=True)
    for n, p in eager.named_parameters():
        if n.endswith(("residual_function.1.weight", "residual_function.4.weight")):
            assert p.grad.abs().max() > 0, f"{n}: no gradient reaches the spike conv"
    for (n, p), (_, q) in zip(eager.named_parameters(), lean.named_parameters(), strict=True):
        assert_grad_close(q.grad, p.grad, n, reduced=True)
    for (n, b), (_, c) in zip(eager.named_buffers(), lean.named_buffers(), strict=True):
        assert_close_verbose(c, b, atol, rtol, n)


@pytest.mark.triton
def test_attres_triton_network_matches_torch(monkeypatch):
    """The whole tiny network on "triton" (fp32, training mode): one bn_lif per block, and the output and
    every gradient of the plain eager network (the zoo's network tolerances, ``_compare_backends``)."""
    calls = []
    op = SF.bn_lif
    monkeypatch.setattr(SF, "bn_lif", lambda *a, **kw: calls.append(kw["backend"]) or op(*a, **kw))
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    _compare_backends(lambda b: _tiny_attres(backend=b, dropout=0.0), x, "triton")
    assert calls == ["triton", "triton"]


# ---------------------------------------------------------------------------------------------------------
# errors


def test_masnn_T_and_shape_errors():
    m = _tiny_masnn()
    with pytest.raises(ValueError, match="T = 4"):
        m(torch.randn(2, 5, 2, 8, 8))
    with pytest.raises(ValueError, match="other layout"):
        m(torch.randn(4, 3, 2, 8, 8))
    with pytest.raises(ValueError, match=r"\[2, 8, 8\]"):
        m(torch.randn(2, 4, 2, 16, 16))
    with pytest.raises(ValueError):
        m(torch.randn(4, 2, 8, 8))
    with pytest.raises(ValueError, match="dims"):
        _tiny_masnn(dims="XY")
    with pytest.raises(ValueError, match="layout"):
        _tiny_masnn(layout="NCHW")
    with pytest.raises(ValueError, match="backend"):
        _tiny_masnn(backend="bogus")
    with pytest.raises(ValueError, match="reduction_t"):
        MASNN_DVSGesture(T=4)  # T < t_ratio 5: the TA MLP would have no hidden unit


def test_attres_T_errors():
    m = _tiny_attres()
    with pytest.raises(ValueError, match="T = 2"):
        m(torch.randn(3, 2, 3, 16, 16))
    with pytest.raises(ValueError, match="input channels|images"):
        m(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match="even"):
        m(torch.randn(2, 3, 12, 12))


# ---------------------------------------------------------------------------------------------------------
# checkpoints


@pytest.mark.parametrize(
    "make, x",
    [
        (lambda: _tiny_masnn(), torch.randn(2, 4, 2, 8, 8)),
        (lambda: _tiny_attres(), torch.randn(2, 3, 16, 16)),
    ],
)
def test_state_dict_round_trip_weights_only(make, x):
    torch.manual_seed(1)
    assert_state_dict_round_trip(make, x)


# ---------------------------------------------------------------------------------------------------------
# the official ConvAttLIF / AttLIF order and neuron, written out (docs/neuron.md "The papers' neurons in this form")


def _lif_ma(x):  # official IFCell / ConvIFCell, mode "spike": alpha 0.3, beta 0, Vthres 0.3
    h, out = torch.zeros_like(x[0]), []
    for t in range(x.shape[0]):
        u = h + x[t]
        s = (u - 0.3 >= 0).float()
        h = 0.3 * (s * 0.3 + (1 - s) * u)
        out.append(s)
    return torch.stack(out)


def test_masnn_layer_order_and_neuron_match_official():
    torch.manual_seed(0)
    m = _tiny_masnn(layout="TB").eval()
    for bn in (m.convAttLIF1.BNLayer, m.FC0.BNLayer):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(4, 3, 2, 8, 8)
    layer = m.convAttLIF1
    h = m.convAttLIF0(x)
    # conv -> BN -> AvgPool on every step, attention on the whole sequence, then the LIF loop
    y = torch.nn.functional.avg_pool2d(layer.BNLayer(layer.conv2d(h.flatten(0, 1))), 2).unflatten(0, (4, 3))
    torch.testing.assert_close(layer(h), _lif_ma(layer.attention(y)), rtol=0, atol=0)
    f = m.FC0
    z = f.BNLayer(f.linear(layer(h).flatten(2).flatten(0, 1))).unflatten(0, (4, 3))
    torch.testing.assert_close(f(layer(h).flatten(2)), _lif_ma(f.attention(z)), rtol=0, atol=0)
    torch.testing.assert_close(m(x), m.FC1(m.FC0(layer(h).flatten(2))).mean(0), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------
# memory: the pool after BatchNorm keeps only its input's shape (docs/ma_snn.md "Memory of the backward")


def _lean_pool_run(backend, lean):
    torch.manual_seed(0)
    m = _tiny_masnn(channels=(8, 8, 16), pools=(1, 2, 2), input_size=9, layout="TB", backend=backend).train()
    with torch.no_grad():  # every layer fires on this input
        for bn in (mod for mod in m.modules() if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)):
            bn.weight.fill_(1.5)
    for i in range(3):
        layer = getattr(m, f"convAttLIF{i}")
        if layer.pooling_kernel_size > 1:
            assert layer.pooling.lean == (backend != "torch")
            layer.pooling.lean = lean
    x = torch.randn(4, 3, 2, 9, 9, generator=torch.Generator().manual_seed(3)).requires_grad_()
    out = m(x)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(4))).sum().backward()
    return m, out, x.grad


@pytest.mark.parametrize("backend", ["auto", pytest.param("triton", marks=pytest.mark.triton)])
def test_masnn_lean_pool_changes_no_number(backend):
    """The same network with the lean pools and with nn.AvgPool2d's own backward (odd 9 x 9 frames: the last row
    and column of every pooled map get no gradient): output, input and parameter gradients, running statistics
    bit for bit."""
    assert_same_training_step(
        _lean_pool_run(backend, True), _lean_pool_run(backend, False), lambda n: n.endswith("conv2d.weight")
    )


@pytest.mark.parametrize("backend", ["auto", pytest.param("triton", marks=pytest.mark.triton)])
def test_masnn_pooled_layers_keep_no_batchnorm_output(backend):
    """bench.memory's census of a tiny MASNN: off the eager path the pooled layers hold no BatchNorm output; the
    one unpooled layer (its attention reads BatchNorm's output) still does; the eager path keeps nn.AvgPool2d."""
    from bench.memory import saved_bytes

    def census(b):
        torch.manual_seed(0)
        m = _tiny_masnn(channels=(8, 8, 16), pools=(1, 2, 2), input_size=8, layout="TB", backend=b)
        return saved_bytes(m, torch.randn(4, 3, 2, 8, 8))

    fused, eager = census(backend), census("torch")
    first_bn = 4 * 3 * 8 * 8 * 8 * 4  # convAttLIF0's BatchNorm output [T * B, 8, 8, 8], fp32
    pooled_bn = 4 * 3 * (8 * 8 * 8 + 16 * 4 * 4) * 4  # convAttLIF1 / 2's, before their pools
    fc_bn = 4 * 3 * (16 + 3) * 4  # FC0 / FC1's BatchNorm1d outputs, read by their TA
    assert fused["bn_outputs"] == first_bn + fc_bn
    assert eager["bn_outputs"] == first_bn + pooled_bn + fc_bn
