"""SpikeConv1d / SpikeConv2d / SpikeLinear (docs/spike_pack.md): the plain layer's parameters and state_dict,
its output and EVERY gradient bit for bit (torch.equal) on odd shapes and every conv option, while autograd
holds only the packed input and the weight; under torch.compile (one graph), autocast bf16 / fp16 and
activation checkpointing alike.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from snnkernels.nn import SpikeConv1d, SpikeConv2d, SpikeLinear
from snnkernels.reference.spike_pack import packed_numel

from conftest import DEVICE, native_packing
from utils import saved_storages

BACKENDS = [
    native_packing(),
    pytest.param("triton", marks=pytest.mark.triton),
]
DTYPES = [torch.float32, torch.float64]
# (kwargs of the conv, input spatial size): stride, padding (numbers, "same" with an odd extra element,
# "valid"), dilation, groups, bias, padding modes
CONV2D = [
    (dict(kernel_size=3), (9, 11)),
    (dict(kernel_size=3, stride=2, padding=1), (9, 11)),
    (dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1), bias=False), (13, 7)),
    (dict(kernel_size=3, groups=3, padding=1), (7, 9)),
    (dict(kernel_size=4, padding="same", dilation=1), (7, 9)),
    (dict(kernel_size=3, padding="valid", bias=False), (7, 9)),
    (dict(kernel_size=3, padding=1, padding_mode="circular"), (7, 9)),
    (dict(kernel_size=3, padding=2, padding_mode="reflect", stride=2), (7, 9)),
    (dict(kernel_size=1), (5, 5)),
]
CONV1D = [
    (dict(kernel_size=3), 17),
    (dict(kernel_size=5, stride=2, padding=2, dilation=2, groups=3, bias=False), 19),
    (dict(kernel_size=2, padding="same"), 11),
    (dict(kernel_size=3, padding=1, padding_mode="replicate"), 13),
]


@pytest.fixture(autouse=True)
def _deterministic_cudnn(monkeypatch):
    """On CUDA, two runs of one conv backward agree bit for bit only with deterministic cuDNN algorithms."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)


def _spikes(*shape, dtype=torch.float32, p=0.4):
    return (torch.rand(shape, device=DEVICE) < p).to(dtype)


def _pair(cls_plain, cls_spike, *args, dtype=torch.float32, **kwargs):
    plain = cls_plain(*args, **kwargs).to(DEVICE, dtype)
    spike = cls_spike(*args, **kwargs).to(DEVICE, dtype)
    spike.load_state_dict(plain.state_dict())
    return plain, spike


def _assert_same_forward_and_grads(plain, spike, x, plain_input=lambda x: x, spike_call=None, **autocast):
    """Run both on copies of x with one output gradient (``spike_call`` runs ``spike``, compiled or
    checkpointed); every output, input and parameter gradient equal."""
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast(DEVICE, **autocast) if autocast else torch.autocast(DEVICE, enabled=False):
        out_plain, out_spike = plain(plain_input(a)), (spike if spike_call is None else spike_call)(b)
    if out_plain.shape != out_spike.shape:
        out_plain = out_plain.reshape(out_spike.shape)
    assert out_spike.dtype == out_plain.dtype
    assert torch.equal(out_spike, out_plain)
    grad = torch.randn_like(out_plain)
    out_plain.backward(grad)
    out_spike.backward(grad)
    assert torch.equal(b.grad, a.grad), "input gradient"
    for (name, p_plain), p_spike in zip(plain.named_parameters(), spike.parameters(), strict=True):
        assert torch.equal(p_spike.grad, p_plain.grad), name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(CONV2D)))
def test_conv2d_equals_nn_conv2d_bit_for_bit(backend, dtype, case):
    kwargs, (H, W) = CONV2D[case]
    plain, spike = _pair(nn.Conv2d, SpikeConv2d, 3, 6, dtype=dtype, **kwargs)
    spike.backend = backend
    # merged time-batch [T * B, C, H, W], then multi-step [T, B, C, H, W] against the plain conv on the merge
    _assert_same_forward_and_grads(plain, spike, _spikes(5, 3, H, W, dtype=dtype))
    plain.zero_grad(), spike.zero_grad()
    _assert_same_forward_and_grads(plain, spike, _spikes(3, 2, 3, H, W, dtype=dtype), lambda x: x.flatten(0, 1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(CONV1D)))
def test_conv1d_equals_nn_conv1d_bit_for_bit(backend, dtype, case):
    kwargs, L = CONV1D[case]
    plain, spike = _pair(nn.Conv1d, SpikeConv1d, 3, 9, dtype=dtype, **kwargs)
    spike.backend = backend
    _assert_same_forward_and_grads(plain, spike, _spikes(5, 3, L, dtype=dtype))
    plain.zero_grad(), spike.zero_grad()
    _assert_same_forward_and_grads(plain, spike, _spikes(3, 2, 3, L, dtype=dtype), lambda x: x.flatten(0, 1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(13,), (7, 13), (3, 5, 13), (3, 2, 5, 13)])
