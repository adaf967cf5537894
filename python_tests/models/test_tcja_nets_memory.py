"""TCJA-SNN networks' memory of the backward (docs/models.md "Lean pools in TCJA-SNN"): off the eager path the pools
are nn.pooling.MaxPool2d / AvgPool2d, which change no number (output, every gradient, running statistics bit for bit
against the same network on torch's pools) and keep no pool input for the backward (bench.memory's census)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snnkernels.models import TCJA_CIFAR10DVS, TCJA_DVS128
from snnkernels.nn.pooling import AvgPool2d, MaxPool2d

from utils import assert_same_training_step

BACKENDS = ["auto", pytest.param("triton", marks=pytest.mark.triton)]


def _dvs128(backend):
    return TCJA_DVS128(channels=4, T=3, dropout=0.0, layout="TB", backend=backend), (3, 2, 2, 128, 128)


def _cifar10dvs(backend):
    # any frame size: the network pools it to 48 x 48 first
    return TCJA_CIFAR10DVS(T=3, layout="TB", backend=backend), (3, 1, 2, 13, 11)


NETS = {"TCJA_DVS128": _dvs128, "TCJA_CIFAR10DVS": _cifar10dvs}


def _pools(model):
    return [m for m in model.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]


def _run(net, backend, lean):
    torch.manual_seed(0)
    model, shape = NETS[net](backend)
    model.train()
    with torch.no_grad():  # every layer fires on this input
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.weight.fill_(1.5)
        for linear in (m for m in model.fc.modules() if isinstance(m, nn.Linear)):  # DVS128's two LIFs after them
            linear.weight.mul_(10)
    pools = _pools(model)
    assert pools and all(isinstance(p, (MaxPool2d, AvgPool2d)) and p.lean == (backend != "torch") for p in pools)
    for p in pools:
        p.lean = lean
    x = (3 * torch.rand(shape, generator=torch.Generator().manual_seed(3))).requires_grad_()
    out = model(x)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(4))).sum().backward()
    return model, out, x.grad


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("net", NETS)
def test_tcja_lean_pool_changes_no_number(net, backend):
    """The same network with the lean pools and with torch's own pool backward: output, input and parameter
    gradients, running statistics bit for bit, the same state_dict keys."""
    assert_same_training_step(
        _run(net, backend, True), _run(net, backend, False), lambda n: n.startswith("conv.") and n.endswith("0.weight")
    )


def test_tcja_eager_path_keeps_torch_pools():
    for make in NETS.values():
        model, _ = make("torch")
        assert all(not p.lean for p in _pools(model))
        assert {k: v.shape for k, v in model.state_dict().items()} == {
            k: v.shape for k, v in make("auto")[0].state_dict().items()
        }


@pytest.mark.parametrize("net", NETS)
def test_tcja_pools_keep_no_input(net):
    """bench.memory's census of a tiny network on "auto": with the lean pools the network holds less by exactly the
    pools' inputs (and, for the max pools, their int64 indices) minus one uint8 per max-pool window."""
    from bench.memory import saved_bytes

    def census(lean):
        torch.manual_seed(0)
        model, shape = NETS[net]("auto")
        pools = _pools(model)
        for p in pools:
            p.lean = lean
        sizes = []
        for p in pools:  # the input and output sizes of every pool
            p.register_forward_hook(lambda mod, a, y: sizes.append((a[0].numel(), y.numel(), a[0].element_size())))
        return saved_bytes(model, 3 * torch.rand(shape)), sizes

    (lean, sizes), (plain, _) = census(True), census(False)
    if net == "TCJA_DVS128":  # plain: fp32 input + int64 index a window; lean: one uint8 a window
        expected = sum(n_in * size + n_out * 8 - n_out for n_in, n_out, size in sizes)
    else:  # plain: the fp32 input; lean: nothing
        expected = sum(n_in * size for n_in, _, size in sizes)
    assert len(sizes) == (5 if net == "TCJA_DVS128" else 4)
    assert plain["total"] - lean["total"] == expected
