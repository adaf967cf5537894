"""The networks of snnkernels.models: official state-dict keys and shapes, layouts, backends, errors, and a
smoke run of examples/train_digits.py.

The "official-style" modules below are written here from docs/tcja_dta.md "DTA" and the official
attribute names (MnJnKIM/DTA-SNN models/layers.py, DTA.py, TXA.py, TNA.py), independently of
snnkernels.models: their keys, shapes and forward are what an official checkpoint and the official
forward give. The key counts of the whole networks (414 for DTA_SNN_18, 777 for DTA_SNN_34, 36 and 62
for the TCJA nets) were read off the official code run on CPU (torch 2.13), where the outputs of our
networks also matched the official ones exactly for the same weights and input.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnkernels.backends import BackendUnavailableError
from snnkernels.models import (
    CIFAR10_DVS,
    DTA_SNN_18,
    DTA_SNN_34,
    DVS128_GESTURE,
    PRESETS,
    TCJA_CIFAR10DVS,
    TCJA_DVS128,
    MSResNet,
    resolved_backends,
)
from snnkernels.surrogate import ATan, Triangle

from official_tcja_dta import OfficialStyleDTA

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------------------
# Official-style DTA-SNN pieces (from docs/tcja_dta.md; attribute names as the official code)


class _OffPerStep(nn.Module):  # SeqToANNContainer with one layer: key prefix "module."
    def __init__(self, layer):
        super().__init__()
        self.module = layer

    def forward(self, x):
        return self.module(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class _OffTdBN(nn.Module):  # tdBatchNorm: the same BN as "bn" and "seqbn.module"
    def __init__(self, c):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)
        self.seqbn = _OffPerStep(self.bn)

    def forward(self, x):
        return self.seqbn(x)


class _OffTd(nn.Module):  # tdLayer
    def __init__(self, layer, bn=None):
        super().__init__()
        self.layer = _OffPerStep(layer)
        self.bn = bn

    def forward(self, x):
        x = self.layer(x)
        return x if self.bn is None else self.bn(x)


def _tet_lif(x):  # LIF-TET over dim 1 of [B, T, ...]: m = 0.5 m + x, fire on m > 1, hard reset
    m, out = 0.0, []
    for t in range(x.shape[1]):
        m = 0.5 * m + x[:, t]
        s = (m > 1.0).to(x.dtype)
        m = (1 - s) * m
        out.append(s)
    return torch.stack(out, 1)


class _OffBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = _OffTdBN(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = _OffTdBN(cout)
        self.downsample = downsample
        self.stride = stride
        self.conv1_s = _OffTd(self.conv1, self.bn1)
        self.conv2_s = _OffTd(self.conv2, self.bn2)

    def forward(self, x):
        out = self.conv2_s(_tet_lif(self.conv1_s(_tet_lif(x))))
        return out + (x if self.downsample is None else self.downsample(x))


class _OffStemDTABlock(nn.Module):
    """The first part of the official MS_ResNet (DTA_SNN_18): input conv + tdBN, DTA, layer1's first block."""

    def __init__(self, T, in_channels=3):
        super().__init__()
        self.input_conv = _OffTd(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), _OffTdBN(64))
        down = _OffTd(nn.Conv2d(64, 128, 1, 1, bias=False), _OffTdBN(128))
        self.layer1 = nn.Sequential(_OffBlock(64, 128, 1, down))
        self.encoding = OfficialStyleDTA(T, 64)

    def forward(self, images):  # [B, 3, H, W], repeated over T as the official add_dimention does
        x = self.input_conv(images.unsqueeze(1).repeat(1, self.encoding.T_XA.conv_t.in_channels, 1, 1, 1))
        return self.layer1(self.encoding(x, _tet_lif(x)))


def _shapes(state: dict, prefixes: tuple[str, ...]) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in state.items() if k.startswith(prefixes)]


