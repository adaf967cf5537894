"""MA-SNN attention modules and references against independent re-implementations of the official code.

The ``OfficialStyle*`` classes below are written from docs/ma_snn.md and docs/neuron.md, in the official
layout [B, T, C, H, W] (Att-Res-SNN's block: [T, B, C, H, W]), with the official
parameter names, and with PyTorch's own ``nn.AdaptiveAvgPool3d`` / ``nn.AdaptiveMaxPool3d`` / 1x1
``nn.Conv3d`` doing the pooling and the MLPs, so the references' flattened reductions and matrix products
are checked against them. Every comparison loads the official-style state dict into ours (strict), then
checks the output and every gradient (input and each parameter) in float64 on shapes with T, B, C, H, W all
different. Inputs are continuous, so max pools never tie and spikes never sit exactly on the threshold.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnkernels.nn.ma_snn import AttResBlock, MultiDimensionalAttention, TCSALIFNode, TemporalAttentionFC
from snnkernels.nn.neuron import AttResLIFNode
from snnkernels.reference.leaky import multistep_leaky_reference
from snnkernels.reference.ma_snn import (
    MA_DIMS,
    channel_attention_reference,
    multi_dimensional_attention_reference,
    spatial_attention_reference,
    tcsa_lif_paper_reference,
    time_attention_reference,
)
from snnkernels.surrogate import Rectangle

from attention_checks import check_backend_and_layout_arguments
from official_tcja_dta import loaded  # float64 copy with the official module's state dict (strict)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
F64 = dict(dtype=torch.float64, device=DEVICE)
# float64, and both sides compute the same sums in a different order: only rounding may differ
TOL = dict(rtol=1e-9, atol=1e-11)

T_, B_, C_, H_, W_ = 5, 2, 7, 4, 3  # all different
ALL_DIMS = list(MA_DIMS)
assert ALL_DIMS == ["T", "C", "S", "TC", "TS", "CS", "TCS"]


# ---------------------------------------------------------------------------------------------------
# Official-style re-implementations (MA_SNN/module/Attention.py and SpikingJelly's layout)


class OfficialStyleTimeAttention(nn.Module):
    """[B, T, ...] -> gate [B, T, 1, ...]: adaptive avg / max pool over everything after T, 1x1 conv MLP."""

    def __init__(self, in_planes, ratio, fc=False):
        super().__init__()
        conv = nn.Conv1d if fc else nn.Conv3d
        self.avg_pool = nn.AdaptiveAvgPool1d(1) if fc else nn.AdaptiveAvgPool3d(1)
        self.max_pool = nn.AdaptiveMaxPool1d(1) if fc else nn.AdaptiveMaxPool3d(1)
        self.sharedMLP = nn.Sequential(
            conv(in_planes, in_planes // ratio, 1, bias=False),
            nn.ReLU(),
            conv(in_planes // ratio, in_planes, 1, bias=False),
        )

    def forward(self, x):
        return torch.sigmoid(self.sharedMLP(self.avg_pool(x)) + self.sharedMLP(self.max_pool(x)))


class OfficialStyleChannelAttention(OfficialStyleTimeAttention):
    """[B, T, C, H, W] -> gate [B, 1, C, 1, 1]: C becomes the pooled-over-(T, H, W) channel axis."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class OfficialStyleSpatialAttention(nn.Module):
    """[B, T, C, H, W] -> map [B, 1, 1, H, W]: mean and max over the T*C planes, conv, sigmoid."""

    def __init__(self, kernel_size=3):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=3 if kernel_size == 7 else 1, bias=False)

    def forward(self, x):
        planes = x.flatten(1, 2)
        pooled = torch.cat([planes.mean(dim=1, keepdim=True), planes.max(dim=1, keepdim=True).values], dim=1)
        return torch.sigmoid(self.conv(pooled)).unsqueeze(1)


class OfficialStyleMDA(nn.Module):
    """TCSA / TCA / CSA / TSA / TA / CA / SA on [B, T, C, H, W]; sub-modules created in ``order``."""

    def __init__(self, T, C, reduction_t=16, reduction_c=16, kernel_size=3, dims="TCS", order="TCS"):
        super().__init__()
        self.dims = dims
        for key in order:
            if key in dims and key == "T":
                self.ta = OfficialStyleTimeAttention(T, reduction_t)
            if key in dims and key == "C":
                self.ca = OfficialStyleChannelAttention(C, reduction_c)
            if key in dims and key == "S":
                self.sa = OfficialStyleSpatialAttention(kernel_size)

    def forward(self, x):
        out = x
        if "T" in self.dims:
            out = self.ta(out) * out
        if "C" in self.dims:
            out = self.ca(out) * out
        if "S" in self.dims:
            out = self.sa(out) * out
        return torch.relu(out)


class OfficialStyleTAFC(nn.Module):
    """The official ``TA(T, channels, t_ratio=r, fc=True)`` on [B, T, L]."""

    def __init__(self, T, reduction_t):
        super().__init__()
        self.ta = OfficialStyleTimeAttention(T, reduction_t, fc=True)

    def forward(self, x):
        return torch.relu(self.ta(x) * x)


