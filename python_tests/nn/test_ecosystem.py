"""The library's layers inside the PyTorch ecosystem, on a small network built from them:
DistributedDataParallel (two CPU processes, gloo), autocast, torch.compile of a whole network, and
pickle-free state-dict round trips; the same for the fused BatchNorm + neuron (``BNLIF``, docs/bn_lif.md), with
activation checkpointing. The model zoo's networks get the same checks in test_models.py."""

from __future__ import annotations

import io
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from snnkernels.nn import DTA, TCJA, ParametricLIFNode, TETLIFNode

from tiny_net import C, T, TinyBNNet, TinyNet


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def _data(batch: int = 8):
    gen = torch.Generator().manual_seed(7)
    x = 2 * torch.rand(T, batch, 2, 8, 8, generator=gen)
    y = torch.randint(0, 3, (batch,), generator=gen)
    return x, y


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, state: dict, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = TinyNet()
    model.load_state_dict(state)
    ddp = nn.parallel.DistributedDataParallel(model)
    x, y = _data()
    shard = slice(rank * 4, rank * 4 + 4)
    nn.functional.cross_entropy(ddp(x[:, shard]), y[shard]).backward()
    if rank == 0:
        out.update({k: v.clone() for k, v in _grads(model).items()})
    # both ranks tear down together: a rank that destroyed its group while the other still held the
    # connection aborted once in CI ("terminate called without an active exception" from gloo's worker
    # threads; teardown aborts of that kind: pytorch/pytorch#179291)
    dist.barrier()
    dist.destroy_process_group()