def test_dta_snn_18_keys_and_shapes_match_official_definition():
    T = 4
    ours = DTA_SNN_18(num_classes=10, time_step=T).state_dict()
    official = _OffStemDTABlock(T).state_dict()
    prefixes = ("input_conv.", "encoding.", "layer1.0.")
    assert _shapes(ours, prefixes) == _shapes(official, prefixes)  # same keys, same order, same shapes
    assert len(ours) == 414  # the official DTA_SNN_18's count, duplicate BN / conv keys included
    assert sum(p.numel() for p in DTA_SNN_18(num_classes=10, time_step=6).parameters()) == 12_993_336
    assert ours["fc.layer.module.weight"].shape == (10, 512)
    dvs = DTA_SNN_18(num_classes=10, time_step=T, dvs=True).state_dict()
    assert dvs["input_conv.layer.module.weight"].shape == (64, 2, 3, 3)


def test_dta_snn_34_keys():
    model = DTA_SNN_34(num_classes=1000, time_step=6)
    state = model.state_dict()
    assert len(state) == 777 and sum(p.numel() for p in model.parameters()) == 22_288_918
    assert state["conv1.weight"].shape == state["conv1_s.layer.module.weight"].shape == (64, 3, 7, 7)
    assert "bn1.seqbn.module.running_var" in state and "layer0.2.conv2_s.bn.bn.weight" in state
    assert state["fc1_s.layer.module.weight"].shape == (1000, 512)
    assert state["encoding.T_NA.encoding.0.weight"].shape == (384, 384, 1, 1)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")  # the official T_XA's conv_c
