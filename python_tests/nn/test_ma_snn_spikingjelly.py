"""Drop-in parity with SpikingJelly's attention modules: ``MultiDimensionalAttention`` built with SpikingJelly's
``use_temporal`` / ``use_channel`` / ``use_spatial`` flags, and ``TemporalWiseAttention``.

SpikingJelly's module is built with its own classes and its state dict loaded into ours (strict); outputs and the
gradients of the input and of every parameter must agree, on every backend. SpikingJelly 2.0.0 takes no flags;
where the installed version lacks them, its own gate submodules (``_AxisAttention``, ``_SpatialAttention``) are
chained in its forward's order instead (its module with the flags does exactly that). Its submodules that user
code reaches (``ta.sharedMLP``, ``ta.avg_pool``, ``ca.max_pool``, ``sa.conv``, the gates themselves) must answer
on ours as on its.
"""

from __future__ import annotations

import inspect
import itertools

import pytest
import torch
from torch import nn

from snnkernels.nn.ma_snn import MultiDimensionalAttention, TemporalAttentionFC, TemporalWiseAttention

from utils import assert_close_verbose

sj_attention = pytest.importorskip(
    "spikingjelly.activation_based.layer.attention", reason="spikingjelly 2.x not installed"
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
T, B, C, H, W = 4, 3, 6, 5, 7
BACKENDS = ["torch", pytest.param("triton", marks=pytest.mark.triton)]
FLAGS = [f for f in itertools.product((True, False), repeat=3) if any(f)]
FLAG_IDS = ["".join(k for k, on in zip("TCS", f, strict=True) if on) for f in FLAGS]
SJ_TAKES_FLAGS = "use_temporal" in inspect.signature(sj_attention.MultiDimensionalAttention.__init__).parameters
# fp32 on both sides, the same sums in another order (flattened reductions against adaptive pools, fused sweeps)
OUT_TOL = dict(atol=1e-6, rtol=1e-5)
GRAD_RTOL = 1e-5  # parameter gradients are sums over B * T * C * H * W terms: normwise (see grad_close)


class SpikingJellyChain(nn.Module):
    """SpikingJelly's gates for ``flags`` chained T -> C -> S then ReLU, on [T, B, C, H, W]: its
    ``MultiDimensionalAttention(..., use_temporal, use_channel, use_spatial)`` for versions without the flags."""

    def __init__(self, reduction_t: int, reduction_c: int, kernel_size: int, flags: tuple[bool, bool, bool]):
        super().__init__()
        use_t, use_c, use_s = flags
        self.ta = sj_attention._AxisAttention(T, reduction_t) if use_t else None
        self.ca = sj_attention._AxisAttention(C, reduction_c, channel_axis=True) if use_c else None
        self.sa = sj_attention._SpatialAttention(kernel_size) if use_s else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.transpose(0, 1)
        for gate in (self.ta, self.ca, self.sa):
            if gate is not None:
                out = gate(out) * out
        return torch.relu(out).transpose(0, 1)


def spikingjelly_mda(flags, reduction_t=2, reduction_c=3, kernel_size=3) -> nn.Module:
    if SJ_TAKES_FLAGS:
        use_t, use_c, use_s = flags
        return sj_attention.MultiDimensionalAttention(
            T, C, reduction_t, reduction_c, kernel_size, use_temporal=use_t, use_channel=use_c, use_spatial=use_s
        )
    if all(flags):
        return sj_attention.MultiDimensionalAttention(T, C, reduction_t, reduction_c, kernel_size)
    return SpikingJellyChain(reduction_t, reduction_c, kernel_size, flags)


def ours_with_flags(flags, backend="torch", reduction_t=2, reduction_c=3, kernel_size=3):
    use_t, use_c, use_s = flags
    return MultiDimensionalAttention(
        T,
        C,
        reduction_t,
        reduction_c,
        kernel_size,
        use_temporal=use_t,
        use_channel=use_c,
        use_spatial=use_s,
        backend=backend,
    )


def randomized(module: nn.Module) -> nn.Module:
    """Weights moved off their init; the MLPs' first layers positive, so every hidden unit stays alive."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.mul_(1 + 0.5 * torch.randn_like(p)).add_(0.1 * torch.randn_like(p))
            if name.endswith("sharedMLP.0.weight"):
                p.abs_()
    return module.to(DEVICE)


def run(module: nn.Module, x: torch.Tensor, grad_out: torch.Tensor):
    leaf = x.detach().clone().requires_grad_(True)
    out = module(leaf)
    out.backward(grad_out)
    return out.detach(), {"input": leaf.grad, **{n: p.grad for n, p in module.named_parameters()}}


def assert_same_run(ours: nn.Module, theirs: nn.Module, x: torch.Tensor) -> torch.Tensor:
    grad_out = torch.randn_like(x)
    out_t, grads_t = run(theirs, x, grad_out)
    out_o, grads_o = run(ours, x, grad_out)
    assert out_o.dtype == out_t.dtype
    assert_close_verbose(out_o, out_t, name="output", **OUT_TOL)
    assert grads_o.keys() == grads_t.keys()
    for name, g_t in grads_t.items():
        assert g_t is not None and g_t.abs().sum() > 0, name  # every gradient is exercised
        atol = OUT_TOL["atol"] if name == "input" else GRAD_RTOL * g_t.abs().max().item()
        assert_close_verbose(grads_o[name], g_t, atol=atol, rtol=GRAD_RTOL, name=f"grad {name}")
    return out_t


# ---------------------------------------------------------------------------------------------------
# MultiDimensionalAttention with SpikingJelly's flags


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("flags", FLAGS, ids=FLAG_IDS)
def test_flags_give_spikingjelly_module(flags, backend):
    theirs = randomized(spikingjelly_mda(flags))
    ours = ours_with_flags(flags, backend).to(DEVICE)
    ours.load_state_dict(theirs.state_dict())  # strict: the same keys and shapes
    assert ours.dims == "".join(k for k, on in zip("TCS", flags, strict=True) if on)
    x = torch.randn(T, B, C, H, W, device=DEVICE)
    out = assert_same_run(ours, theirs, x)
    assert (out == 0).any() and (out > 0).any()  # the ReLU cuts


@pytest.mark.parametrize("flags", FLAGS, ids=FLAG_IDS)
def test_flags_give_spikingjelly_initial_weights(flags):
    torch.manual_seed(7)
    theirs = spikingjelly_mda(flags)
    torch.manual_seed(7)
    ours = ours_with_flags(flags)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (name, p), q in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("flags", FLAGS, ids=FLAG_IDS)
def test_disabled_gates_are_none(flags):
    ours, theirs = ours_with_flags(flags), spikingjelly_mda(flags)
    for name in ("ta", "ca", "sa"):
        assert (getattr(ours, name) is None) == (getattr(theirs, name) is None), name


def test_submodules_answer_as_spikingjelly():
    """Every submodule SpikingJelly's own tests reach, called on SpikingJelly's batch-first layout."""
    theirs = randomized(spikingjelly_mda((True, True, True)))
    ours = MultiDimensionalAttention(T, C, 2, 3, 3).to(DEVICE)
    ours.load_state_dict(theirs.state_dict())
    assert set(ours.state_dict()) == {
        "ta.sharedMLP.0.weight",
        "ta.sharedMLP.2.weight",
        "ca.sharedMLP.0.weight",
        "ca.sharedMLP.2.weight",
        "sa.conv.weight",
    }  # the pools own nothing
    batch_first = torch.randn(B, T, C, H, W, device=DEVICE)
    by_channel = batch_first.transpose(1, 2)
    for ours_gate, their_gate in ((ours.ta, theirs.ta), (ours.ca, theirs.ca)):
        for pool in ("avg_pool", "max_pool"):
            for x in (batch_first, by_channel):
                assert torch.equal(getattr(ours_gate, pool)(x), getattr(their_gate, pool)(x)), pool
        pooled = ours_gate.avg_pool(batch_first if ours_gate is ours.ta else by_channel)
        assert torch.equal(ours_gate.sharedMLP(pooled), their_gate.sharedMLP(pooled))
    for name in ("ta", "ca", "sa"):
        got, want = getattr(ours, name)(batch_first), getattr(theirs, name)(batch_first)
        assert got.shape == want.shape, name
        assert_close_verbose(got, want, name=f"{name} gate", **OUT_TOL)
    assert ours.ta(batch_first).shape == (B, T, 1, 1, 1) and ours.ca(batch_first).shape == (B, 1, C, 1, 1)
    assert ours.sa(batch_first).shape == (B, 1, 1, H, W)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_is_the_three_stage_equation_of_its_submodules(backend):
    """The chain written out with our own submodules on the batch-first layout: TA's gate from the T-axis
    pools, CA's from the pools of the channel-major view, SA's map from the (T, C) mean and max, then ReLU."""
    ours = randomized(MultiDimensionalAttention(T, C, 2, 3, 7, backend=backend))
    x = torch.randn(T, B, C, H, W, device=DEVICE)
    xb = x.transpose(0, 1)
    mlp_t, mlp_c = ours.ta.sharedMLP, ours.ca.sharedMLP
    after_t = torch.sigmoid(mlp_t(ours.ta.avg_pool(xb)) + mlp_t(ours.ta.max_pool(xb))) * xb
    by_channel = after_t.transpose(1, 2)
    gate_c = torch.sigmoid(mlp_c(ours.ca.avg_pool(by_channel)) + mlp_c(ours.ca.max_pool(by_channel)))
    after_c = gate_c.transpose(1, 2) * after_t
    planes = after_c.flatten(1, 2)
    stats = torch.cat([planes.mean(1, keepdim=True), planes.max(1, keepdim=True).values], 1)
    expected = torch.relu(torch.sigmoid(ours.sa.conv(stats)).unsqueeze(1) * after_c).transpose(0, 1)
    assert_close_verbose(ours(x), expected, name="output", **OUT_TOL)


def test_constructor_takes_spikingjelly_arguments():
    ours = inspect.signature(MultiDimensionalAttention.__init__).parameters
    theirs = inspect.signature(sj_attention.MultiDimensionalAttention.__init__).parameters
    positional = [n for n, p in theirs.items() if n != "self" and not n.startswith("use_")]
    assert list(ours)[1 : len(positional) + 1] == positional
    for name in positional:
        assert ours[name].default == theirs[name].default, name
    for name in ("use_temporal", "use_channel", "use_spatial"):
        assert ours[name].kind is inspect.Parameter.KEYWORD_ONLY  # positionally they would land in dims
        assert name not in theirs or theirs[name].default is True


def test_flag_rules():
    with pytest.raises(ValueError, match="at least one of use_temporal, use_channel and use_spatial"):
        MultiDimensionalAttention(T, C, 2, 3, use_temporal=False, use_channel=False, use_spatial=False)
    assert MultiDimensionalAttention(T, C, 2, 3, use_channel=False).dims == "TS"  # an unset flag is True
    assert MultiDimensionalAttention(T, C, 2, 3, dims="CS", use_temporal=False).dims == "CS"  # agree: fine
    with pytest.raises(ValueError, match="dims='TCS' and use_spatial=False name different chains"):
        MultiDimensionalAttention(T, C, 2, 3, dims="TCS", use_spatial=False)
    with pytest.raises(TypeError, match="by keyword"):
        MultiDimensionalAttention(T, C, 2, 3, 3, False)
    with pytest.raises(TypeError, match="use_channel must be a bool"):
        MultiDimensionalAttention(T, C, 2, 3, use_channel=0)
    # a disabled axis's reduction is not checked (SpikingJelly skips it too)
    assert MultiDimensionalAttention(T, C, T + 1, 3, use_temporal=False).dims == "CS"
    assert MultiDimensionalAttention(T, C, 2, C + 1, use_channel=False).dims == "TS"
    assert MultiDimensionalAttention(T, C, 2, 3).dims == "TCS"


# ---------------------------------------------------------------------------------------------------
# TemporalWiseAttention (SpikingJelly's TA, no ReLU) and TemporalAttentionFC (MA-SNN's, with the ReLU)


@pytest.mark.parametrize("layout", ["TB", "BT"])
@pytest.mark.parametrize("dimension, shape", [(2, (T, B, 11)), (4, (T, B, C, H, W))], ids=["fc", "conv"])
@pytest.mark.parametrize("reduction", [1, 2, 4])
def test_temporal_wise_attention_matches_spikingjelly(reduction, dimension, shape, layout):
    theirs = randomized(sj_attention.TemporalWiseAttention(T, reduction, dimension))
    ours = TemporalWiseAttention(T, reduction, dimension, layout=layout).to(DEVICE)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(shape, device=DEVICE)
    grad_out = torch.randn(shape, device=DEVICE)
    out_t, grads_t = run(theirs, x, grad_out)
    swap = (lambda t: t) if layout == "TB" else (lambda t: t.transpose(0, 1))
    out_o, grads_o = run(ours, swap(x), swap(grad_out))
    assert (out_t < 0).any()  # no ReLU
    assert_close_verbose(swap(out_o), out_t, name="output", **OUT_TOL)
    grads_o["input"] = swap(grads_o["input"])
    for name, g_t in grads_t.items():
        atol = OUT_TOL["atol"] if name == "input" else GRAD_RTOL * g_t.abs().max().item()
        assert_close_verbose(grads_o[name], g_t, atol=atol, rtol=GRAD_RTOL, name=f"grad {name}")


@pytest.mark.parametrize("dimension", [2, 4])
def test_temporal_wise_attention_initial_weights_and_submodules(dimension):
    torch.manual_seed(3)
    theirs = sj_attention.TemporalWiseAttention(8, 2, dimension)
    torch.manual_seed(3)
    ours = TemporalWiseAttention(8, 2, dimension)
    assert list(ours.state_dict()) == ["sharedMLP.0.weight", "sharedMLP.2.weight"]
    for p, q in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    assert type(ours.avg_pool) is type(theirs.avg_pool) and type(ours.max_pool) is type(theirs.max_pool)
    assert ours.step_mode == "m"


def test_temporal_attention_fc_is_the_rectified_temporal_wise_attention():
    """MA-SNN's FC time attention is SpikingJelly's TemporalWiseAttention(dimension=2) followed by a ReLU:
    the same gate, but negative outputs become 0."""
    wise = randomized(TemporalWiseAttention(T, 2, 2))
    fc = TemporalAttentionFC(T, 2).to(DEVICE)
    with torch.no_grad():
        for i in (0, 2):
            fc.ta.sharedMLP[i].weight.copy_(wise.sharedMLP[i].weight[..., None])
    x = torch.randn(T, B, 11, device=DEVICE)
    assert torch.equal(fc(x), torch.relu(wise(x)))
    assert (wise(x) < 0).any()


def test_temporal_wise_attention_argument_errors():
    with pytest.raises(ValueError, match="dimension must be 4"):
        TemporalWiseAttention(T, 2, 3)
    with pytest.raises(ValueError, match="reduction .* cannot be greater than T"):
        TemporalWiseAttention(T, T + 1)
    with pytest.raises(ValueError, match=r"input must have shape \[T, B, L\]"):
        TemporalWiseAttention(T, 2, 2)(torch.randn(T, B, C, H, W))
    with pytest.raises(ValueError, match="built for T = 4"):
        TemporalWiseAttention(T, 2, 4)(torch.randn(T + 1, B, C, H, W))
