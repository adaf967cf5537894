"""Activation checkpointing (``torch.utils.checkpoint``, the usual answer to BPTT memory growing with T) over
the library's layers: the recompute in the backward pass must give the plain run's gradients exactly, add
nothing to the firing statistics, and leave the neurons' state alone; a stateful neuron whose state the
recompute cannot restore raises instead of returning wrong gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from snnkernels import firing
from snnkernels.models import TCJA_CIFAR10DVS
from snnkernels.nn import LIFNode

from conftest import DEVICE, fused_backends
from tiny_net import C, T, TinyNet


def _backends() -> list:
    """The eager reference, then Triton and native / CuPy where they can run (test_leaky's list)."""
    return [pytest.param("torch", id="torch"), *fused_backends()]


def _step(model: nn.Module, x: torch.Tensor, how: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Output, input and parameter gradients of one step: plain, or the whole forward checkpointed (the
    reentrant form needs an input that requires grad)."""
    model.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_(True)
    if how == "plain":
        out = model(x)
    else:
        out = checkpoint(model, x, use_reentrant=how == "reentrant")
    (out * torch.linspace(-1.0, 1.0, out.numel(), device=out.device).view_as(out)).sum().backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    return out.detach(), {"input": x.grad, **grads}


def _input(shape: tuple[int, ...]) -> torch.Tensor:
    return 2.0 * torch.rand(*shape, device=DEVICE)


@pytest.mark.parametrize("how", ["non-reentrant", "reentrant"])
@pytest.mark.parametrize("backend", _backends())
def test_checkpointed_forward_gives_the_plain_gradients(backend, how):
    model = TinyNet(backend).to(DEVICE)
    x = _input((T, 3, 2, 8, 8))
    out, grads = _step(model, x, "plain")
    assert out.abs().sum() > 0 and all(g.abs().sum() > 0 for g in grads.values())  # spikes reach the loss
    out_c, grads_c = _step(model, x, how)
    torch.testing.assert_close(out_c, out, rtol=0, atol=0)
    for name, g in grads.items():  # the recompute is the same computation: same bits on the CPU
        atol, rtol = (0.0, 0.0) if DEVICE == "cpu" else (1e-6, 1e-5)  # cuDNN may pick another algorithm
        torch.testing.assert_close(grads_c[name], g, atol=atol, rtol=rtol, msg=lambda m, n=name: f"{n}: {m}")


def test_checkpointed_zoo_network():
    """A whole paper network (TCJA-SNN's CIFAR10-DVS net, small) checkpointed: same output and gradients."""
    torch.manual_seed(0)
    model = TCJA_CIFAR10DVS(T=3).to(DEVICE).eval()  # eval: BatchNorm's running statistics change per call
    x = _input((2, 3, 2, 48, 48))
    out, grads = _step(model, x, "plain")
    out_c, grads_c = _step(model, x, "non-reentrant")
    torch.testing.assert_close(out_c, out, rtol=0, atol=0)
    for name, g in grads.items():
        torch.testing.assert_close(grads_c[name], g, atol=1e-6, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("backend", _backends())
def test_firing_record_counts_a_checkpointed_step_once(backend):
    model = TinyNet(backend).to(DEVICE)
    x = _input((T, 3, 2, 8, 8))
    with firing.record(model) as plain:
        _step(model, x, "plain")
    with firing.record(model) as checkpointed:
        _step(model, x, "non-reentrant")  # the backward's recompute runs every neuron's forward again
    assert checkpointed.spike_counts() == plain.spike_counts()
    assert checkpointed.samples == plain.samples == 3
    assert [layer.forwards for layer in checkpointed.layers.values()] == [1, 1]


@pytest.mark.parametrize("backend", _backends())
def test_stateful_neuron_under_checkpoint(backend):
    """A stateful neuron still holding the state its forward left cannot be recomputed: a clear error. Reset
    between the forward and the backward (each forward from rest), it recomputes exactly and the recompute
    leaves the state as reset() left it."""
    lin = nn.Linear(C, C).to(DEVICE)
    lif = LIFNode(tau=2.0, step_mode="s", backend=backend)  # step mode 's' is stateful, as in SpikingJelly
    net = nn.Sequential(lin, lif)
    x = _input((3, C))

    out = checkpoint(net, x, use_reentrant=False)
    with pytest.raises(RuntimeError, match="activation checkpointing recomputes this neuron, which carries its state"):
        out.sum().backward()

    lif.reset()
    lin.zero_grad(set_to_none=True)
    out = checkpoint(net, x, use_reentrant=False)
    lif.reset()
    (out * torch.arange(out.numel(), device=DEVICE).view_as(out)).sum().backward()
    assert lif.v == 0.0 and type(lif.v) is float  # the recompute did not store its final state
    got = lin.weight.grad.clone()
    lin.zero_grad(set_to_none=True)
    (net(x) * torch.arange(out.numel(), device=DEVICE).view_as(out)).sum().backward()
    lif.reset()
    torch.testing.assert_close(got, lin.weight.grad, rtol=0, atol=0)


@pytest.mark.parametrize(
    "backend", [pytest.param("torch", id="torch"), pytest.param("triton", marks=pytest.mark.triton, id="triton")]
)
def test_staa_time_step_dropout_under_checkpoint(backend):
    """STAA-LIF in training draws a TSRD mask per call. From the global RNG (seed=None), which checkpointing
    restores, the recompute draws the same mask: the plain run's gradients. From the module's own seeded
    generator, which it does not restore, it raises instead of recomputing with another mask."""
    from snnkernels.nn import STAALIFNode

    Tn, Cn, Hn = 4, 8, 4
    x = _input((Tn, 2, Cn, Hn, Hn)) - 0.5
    layer = STAALIFNode(Tn, Cn, Hn, Hn, drop_prob=0.5, backend=backend).to(DEVICE).train()
    with torch.no_grad():
        layer.sa.fc2.weight.normal_(std=0.5)  # step attention away from its zero initialisation
    weights = torch.linspace(-1.0, 1.0, x.numel(), device=DEVICE).view_as(x)
    runs = []
    for checkpointed in (False, True):
        torch.manual_seed(11)
        layer.zero_grad(set_to_none=True)
        xg = x.detach().requires_grad_(True)
        out = checkpoint(layer, xg, use_reentrant=False) if checkpointed else layer(xg)
        mask = layer.last_drop_mask.clone()
        (out * weights).sum().backward()
        assert torch.equal(layer.last_drop_mask, mask)  # the recompute did not overwrite the record
        runs.append(
            (
                out.detach(),
                mask,
                xg.grad,
                {n: p.grad.clone() for n, p in layer.named_parameters() if p.grad is not None},
            )
        )
    (out, mask, gx, grads), (out_c, mask_c, gx_c, grads_c) = runs
    assert mask.any() and not mask.all()  # some steps dropped, some not
    torch.testing.assert_close(out_c, out, rtol=0, atol=0)
    assert torch.equal(mask_c, mask)
    atol, rtol = (0.0, 0.0) if DEVICE == "cpu" else (1e-6, 1e-5)  # cuBLAS may pick another algorithm
    torch.testing.assert_close(gx_c, gx, rtol=rtol, atol=atol)
    assert grads.keys() == grads_c.keys() and grads
    for name, g in grads.items():
        torch.testing.assert_close(grads_c[name], g, rtol=rtol, atol=atol, msg=lambda m, n=name: f"{n}: {m}")

    seeded = STAALIFNode(Tn, Cn, Hn, Hn, drop_prob=0.5, seed=3, backend=backend).to(DEVICE).train()
    out = checkpoint(seeded, x.detach().requires_grad_(True), use_reentrant=False)
    with pytest.raises(RuntimeError, match="module's own generator"):
        out.sum().backward()
