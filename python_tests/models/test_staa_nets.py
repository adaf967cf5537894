"""STAA-SNN ResNet-20 of snnkernels.models.staa_nets: architecture, layouts, T and argument checks,
gradients, the staa=False baseline, TSRD reproducibility, resolved_backends and checkpoints.

The architecture facts (channels, strides, the STAA layers' sizes) are written here from the STAA authors'
sibling code (yukairong/FSTA-SNN @ ec456f5, models/resnet.py ``ResNet20``), independently of the module.
CPU, float32, tiny shrunken nets (the full ResNet-20 is only built and run forward once).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snnkernels.backends import BackendUnavailableError
from snnkernels.models import STAA_ResNet20, STAAResNet, resolved_backends
from snnkernels.nn import LeakyNode, STAALIFNode
from snnkernels.surrogate import Rectangle

from test_models import assert_state_dict_round_trip

# With the paper's initial M = 2, N = 0.1 a fresh net barely fires (see test_default_init_is_silent_at_T1);
# these constants (U = 0.5 H + X) make every layer fire, so gradients and TSRD have something to act on.
ACTIVE = {"m_init": 0.5, "n_init": 1.0}


def _tiny(**kw) -> STAAResNet:
    args = dict(
        layers=(1, 1),
        num_classes=3,
        T=2,
        input_size=8,
        stem_channels=8,
        widths=(8, 16),
        strides=(1, 2),
        staa_options=ACTIVE,
        backend="torch",
    )
    args.update(kw)
    return STAAResNet(**args)


def _staa_layers(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, STAALIFNode)]


def _randomise_step_attention(model, scale=2.0):
    """fc2 starts at 0 (step attention = plain addition); a random fc2 makes TSRD change the output."""
    with torch.no_grad():
        for _, layer in _staa_layers(model):
            layer.sa.fc2.weight.normal_(0.0, scale)


# ---------------------------------------------------------------------------------------------------------
# architecture (from FSTA-SNN ResNet20: 3-conv 64 stem, AvgPool2d(2), stages 64/128/256/512, 2 blocks each)


def test_resnet20_architecture():
    m = STAA_ResNet20()  # T = 4, CIFAR 32x32
    sd = m.state_dict()
    convs = {
        k: tuple(v.shape)
        for k, v in sd.items()
        if k.endswith("weight") and v.dim() == 4 and ".lif" not in k and not k.startswith("stem.1") and "gc." not in k
    }
    assert convs["stem.0.0.weight"] == (64, 3, 3, 3)
    assert convs["stem.2.0.weight"] == convs["stem.4.0.weight"] == (64, 64, 3, 3)
    for stage, (cin, cout) in enumerate([(64, 64), (64, 128), (128, 256), (256, 512)], start=1):
        assert convs[f"layer{stage}.0.conv1.0.weight"] == (cout, cin, 3, 3)
        assert convs[f"layer{stage}.1.conv2.0.weight"] == (cout, cout, 3, 3)
        assert (f"layer{stage}.0.downsample.1.weight" in convs) == (stage > 1)
    assert convs["layer2.0.downsample.1.weight"] == (128, 64, 1, 1)
    three_by_three = [k for k, s in convs.items() if s[-1] == 3]
    assert len(three_by_three) + 1 == 20  # 19 conv3x3 + the FC = ResNet-20
    assert tuple(sd["fc.weight"].shape) == (10, 512)
    layers = _staa_layers(m)
    assert len(layers) == 19 and all(layer.T == 4 for _, layer in layers)
    # H, W of every STAA layer: 32 in the stem, then FSTA's c2wh map 64 -> 16, 128 -> 8, 256 -> 4, 512 -> 2
    sizes = {n: (layer.C, layer.H, layer.W) for n, layer in layers}
    assert sizes["stem.1"] == sizes["stem.5"] == (64, 32, 32)
    assert sizes["layer1.0.lif1"] == (64, 16, 16) and sizes["layer2.0.lif1"] == (128, 8, 8)
    assert sizes["layer3.1.lif2"] == (256, 4, 4) and sizes["layer4.0.lif2"] == (512, 2, 2)
    assert tuple(sd["layer4.1.lif2.pe.weight"].shape) == (4, 512, 2, 2)
    assert sum(p.numel() for p in m.parameters()) == 14_301_229
    # the sibling's init: conv N(0, 2 / (k * k * out_channels)), FC N(0, (1 / in_features)^2) with zero bias
    w = sd["layer4.1.conv2.0.weight"]
    assert abs(w.std().item() / (2 / (9 * 512)) ** 0.5 - 1) < 0.01
    assert abs(sd["fc.weight"].std().item() * 512 - 1) < 0.05 and sd["fc.bias"].eq(0).all()
    pool = m.layer2[0].downsample[0]
    assert (pool.kernel_size, pool.stride, pool.ceil_mode, pool.count_include_pad) == (2, 2, True, False)


def test_resnet20_forward_small_input():
    m = STAA_ResNet20(num_classes=7, T=1, input_size=16).eval()
    with torch.no_grad():
        assert m(torch.randn(2, 3, 16, 16)).shape == (2, 7)


def test_default_init_is_silent_at_T1():
    """Documented property of the reconstruction: with M = 2, N = 0.1 the first step charges U = 0.1 X, so
    a stem neuron needs a BN output of 10 to fire; at T = 1 a fresh default net emits no spike at all."""
    m = _tiny(T=1, staa_options=None)
    spikes = []
    m.stem[1].register_forward_hook(lambda mod, i, o: spikes.append(o))
    y = m(torch.randn(4, 3, 8, 8))
    assert spikes[0].sum() == 0
    torch.testing.assert_close(y, m.fc.bias.expand(4, -1))


def _conv_bn(seq, x):
    """conv + eval-mode BatchNorm on every step, written with torch.nn.functional."""
    conv, bn = seq
    y = F.conv2d(x.flatten(0, 1), conv.weight, stride=conv.stride, padding=conv.padding)
    y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    return y.unflatten(0, x.shape[:2])


def _block(block, x):
    out = _conv_bn(block.conv2, block.lif1(_conv_bn(block.conv1, x)))
    if block.downsample is None:
        return block.lif2(out + x)
    pool, conv, bn = block.downsample
    s = pool.stride
    short = F.avg_pool2d(x.flatten(0, 1), s, s, ceil_mode=True, count_include_pad=False).unflatten(0, x.shape[:2])
    return block.lif2(out + _conv_bn((conv, bn), short))


def test_forward_written_out():
    """stem (3 x conv-BN-neuron) -> AvgPool2d(2) -> blocks -> global average pool -> FC per step -> mean T."""
    torch.manual_seed(0)
    m = _tiny(layout="TB", staa_options=None).eval()
    with torch.no_grad():
        for bn in (mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(1e-3, 4e-3)  # small variances: the paper's N = 0.1 still fires
    x = torch.randn(2, 3, 3, 8, 8)
    h = x
    for i in (0, 2, 4):
        h = m.stem[i + 1](_conv_bn(m.stem[i], h))
    h = F.avg_pool2d(h.flatten(0, 1), 2).unflatten(0, h.shape[:2])
    for block in (*m.layer1, *m.layer2):
        h = _block(block, h)
    assert h.sum() > 0
    expected = F.linear(h.mean(dim=(3, 4)), m.fc.weight, m.fc.bias).mean(0)
    torch.testing.assert_close(m(x), expected, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------
# layouts, static input, T checks


def test_forward_shapes_and_layouts():
    torch.manual_seed(0)
    bt = _tiny(seed=0)  # training mode: BN on batch statistics (a fresh net in eval mode is silent)
    tb = _tiny(layout="TB", seed=0)
    tb.load_state_dict(bt.state_dict())
    seq = torch.randn(3, 2, 3, 8, 8)  # [B, T, C, H, W]
    y = bt(seq)
    assert y.shape == (3, 3) and y.std() > 0
    torch.testing.assert_close(tb(seq.transpose(0, 1)), y, rtol=0, atol=0)
    img = torch.randn(3, 3, 8, 8)
    rep = img.unsqueeze(1).expand(-1, 2, -1, -1, -1)
    tb.load_state_dict(bt.state_dict())
    torch.testing.assert_close(bt(img), tb(rep.transpose(0, 1)))
    # a static image is convolved once, but its BN still counts T * B samples (the running variance)
    torch.testing.assert_close(bt.stem[0][1].running_var, tb.stem[0][1].running_var)


def test_T_and_shape_errors():
    m = _tiny()
    with pytest.raises(ValueError, match=r"built for T = 2 time steps but the input has 3 at dim 1"):
        m(torch.randn(4, 3, 3, 8, 8))
    with pytest.raises(ValueError, match="other layout"):
        m(torch.randn(2, 4, 3, 8, 8))  # [T, B] fed to a "BT" model
    with pytest.raises(ValueError, match=r"built for T = 2 .* has 4 at dim 0"):
        _tiny(layout="TB")(torch.randn(4, 2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"frames \[3, 8, 8\]"):
        m(torch.randn(2, 2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"images \[B, 3, 8, 8\]"):
        m(torch.randn(2, 2, 8, 8))
    with pytest.raises(ValueError, match="must have shape"):
        m(torch.randn(3, 8, 8))


def test_bad_arguments():
    cases = [
        (dict(layout="NCHW"), ValueError, "layout must be"),
        (dict(backend="fast"), ValueError, "backend must be one of"),
        (dict(T=0), ValueError, "T must be a positive int"),
        (dict(num_classes=0), ValueError, "num_classes must be a positive int"),
        (dict(widths=(8,)), ValueError, "one entry per stage"),
        (dict(strides=(1, 0)), ValueError, "each stride must be a positive int"),
        (dict(input_size=1), ValueError, "too small"),
        (dict(input_size=(8, 8, 8)), ValueError, r"int or \(H, W\)"),
        (dict(staa="yes"), ValueError, "staa must be True or False"),
        (dict(seed="1"), ValueError, "seed must be an int"),
        (dict(staa_options=[("drop_prob", 0.1)]), TypeError, "staa_options must be a dict"),
        (dict(staa_options={"dropout": 0.1}), ValueError, "unknown STAA option 'dropout'.*drop_prob"),
        (dict(staa_options={"seed": 1}), ValueError, "may not set 'seed'.*'seed'"),
        (dict(staa_options={"H": 4}), ValueError, "may not set 'H'.*'input_size'"),
        (dict(staa_options={"layout": "BT"}), ValueError, "may not set 'layout'"),
        (dict(staa_options={"pe_shape": "HW"}), ValueError, "pe_shape"),
        (dict(staa_options={"reduction": 32}), ValueError, "reduction"),
        (dict(staa=False, staa_options={"coefficient_map": "tanh"}), ValueError, "coefficient_map='raw' only"),
        (dict(staa=False, staa_options={"coefficient_shape": "CHW"}), ValueError, "'C' or 'scalar'"),
        (dict(backend="native"), BackendUnavailableError, "STAALIFNode"),
    ]
    for kw, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            _tiny(**kw)


# ---------------------------------------------------------------------------------------------------------
# gradients


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    m = _tiny()
    y = m(torch.randn(4, 3, 8, 8))
    torch.nn.functional.cross_entropy(y, torch.tensor([0, 1, 2, 0])).backward()
    neurons = [n for n, _ in _staa_layers(m)]
    for n, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
        plain = not any(n.startswith(prefix + ".") for prefix in neurons)
        if plain and p.dim() in (2, 4):  # every conv and the FC
            assert p.grad.abs().max() > 0, n
    # the STAA parts that are live at init (GC's first convs and the SA's fc1 sit behind zero-initialised
    # convs, so their gradient is 0 until those move)
    for n, layer in _staa_layers(m):
        for name in ("M", "N", "pe.weight", "gc.channel_add_conv.3.weight", "sa.fc2.weight"):
            assert layer.get_parameter(name).grad.abs().max() > 0, f"{n}.{name}"


def test_gradients_finite_with_default_options():
    m = _tiny(staa_options=None, T=4)
    m(torch.randn(2, 3, 8, 8)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


# ---------------------------------------------------------------------------------------------------------
# the staa=False baseline: the same network, only the neurons differ


def _outside(model, neurons):
    """Every module that is not a neuron or inside one, by name and type."""
    return {n: type(m) for n, m in model.named_modules() if not any(n == p or n.startswith(p + ".") for p in neurons)}


def test_baseline_differs_only_in_the_neuron():
    torch.manual_seed(0)
    staa, base = _tiny(), _tiny(staa=False)
    neurons = [n for n, _ in _staa_layers(staa)]
    assert len(neurons) == 7 and all(isinstance(base.get_submodule(n), LeakyNode) for n in neurons)
    assert _outside(base, neurons) == _outside(staa, neurons)
    in_neuron = lambda key: any(key.startswith(p + ".") for p in neurons)  # noqa: E731
    shared = {k: v for k, v in staa.state_dict().items() if not in_neuron(k)}
    base_sd = base.state_dict()
    assert {k for k in base_sd if in_neuron(k)} == {f"{p}.{c}" for p in neurons for c in ("decay", "input_gain")}
    assert {k: v.shape for k, v in base_sd.items() if not in_neuron(k)} == {k: v.shape for k, v in shared.items()}
    for p in neurons:  # the same constants: the adaptive LIF U = M H + N X, threshold 1, hard reset to 0
        node = base.get_submodule(p)
        assert node.decay.shape == node.input_gain.shape == (staa.get_submodule(p).C,)
        assert node.decay.eq(0.5).all() and node.input_gain.eq(1.0).all()
        assert (node.v_threshold, node.v_reset, node.strict_threshold, node.detach_reset) == (1.0, 0.0, False, False)
        assert repr(node.surrogate_function) == repr(Rectangle(1.0))
    base.load_state_dict(shared, strict=False)
    for bn in (m for net in (staa, base) for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.momentum = 1.0  # the training pass sets the running statistics, so eval mode is not silent
    x = torch.randn(3, 3, 8, 8)
    # a fresh STAA-LIF is the adaptive LIF (P = 0, GC's and SA's last weights 0): same output, also in training
    for mode in (True, False):
        staa.train(mode), base.train(mode)
        y = staa(x)
        assert y.std() > 0
        torch.testing.assert_close(base(x), y, rtol=0, atol=0)
    with torch.no_grad():
        staa.stem[1].pe.weight.normal_()
    assert not torch.allclose(staa(x), base(x))


def test_baseline_options():
    node = _tiny(staa=False, staa_options={"m_init": 0.75, "coefficient_shape": "scalar", "reduction": 2}).stem[1]
    assert node.decay.shape == () and node.decay.item() == 0.75 and node.input_gain.item() == pytest.approx(0.1)


# ---------------------------------------------------------------------------------------------------------
# TSRD: reproducible under a seed in training, off in eval


def _masks(model):
    return [layer.last_drop_mask for _, layer in _staa_layers(model)]


def test_tsrd_seeded_reproducible_in_training():
    torch.manual_seed(0)
    opts = {**ACTIVE, "drop_prob": 0.5}
    a = _tiny(seed=3, staa_options=opts)
    _randomise_step_attention(a)
    b = _tiny(seed=3, staa_options=opts)
    b.load_state_dict(a.state_dict())
    c = _tiny(seed=4, staa_options=opts)
    c.load_state_dict(a.state_dict())
    x = torch.randn(4, 3, 8, 8)
    ya, yb = a(x), b(x)
    c(x)  # draws its own masks
    torch.testing.assert_close(yb, ya, rtol=0, atol=0)
    ma, mb, mc = _masks(a), _masks(b), _masks(c)
    assert all(torch.equal(p, q) for p, q in zip(ma, mb, strict=True))
    assert any(not torch.equal(p, q) for p, q in zip(ma, mc, strict=True))  # another seed, other masks
    assert len({tuple(m.tolist()) for m in ma}) > 1  # layer i has seed + i: the layers do not share one mask
    assert [layer.seed for _, layer in _staa_layers(a)] == list(range(3, 3 + 7))
    a.manual_seed(3)  # restarts every layer's generator: the first draw again
    torch.testing.assert_close(a(x), ya, rtol=0, atol=0)
    assert all(torch.equal(p, q) for p, q in zip(_masks(a), ma, strict=True))


def test_tsrd_global_rng_without_seed():
    m = _tiny(staa_options={**ACTIVE, "drop_prob": 0.5})
    _randomise_step_attention(m)
    x = torch.randn(2, 3, 8, 8)
    outs = []
    for _ in range(2):
        torch.manual_seed(11)
        outs.append((m(x), _masks(m)))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=0, atol=0)
    assert all(torch.equal(p, q) for p, q in zip(outs[0][1], outs[1][1], strict=True))


def test_tsrd_off_in_eval():
    torch.manual_seed(0)
    always = _tiny(staa_options={**ACTIVE, "drop_prob": 1.0})
    _randomise_step_attention(always)
    never = _tiny(staa_options={**ACTIVE, "drop_prob": 0.0})
    never.load_state_dict(always.state_dict())
    x = torch.randn(3, 3, 8, 8)
    assert not torch.allclose(always(x), never(x))  # training: every step dropped vs none
    assert all(m.all() for m in _masks(always))
    always.eval(), never.eval()
    torch.testing.assert_close(always(x), never(x), rtol=0, atol=0)
    assert all(m is None for m in _masks(always))


# ---------------------------------------------------------------------------------------------------------
# resolved_backends and checkpoints


def test_resolved_backends_baseline():
    m = _tiny(staa=False)
    found = resolved_backends(m, torch.randn(2, 3, 8, 8))
    neurons = {n for n, mod in m.named_modules() if isinstance(mod, LeakyNode)}
    assert set(found) == neurons and set(found.values()) == {"torch"}
    assert m.training  # restored
    auto = resolved_backends(_tiny(staa=False, backend="auto"), torch.randn(2, 3, 8, 8))
    assert set(auto.values()) <= {"torch", "native", "triton", "cupy"} and len(auto) == 7


def test_resolved_backends_runs_on_staa_net():
    m = _tiny()
    found = resolved_backends(m, torch.randn(2, 3, 8, 8))
    assert isinstance(found, dict) and m.training


def test_resolved_backends_reports_staa_layers():
    m = _tiny()
    found = resolved_backends(m, torch.randn(2, 3, 8, 8))
    assert set(found) == {n for n, _ in _staa_layers(m)} and set(found.values()) == {"torch"}


@pytest.mark.parametrize("staa", [True, False])
def test_state_dict_round_trip_weights_only(staa):
    def make() -> STAAResNet:
        model = _tiny(staa=staa)
        if staa:
            _randomise_step_attention(model, 0.5)
        return model

    torch.manual_seed(1)
    assert_state_dict_round_trip(make, torch.randn(2, 3, 8, 8))