# ---------------------------------------------------------------------------------------------------
# helpers


def randomized(module: nn.Module) -> nn.Module:
    """float64 on DEVICE, every weight rescaled at random (BN affine parameters moved off their init).

    The MLPs' first layers are made positive: their hidden units then stay alive on the max-pooled
    (positive) vector, so every MLP weight gets a gradient (the mean-pooled vector still hits the ReLU)."""
    module = module.to(**F64)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.mul_(1 + 0.5 * torch.randn_like(p)).add_(0.1 * torch.randn_like(p))
            if name.endswith("sharedMLP.0.weight"):
                p.abs_()
    return module


def run(module, x, grad_out):
    """Output and the gradients of the input and of every parameter (by name)."""
    leaf = x.detach().clone().requires_grad_(True)
    out = module(leaf)
    out.backward(grad_out)
    grads = {"input": leaf.grad}
    grads.update({name: p.grad for name, p in module.named_parameters()})
    return out.detach(), grads


def assert_same_run(ours, official, x_ours, x_official, to_official=lambda t: t):
    """Our module (input in its layout) against the official-style one; ``to_official`` maps our layout
    (a transpose of dims 0 and 1, its own inverse)."""
    with torch.no_grad():  # on a copy: a forward updates the running statistics of batch norms
        grad_out = torch.randn_like(copy.deepcopy(official)(x_official))
    official.zero_grad()
    out_o, grads_o = run(official, x_official, grad_out)
    ours.zero_grad()
    out_u, grads_u = run(ours, x_ours, to_official(grad_out))
    torch.testing.assert_close(to_official(out_u), out_o, **TOL)
    assert grads_u.keys() == grads_o.keys()
    for name in grads_o:
        assert grads_o[name] is not None, name
        got = grads_u[name] if name != "input" else to_official(grads_u[name])
        torch.testing.assert_close(got, grads_o[name], **TOL, msg=lambda m, n=name: f"gradient of {n}: {m}")
    return out_o, grads_o


def tb_to_bt(t: torch.Tensor) -> torch.Tensor:
    return t.transpose(0, 1)


# ---------------------------------------------------------------------------------------------------
# released attention (docs/ma_snn.md "Released attention")


@pytest.mark.parametrize("kernel_size", [3, 7])
@pytest.mark.parametrize("reduction_t,reduction_c", [(2, 3), (5, 7)])
@pytest.mark.parametrize("dims", ALL_DIMS)
def test_mda_matches_official_style(dims, reduction_t, reduction_c, kernel_size):
    official = randomized(OfficialStyleMDA(T_, C_, reduction_t, reduction_c, kernel_size, dims))
    ours = loaded(MultiDimensionalAttention(T_, C_, reduction_t, reduction_c, kernel_size, dims), official)
    x = torch.randn(B_, T_, C_, H_, W_, **F64)
    out, grads = assert_same_run(ours, official, tb_to_bt(x), x, to_official=tb_to_bt)
    # not a vacuous comparison: the ReLU cuts, and the gradients reach the input and the output layers' weights
    assert (out == 0).any() and (out > 0).any()
    assert all(g.abs().sum() > 0 for g in grads.values())


def test_mda_official_layout_module_option():
    official = randomized(OfficialStyleMDA(T_, C_, 2, 3, 3, "TCS"))
    ours = loaded(MultiDimensionalAttention(T_, C_, 2, 3, 3, "TCS", layout="BT"), official)
    x = torch.randn(B_, T_, C_, H_, W_, **F64)
    assert_same_run(ours, official, x, x)


@pytest.mark.parametrize("reduction_t", [1, 2, 5])
def test_fc_time_attention_matches_official_style(reduction_t):
    official = randomized(OfficialStyleTAFC(T_, reduction_t))
    ours = loaded(TemporalAttentionFC(T_, reduction_t), official)
    x = torch.randn(B_, T_, 11, **F64)
    assert_same_run(ours, official, tb_to_bt(x), x, to_official=tb_to_bt)
    bt = loaded(TemporalAttentionFC(T_, reduction_t, layout="BT"), official)
    assert_same_run(bt, official, x, x)


def test_gate_functions_match_official_style():
    """The single gates without the ReLU, and the chain as their composition."""
    official = randomized(OfficialStyleMDA(T_, C_, 2, 3, 7, "TCS"))
    x = torch.randn(B_, T_, C_, H_, W_, **F64)
    x_tb = tb_to_bt(x)

    def mats(att):
        return att.sharedMLP[0].weight.flatten(1), att.sharedMLP[2].weight.flatten(1)

    ta, ca, sa = mats(official.ta), mats(official.ca), official.sa.conv.weight
    with torch.no_grad():
        torch.testing.assert_close(tb_to_bt(time_attention_reference(x_tb, *ta)), official.ta(x) * x, **TOL)
        torch.testing.assert_close(tb_to_bt(channel_attention_reference(x_tb, *ca)), official.ca(x) * x, **TOL)
        torch.testing.assert_close(tb_to_bt(spatial_attention_reference(x_tb, sa)), official.sa(x) * x, **TOL)
        chain = spatial_attention_reference(channel_attention_reference(time_attention_reference(x_tb, *ta), *ca), sa)
        torch.testing.assert_close(
            multi_dimensional_attention_reference(x_tb, "TCS", ta, ca, sa), chain.relu(), rtol=0, atol=0
        )


