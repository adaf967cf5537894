"""The spiking transformers of ``snnkernels.models`` against the official code and official-style re-implementations.

Part 1 (needs the official repositories, fetched by ``scripts/fetch_official.sh``; skipped with the reason when
absent): every official network class is imported through ``official_transformers`` (stand-ins for SpikingJelly
0.0.0.0.x and timm), built on a tiny configuration with the same seed as ours (identical keys in order and
identical initial weights: same creation order and initialisation), given random weights, loaded into ours with
``load_state_dict(strict=True)``, and both run in float64 in training mode: output, input gradient, EVERY
parameter gradient (1e-9 relative) and the BatchNorm statistics after the step must agree.

Part 2 (no network): the attention blocks against ``OfficialStyle*`` functions written in this file from
docs/spiking_transformers.md in the official layouts and head splits (explicit loops for the neurons,
``F.batch_norm`` / ``F.conv1d`` on the official state-dict keys), forward and every gradient in float64; and
backend="triton" (interpreter) against backend="torch" on tiny networks in float32.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnkernels import models as M

import official_transformers as O

DEVICE = "cpu"
# float64; both sides compute the same sums, a charge's rounding differs (docs/spiking_transformers.md "The neuron")
RTOL = 1e-9


# ---------------------------------------------------------------------------------------------------
# Shared helpers


def randomize(model: nn.Module, seed: int = 1) -> nn.Module:
    """Weights that make every layer fire: conv / linear weights ~ N(0, 2 / fan_in), BN affine around 1 / 0.7
    with spread running statistics, PLIF ``w`` spread around its init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.copy_(0.8 + 0.8 * torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.3 + 0.9 * torch.rand(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        for name, p in model.named_parameters():
            if name.endswith(".w") or name == "w":
                p.copy_(0.5 * torch.randn((), generator=g))
    return model


def close(got: torch.Tensor, want: torch.Tensor, what: str, rtol: float = RTOL, scale: float = 0.0) -> None:
    """``rtol`` relative to the largest entry of ``want`` (or ``scale`` when larger)."""
    scale = max(scale, want.abs().max().item() if want.numel() else 0.0)
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * scale + 1e-300, msg=lambda m: f"{what}: {m}")


def first(out):
    return out[0] if isinstance(out, tuple) else out


def run_step(model: nn.Module, x: torch.Tensor, grad_out: torch.Tensor | None, call=None):
    """Forward (training mode), backward with ``grad_out`` (drawn when None): output, input grad, param grads."""
    model.train()
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    out = first(call(model, x) if call else model(x))
    if grad_out is None:
        grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=out.dtype)
    out.backward(grad_out)
    grads = {n: (None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()}
    return out.detach(), x.grad, grads, grad_out


def assert_same_step(ours: nn.Module, official: nn.Module, x: torch.Tensor, rtol: float = RTOL, call=None) -> dict:
    out_o, dx_o, g_o, dy = run_step(official, x, None, call)
    out_u, dx_u, g_u, _ = run_step(ours, x, dy, call)
    close(out_u, out_o, "output", rtol)
    assert dx_o is not None and dx_o.abs().max() > 0, "no gradient reaches the input: the test would be vacuous"
    close(dx_u, dx_o, "input gradient", rtol)
    assert list(g_u) == list(g_o), "parameter names or order differ"
    live = 0
    for name, want in g_o.items():
        got = g_u[name]
        assert (got is None) == (want is None), f"{name}: gradient presence differs"
        if want is not None:
            # a conv / linear bias followed by BatchNorm has gradient 0 up to rounding: its weight's scale
            weight = g_o.get(name[: -len("bias")] + "weight") if name.endswith(".bias") else None
            close(got, want, f"grad {name}", rtol, 0.0 if weight is None else weight.abs().max().item())
            live += bool(want.abs().max() > 0)
    assert live >= 0.8 * sum(w is not None for w in g_o.values()), "too few parameters receive a gradient"
    for name, buf in official.state_dict().items():  # BatchNorm statistics after the step
        close(ours.state_dict()[name], buf, f"buffer {name}", rtol)
    return g_o


# ---------------------------------------------------------------------------------------------------
# Part 1: against the official code

IMG = dict(img_size_h=32, img_size_w=32, in_channels=3, num_classes=10)
IMG64 = dict(IMG, img_size_h=64, img_size_w=64)
CASES = {
    "spikformer_cifar": (
        "Spikformer",
        M.Spikformer,
        dict(**IMG, patch_size=4, embed_dims=32, num_heads=2, mlp_ratios=4, depths=2, sr_ratios=1, T=2),
    ),
    "spikformer_imagenet": (
        "Spikformer",
        M.SpikformerImageNet,
        # 64 x 64: 16 tokens after the 16x patch splitting, so that the attention LIF fires
        dict(**IMG64, patch_size=16, embed_dims=64, num_heads=2, mlp_ratios=4, depths=1, sr_ratios=1),
    ),
    "spikingformer_cifar": (
        "vit_snn",
        M.Spikingformer,
        dict(**IMG, patch_size=4, embed_dims=32, num_heads=2, mlp_ratios=4, depths=2, sr_ratios=1, T=2),
    ),
    "sdt": (
        "SpikeDrivenTransformer",
        M.SpikeDrivenTransformer,
        dict(**IMG, patch_size=4, embed_dims=32, num_heads=2, mlp_ratios=4, depths=2, T=2, pooling_stat="0011"),
    ),
    "meta_spikformer": (
        "Spiking_vit_MetaFormer",
        M.Spiking_vit_MetaFormer,
        dict(**IMG, embed_dim=[8, 16, 32, 48], num_heads=2, mlp_ratios=4, depths=8),
    ),
    "qkformer_cifar": (
        "spiking_transformer",
        M.QKFormer,
        dict(**IMG, patch_size=4, embed_dims=64, mlp_ratios=4, depths=3, T=2),
    ),
    "qkformer_imagenet": (
        "hierarchical_spiking_transformer",
        M.hierarchical_spiking_transformer,
        dict(**IMG64, T=2, patch_size=16, embed_dims=64, num_heads=2, mlp_ratios=4, depths=4),
    ),
}
SDT_VARIANTS = {
    "plif": dict(spike_mode="plif"),
    "dvs": dict(dvs_mode=True, pooling_stat="1111"),
    "tet": dict(TET=True),
}


def official_or_skip(key: str):
    reason = O.missing_reason(key)
    if reason:
        pytest.skip(reason)
    return O.load(key)


def build_pair(key: str, official_cls, ours_cls, kwargs: dict, T: int | None = None):
    torch.manual_seed(0)
    official = official_cls(**kwargs)
    torch.manual_seed(0)
    ours = ours_cls(**kwargs, backend="torch")
    if T is not None:  # Meta-SpikeFormer: T is an attribute, set by the official fine-tuning script
        official.T = ours.T = T
    sd_o, sd_u = official.state_dict(), ours.state_dict()
    assert list(sd_u) == list(sd_o), f"{key}: state_dict keys differ"
    for name, want in sd_o.items():  # same creation order and initialisation: same initial weights
        assert torch.equal(sd_u[name], want), f"{key}: initial {name} differs"
    randomize(official)
    ours.load_state_dict(official.state_dict(), strict=True)
    return ours.double(), official.double()


def image(batch: int = 2, seed: int = 3, size: int = 32) -> torch.Tensor:
    return 2 * torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("key", list(CASES))
def test_network_matches_official(key):
    mod = official_or_skip(key)
    cls_name, ours_cls, kwargs = CASES[key]
    ours, official = build_pair(
        key, getattr(mod, cls_name), ours_cls, kwargs, T=2 if key == "meta_spikformer" else None
    )
    assert_same_step(ours, official, image(size=kwargs["img_size_h"]))


@pytest.mark.parametrize("variant", list(SDT_VARIANTS))
def test_sdt_variants_match_official(variant):
    mod = official_or_skip("sdt")
    kwargs = {**CASES["sdt"][2], **SDT_VARIANTS[variant]}
    ours, official = build_pair("sdt", mod.SpikeDrivenTransformer, M.SpikeDrivenTransformer, kwargs)
    assert_same_step(ours, official, image())


def test_sdt_sequence_input_and_hook_match_official():
    mod = official_or_skip("sdt")
    ours, official = build_pair("sdt", mod.SpikeDrivenTransformer, M.SpikeDrivenTransformer, CASES["sdt"][2])
    seq = torch.rand(2, 2, 3, 32, 32, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2
    assert_same_step(ours, official, seq)
    hook_o, hook_u = {}, {}
    official(seq, hook=hook_o)
    ours(seq, hook=hook_u)
    assert list(hook_u) == list(hook_o)
    for name, want in hook_o.items():
        close(hook_u[name].detach(), want.detach(), f"hook {name}")


def test_meta_spikformer_kd_matches_official():
    mod = official_or_skip("meta_spikformer")
    kwargs = {**CASES["meta_spikformer"][2], "kd": True}
    ours, official = build_pair("meta", mod.Spiking_vit_MetaFormer, M.Spiking_vit_MetaFormer, kwargs, T=2)
    assert_same_step(ours, official, image(), call=lambda m, x: torch.stack(m(x)))
    ours.eval(), official.eval()
    with torch.no_grad():
        close(ours(image()), official(image()), "kd eval output")


@pytest.mark.parametrize(
    "key, factories",
    [
        ("meta_spikformer", ("metaspikformer_8_384", "metaspikformer_8_512", "metaspikformer_8_768")),
        ("qkformer_imagenet", ("QKFormer_10_384", "QKFormer_10_512", "QKFormer_10_768")),
    ],
)
def test_factories_build_the_official_keys(key, factories, monkeypatch):
    """The paper-size factories: same keys and shapes as the official ones (built on the meta device; the
    drop-path schedule, read with ``.item()``, on the CPU)."""
    mod = official_or_skip(key)
    linspace = torch.linspace
    monkeypatch.setattr(torch, "linspace", lambda *a, **k: linspace(*a, **{**k, "device": "cpu"}))
    with torch.device("meta"):
        for name in factories:
            sd_o = getattr(mod, name)().state_dict()
            sd_u = getattr(M, name)(backend="torch").state_dict()
            assert [(k, v.shape) for k, v in sd_u.items()] == [(k, v.shape) for k, v in sd_o.items()], name


def test_blocks_run_on_their_own():
    """A block of the official module tree (``model.block[i]``, ``model.stage3[i]``) runs on its own input."""
    mod = official_or_skip("qkformer_cifar")
    ours, official = build_pair("qkformer_cifar", mod.spiking_transformer, M.QKFormer, CASES["qkformer_cifar"][2])
    x = torch.rand(2, 2, 64, 4, 4, generator=torch.Generator().manual_seed(9), dtype=torch.float64) * 2
    assert_same_step(ours.stage3[0], official.stage3[0], x)
    assert_same_step(ours.stage1[0], official.stage1[0], torch.rand(2, 2, 16, 8, 8, dtype=torch.float64) * 2)


# ---------------------------------------------------------------------------------------------------
# Part 2a: official-style re-implementations of the attention blocks (no network needed)


def os_lif(x: torch.Tensor, v_threshold: float = 1.0, w: torch.Tensor | None = None) -> torch.Tensor:
    """MultiStepLIFNode(tau=2, detach_reset=True) over dim 0, hard reset to 0, Sigmoid(4) surrogate."""
    v = torch.zeros_like(x[0])
    rate = 0.5 if w is None else torch.sigmoid(w)
    out = []
    for x_t in x:
        h = v + (x_t - v) * rate
        sg = torch.sigmoid(4.0 * (h - v_threshold))
        s = (h >= v_threshold).to(h) + (sg - sg.detach())  # value: Heaviside; gradient: Sigmoid(4)'s
        out.append(s)
        v = h * (1.0 - s.detach())
    return torch.stack(out)


def os_bn(x: torch.Tensor, p: dict, key: str) -> torch.Tensor:
    """BatchNorm in training mode on [samples, C, ...] with the official keys; running statistics copied."""
    return F.batch_norm(
        x, p[key + ".running_mean"].clone(), p[key + ".running_var"].clone(), p[key + ".weight"], p[key + ".bias"], True
    )


def os_conv1d(x_tbcn: torch.Tensor, p: dict, conv: str, bn: str) -> torch.Tensor:
    T, B, C, N = x_tbcn.shape
    y = F.conv1d(x_tbcn.reshape(T * B, C, N), p[conv + ".weight"], p.get(conv + ".bias"))
    return os_bn(y, p, bn).reshape(T, B, -1, N)


def os_heads(x_tbcn: torch.Tensor, h: int) -> torch.Tensor:
    """[T, B, C, N] -> [T, B, h, N, C/h] by einops-free index arithmetic: channel c = head * d + j."""
    T, B, C, N = x_tbcn.shape
    return x_tbcn.reshape(T, B, h, C // h, N).transpose(-1, -2)


def official_style_spikingformer_attention(x, p, h):
    """Spikingformer's SpikingSelfAttention on [T, B, C, H, W]: LIF first, q k v, ((q k^T) v) / 8, proj."""
    T, B, C, H, W = x.shape
    s = os_lif(x).reshape(T, B, C, H * W)
    q, k, v = (os_heads(os_lif(os_conv1d(s, p, f"{n}_conv", f"{n}_bn")), h) for n in "qkv")
    y = torch.einsum("tbhnm,tbhmd->tbhnd", torch.einsum("tbhnd,tbhmd->tbhnm", q, k), v) * 0.125
    y = os_lif(y.transpose(-1, -2).reshape(T, B, C, H * W), 0.5)
    return os_conv1d(y, p, "proj_conv", "proj_bn").reshape(T, B, C, H, W)


def official_style_qkformer_ssa(x, p, h):
    """QKFormer's Spiking_Self_Attention: q (k^T v) / 8, attn LIF, proj, and proj_lif over the T * B pairs."""
    T, B, C, H, W = x.shape
    s = x.reshape(T, B, C, H * W)
    q, k, v = (os_heads(os_lif(os_conv1d(s, p, f"{n}_conv", f"{n}_bn")), h) for n in "qkv")
    y = torch.einsum("tbhnd,tbhde->tbhne", q, torch.einsum("tbhnd,tbhne->tbhde", k, v)) * 0.125
    y = os_lif(y.transpose(-1, -2).reshape(T, B, C, H * W), 0.5)
    y = os_conv1d(y, p, "proj_conv", "proj_bn").reshape(T * B, C, H * W)
    return os_lif(y).reshape(T, B, C, H, W)


def official_style_token_qk(x, p, h):
    """QKFormer's Token_QK_Attention: k * LIF(sum of q over each head's channels), proj Conv + BN + LIF."""
    T, B, C, H, W = x.shape
    s = x.reshape(T, B, C, H * W)
    q = os_lif(os_conv1d(s, p, "q_conv", "q_bn")).reshape(T, B, h, C // h, H * W)
    k = os_lif(os_conv1d(s, p, "k_conv", "k_bn")).reshape(T, B, h, C // h, H * W)
    y = (os_lif(q.sum(3, keepdim=True), 0.5) * k).reshape(T, B, C, H * W)
    return os_lif(os_conv1d(y, p, "proj_conv", "proj_bn").reshape(T, B, C, H, W))


def official_style_sdsa(x, p, h, dvs=False):
    """SDT v1's MS_SSA_Conv: shortcut LIF, q k v by 1x1 conv, q * LIF(sum over tokens of k v), proj, + x."""
    T, B, C, H, W = x.shape
    s = os_lif(x, w=p.get("shortcut_lif.w"))

    def pool(t):
        return F.max_pool3d(t, (1, 3, 3), 1, (0, 1, 1))

    def branch(n):
        y = F.conv2d(s.reshape(T * B, C, H, W), p[f"{n}_conv.weight"])
        y = os_lif(os_bn(y, p, f"{n}_bn").reshape(T, B, C, H, W), w=p.get(f"{n}_lif.w"))
        if dvs and n != "q":
            y = pool(y)
        return os_heads(y.reshape(T, B, C, H * W), h)

    q, k, v = branch("q"), branch("k"), branch("v")
    kv = k * v
    if dvs:
        kv = pool(kv)
    y = q * os_lif(kv.sum(-2, keepdim=True), 0.5, w=p.get("talking_heads_lif.w"))
    if dvs:
        y = pool(y)
    y = F.conv2d(y.transpose(-1, -2).reshape(T * B, C, H, W), p["proj_conv.weight"], p["proj_conv.bias"])
    return os_bn(y, p, "proj_bn").reshape(T, B, C, H, W) + x


def official_style_spikformer_ssa(x, p, h):
    """Spikformer CIFAR's SSA on tokens [T, B, N, C]: Linear + BN1d + LIF, ((q k^T) / 8) v, attn LIF, proj."""
    T, B, N, C = x.shape

    def lin(t, name):
        y = F.linear(t.reshape(T * B, N, -1), p[f"{name}_linear.weight"], p[f"{name}_linear.bias"])
        return os_bn(y.transpose(1, 2), p, f"{name}_bn").transpose(1, 2).reshape(T, B, N, -1)

    q, k, v = (os_heads(os_lif(lin(x, n)).transpose(-1, -2), h) for n in "qkv")
    y = torch.einsum("tbhnm,tbhmd->tbhnd", torch.einsum("tbhnd,tbhmd->tbhnm", q, k) * 0.125, v)
    y = os_lif(y.transpose(2, 3).reshape(T, B, N, C), 0.5)
    return os_lif(lin(y, "proj"))


def os_bn_and_pad(x: torch.Tensor, p: dict, key: str) -> torch.Tensor:
    """Meta-SpikeFormer's BNAndPadLayer: BN (training), then a 1-pixel border holding what the BN maps 0 to,
    computed from the running statistics after this step's update and the detached affine parameters."""
    mean, var = p[key + ".running_mean"].clone(), p[key + ".running_var"].clone()
    y = F.batch_norm(x, mean, var, p[key + ".weight"], p[key + ".bias"], True)
    border = p[key + ".bias"].detach() - mean * p[key + ".weight"].detach() / torch.sqrt(var + 1e-5)
    N, C, H, W = y.shape
    inside = torch.zeros(H + 2, W + 2, dtype=torch.bool)
    inside[1:-1, 1:-1] = True
    return torch.where(inside, F.pad(y, (1, 1, 1, 1)), border.view(1, C, 1, 1))


def os_repconv_bn(x: torch.Tensor, p: dict, key: str) -> torch.Tensor:
    """``Sequential(RepConv, BatchNorm2d)`` under ``key``: 1x1 conv, BN + pad, depthwise 3x3, 1x1 conv, BN, BN."""
    y = os_bn_and_pad(F.conv2d(x, p[key + ".0.body.0.weight"]), p, key + ".0.body.1.bn")
    y = F.conv2d(y, p[key + ".0.body.2.0.weight"], groups=x.shape[1])
    y = os_bn(F.conv2d(y, p[key + ".0.body.2.1.weight"]), p, key + ".0.body.2.2")
    return os_bn(y, p, key + ".1")


def official_style_meta_attention(x, p, h):
    """Meta-SpikeFormer's MS_Attention_RepConv_qkv_id: head LIF, RepConv q k v, (q (k^T v)) / 8, attn LIF, RepConv."""
    T, B, C, H, W = x.shape
    s = os_lif(x).reshape(T * B, C, H, W)
    q, k, v = (os_heads(os_lif(os_repconv_bn(s, p, f"{n}_conv").reshape(T, B, C, H * W)), h) for n in "qkv")
    y = torch.einsum("tbhnd,tbhde->tbhne", q, torch.einsum("tbhnd,tbhne->tbhde", k, v)) * 0.125
    y = os_lif(y.transpose(-1, -2).reshape(T, B, C, H * W), 0.5)
    return os_repconv_bn(y.reshape(T * B, C, H, W), p, "proj_conv").reshape(T, B, C, H, W)


def official_style_sdt_mlp(x, p, h):
    """SDT v1's MS_MLP_Conv: LIF -> 1x1 conv -> BN, twice, membrane shortcuts (the first when widths match)."""
    T, B, C, H, W = x.shape

    def conv_bn(s, name):
        y = F.conv2d(s.reshape(T * B, -1, H, W), p[f"{name}_conv.weight"], p[f"{name}_conv.bias"])
        return os_bn(y, p, f"{name}_bn").reshape(T, B, -1, H, W)

    y = conv_bn(os_lif(x, w=p.get("fc1_lif.w")), "fc1")
    identity = x
    if y.shape[2] == C:
        y = identity + y
        identity = y
    return conv_bn(os_lif(y, w=p.get("fc2_lif.w")), "fc2") + identity


def _ours_spikformer_ssa(dim, heads):
    return M.spikformer.SSA(dim, heads, backend="torch")


BLOCKS = {
    # name: (our module factory, official-style function, input shape [T, B, ...], extra kwargs)
    "spikformer_ssa": (_ours_spikformer_ssa, official_style_spikformer_ssa, (3, 2, 29, 32), {}),
    "spikingformer_ssa": (
        lambda d, h: M.spikingformer.SpikingSelfAttention(d, h, backend="torch"),
        official_style_spikingformer_attention,
        (3, 2, 16, 3, 5),
        {},
    ),
    "qkformer_ssa": (
        lambda d, h: M.qkformer.Spiking_Self_Attention(d, h, backend="torch"),
        official_style_qkformer_ssa,
        (3, 2, 32, 5, 5),
        {},
    ),
    "token_qk": (
        lambda d, h: M.qkformer.Token_QK_Attention(d, h, backend="torch"),
        official_style_token_qk,
        (3, 2, 16, 3, 5),
        {},
    ),
    "sdsa": (
        lambda d, h: M.spike_driven_transformer.MS_SSA_Conv(d, h, backend="torch"),
        official_style_sdsa,
        (3, 2, 16, 3, 5),
        {},
    ),
    "sdsa_plif": (
        lambda d, h: M.spike_driven_transformer.MS_SSA_Conv(d, h, spike_mode="plif", backend="torch"),
        official_style_sdsa,
        (3, 2, 16, 3, 5),
        {},
    ),
    "meta_attention": (
        lambda d, h: M.meta_spikformer.MS_Attention_RepConv_qkv_id(d, h, backend="torch"),
        official_style_meta_attention,
        (3, 2, 32, 5, 5),
        {},
    ),
    "sdt_mlp": (
        lambda d, h: M.spike_driven_transformer.MS_MLP_Conv(d, 4 * d, backend="torch"),
        official_style_sdt_mlp,
        (3, 2, 16, 3, 5),
        {},
    ),
    "sdt_mlp_plif_res": (
        lambda d, h: M.spike_driven_transformer.MS_MLP_Conv(d, d, spike_mode="plif", backend="torch"),
        official_style_sdt_mlp,
        (3, 2, 16, 3, 5),
        {},
    ),
    "sdsa_dvs": (
        lambda d, h: M.spike_driven_transformer.MS_SSA_Conv(d, h, dvs=True, backend="torch"),
        official_style_sdsa,
        (3, 2, 16, 3, 5),
        {"dvs": True},
    ),
}


@pytest.mark.parametrize("name", list(BLOCKS))
def test_attention_block_matches_official_style(name):
    make, reference, shape, extra = BLOCKS[name]
    dim, heads = shape[2] if len(shape) == 5 else shape[3], 2
    torch.manual_seed(0)
    ours = randomize(make(dim, heads)).double().train()
    named = dict(ours.named_parameters())
    params = {k: v.detach().clone().requires_grad_(k in named) for k, v in ours.state_dict().items()}
    x = 2 * torch.rand(shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    want = reference(x.clone().requires_grad_(True), params, heads, **extra)
    dy = torch.randn(want.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    want_grads = torch.autograd.grad(want, [params[n] for n in named], dy, allow_unused=True)
    rates = []
    watched = next(getattr(ours, n) for n in ("talking_heads_lif", "attn_lif", "fc2_lif") if hasattr(ours, n))
    watched.register_forward_hook(lambda m, i, o: rates.append(o.mean().item()))
    xg = x.clone().requires_grad_(True)
    out = first(ours(xg))
    assert 0.02 < rates[0] < 0.98, f"{name}: the watched LIF fires at rate {rates[0]}: the test would be vacuous"
    out.backward(dy)
    close(out.detach(), want.detach(), "output")
    assert out.abs().sum() > 0 and xg.grad.abs().max() > 0, "nothing fires: the comparison would be vacuous"
    by_name = dict(zip(named, want_grads, strict=True))
    for n, p in named.items():
        g = by_name[n]
        if g is None:  # built but unused by the official forward (talking_heads, attn_lif)
            assert p.grad is None, n
        else:  # a bias followed by BatchNorm: gradient 0 up to rounding, judged on its weight's scale
            weight = by_name.get(n[: -len("bias")] + "weight") if n.endswith(".bias") else None
            close(p.grad, g, f"grad {n}", scale=0.0 if weight is None else weight.abs().max().item())


def test_attention_core_is_one_call():
    """Each attention module exposes ``_attention_core``: the one call a fused op replaces."""
    for cls in (
        M.spikformer.SSA,
        M.spikformer.SSAImageNet,
        M.spikingformer.SpikingSelfAttention,
        M.spike_driven_transformer.MS_SSA_Conv,
        M.meta_spikformer.MS_Attention_RepConv_qkv_id,
        M.qkformer.Spiking_Self_Attention,
        M.qkformer.Token_QK_Attention,
    ):
        assert callable(getattr(cls, "_attention_core", None)), cls.__name__


def test_ssa_orderings_agree_exactly_on_spikes():
    """On 0/1 spikes every official ordering gives the same integers times 1/8
    (docs/spiking_transformers.md "Orderings")."""
    from snnkernels.models.transformer_blocks import ssa_core

    g = torch.Generator().manual_seed(2)
    q, k, v = ((torch.rand(2, 3, 12, 50, generator=g) < 0.4).float() for _ in range(3))
    outs = [ssa_core(q, k, v, 3, 0.125, order) for order in ("qk_scale_v", "qk_v_scale", "kv_q_scale")]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    assert torch.equal(outs[0], torch.round(outs[0] * 8) / 8)


# ---------------------------------------------------------------------------------------------------
# Part 2b: backends


TINY = {
    "spikformer": lambda b: M.Spikformer(**CASES["spikformer_cifar"][2] | {"depths": 1}, backend=b),
    "sdt": lambda b: M.SpikeDrivenTransformer(**CASES["sdt"][2] | {"depths": 1}, backend=b),
    "qkformer": lambda b: M.QKFormer(**CASES["qkformer_cifar"][2], backend=b),
}


def _backend_params():
    return [pytest.param(name, "auto", id=f"{name}-auto") for name in TINY] + [
        pytest.param(name, "triton", id=f"{name}-triton", marks=pytest.mark.triton) for name in TINY
    ]


@pytest.mark.parametrize("name, backend", _backend_params())
def test_fused_backend_agrees_with_torch(name, backend):
    """backend="auto" (the native C++ neurons on the CPU) and "triton" (every neuron on the fused kernel) vs
    "torch", float32: output, input gradient and every parameter gradient to float32 rounding."""
    torch.manual_seed(0)
    eager = randomize(TINY[name]("torch"))
    fused = TINY[name](backend)
    fused.load_state_dict(eager.state_dict(), strict=True)
    x = 2 * torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    out_e, dx_e, g_e, dy = run_step(eager, x, None)
    out_f, dx_f, g_f, _ = run_step(fused, x, dy)
    torch.testing.assert_close(out_f, out_e, rtol=1e-5, atol=1e-5)
    close(dx_f, dx_e, "input gradient", 1e-4)
    for n, want in g_e.items():
        if want is not None:
            weight = g_e.get(n[: -len("bias")] + "weight") if n.endswith(".bias") else None
            close(g_f[n], want, f"grad {n}", 1e-4, 0.0 if weight is None else weight.abs().max().item())


def test_backend_reaches_every_neuron():
    from snnkernels.nn.neuron import SpikingNeuron

    for make in TINY.values():
        model = make("torch")
        neurons = [m for m in model.modules() if isinstance(m, SpikingNeuron)]
        assert neurons and all(m.backend == "torch" and not m.stateful for m in neurons)


def _trace_params():
    return [pytest.param(name, "torch", id=f"{name}-torch") for name in TINY] + [
        pytest.param("sdt", "triton", id="sdt-triton", marks=pytest.mark.triton)
    ]


@pytest.mark.parametrize("name, backend", _trace_params())
def test_network_traces_without_graph_breaks(name, backend):
    """torch.compile(fullgraph=True) can take each network whole (the zoo's rule, docs/models.md)."""
    torch._dynamo.reset()
    model = TINY[name](backend).eval()  # eval: the explain pass runs the model, no statistics to move
    explanation = torch._dynamo.explain(model)(torch.rand(1, 3, 32, 32))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_attention_core_routes_to_the_fused_ops(monkeypatch):
    """backend="auto" / "triton" send ``_attention_core`` through snnkernels.functional's attention ops (which
    resolve the backend), "torch" keeps the eager official ordering (docs/spiking_transformers.md "The attention
    core"); the forward spikes are the same either way."""
    from snnkernels.models import qkformer, spike_driven_transformer, transformer_blocks

    calls = []
    for module, name in (
        (transformer_blocks, "spiking_self_attention"),  # HeadedAttention._attention_core: Spikformer, QKFormer SSA
        (spike_driven_transformer, "spike_driven_self_attention"),
        (qkformer, "qk_token_attention"),
    ):
        op = getattr(module, name)
        monkeypatch.setattr(
            module, name, lambda *a, _op=op, _n=name, **kw: calls.append((_n, kw["backend"])) or _op(*a, **kw)
        )
    x = 2 * torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    for key, make in TINY.items():
        torch.manual_seed(0)
        eager = randomize(make("torch")).eval()
        fused = make("auto").eval()
        fused.load_state_dict(eager.state_dict(), strict=True)
        calls.clear()
        want = eager(x)
        assert calls == [], f"{key}: backend='torch' must keep the eager core"
        got = fused(x)
        assert calls and all(b == "auto" for _, b in calls), f"{key}: the fused op was not called: {calls}"
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    plif = M.spike_driven_transformer.MS_SSA_Conv(8, 2, spike_mode="plif", backend="auto")
    assert M.transformer_blocks.fused_attention_lif(plif.talking_heads_lif) is None  # learnable tau: eager
    assert M.transformer_blocks.fused_attention_lif(M.transformer_blocks.lif_node("native", 0.5)) is None