def test_official_checkpoint_loads_and_forward_matches_official_definition():
    """An official-style state dict loads with strict=True (missing only what the partial model lacks), and
    our stem + DTA + first block compute what the official-style forward computes on it."""
    T, B = 3, 2
    official = _OffStemDTABlock(T)
    model = DTA_SNN_18(num_classes=10, time_step=T, backend="torch")
    result = model.load_state_dict(official.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert all(k.startswith(("layer1.1", "layer1.2", "layer2", "layer3", "fc.")) for k in result.missing_keys)
    images = torch.randn(B, 3, 6, 5)
    want = official(images)  # [B, T, 128, 6, 5]
    x = model._input(images)  # our internals run in [T, B, ...]
    got = model.layer1[0](model.encoding(x, model.LIF(x)))
    torch.testing.assert_close(got.transpose(0, 1), want, rtol=1e-5, atol=1e-5)


def _expected_tcja_keys(conv_at: list[int], tcja_at: list[int], bias: bool, fc: list[str]) -> list[str]:
    keys = []
    for i in sorted(conv_at + tcja_at):
        if i in tcja_at:
            keys += [f"conv.{i}.conv.weight", f"conv.{i}.conv_c.weight"]
            continue
        keys += [f"conv.{i}.0.weight"] + ([f"conv.{i}.0.bias"] if bias else [])
        keys += [f"conv.{i}.1.{n}" for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    return keys + fc


def test_tcja_nets_keys_and_shapes_match_official_scripts():
    # Sequential indices of the official CextNet (dvs128.py) and VGGNet (cifar10dvs.py)
    dvs = TCJA_DVS128().state_dict()
    assert list(dvs) == _expected_tcja_keys([0, 3, 6, 9, 13], [11, 15], False, ["fc.2.0.weight", "fc.5.0.weight"])
    assert dvs["conv.11.conv.weight"].shape == (20, 20, 4) and dvs["conv.15.conv_c.weight"].shape == (128, 128, 4)
    assert dvs["fc.2.0.weight"].shape == (512, 2048) and dvs["fc.5.0.weight"].shape == (110, 512)
    c10 = TCJA_CIFAR10DVS().state_dict()
    assert list(c10) == _expected_tcja_keys(
        [1, 3, 6, 8, 11, 13, 17, 19], [15, 21], True, ["fc.1.0.weight", "fc.1.0.bias"]
    )
    assert c10["conv.21.conv.weight"].shape == (10, 10, 4) and c10["conv.15.conv_c.weight"].shape == (512, 512, 4)
    assert c10["conv.1.0.weight"].shape == (64, 2, 3, 3) and c10["fc.1.0.weight"].shape == (10, 4608)
    assert (len(dvs), len(c10)) == (36, 62)


def test_tcja_presets():
    assert PRESETS["dvs128_gesture"] is DVS128_GESTURE and PRESETS["cifar10_dvs"] is CIFAR10_DVS
    assert (DVS128_GESTURE.T, CIFAR10_DVS.T) == (20, 10)
    lif = TCJA_DVS128(channels=8, T=3).conv[1]
    assert isinstance(lif.surrogate_function, ATan) and lif.tau == 2.0 and lif.detach_reset
    assert isinstance(TCJA_CIFAR10DVS(T=3).conv[2].surrogate_function, Triangle)


# ---------------------------------------------------------------------------------------------------------
# Shapes, layouts, backends


def _small_dta(backend="auto", dvs=False, layout="BT", stages=2) -> MSResNet:
    """A shrunken DTA-SNN (same code as DTA_SNN_18): T = 3, 5 classes, 1-channel input."""
    layers, widths, strides = ((1, 1), (8, 16), (1, 2)) if stages == 2 else ((2, 1, 1), (8, 8, 16), (1, 1, 2))
    return MSResNet(
        layers,
        5,
        3,
        True,
        dvs,
        in_channels=1,
        stem_channels=8,
        widths=widths,
        strides=strides,
        layout=layout,
        backend=backend,
    )


def test_dta_snn_shapes_and_layouts():
    T, B = 3, 2
    bt, tb = _small_dta().eval(), _small_dta(layout="TB").eval()
    tb.load_state_dict(bt.state_dict())
    images = torch.randn(B, 1, 8, 8)
    images_before = images.clone()
    y = bt(images)
    assert y.shape == (B, T, 5)
    assert torch.equal(images, images_before)  # the official add_dimention modified its input in place
    torch.testing.assert_close(tb(images), y.transpose(0, 1), rtol=0, atol=0)

    dvs_bt, dvs_tb = _small_dta(dvs=True).eval(), _small_dta(dvs=True, layout="TB").eval()
    dvs_tb.load_state_dict(dvs_bt.state_dict())
    frames = torch.rand(B, T, 1, 8, 8)
    y = dvs_bt(frames)
    assert y.shape == (B, T, 5)
    torch.testing.assert_close(dvs_tb(frames.transpose(0, 1)), y.transpose(0, 1), rtol=0, atol=0)

    no_dta = MSResNet((1,), 5, T, False, in_channels=1, stem_channels=8, widths=(8,), strides=(2,))
    assert no_dta.encoding is None and no_dta(images).shape == (B, T, 5)


def test_tcja_nets_shapes_and_layouts():
    T, B = 3, 2
    net = TCJA_DVS128(channels=4, T=T, num_classes=11).eval()
    assert net(torch.rand(B, T, 2, 128, 128)).shape == (B, 11)
    bt = TCJA_CIFAR10DVS(num_classes=10, T=T).eval()
    tb = TCJA_CIFAR10DVS(num_classes=10, T=T, layout="TB").eval()
    tb.load_state_dict(bt.state_dict())
    frames = 3 * torch.rand(B, T, 2, 12, 12)
    y = bt(frames)
    assert y.shape == (B, T, 10)
    torch.testing.assert_close(tb(frames.transpose(0, 1)), y.transpose(0, 1), rtol=0, atol=0)


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _run(model: nn.Module, x: torch.Tensor, g: torch.Tensor | None):
    x = x.clone().requires_grad_()
    y = model(x)
    g = torch.randn_like(y) if g is None else g
    (y * g).sum().backward()
    return y.detach(), x.grad, _grads(model), g


def _assert_grads_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        # relative to the tensor's scale: a conv bias before a BN has a zero gradient up to noise
        scale = max(a[name].abs().max().item(), b[name].abs().max().item(), 1e-6)
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-4 * scale, msg=name)


@pytest.mark.parametrize(
    "make, shape",
    [
        pytest.param(lambda b: _small_dta(b, stages=3), (2, 1, 8, 8), id="MSResNet-static"),
        pytest.param(lambda b: _small_dta(b, dvs=True), (2, 3, 1, 8, 8), id="MSResNet-dvs"),
        pytest.param(
            lambda b: TCJA_DVS128(channels=4, T=2, dropout=0.0, backend=b), (1, 2, 2, 128, 128), id="TCJA_DVS128"
        ),
    ],
)
def test_backend_torch_and_auto_agree(make, shape):
    """ "auto" (native C++ neurons on a CPU where snnkernels._C is built) changes the speed, not the numbers:
    the same outputs and gradients in training mode."""
    torch.manual_seed(0)
    eager = make("torch")
    torch.manual_seed(0)
    fused = make("auto")
    x = 3 * torch.rand(shape)
    y0, dx0, g0, dy = _run(eager, x, None)
    y1, dx1, g1, _ = _run(fused, x, dy)
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dx1, dx0, rtol=1e-4, atol=1e-4 * dx0.abs().max().item() + 1e-7)
    _assert_grads_close(g1, g0)
    for name, buf in eager.state_dict().items():  # BatchNorm running statistics too
        torch.testing.assert_close(fused.state_dict()[name], buf, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.triton
def test_backend_triton_agrees_with_torch():
    torch.manual_seed(0)
    eager = _small_dta("torch")
    torch.manual_seed(0)
    fused = _small_dta("triton")
    x = torch.rand(2, 1, 6, 6)
    y0, dx0, g0, dy = _run(eager, x, None)
    y1, dx1, g1, _ = _run(fused, x, dy)
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx1, dx0, rtol=1e-4, atol=1e-4 * dx0.abs().max().item() + 1e-7)
    _assert_grads_close(g1, g0)