@pytest.mark.parametrize("dims", ["T", "C", "S", "TCS"])
def test_max_pool_ties_send_the_gradient_to_one_element(dims):
    """Ties in a max pool: the official adaptive max pools send the whole gradient to the FIRST maximal
    element in (c, h, w) / (t, h, w) / (t, c) order, not an even share to each; so does the reference."""
    official = randomized(OfficialStyleMDA(T_, C_, 2, 3, 3, dims))
    ours = loaded(MultiDimensionalAttention(T_, C_, 2, 3, 3, dims), official)
    x = torch.randn(B_, T_, C_, H_, W_, **F64)
    x[:, :, :, 1, 1] = 5.0  # ties: C per (b, t) for TA, T per (b, c) for CA, T * C at one pixel for SA
    x[:, :, :, 2, 0] = 4.0
    assert_same_run(ours, official, tb_to_bt(x), x, to_official=tb_to_bt)


# ---------------------------------------------------------------------------------------------------
# paper variant (docs/ma_snn.md "Paper variant: TCSA-LIF"): an independent per-step loop


class RectangleSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, width):
        ctx.save_for_backward(u)
        ctx.width = width
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * (u.abs() < ctx.width / 2).to(u.dtype) / ctx.width, None


def paper_loop(x, holder, beta, u_th, v_reset, width, detach_reset):
    """Eq. 14 on [B, T, C, H, W] with the official-style sub-modules of ``holder`` (any may be absent)."""
    if hasattr(holder, "ta"):
        x = holder.ta(x) * x  # pools over (C, H, W) for each (b, t), on the whole sequence
    h = torch.zeros_like(x[:, 0])
    out = []
    for t in range(x.shape[1]):
        v = h + x[:, t]  # [B, C, H, W]
        u = v
        if hasattr(holder, "ca"):  # per step: pool over (H, W) only
            mlp = holder.ca.sharedMLP
            avg = nn.AdaptiveAvgPool2d(1)(u).unsqueeze(-1)  # [B, C, 1, 1, 1] for the 1x1 Conv3d
            top = nn.AdaptiveMaxPool2d(1)(u).unsqueeze(-1)
            u = torch.sigmoid(mlp(avg) + mlp(top)).squeeze(-1) * u
        if hasattr(holder, "sa"):  # per step: pool over C only
            pooled = torch.cat([u.mean(dim=1, keepdim=True), u.max(dim=1, keepdim=True).values], dim=1)
            u = torch.sigmoid(holder.sa.conv(pooled)) * u
        s = RectangleSpike.apply(u - u_th, width)
        s_r = s.detach() if detach_reset else s
        h = v_reset * s_r + beta * u * (1 - s_r)
        out.append(s)
    return torch.stack(out, dim=1)


class PaperLoop(nn.Module):
    """``paper_loop`` owning the official-style ``ta`` / ``ca`` / ``sa`` of ``holder`` under their names."""

    def __init__(self, holder, **settings):
        super().__init__()
        for name, child in holder.named_children():
            self.add_module(name, child)
        self.settings = settings

    def forward(self, x):
        return paper_loop(x, self, **self.settings)


PAPER_SETTINGS = [
    dict(beta=0.3, u_th=0.3, v_reset=0.0, width=0.5, detach_reset=False),
    dict(beta=0.6, u_th=0.2, v_reset=-0.1, width=1.0, detach_reset=True),
]


# every gate subset once; both kernel sizes and both settings with the full chain and with CS
PAPER_CASES = [
    ("TCS", 7, 0),
    ("TCS", 3, 1),
    ("CS", 7, 1),
    ("CS", 3, 0),
    ("TS", 3, 0),
    ("TC", 7, 1),
    ("T", 7, 1),
    ("C", 3, 1),
    ("S", 7, 0),
]


@pytest.mark.parametrize(
    "dims,kernel_size,settings",
    [(d, k, PAPER_SETTINGS[i]) for d, k, i in PAPER_CASES],
    ids=[f"{d}-k{k}-{['released-values', 'other-values'][i]}" for d, k, i in PAPER_CASES],
)
def test_tcsa_lif_paper_matches_per_step_loop(dims, kernel_size, settings):
    holder = randomized(OfficialStyleMDA(T_, C_, 2, 3, kernel_size, dims))
    official = PaperLoop(holder, **settings)
    ours = TCSALIFNode(
        T_,
        C_,
        2,
        3,
        kernel_size,
        dims,
        beta=settings["beta"],
        u_th=settings["u_th"],
        v_reset=settings["v_reset"],
        surrogate_function=Rectangle(settings["width"]),
        detach_reset=settings["detach_reset"],
    ).to(**F64)
    ours.load_state_dict(holder.state_dict())
    x = 2 * torch.randn(B_, T_, C_, H_, W_, **F64) + 1  # every gate is < 1: the potential shrinks
    out, grads = assert_same_run(ours, official, tb_to_bt(x), x, to_official=tb_to_bt)
    assert 0.05 < out.mean() < 0.95  # both spikes and silence
    assert grads["input"].abs().sum() > 0  # the surrogate window is reached