def test_linear_equals_nn_linear_bit_for_bit(backend, dtype, bias, shape):
    plain, spike = _pair(nn.Linear, SpikeLinear, 13, 11, bias=bias, dtype=dtype)
    spike.backend = backend
    _assert_same_forward_and_grads(plain, spike, _spikes(*shape, dtype=dtype))


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_on_a_column_major_input(backend):
    """A transposed 2-D input takes autograd's other mm branch; the layer takes it too."""
    plain, spike = _pair(nn.Linear, SpikeLinear, 13, 11)
    spike.backend = backend
    _assert_same_forward_and_grads(plain, spike, _spikes(13, 7).t())


def test_same_parameters_and_state_dict_as_the_plain_layers():
    for plain_cls, spike_cls, args in (
        (nn.Conv2d, SpikeConv2d, (3, 4, 3)),
        (nn.Conv1d, SpikeConv1d, (3, 4, 3)),
        (nn.Linear, SpikeLinear, (3, 4)),
    ):
        plain, spike = plain_cls(*args), spike_cls(*args)
        assert isinstance(spike, plain_cls)
        assert {k: v.shape for k, v in plain.state_dict().items()} == {
            k: v.shape for k, v in spike.state_dict().items()
        }
        spike.load_state_dict(plain.state_dict())  # strict: the same keys
        assert [n for n, _ in spike.named_parameters()] == [n for n, _ in plain.named_parameters()]


@pytest.mark.parametrize("backend", BACKENDS)
def test_autograd_holds_the_packed_input_and_the_weight_only(backend):
    conv = SpikeConv2d(3, 5, 3, padding=1, backend=backend).to(DEVICE)
    x = _spikes(3, 2, 3, 7, 9).requires_grad_()
    saved, _ = saved_storages(lambda: conv(x))
    n = x.numel()
    assert saved == {
        conv.weight.untyped_storage().data_ptr(): (torch.float32, conv.weight.numel() * 4),
        **{p: (torch.uint8, packed_numel(n)) for p, (dt, _) in saved.items() if dt == torch.uint8},
    }
    assert sum(dt == torch.uint8 for dt, _ in saved.values()) == 1


@pytest.mark.parametrize("layer", ["conv", "linear"])
def test_non_binary_input_raises(layer):
    mod = SpikeConv2d(3, 4, 3) if layer == "conv" else SpikeLinear(9, 4)
    x = _spikes(2, 3, 5, 9).to(DEVICE)
    x[1, 2, 4, 8] = 0.25
    with pytest.raises(ValueError, match=r"element \(1, 2, 4, 8\).* is 0.25"):
        mod.to(DEVICE)(x)
    mod.check = False  # the caller's promise: packed as x != 0, the forward unchanged
    mod(x)


def test_torch_backend_is_the_plain_layer_and_saves_the_input():
    conv = SpikeConv2d(3, 5, 3, backend="torch").to(DEVICE)
    x = _spikes(2, 3, 7, 9).requires_grad_()
    saved, _ = saved_storages(lambda: conv(x))
    assert x.untyped_storage().data_ptr() in saved
    with pytest.raises(ValueError, match="backend"):
        SpikeConv2d(3, 5, 3, backend="nope")


class _Net(nn.Module):
    """A spike -> conv -> linear stack with a nonlinearity that fires (its spikes feed the next layer)."""

    def __init__(self, conv_cls, linear_cls, **kw):
        super().__init__()
        self.conv = conv_cls(3, 4, 3, padding=1, **kw)
        self.fc = linear_cls(4 * 5 * 7, 6, **kw)

    def forward(self, x):
        y = self.conv(x)
        s = (y > 0).to(y.dtype) + (y - y.detach())  # spikes forward, a straight-through gradient back
        return self.fc(s.flatten(-3))


def _nets(backend, dtype=torch.float32):
    plain = _Net(nn.Conv2d, nn.Linear).to(DEVICE, dtype)
    spike = _Net(SpikeConv2d, SpikeLinear, backend=backend).to(DEVICE, dtype)
    spike.load_state_dict(plain.state_dict())
    return plain, spike


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiles_as_one_graph_with_the_same_gradients(backend):
    plain, spike = _nets(backend)
    compiled = torch.compile(spike, fullgraph=True, backend="aot_eager")
    # multi-step input: the plain net sees the merged time-batch
    x = _spikes(3, 2, 3, 5, 7)
    _assert_same_forward_and_grads(plain, spike, x, lambda v: v.flatten(0, 1), spike_call=compiled)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_equals_the_autocast_plain_layers(backend, dtype):
    plain, spike = _nets(backend)
    x = _spikes(3, 2, 3, 5, 7)
    _assert_same_forward_and_grads(plain, spike, x, lambda v: v.flatten(0, 1), dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_activation_checkpointing_equals_the_plain_layers(backend):
    plain, spike = _nets(backend)
    x = _spikes(3, 2, 3, 5, 7)
    call = lambda v: checkpoint(spike, v, use_reentrant=False)  # noqa: E731 - the call under test
    _assert_same_forward_and_grads(plain, spike, x, lambda v: v.flatten(0, 1), spike_call=call)