def _bn_ddp_worker(rank: int, world: int, port: int, state: dict, out: dict) -> None:
    """One DDP step of TinyBNNet on this rank's half batch, fused (Triton) and eager: gradients and BatchNorm's
    running statistics of both, from rank 0."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    x, y = _data()
    shard = slice(rank * 4, rank * 4 + 4)
    for backend in ("triton", "torch"):
        model = TinyBNNet(backend)
        model.load_state_dict(state)
        ddp = nn.parallel.DistributedDataParallel(model)
        nn.functional.cross_entropy(ddp(x[:, shard]), y[shard]).backward()
        if rank == 0:
            stats = {k: v.clone() for k, v in model.bn.state_dict().items() if k.startswith(("running", "num"))}
            out[backend] = ({k: v.clone() for k, v in _grads(model).items()}, stats)
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.triton
def test_bn_lif_under_ddp_matches_the_eager_modules():
    """DDP over BNLIF: each rank normalises its own half batch (nn.BatchNorm2d's DDP rule, no SyncBatchNorm), the
    gradients are all-reduced through the fused op's backward: equal to the same DDP step on the eager BatchNorm +
    LIF, and so are the running statistics."""
    torch.manual_seed(0)
    state = {k: v.clone() for k, v in TinyBNNet("torch").state_dict().items()}
    with mp.Manager() as manager:
        got = manager.dict()
        mp.spawn(_bn_ddp_worker, args=(2, _free_port(), state, got), nprocs=2, join=True)
        got = dict(got)
    (g_fused, s_fused), (g_eager, s_eager) = got["triton"], got["torch"]
    assert g_fused.keys() == g_eager.keys() and s_fused.keys() == s_eager.keys()
    assert any(g.abs().sum() > 0 for n, g in g_eager.items() if n.startswith("conv")), "no gradient through spikes"
    for name in g_eager:
        torch.testing.assert_close(
            g_fused[name], g_eager[name], rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}"
        )
    for name in s_eager:
        torch.testing.assert_close(
            s_fused[name], s_eager[name], rtol=1e-5, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}"
        )


@pytest.mark.triton
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_bn_lif_autocast_training_step(dtype):
    """Under autocast the conv hands BNLIF half-precision input: fused and eager (both under autocast) agree to
    half-precision rounding (a spike within that noise of the threshold may flip: the cosine bound absorbs it)."""
    x, y = _data()
    runs = {}
    for backend in ("triton", "torch"):
        torch.manual_seed(1)
        model = TinyBNNet(backend)
        with torch.autocast("cpu", dtype=dtype):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        runs[backend] = (loss.detach().float(), _grads(model), model.bn.running_mean.clone())
    (loss_f, g_f, mean_f), (loss_e, g_e, mean_e) = runs["triton"], runs["torch"]
    assert torch.isfinite(loss_f)
    torch.testing.assert_close(loss_f, loss_e, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(mean_f, mean_e, rtol=1e-5, atol=1e-6)
    flat = lambda g: torch.cat([v.flatten().float() for v in g.values()])  # noqa: E731
    cos = torch.nn.functional.cosine_similarity(flat(g_f), flat(g_e), dim=0).item()
    # measured (fixed seeds): equal losses, running means 4e-9 apart, cosine 1.0000 in both dtypes
    assert cos > 0.9999, cos


@pytest.mark.triton
@pytest.mark.parametrize("reentrant", [False, True])
def test_bn_lif_activation_checkpointing(reentrant):
    """torch.utils.checkpoint over BNLIF: the recompute gives the plain run's gradients, and the running
    statistics move as the eager modules' do under the same checkpoint (the recompute updates them again: that
    is nn.BatchNorm's behaviour under checkpointing too)."""
    from torch.utils.checkpoint import checkpoint

    x, _ = _data(2)
    runs = {}
    for backend, ckpt in (("triton", False), ("triton", True), ("torch", True)):
        torch.manual_seed(2)
        model = TinyBNNet(backend)
        xi = x.clone().requires_grad_(True)
        out = checkpoint(model, xi, use_reentrant=reentrant) if ckpt else model(xi)
        out.sum().backward()
        runs[(backend, ckpt)] = ({"input": xi.grad, **_grads(model)}, model.bn.running_var.clone())
    plain, ckpt, eager = runs[("triton", False)], runs[("triton", True)], runs[("torch", True)]
    for name in plain[0]:
        assert torch.equal(ckpt[0][name], plain[0][name]), name
        torch.testing.assert_close(ckpt[0][name], eager[0][name], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ckpt[1], eager[1], rtol=1e-5, atol=1e-6)


def test_ddp_two_cpu_processes_match_one_process():
    torch.manual_seed(0)
    model = TinyNet()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _data()
    nn.functional.cross_entropy(model(x), y).backward()
    want = _grads(model)
    with mp.Manager() as manager:
        got = manager.dict()
        mp.spawn(_ddp_worker, args=(2, _free_port(), state, got), nprocs=2, join=True)
        got = dict(got)
    assert got.keys() == want.keys()
    for name in want:
        # the mean of two half-batch means equals the full-batch mean up to the order of the sums
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_training_step(dtype):
    """Under autocast the convolutions run in half precision and hand our layers half-precision input: the
    fused path and the eager reference (both under autocast) agree to half-precision rounding, and both
    stay close to the fp32 step (a spike whose potential sits within half-precision noise of the
    threshold may flip; the cosine bound absorbs those)."""
    torch.manual_seed(1)
    x, y = _data()
    runs = {}
    for backend, amp in (("auto", True), ("torch", True), ("torch", False)):
        torch.manual_seed(1)
        model = TinyNet(backend)
        with torch.autocast("cpu", dtype=dtype, enabled=amp):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        runs[(backend, amp)] = (loss.detach().float(), _grads(model))
    (loss_f, g_f), (loss_e, g_e), (_, g_32) = runs[("auto", True)], runs[("torch", True)], runs[("torch", False)]
    assert torch.isfinite(loss_f)
    torch.testing.assert_close(loss_f, loss_e, rtol=1e-3, atol=1e-3)
    flat = lambda g: torch.cat([v.flatten().float() for v in g.values()])  # noqa: E731
    cos = lambda a, b: torch.nn.functional.cosine_similarity(flat(a), flat(b), dim=0).item()  # noqa: E731
    # measured (fixed seeds, both layers firing): 1.0000 in both dtypes; 0.99998 (bf16) and 0.99999 (fp16)
    assert cos(g_f, g_e) > 0.9999, cos(g_f, g_e)
    assert cos(g_f, g_32) > 0.999, cos(g_f, g_32)


@pytest.mark.triton
def test_whole_network_compiles_without_graph_breaks():
    model = TinyNet("triton")
    x, _ = _data(2)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons


@pytest.mark.parametrize(
    "make",
    [
        lambda: TinyNet(),
        lambda: DTA(4, 8),
        lambda: TCJA(2, 3, T, C),
        lambda: ParametricLIFNode(init_tau=3.0),
        lambda: TETLIFNode(),
    ],
    ids=["tinynet", "dta", "tcja", "plif", "tet-lif"],
)
def test_state_dict_round_trip_without_pickle(make):
    """torch.save of a state dict loads with weights_only=True (no pickled code) into a fresh module."""
    torch.manual_seed(3)
    module = make()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p))
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    fresh = make()
    fresh.load_state_dict(loaded)
    for (k, a), (k2, b) in zip(module.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert k == k2
        torch.testing.assert_close(a, b, rtol=0, atol=0)