def test_tcsa_lif_paper_without_gates_is_the_plain_neuron():
    """No gate, V_reset = 0: V_t = beta V_{t-1} (1 - S_{t-1}) + X_t, the leaky neuron with decay beta."""
    x = 0.6 * torch.randn(T_, B_, C_, H_, W_, **F64) + 0.2
    x[0, :, :, 0, 0] = 0.3  # exactly on the threshold at the first step: fires (>=, as the released neuron)
    got = tcsa_lif_paper_reference(x, None, None, None, beta=0.4, u_th=0.3, surrogate_function=Rectangle(0.5))
    want = multistep_leaky_reference(x, decay=0.4, v_threshold=0.3, v_reset=0.0, surrogate_function=Rectangle(0.5))
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert (got[0, :, :, 0, 0] == 1).all()


def test_tcsa_lif_paper_reference_keeps_low_precision_state_in_fp32():
    """bf16 input: the gates and the membrane run in fp32 on the bf16 values, only the spikes are bf16."""
    x = (0.6 * torch.randn(T_, B_, C_, H_, W_) + 0.2).to(torch.bfloat16)
    node = TCSALIFNode(T_, C_, 2, 3).to(torch.bfloat16)
    ta, ca, sa = node.weights()
    got = tcsa_lif_paper_reference(x, ta, ca, sa)
    want = tcsa_lif_paper_reference(x.float(), tuple(w.float() for w in ta), tuple(w.float() for w in ca), sa.float())
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=0, atol=0)
    torch.testing.assert_close(node(x), got, rtol=0, atol=0)
    # a sum that bf16 would round up onto the threshold: 0.99609375 + 0.0029296875 = 0.9990234375 < 1
    steps = torch.tensor([1 - 2**-8, 2**-9 + 2**-10], dtype=torch.bfloat16).reshape(2, 1, 1, 1, 1)
    spikes = tcsa_lif_paper_reference(steps, None, None, None, beta=1.0, u_th=1.0)
    assert spikes.flatten().tolist() == [0.0, 0.0]


# ---------------------------------------------------------------------------------------------------
# Att-Res-SNN-1 block (official Att_Res_SNN/models/resnet_2.py BasicBlock), layout [T, B, C, H, W]


class OfficialStyleMemUpdate(nn.Module):
    """LIF-ATTRES for any T: u_1 = x_1; u_t = 0.25 u_{t-1} (1 - detach(s_{t-1})) + x_t; s = 1[u > 0.5]."""

    def forward(self, x):
        out, mem, spike = [], None, None
        for t in range(x.shape[0]):
            mem = x[t] if t == 0 else mem * 0.25 * (1 - spike.detach()) + x[t]
            spike = StrictRectangleSpike.apply(mem)
            out.append(spike)
        return torch.stack(out)


class StrictRectangleSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return (u > 0.5).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * ((u - 0.5).abs() < 0.5).to(u.dtype) / (2 * 0.5)


class OfficialStyleSnnConv2d(nn.Conv2d):
    def forward(self, x):
        return torch.stack([F.conv2d(x[t], self.weight, None, self.stride, self.padding) for t in range(x.shape[0])])


class HalfThresholdBN(nn.BatchNorm3d):
    init = 0.5

    def reset_parameters(self):
        self.reset_running_stats()
        nn.init.constant_(self.weight, self.init)
        nn.init.zeros_(self.bias)


class TenthThresholdBN(HalfThresholdBN):
    init = 0.1


class OfficialStyleBN(nn.Module):
    def __init__(self, planes, bn_cls):
        super().__init__()
        self.bn = bn_cls(planes)

    def forward(self, x):  # [T, N, C, H, W] -> [N, C, T, H, W] -> back
        y = self.bn(x.transpose(0, 2).contiguous().transpose(0, 1).contiguous())
        return y.transpose(0, 1).contiguous().transpose(0, 2)


class OfficialStylePruningCell(nn.Module):
    def __init__(self, planes, c_ratio):
        super().__init__()
        self.attention = OfficialStyleMDA(1, planes, reduction_c=c_ratio, dims="CS", order="CS")

    def forward(self, x):
        return self.attention(x.permute(1, 0, 2, 3, 4)).permute(1, 0, 2, 3, 4)


class OfficialStyleBasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.residual_function = nn.Sequential(
            OfficialStyleMemUpdate(),
            OfficialStyleSnnConv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            OfficialStyleBN(out_channels, HalfThresholdBN),
            OfficialStyleMemUpdate(),
            OfficialStyleSnnConv2d(out_channels, out_channels, 3, padding=1, bias=False),
            OfficialStyleBN(out_channels, TenthThresholdBN),
            OfficialStylePruningCell(out_channels, 8),
        )
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.AvgPool3d((1, 2, 2), stride=(1, 2, 2)),
                OfficialStyleSnnConv2d(in_channels, out_channels, 1, bias=False),
                OfficialStyleBN(out_channels, HalfThresholdBN),
            )

    def forward(self, x):
        return self.residual_function(x) + self.shortcut(x)


BLOCK_H, BLOCK_W = 6, 4


@pytest.mark.parametrize("T", [1, 3])
@pytest.mark.parametrize("in_planes,planes,stride", [(16, 16, 1), (8, 16, 2)])
def test_att_res_block_matches_official_style(in_planes, planes, stride, T):
    official = randomized(OfficialStyleBasicBlock(in_planes, planes, stride))
    ours = loaded(AttResBlock(in_planes, planes, stride), official)
    x = 1.5 * torch.randn(T, B_, in_planes, BLOCK_H, BLOCK_W, **F64)
    out, grads = assert_same_run(ours, official, x, x)
    assert out.shape == (T, B_, planes, BLOCK_H // stride, BLOCK_W // stride)
    # training-mode BN: the running statistics were updated alike
    for key, value in official.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, **TOL)
    assert grads["residual_function.1.weight"].abs().sum() > 0  # the first LIF fired and its surrogate passed


def test_att_res_block_is_the_composition_of_the_pieces():
    block = randomized(AttResBlock(8, 16, 2))
    x = 1.5 * torch.randn(3, B_, 8, BLOCK_H, BLOCK_W, **F64)
    rf, sc = block.residual_function, block.shortcut

    def lif(v):
        return multistep_leaky_reference(
            v,
            decay=0.25,
            v_threshold=0.5,
            v_reset=0.0,
            strict_threshold=True,
            detach_reset=True,
            surrogate_function=Rectangle(1.0),
        )

    def conv(v, w, stride=1, padding=0):
        return torch.stack([F.conv2d(step, w, stride=stride, padding=padding) for step in v])

    def bn(v, m):  # batch statistics over (T, B, H, W) per channel
        mean = v.mean(dim=(0, 1, 3, 4), keepdim=True)
        var = v.var(dim=(0, 1, 3, 4), unbiased=False, keepdim=True)
        return (v - mean) / torch.sqrt(var + m.bn.eps) * m.bn.weight[:, None, None] + m.bn.bias[:, None, None]

    r = bn(conv(lif(bn(conv(lif(x), rf[1].weight, 2, 1), rf[2])), rf[4].weight, 1, 1), rf[5])
    att = rf[6].attention
    r = multi_dimensional_attention_reference(r, "CS", ca=att.ca.matrices(), sa=att.sa.conv.weight)
    s = bn(conv(F.avg_pool3d(x, (1, 2, 2)), sc[1].weight), sc[2])
    torch.testing.assert_close(block(x), r + s, **TOL)


def test_att_res_block_stride_one_with_new_channels_projects_without_pooling():
    block = AttResBlock(8, 16, 1).to(**F64)
    assert isinstance(block.shortcut[0], nn.Identity)
    x = torch.randn(2, B_, 8, 5, 3, **F64, requires_grad=True)
    y = block(x)
    assert y.shape == (2, B_, 16, 5, 3)
    y.sum().backward()
    assert x.grad.shape == x.shape and torch.isfinite(x.grad).all()


# ---------------------------------------------------------------------------------------------------
# official names, init, layouts


MDA_KEYS = {
    "TCS": {
        "ta.sharedMLP.0.weight": [2, 5, 1, 1, 1],
        "ta.sharedMLP.2.weight": [5, 2, 1, 1, 1],
        "ca.sharedMLP.0.weight": [2, 7, 1, 1, 1],
        "ca.sharedMLP.2.weight": [7, 2, 1, 1, 1],
        "sa.conv.weight": [1, 2, 3, 3],
    },
    "TC": {
        "ta.sharedMLP.0.weight": [2, 5, 1, 1, 1],
        "ta.sharedMLP.2.weight": [5, 2, 1, 1, 1],
        "ca.sharedMLP.0.weight": [2, 7, 1, 1, 1],
        "ca.sharedMLP.2.weight": [7, 2, 1, 1, 1],
    },
    "CS": {
        "ca.sharedMLP.0.weight": [2, 7, 1, 1, 1],
        "ca.sharedMLP.2.weight": [7, 2, 1, 1, 1],
        "sa.conv.weight": [1, 2, 3, 3],
    },
    "TS": {
        "ta.sharedMLP.0.weight": [2, 5, 1, 1, 1],
        "ta.sharedMLP.2.weight": [5, 2, 1, 1, 1],
        "sa.conv.weight": [1, 2, 3, 3],
    },
    "T": {"ta.sharedMLP.0.weight": [2, 5, 1, 1, 1], "ta.sharedMLP.2.weight": [5, 2, 1, 1, 1]},
    "C": {"ca.sharedMLP.0.weight": [2, 7, 1, 1, 1], "ca.sharedMLP.2.weight": [7, 2, 1, 1, 1]},
    "S": {"sa.conv.weight": [1, 2, 3, 3]},
}


