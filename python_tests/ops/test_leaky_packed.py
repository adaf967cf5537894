"""The leaky neuron's packed spikes (docs/spike_pack.md "Packed by the neuron"): ``leaky_fwd_packed_triton`` writes
the spikes at 1 bit each as it fires; its packed copy must equal ``spike_pack`` of its own spikes byte for byte,
and everything else it returns (spikes, final state, checkpoints, membrane sequence, every gradient) must equal the
plain forward's bit for bit, on odd shapes with N % 8 == 0 (packed in the kernel) and not (packed after it), in
every dtype, contiguous and channels-last. A spike layer given the copy saves it as it is (nothing else, no second
pass) and its gradients stay those of the plain layer.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snnkernels import functional as F
from snnkernels import nn as snn
from snnkernels.ops import spike_pack as spike_pack_ops
from snnkernels.ops.leaky_settings import FWD_ARGS, positional
from snnkernels.reference.spike_pack import packed_numel, spike_pack_reference
from snnkernels.surrogate import ATan

from conftest import DEVICE, native_packing
from utils import saved_storages

pytestmark = pytest.mark.triton

# (shape, packed in the kernel): N = prod(shape[1:]); odd T and odd factors of N
SHAPES = [((7, 3, 5, 8), True), ((5, 2, 3, 5), False), ((9, 4, 16), True), ((4, 1, 7), False), ((6, 3, 8, 3, 5), True)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _op_args(x: torch.Tensor, training: bool, *, bias: float = 0.2, **overrides) -> tuple:
    kw = dict(
        x=x,
        v_init=None,
        decay_t=None,
        gain_t=None,
        bias_t=None,
        decay=0.5,
        gain=1.0,
        bias=bias,
        v_threshold=1.0,
        v_reset=0.0,
        v_init_value=0.0,
        hard_reset=True,
        strict=False,
        detach_reset=False,
        surrogate_id=ATan.id,
        surrogate_param=2.0,
        training=training,
        store_final_state=True,
        chunk=3,
        store_v_seq=True,
    )
    kw.update(overrides)
    return positional(FWD_ARGS, **kw)


def _ops():
    from snnkernels.ops import leaky_triton

    return leaky_triton


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, in_kernel", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_packed_forward_equals_the_plain_one_and_packs_its_spikes(shape, in_kernel, dtype, training):
    L = _ops()
    x = (torch.randn(shape, device=DEVICE) * 2.5).to(dtype)
    assert L.packs_as_it_fires(x) == in_kernel
    plain = L.leaky_fwd_triton(*_op_args(x, training))
    *outputs, packed = L.leaky_fwd_packed_triton(*_op_args(x, training))
    for name, a, b in zip(("spikes", "v_final", "checkpoints", "v_seq"), outputs, plain, strict=True):
        assert torch.equal(a, b), name
    assert packed.dtype == torch.uint8 and packed.shape == (packed_numel(x.numel()),)
    assert torch.equal(packed, spike_pack_reference(plain[0], True))
    assert 0 < int(plain[0].sum()) < x.numel(), "the case must both fire and not"


def test_lanes_past_n_that_fire_leave_no_bits():
    """A bias above the threshold makes every lane fire, the masked ones past N included: their bytes are not
    written (N = 24 neurons, a block of many more)."""
    L = _ops()
    x = torch.zeros(4, 3, 8, device=DEVICE)
    *outputs, packed = L.leaky_fwd_packed_triton(*_op_args(x, False, bias=1.5, store_v_seq=False))
    assert torch.equal(outputs[0], torch.ones_like(x))
    assert torch.equal(packed, torch.full((x.numel() // 8,), 255, dtype=torch.uint8, device=DEVICE))


def test_channels_last_steps_pack_in_the_logical_order():
    """A channels-last step is walked in memory order by the kernel; the copy is packed after it, in the
    layout's (logical) order."""
    L = _ops()
    x = torch.randn(3, 2, 8, 3, 5, device=DEVICE)
    x = torch.stack([step.contiguous(memory_format=torch.channels_last) for step in x])
    assert not x.is_contiguous() and not L.packs_as_it_fires(x)
    spikes, *_, packed = L.leaky_fwd_packed_triton(*_op_args(x, False))
    assert torch.equal(packed, spike_pack_reference(spikes, True))


def _lif(x, backend, **kw):
    return F.leaky_neuron(
        x,
        None,
        decay=0.5,
        input_gain=0.5,
        bias=0.0,
        v_threshold=1.0,
        v_reset=0.0,
        strict_threshold=False,
        detach_reset=False,
        surrogate_function=ATan(),
        backend=backend,
        return_final_state=False,
        v_init_value=0.0,
        **kw,
    )