def test_resolved_backends_report():
    model = _small_dta("torch")
    found = resolved_backends(model, torch.rand(2, 1, 8, 8))
    assert found["encoding"] == "torch" and found["LIF"] == "torch" and found["layer1.0.spike"] == "torch"
    assert model.training  # the report restores the mode
    auto = resolved_backends(_small_dta("auto"), torch.rand(2, 1, 8, 8))
    assert auto["encoding"] in ("torch", "triton") and auto["LIF"] in ("torch", "native", "triton", "cupy")
    # "native" for a network: neurons native, the attention layers (Triton kernels only) on "auto"
    native = _small_dta("native") if auto["LIF"] == "native" else None
    if native is not None:
        assert native.encoding.backend == "auto" and native.LIF.backend == "native"


def test_autocast_bf16_training_step():
    model = _small_dta("auto")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(torch.rand(2, 1, 8, 8)).mean(1), torch.tensor([0, 3]))
    loss.backward()
    assert math.isfinite(loss.item())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    "make, x",
    [
        pytest.param(lambda: _small_dta(), torch.rand(2, 1, 8, 8), id="MSResNet"),
        pytest.param(lambda: TCJA_DVS128(channels=4, T=2), torch.rand(1, 2, 2, 128, 128), id="TCJA_DVS128"),
    ],
)
def test_state_dict_round_trip(make, x):
    assert_state_dict_round_trip(make, x)


def assert_state_dict_round_trip(make: Callable[[], nn.Module], x: torch.Tensor) -> None:
    """``make()``'s state dict, saved and loaded with ``weights_only=True`` / ``strict=True`` into a second
    ``make()`` built from another seed, gives the same eval output to the bit (the MA-SNN and STAA tests use it
    too)."""
    model = make()
    with torch.no_grad():
        model(x)  # one training-mode forward moves the BatchNorm running statistics off their init
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(12345)
    fresh = make()
    fresh.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    model.eval(), fresh.eval()
    torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------
# Errors