def BN_KEYS(p, c):
    return {
        f"{p}.bn.weight": [c],
        f"{p}.bn.bias": [c],
        f"{p}.bn.running_mean": [c],
        f"{p}.bn.running_var": [c],
        f"{p}.bn.num_batches_tracked": [],
    }


BLOCK_KEYS = {
    "residual_function.1.weight": [16, 8, 3, 3],
    **BN_KEYS("residual_function.2", 16),
    "residual_function.4.weight": [16, 16, 3, 3],
    **BN_KEYS("residual_function.5", 16),
    "residual_function.6.attention.ca.sharedMLP.0.weight": [2, 16, 1, 1, 1],
    "residual_function.6.attention.ca.sharedMLP.2.weight": [16, 2, 1, 1, 1],
    "residual_function.6.attention.sa.conv.weight": [1, 2, 3, 3],
    "shortcut.1.weight": [16, 8, 1, 1],
    **BN_KEYS("shortcut.2", 16),
}


def shapes(module):
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("dims", ALL_DIMS)
def test_state_dict_has_the_official_keys_and_shapes(dims):
    assert shapes(MultiDimensionalAttention(5, 7, 2, 3, 3, dims)) == MDA_KEYS[dims]
    assert shapes(OfficialStyleMDA(5, 7, 2, 3, 3, dims)) == MDA_KEYS[dims]
    # the paper's variant owns the same weights; its default SA kernel is the paper's 7
    want = {k: (v if k != "sa.conv.weight" else [1, 2, 7, 7]) for k, v in MDA_KEYS[dims].items()}
    assert shapes(TCSALIFNode(5, 7, 2, 3, dims=dims)) == want


def test_fc_and_block_state_dicts_have_the_official_keys_and_shapes():
    assert shapes(TemporalAttentionFC(8, 2)) == {"ta.sharedMLP.0.weight": [4, 8, 1], "ta.sharedMLP.2.weight": [8, 4, 1]}
    assert shapes(AttResBlock(8, 16, 2)) == BLOCK_KEYS
    assert shapes(OfficialStyleBasicBlock(8, 16, 2)) == BLOCK_KEYS
    identity = {k: v for k, v in BLOCK_KEYS.items() if not k.startswith("shortcut")}
    identity["residual_function.1.weight"] = [16, 16, 3, 3]
    assert shapes(AttResBlock(16, 16, 1)) == identity


def test_block_neurons_and_initial_batch_norm_weights():
    block = AttResBlock(8, 16, 2)
    # the neurons are the Att-Res preset (its equations are tested with the other neurons)
    assert type(block.residual_function[0]) is AttResLIFNode and type(block.residual_function[3]) is AttResLIFNode
    assert block.residual_function[6].attention.dims == "CS"
    assert (block.residual_function[2].bn.weight == 0.5).all() and (block.residual_function[5].bn.weight == 0.1).all()
    assert (block.shortcut[2].bn.weight == 0.5).all()
    norms = (block.residual_function[2], block.residual_function[5], block.shortcut[2])
    assert all((m.bn.bias == 0).all() for m in norms)


SEEDED = {
    **{
        f"mda-{d}": (
            lambda d=d: MultiDimensionalAttention(5, 7, 2, 3, 7, d),
            lambda d=d: OfficialStyleMDA(5, 7, 2, 3, 7, d),
        )
        for d in ALL_DIMS
    },
    "fc": (lambda: TemporalAttentionFC(6, 2), lambda: OfficialStyleTAFC(6, 2)),
    "block-projection": (lambda: AttResBlock(8, 16, 2), lambda: OfficialStyleBasicBlock(8, 16, 2)),
    "block-identity": (lambda: AttResBlock(16, 16, 1), lambda: OfficialStyleBasicBlock(16, 16, 1)),
}


@pytest.mark.parametrize("name", list(SEEDED))
def test_same_seed_gives_the_official_initial_weights(name):
    make, make_official = SEEDED[name]
    torch.manual_seed(1234)
    official = make_official()
    torch.manual_seed(1234)
    ours = make()
    assert ours.state_dict().keys() == official.state_dict().keys()
    for key, value in official.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=0)