@pytest.mark.parametrize("backend", ["triton", "torch", native_packing()])
@pytest.mark.parametrize("count", [False, True])
def test_leaky_neuron_returns_the_packed_copy_last_and_the_same_gradients(backend, count):
    x = (torch.randn(5, 3, 8, 5, device=DEVICE) * 2).requires_grad_()
    ref = x.detach().clone().requires_grad_()
    out = _lif(x, backend, return_packed=True, count_spikes=count)
    spikes, *counts, packed = out
    plain = _lif(ref, backend, count_spikes=count)
    plain_spikes, *plain_counts = plain if count else (plain,)
    assert torch.equal(spikes, plain_spikes)
    for a, b in zip(counts, plain_counts, strict=True):
        assert torch.equal(a, b)
    assert not packed.requires_grad and torch.equal(packed, spike_pack_reference(spikes.detach(), True))
    grad = torch.randn_like(spikes)
    spikes.backward(grad)
    plain_spikes.backward(grad)
    assert torch.equal(x.grad, ref.grad)


class _LifConv(nn.Module):
    """LIF -> SpikeConv2d on [T, B, C, H, W], the conv given the neuron's packed copy (``fire_packed``)."""

    def __init__(self, backend: str, packed: bool):
        super().__init__()
        self.lif = snn.LIFNode(tau=2.0, step_mode="m", backend=backend, stateful=False)
        self.conv = snn.SpikeConv2d(8, 5, 3, padding=1, backend="auto" if backend == "triton" else backend)
        self.packed = packed

    def forward(self, x):
        if self.packed:
            return self.conv(*self.lif.fire_packed(x))
        return self.conv(self.lif(x))