def test_clear_errors():
    with pytest.raises(ValueError, match=r"built for T = 4 .* dim 0 has 4: is the input in the other layout"):
        DTA_SNN_18(time_step=4, dvs=True)(torch.rand(4, 2, 2, 8, 8))  # [T, B] given to a [B, T] model
    with pytest.raises(ValueError, match=r"built for T = 4 time steps but the input has 3 at dim 0"):
        DTA_SNN_18(time_step=4, dvs=True, layout="TB")(torch.rand(3, 2, 2, 8, 8))
    with pytest.raises(ValueError, match=r"takes images \[B, 3, H, W\].*dvs=True"):
        DTA_SNN_18(time_step=4)(torch.rand(2, 4, 3, 8, 8))
    with pytest.raises(ValueError, match=r"must have shape \[B, T, 2, H, W\]"):
        DTA_SNN_18(time_step=4, dvs=True)(torch.rand(2, 2, 8, 8))
    with pytest.raises(ValueError, match=r"2 input channels but the input has 3"):
        DTA_SNN_18(time_step=2, dvs=True)(torch.rand(1, 2, 3, 8, 8))
    with pytest.raises(ValueError, match="layout must be"):
        DTA_SNN_18(layout="NCHW")
    with pytest.raises(ValueError, match="backend must be one of"):
        DTA_SNN_18(backend="fast")
    with pytest.raises(ValueError, match="time_step must be a positive int"):
        DTA_SNN_18(time_step=0)
    for make in (TCJA_CIFAR10DVS, TCJA_DVS128):
        with pytest.raises(ValueError, match=f"{make.__name__}: T must be a positive int"):
            make(T=0)
    with pytest.raises(ValueError, match=r"built for T = 3 .* has 5 at dim 1"):
        TCJA_CIFAR10DVS(T=3)(torch.rand(2, 5, 2, 8, 8))
    with pytest.raises(ValueError, match="2 polarity channels"):
        TCJA_CIFAR10DVS(T=3)(torch.rand(2, 3, 1, 8, 8))
    with pytest.raises(ValueError, match="takes 128x128 frames"):
        TCJA_DVS128(channels=4, T=2)(torch.rand(1, 2, 2, 64, 64))


def test_explicit_backend_that_cannot_run_raises():
    from snnkernels.backends import HAS_TRITON, triton_interpreter_enabled

    if HAS_TRITON and (torch.cuda.is_available() or triton_interpreter_enabled()):
        pytest.skip("Triton can run here")
    with pytest.raises(BackendUnavailableError):
        _small_dta("triton")(torch.rand(1, 1, 8, 8))


# ---------------------------------------------------------------------------------------------------------
# The training example


def _load_example():
    spec = importlib.util.spec_from_file_location("train_digits_example", ROOT / "examples" / "train_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_digits_example_smoke(tmp_path):
    pytest.importorskip("sklearn")
    example = _load_example()
    threads = torch.get_num_threads()
    results = example.main(
        [
            "--epochs",
            "1",
            "--subset",
            "64",
            "--batch-size",
            "32",
            "--T",
            "2",
            "--no-isolate",
            "--no-progress",
            "--quiet",
            "--out",
            str(tmp_path),
        ]
    )
    assert torch.get_num_threads() == threads
    stem = tmp_path / "digits_dta_static_T2"
    for suffix in (".json", ".csv", ".png"):
        assert stem.with_suffix(suffix).is_file()
    saved = json.loads(stem.with_suffix(".json").read_text())
    assert saved["comparison"] == results["comparison"]
    runs = saved["runs"]
    assert set(runs) == {"torch", "auto"}
    for run in runs.values():
        assert run["steps"] == 2 and all(math.isfinite(v) for v in run["step_losses"])
        assert 0.0 <= run["final_test_acc"] <= 1.0
    assert set(runs["torch"]["resolved_backends"].values()) == {"torch"}
    # same seed, same batches: the first step's loss is the same on both backends
    assert abs(runs["torch"]["step_losses"][0] - runs["auto"]["step_losses"][0]) < 1e-5
    assert saved["comparison"]["max_abs_diff_step_loss"] < 1e-2


def test_train_digits_synthetic_cifar_code_path(tmp_path):
    """The GPU timing mode (--synthetic-cifar), at a tiny size: one backend, one step."""
    example = _load_example()
    args = example.parse_args(
        [
            "--synthetic-cifar",
            "--image-size",
            "4",
            "--batch-size",
            "2",
            "--T",
            "1",
            "--synthetic-steps",
            "1",
            "--synthetic-warmup",
            "0",
            "--out",
            str(tmp_path),
        ]
    )
    args.isolated = False
    threads = torch.get_num_threads()
    try:
        run = example.synthetic_cifar_one(args, "torch")
    finally:
        torch.set_num_threads(threads)
    assert run["steps_timed"] == 1 and math.isfinite(run["step_losses"][0])
    assert set(run["resolved_backends"].values()) == {"torch"} and run["saved_for_backward_mib_one_step"] > 0