def test_biclab_creation_order_loads_but_seeds_differently():
    """BICLab's TCSA creates ca before ta (SpikingJelly: ta first); ours follows SpikingJelly."""
    torch.manual_seed(1234)
    biclab = OfficialStyleMDA(5, 7, 2, 3, 3, "TCS", order="CTS")
    torch.manual_seed(1234)
    ours = MultiDimensionalAttention(5, 7, 2, 3, 3, "TCS")
    assert not torch.equal(ours.ta.sharedMLP[0].weight, biclab.ta.sharedMLP[0].weight)
    ours.load_state_dict(biclab.state_dict())
    x = torch.randn(B_, 5, 7, H_, W_)
    torch.testing.assert_close(ours(tb_to_bt(x)), tb_to_bt(biclab(x)))


LAYOUT_CASES = {
    "mda": (lambda **kw: MultiDimensionalAttention(T_, C_, 2, 3, 3, "TCS", **kw), (T_, B_, C_, H_, W_)),
    "mda-cs-any-T": (lambda **kw: MultiDimensionalAttention(None, C_, 16, 3, 7, "CS", **kw), (3, B_, C_, H_, W_)),
    "fc": (lambda **kw: TemporalAttentionFC(T_, 2, **kw), (T_, B_, 11)),
    "paper": (lambda **kw: TCSALIFNode(T_, C_, 2, 3, **kw), (T_, B_, C_, H_, W_)),
    "block": (lambda **kw: AttResBlock(4, 8, 2, **kw), (3, B_, 4, 6, 4)),
}


