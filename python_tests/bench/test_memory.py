"""bench/memory.py's census of the bytes autograd holds for the backward, on graphs whose saved tensors are
known: each storage counted once (views share one), parameters and buffers excluded, a dropped branch not
held, and every kind rule (spikes, conv / BN outputs, a neuron's own tensors, the rest).
"""

from __future__ import annotations

import torch
from torch import nn

from bench.memory import KINDS, SavedTensorCensus, is_neuron, saved_bytes
from snnkernels.nn import LIFNode, SpikeConv2d


class _Saves(torch.autograd.Function):
    """Saves the tensors it is given (the first is its differentiable input), returns x * 2."""

    @staticmethod
    def forward(ctx, x, *others):
        ctx.save_for_backward(x, *others)
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return (g * 2,) + (None,) * (len(ctx.saved_tensors) - 1)


def test_each_storage_once_views_shared_parameters_excluded():
    x = torch.randn(4, 8, requires_grad=True)  # 128 bytes
    other = torch.randn(3, 5, dtype=torch.float64)  # 120 bytes
    param = nn.Parameter(torch.randn(7))
    with SavedTensorCensus(exclude=[param]) as census:
        # x twice, a view of x, a slice of `other` (its whole storage counts), the parameter
        y = _Saves.apply(x, x, x.view(32), other[1:], param)
    assert census.storages == {
        x.untyped_storage().data_ptr(): ("other", 128),
        other.untyped_storage().data_ptr(): ("other", 120),
    }
    assert census.total == 248 and census.bytes == {**dict.fromkeys(KINDS, 0), "other": 248}
    assert y.requires_grad


def test_a_dropped_branch_is_not_held():
    x = torch.randn(5, requires_grad=True)
    kept_input = torch.randn(6)
    with SavedTensorCensus() as census:
        y = _Saves.apply(x, kept_input)
        dropped = _Saves.apply(x, torch.randn(1000))  # its graph dies with it
        del dropped
    assert census.storages == {
        x.untyped_storage().data_ptr(): ("other", 20),
        kept_input.untyped_storage().data_ptr(): ("other", 24),
    }
    assert y.requires_grad


class _Neuron(nn.Module):
    """Saves a tensor of its own (a stand-in membrane) and its input."""

    def forward(self, x):
        membrane = x * 0.5 + 0.25
        return _Saves.apply(x, membrane)


_Neuron.__name__ = "ToyNode"  # a neuron by its class name


def test_kinds():
    conv, bn = nn.Conv2d(2, 3, 3, bias=False), nn.BatchNorm2d(3)
    spikes = (torch.rand(1, 2, 5, 5) < 0.5).float().requires_grad_()
    with SavedTensorCensus(exclude=[*conv.parameters(), *bn.parameters(), *bn.buffers()]) as census:
        c = conv(spikes)  # saves the spikes (binary)
        b = bn(c)  # saves the conv output
        n = _Neuron()(b)  # saves the BN output and its own membrane
        y = _Saves.apply(n, torch.full((4,), 3.0))  # outside every module: other (n itself is 2 x b)
    ptr = lambda t: t.untyped_storage().data_ptr()  # noqa: E731
    assert census.storages[ptr(spikes)] == ("spikes", spikes.numel() * 4)
    assert census.storages[ptr(c)] == ("conv_outputs", c.numel() * 4)
    assert census.storages[ptr(b)] == ("bn_outputs", b.numel() * 4)
    assert census.storages[ptr(n)] == ("other", n.numel() * 4)
    # other: n, the constant, and BatchNorm's batch mean and inverse std [3] each
    kinds = sorted(kind for kind, _ in census.storages.values())
    assert kinds == sorted(["spikes", "conv_outputs", "bn_outputs", "membranes"] + ["other"] * 4)
    assert census.bytes["membranes"] == b.numel() * 4
    assert census.bytes["other"] == n.numel() * 4 + 16 + 2 * 12
    assert y.requires_grad


def test_neuron_rule():
    assert is_neuron(LIFNode())
    assert is_neuron(_Neuron())
    assert not is_neuron(nn.Conv2d(1, 1, 1)) and not is_neuron(nn.BatchNorm2d(1))


def test_packed_spikes_of_a_spike_layer_count_as_spikes():
    conv = SpikeConv2d(3, 4, 3, backend="native")
    x = (torch.rand(2, 3, 9, 9) < 0.5).float().requires_grad_()
    counts = saved_bytes(conv, x)
    # ceil(2 * 3 * 9 * 9 / 8) bytes of packed spikes; the weight is a parameter
    assert counts == {**dict.fromkeys(KINDS, 0), "spikes": (2 * 3 * 81 + 7) // 8, "total": (2 * 3 * 81 + 7) // 8}
    plain = nn.Conv2d(3, 4, 3)
    assert saved_bytes(plain, x)["spikes"] == 2 * 3 * 81 * 4