def test_spike_conv_given_the_copy_saves_it_and_keeps_the_plain_gradients(monkeypatch):
    plain, fused = _LifConv("triton", False).to(DEVICE), _LifConv("triton", True).to(DEVICE)
    fused.load_state_dict(plain.state_dict())
    x = (torch.randn(3, 2, 8, 5, 7, device=DEVICE) * 2).requires_grad_()
    ref = x.detach().clone().requires_grad_()
    out, out_plain = fused(x), plain(ref)
    assert torch.equal(out, out_plain)
    grad = torch.randn_like(out)
    out.backward(grad)
    out_plain.backward(grad)
    assert torch.equal(x.grad, ref.grad)
    for (name, a), b in zip(fused.named_parameters(), plain.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name
    # the same bytes held: the neuron's copy is what the conv keeps
    held_plain, _ = saved_storages(lambda: plain(ref))
    monkeypatch.setattr(spike_pack_ops, "pack", None)  # no pass of its own: nothing packs the spikes again
    held_fused, _ = saved_storages(lambda: fused(x))
    assert sorted(held_fused.values(), key=str) == sorted(held_plain.values(), key=str)


def test_the_conv_refuses_a_copy_of_another_size():
    conv = snn.SpikeConv2d(3, 4, 3, backend="triton").to(DEVICE)
    s = (torch.rand(2, 3, 5, 5, device=DEVICE) < 0.5).float()
    with pytest.raises(ValueError, match=r"uint8 \[19\]"):
        conv(s, torch.zeros(18, dtype=torch.uint8, device=DEVICE))
    with pytest.raises(ValueError, match="uint8"):
        conv(s, torch.zeros(19, dtype=torch.int32, device=DEVICE))


def test_fire_packed_under_hooks_and_single_step_is_the_plain_call():
    lif = snn.LIFNode(tau=2.0, step_mode="m", backend="triton")
    x = torch.randn(3, 2, 8, device=DEVICE) * 2
    seen = []
    handle = lif.register_forward_hook(lambda m, i, o: seen.append(o))
    spikes, packed = lif.fire_packed(x)
    assert packed is None and len(seen) == 1 and seen[0] is spikes
    handle.remove()
    lif.step_mode = "s"
    lif.reset()
    spikes, packed = lif.fire_packed(x[0])
    assert packed is None and spikes.shape == x[0].shape


def test_compiles_as_one_graph():
    import torch._dynamo as dynamo

    model = _LifConv("triton", True).to(DEVICE)
    x = torch.randn(3, 2, 8, 5, 7, device=DEVICE) * 2
    dynamo.reset()
    explained = dynamo.explain(model)(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(x), model(x))


# bn_lif: the packed copy written by its forward kernel (bn_lif_fwd_packed) where S % 8 == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 2, 5, 4, 6), (5, 3, 2, 3, 5), (4, 3, 6, 16)])
@pytest.mark.parametrize("layout", ["TB", "BT"])
@pytest.mark.parametrize("training", [True, False])
def test_bn_lif_packed_equals_the_plain_op_and_packs_its_spikes(shape, layout, dtype, training):
    from snnkernels.ops import bn_lif_triton as BL

    x = torch.randn(shape, device=DEVICE) * 2
    if layout == "BT":  # [B, T] storage, read in place
        x = x.transpose(0, 1).contiguous().transpose(0, 1)
    rows = BL.as_rows(x.to(dtype))
    C = shape[2]
    channel = (torch.rand(C, device=DEVICE) + 0.5, torch.randn(C, device=DEVICE))
    coef = tuple(torch.full((C,), c, device=DEVICE) for c in (0.5, 1.0, 0.1))
    settings = (1.0, 0.0, 0.0, True, False, training, 2)
    spikes, ckpt = BL.bn_lif_fwd(rows, *channel, *coef, *settings)
    spikes_p, ckpt_p, packed = BL.bn_lif_fwd_packed(rows, *channel, *coef, *settings)
    assert BL.packs_as_it_fires(rows) == (rows.shape[-1] % 8 == 0)
    assert torch.equal(spikes_p, spikes) and torch.equal(ckpt_p, ckpt)
    assert torch.equal(packed, spike_pack_reference(spikes, True))
    assert 0 < int(spikes.sum()) < spikes.numel()


@pytest.mark.parametrize("backend", ["triton", "torch", native_packing()])
def test_functional_bn_lif_returns_the_packed_copy_and_the_same_gradients(backend):
    x = (torch.randn(3, 2, 4, 4, 6, device=DEVICE) * 2).requires_grad_()
    ref = x.detach().clone().requires_grad_()
    weight = torch.rand(4, device=DEVICE, requires_grad=True)
    kw = dict(training=True, decay=0.5, backend=backend)
    spikes, packed = F.bn_lif(x, None, None, weight, None, return_packed=True, **kw)
    plain = F.bn_lif(ref, None, None, weight, None, **kw)
    assert torch.equal(spikes, plain) and not packed.requires_grad
    assert torch.equal(packed, spike_pack_reference(spikes.detach(), True))
    grad = torch.randn_like(plain)
    (g_x, g_w), (r_x, r_w) = (torch.autograd.grad(s, (t, weight), grad) for s, t in ((spikes, x), (plain, ref)))
    assert torch.equal(g_x, r_x) and torch.equal(g_w, r_w)


def test_zoo_hand_offs_take_the_neurons_copy(monkeypatch):
    """An MS-ResNet block (DTA-SNN) and an Att-Res block on Triton: their spike convs get the copies the LIF and
    bn_lif kernels wrote (nothing is packed in a pass of its own), and the outputs and gradients are the ones the
    convs packing their input themselves give."""
    from snnkernels.models.dta_snn import MSBlock
    from snnkernels.nn.ma_snn import AttResBlock

    calls = []
    real_pack = spike_pack_ops.pack
    monkeypatch.setattr(spike_pack_ops, "pack", lambda *a: calls.append(a) or real_pack(*a))
    for make, shape in (
        (lambda: MSBlock(8, 8, backend="triton"), (3, 2, 8, 4, 6)),
        (lambda: AttResBlock(8, 8, backend="triton"), (2, 2, 8, 4, 6)),
    ):
        torch.manual_seed(0)
        block = make().to(DEVICE)
        x = (torch.randn(shape, device=DEVICE) * 2).requires_grad_()
        calls.clear()
        out = block(x)
        assert not calls, f"{type(block).__name__}: spikes packed in a pass of their own"
        torch.manual_seed(0)
        plain = make().to(DEVICE)
        for m in plain.modules():  # each conv drops the copy it is given and packs its input itself
            if isinstance(m, snn.SpikeConv2d):
                m.forward = lambda v, packed=None, m=m: snn.SpikeConv2d.forward(m, v)
        ref = x.detach().clone().requires_grad_()
        plain_out = plain(ref)
        assert calls, "the unfused path packs in the convs"
        assert torch.equal(out, plain_out)
        grad = torch.randn_like(out)
        out.backward(grad)
        plain_out.backward(grad)
        assert torch.equal(x.grad, ref.grad)
        for (name, a), b in zip(block.named_parameters(), plain.parameters(), strict=True):
            assert torch.equal(a.grad, b.grad), name