@pytest.mark.parametrize("name", list(LAYOUT_CASES))
def test_bt_layout_equals_tb_layout(name):
    make, shape = LAYOUT_CASES[name]
    tb = randomized(make())
    bt = make(layout="BT").to(**F64)
    bt.load_state_dict(tb.state_dict())
    x = torch.randn(shape, **F64)
    if name == "paper":
        x = 0.6 * x + 0.2
    y_tb = tb(x)
    y_bt = bt(x.transpose(0, 1).contiguous())
    assert y_bt.shape == x.transpose(0, 1).shape[:2] + y_tb.shape[2:]
    torch.testing.assert_close(y_bt.transpose(0, 1), y_tb, rtol=0, atol=0)
    if name != "paper":
        assert (y_tb > 0).any()


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_backends_give_the_reference(backend):
    module = randomized(MultiDimensionalAttention(T_, C_, 2, 3, 3, "TCS", backend=backend))
    x = torch.randn(T_, B_, C_, H_, W_, **F64)
    want = multi_dimensional_attention_reference(x, "TCS", *module.weights())
    torch.testing.assert_close(module(x), want, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------
# errors


MODULE_MAKERS = {
    "MultiDimensionalAttention": lambda **kw: MultiDimensionalAttention(T_, C_, 2, 3, **kw),
    "TemporalAttentionFC": lambda **kw: TemporalAttentionFC(T_, 2, **kw),
    "TCSALIFNode": lambda **kw: TCSALIFNode(T_, C_, 2, 3, **kw),
}


@pytest.mark.parametrize("name", list(MODULE_MAKERS))
def test_backend_and_layout_arguments(name):
    # the released attention and the paper's TCSA-LIF have Triton sweeps (python_tests/ops/test_ma_snn_fused.py)
    with_triton = name in ("MultiDimensionalAttention", "TCSALIFNode")
    available = ("auto", "torch", "triton") if with_triton else ("auto", "torch")
    check_backend_and_layout_arguments(MODULE_MAKERS[name], name, available)


@pytest.mark.parametrize("layout", ["TB", "BT"])
@pytest.mark.parametrize("cls", [MultiDimensionalAttention, TCSALIFNode])
def test_mismatched_t_or_c_or_rank_raises(cls, layout):
    module = cls(T_, C_, 2, 3, layout=layout)
    as_layout = (lambda s: s) if layout == "TB" else (lambda s: (s[1], s[0]) + s[2:])
    with pytest.raises(ValueError, match=f"built for T = {T_} time steps but the input has {T_ + 1}"):
        module(torch.randn(as_layout((T_ + 1, B_, C_, H_, W_))))
    with pytest.raises(ValueError, match=f"built for C = {C_} channels but the input has {C_ + 1} at dim 2"):
        module(torch.randn(as_layout((T_, B_, C_ + 1, H_, W_))))
    with pytest.raises(ValueError, match=r"must have shape \[(T, B|B, T), C, H, W\]"):
        module(torch.randn(as_layout((T_, B_, C_, H_))))
    other = "BT" if layout == "TB" else "TB"
    with pytest.raises(ValueError, match=f"is the input in the other layout \\(layout='{other}'\\)"):
        module(torch.randn(as_layout((B_, T_, C_, H_, W_))))


def test_fc_input_errors():
    module = TemporalAttentionFC(T_, 2)
    with pytest.raises(ValueError, match=r"must have shape \[T, B, L\]"):
        module(torch.randn(T_, B_, 3, 4))
    with pytest.raises(ValueError, match=f"built for T = {T_} time steps but the input has {T_ + 1} at dim 0"):
        module(torch.randn(T_ + 1, B_, 3))
    with pytest.raises(ValueError, match=f"has {T_ + 1} at dim 1"):
        TemporalAttentionFC(T_, 2, layout="BT")(torch.randn(B_, T_ + 1, 3))


def test_block_input_errors():
    block = AttResBlock(4, 8, 2)
    with pytest.raises(ValueError, match="built for in_planes = 4 channels but the input has 5 at dim 2"):
        block(torch.randn(2, B_, 5, 6, 4))
    with pytest.raises(ValueError, match="stride 2 needs an even H and W, got H = 5"):
        block(torch.randn(2, B_, 4, 5, 4))
    with pytest.raises(ValueError, match=r"must have shape \[T, B, C, H, W\]"):
        block(torch.randn(2, B_, 4, 6))
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        AttResBlock(4, 8, 3)
    with pytest.raises(ValueError, match="AttResBlock: backend must be one of"):
        AttResBlock(4, 8, backend="cuda")
    with pytest.raises(ValueError, match="layout must be 'TB' or 'BT'"):
        AttResBlock(4, 8, layout="NCHW")
    with pytest.raises(ValueError, match="reduction_c \\(8\\) cannot be greater than C \\(4\\)"):
        AttResBlock(4, 4, 1, c_ratio=8)


@pytest.mark.parametrize("dims", ["", "CT", "TT", "X", "TCSA", "tcs", 3])  # None: "TCS" or the flags' chain
def test_bad_dims_raise(dims):
    with pytest.raises(ValueError, match="dims must be a non-empty subset of 'T', 'C', 'S' written in that order"):
        MultiDimensionalAttention(T_, C_, 2, 3, dims=dims)
    with pytest.raises(ValueError, match="dims must be a non-empty subset"):
        multi_dimensional_attention_reference(torch.randn(T_, B_, C_, H_, W_), dims)


@pytest.mark.parametrize("kernel_size", [1, 2, 5, 9, True, 3.0])
def test_bad_kernel_size_raises(kernel_size):
    with pytest.raises(ValueError, match="kernel_size must be 3 or 7"):
        MultiDimensionalAttention(T_, C_, 2, 3, kernel_size)
    with pytest.raises(ValueError, match="kernel_size must be 3 or 7"):
        TCSALIFNode(T_, C_, 2, 3, kernel_size)


def test_reduction_and_size_arguments():
    with pytest.raises(ValueError, match=r"reduction_t \(16\) cannot be greater than T \(5\)"):
        MultiDimensionalAttention(T_, C_)
    with pytest.raises(ValueError, match=r"reduction_c \(8\) cannot be greater than C \(7\)"):
        MultiDimensionalAttention(T_, C_, 2, 8)
    MultiDimensionalAttention(T_, C_, 16, 7, dims="CS")  # reduction_t is unused without TA
    MultiDimensionalAttention(T_, C_, 2, 16, dims="TS")  # reduction_c is unused without CA
    with pytest.raises(ValueError, match="T is required when dims contains 'T'"):
        MultiDimensionalAttention(None, C_, 1, 1)
    with pytest.raises(ValueError, match="reduction_t must be a positive int"):
        MultiDimensionalAttention(T_, C_, 0, 1)
    with pytest.raises(ValueError, match="C must be a positive int"):
        MultiDimensionalAttention(T_, 0, 1, 1)
    with pytest.raises(ValueError, match=r"reduction_t \(6\) cannot be greater than T \(5\)"):
        TemporalAttentionFC(T_, 6)


def test_reference_argument_errors():
    x = torch.randn(T_, B_, C_, H_, W_)
    ta = (torch.randn(2, T_), torch.randn(T_, 2))
    ca = (torch.randn(3, C_), torch.randn(C_, 3))
    sa = torch.randn(1, 2, 3, 3)
    with pytest.raises(ValueError, match="ca is required with dims='TCS'"):
        multi_dimensional_attention_reference(x, "TCS", ta, None, sa)
    with pytest.raises(ValueError, match=r"ta: w0 must have shape \[hidden, 5\], got \[3, 7\]"):
        multi_dimensional_attention_reference(x, "T", ca)
    with pytest.raises(ValueError, match=r"ca: w1 must have shape \[7, 3\]"):
        multi_dimensional_attention_reference(x, "C", ca=(ca[0], ca[1][:, :2]))
    with pytest.raises(ValueError, match=r"ta must be a pair"):
        multi_dimensional_attention_reference(x, "T", ta=ta[0])
    with pytest.raises(ValueError, match=r"sa must be the conv weight \[1, 2, k, k\] with an odd k"):
        multi_dimensional_attention_reference(x, "S", sa=torch.randn(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"needs x of shape \[T, B, C, H, W\]"):
        multi_dimensional_attention_reference(x[..., 0], "TCS", ta, ca, sa)
    # TA alone pools over everything after B: it takes the FC layers' [T, B, L]
    assert multi_dimensional_attention_reference(x.flatten(2), "T", ta).shape == (T_, B_, C_ * H_ * W_)
    with pytest.raises(ValueError, match=r"needs x of shape \[T, B, C, H, W\]"):
        tcsa_lif_paper_reference(x[0], ta, ca, sa)
