"""Spike-Driven Transformer v1 (Yao et al., NeurIPS 2023), official-weight compatible
(docs/spiking_transformers.md "Spike-Driven Transformer").

Source of the facts: BICLab/Spike-Driven-Transformer @ 3faa822, ``model/spikeformer.py``
(``SpikeDrivenTransformer``), ``module/ms_conv.py`` (``MS_SSA_Conv``: SDSA, ``MS_MLP_Conv``, ``MS_Block_Conv``)
and ``module/sps.py`` (``MS_SPS``). The submodules keep the official class names, so the official ``hook``
dictionary gets the same keys. Same parameter names, creation order and initialisation as the official code:
the ``talking_heads`` Conv1d and the ``attn_lif`` / ``rpe_lif`` neurons are built but never used, as there.
``spike_mode`` "lif" or "plif" (the modes whose neurons the released blocks build); ``dvs_mode`` adds the
3x3 max pools ("Erode") around SDSA; ``TET`` returns per-step logits; ``pooling_stat`` picks the patch
splitter's pools. Neurons: ``spike_node`` on ``backend``.

``MS_SSA_Conv._attention_core(q, k, v)``: SDSA with its LIF on spikes [T, B, C, N], the one call a fused SDSA
op replaces.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..functional import spike_driven_self_attention
from .transformer_blocks import (
    SPIKE_MODES,
    HeadedAttention,
    add_conv_bn_lif,
    add_mlp_layers,
    add_sps_stages,
    block_list,
    classifier_head,
    conv_bn_lif,
    drop_path_schedule,
    fused_attention_lif,
    init_trunc_normal,
    merge_heads_view,
    patch_geometry,
    per_step,
    pointwise_conv,
    spike_node,
    split_heads_view,
)

__all__ = ["SpikeDrivenTransformer", "sdt", "MS_SSA_Conv", "MS_MLP_Conv", "MS_Block_Conv", "MS_SPS", "Erode"]


def _check_spike_mode(spike_mode: str) -> str:
    if spike_mode not in SPIKE_MODES:
        raise ValueError(
            f"spike_mode must be one of {SPIKE_MODES} (the modes the released blocks build), got {spike_mode!r}"
        )
    return spike_mode


class Erode(nn.Module):
    """``MaxPool3d((1, 3, 3), stride 1, padding (0, 1, 1))`` on a 5-d tensor: a 3x3 max over its last two dims."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 1, 1), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class MS_MLP_Conv(nn.Module):  # noqa: N801 (official class name: the hook keys start with it)
    """LIF -> 1x1 Conv2d -> BN, twice, with the membrane shortcut; ``forward(x, hook)`` -> ``(x, hook)``."""

    def __init__(
        self,
        in_features,
        hidden_features=None,
        out_features=None,
        drop=0.0,
        spike_mode="lif",
        layer=0,
        *,
        backend="auto",
    ):
        super().__init__()
        _check_spike_mode(spike_mode)
        add_mlp_layers(
            self, ("fc1", "fc2"), in_features, hidden_features, out_features, pointwise_conv(nn.Conv2d),
            nn.BatchNorm2d, lambda: spike_node(spike_mode, backend),
        )  # fmt: skip
        self.res = in_features == self.c_hidden
        self.layer = layer

    def forward(self, x: torch.Tensor, hook: dict | None = None) -> tuple[torch.Tensor, dict | None]:
        identity = x
        x = self.fc1_lif(x)
        if hook is not None:
            hook[self._get_name() + str(self.layer) + "_fc1_lif"] = x.detach()
        x = per_step(self.fc1_bn, per_step(self.fc1_conv, x))
        if self.res:
            x = identity + x
            identity = x
        x = self.fc2_lif(x)
        if hook is not None:
            hook[self._get_name() + str(self.layer) + "_fc2_lif"] = x.detach()
        x = per_step(self.fc2_bn, per_step(self.fc2_conv, x))
        return x + identity, hook


class MS_SSA_Conv(HeadedAttention):  # noqa: N801 (official class name: the hook keys start with it)
    """SDSA block part: ``shortcut_lif``, 1x1 Conv2d + BN + LIF for q, k, v, ``q * LIF(sum over tokens of k * v)``,
    proj Conv + BN, plus the input. ``forward(x, hook)`` -> ``(x, v split into heads, hook)``."""

    def __init__(
        self,
        dim,
        num_heads=8,
        qkv_bias=False,
        qk_scale=None,
        attn_drop=0.0,
        proj_drop=0.0,
        sr_ratio=1,
        mode="direct_xor",
        spike_mode="lif",
        dvs=False,
        layer=0,
        *,
        backend="auto",
    ):
        _check_spike_mode(spike_mode)
        super().__init__(dim, num_heads)
        self.dvs = dvs
        if dvs:
            self.pool = Erode()
        add_conv_bn_lif(
            self,
            ("q", "k", "v"),
            lambda: nn.Conv2d(dim, dim, kernel_size=1, stride=1, bias=False),
            lambda: nn.BatchNorm2d(dim),
            lambda: spike_node(spike_mode, backend),
        )
        self.attn_lif = spike_node(spike_mode, backend, v_threshold=0.5)  # built, unused (official)
        self.talking_heads = nn.Conv1d(num_heads, num_heads, kernel_size=1, stride=1, bias=False)  # built, unused
        self.talking_heads_lif = spike_node(spike_mode, backend, v_threshold=0.5)
        self.proj_conv = nn.Conv2d(dim, dim, kernel_size=1, stride=1)
        self.proj_bn = nn.BatchNorm2d(dim)
        self.shortcut_lif = spike_node(spike_mode, backend)
        self.mode = mode
        self.layer = layer

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, N = x.shape
        return x.transpose(-1, -2).reshape(T, B, N, self.num_heads, C // self.num_heads).permute(0, 1, 3, 2, 4)

    def _attention_core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """SDSA on spikes [T, B, C, N] -> [T, B, C, N]: ``q * talking_heads_lif(sum over N of k * v)`` per
        channel; with ``dvs`` the official 3x3 max pools on ``k * v`` and on the output, taken over the
        (token, channel-in-head) plane of the head-split layout as in the official code."""
        fused = None if self.dvs else fused_attention_lif(self.talking_heads_lif)  # PLIF, dvs pools: eager
        if fused is not None:
            q, k, v = (split_heads_view(x, self.num_heads) for x in (q, k, v))
            return merge_heads_view(spike_driven_self_attention(q, k, v, **fused))
        if not self.dvs:
            return q * self.talking_heads_lif((k * v).sum(dim=-1, keepdim=True))
        kv = self.pool(self._split(k) * self._split(v)).sum(dim=-2, keepdim=True)
        x = self.pool(self._split(q) * self.talking_heads_lif(kv))
        T, B, h, N, d = x.shape
        return x.transpose(3, 4).reshape(T, B, h * d, N)

    def forward(self, x: torch.Tensor, hook: dict | None = None) -> tuple[torch.Tensor, torch.Tensor, dict | None]:
        identity = x
        name = self._get_name() + str(self.layer)
        x = self.shortcut_lif(x)
        if hook is not None:
            hook[name + "_first_lif"] = x.detach()
        spikes = {}
        for n in ("q", "k", "v"):
            s = conv_bn_lif(self, n, x)
            if self.dvs and n != "q":
                s = self.pool(s)
            if hook is not None:
                hook[f"{name}_{n}_lif"] = s.detach()
            spikes[n] = s.flatten(3)
        if hook is not None:
            hook[name + "_kv_before"] = self._split(spikes["k"]) * self._split(spikes["v"])
        out = self._attention_core(spikes["q"], spikes["k"], spikes["v"])
        if hook is not None:
            hook[name + "_kv"] = self._kv_for_hook(spikes["k"], spikes["v"])
            hook[name + "_x_after_qkv"] = self._split(out).detach()
        out = per_step(self.proj_bn, per_step(self.proj_conv, out.reshape(identity.shape)))
        return out + identity, self._split(spikes["v"]), hook

    @torch.no_grad()
    def _kv_for_hook(self, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The official hook's ``kv`` (the talking-heads spikes, [T, B, heads, 1, d]); recomputed for the hook only."""
        kv = self._split(k) * self._split(v)
        if self.dvs:
            kv = self.pool(kv)
        neuron = self.talking_heads_lif
        return neuron(kv.sum(dim=-2, keepdim=True))


class MS_Block_Conv(nn.Module):  # noqa: N801 (official class name)
    """SDSA part, then MLP: ``forward(x, hook)`` -> ``(x, v, hook)``."""

    def __init__(
        self,
        dim,
        num_heads,
        mlp_ratio=4.0,
        qkv_bias=False,
        qk_scale=None,
        drop=0.0,
        attn_drop=0.0,
        drop_path=0.0,
        norm_layer=nn.LayerNorm,
        sr_ratio=1,
        attn_mode="direct_xor",
        spike_mode="lif",
        dvs=False,
        layer=0,
        *,
        backend="auto",
    ):
        super().__init__()
        self.attn = MS_SSA_Conv(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            attn_drop=attn_drop,
            proj_drop=drop,
            sr_ratio=sr_ratio,
            mode=attn_mode,
            spike_mode=spike_mode,
            dvs=dvs,
            layer=layer,
            backend=backend,
        )
        self.drop_path = nn.Identity()  # official: DropPath or Identity, never applied in the forward
        self.mlp = MS_MLP_Conv(
            dim, int(dim * mlp_ratio), drop=drop, spike_mode=spike_mode, layer=layer, backend=backend
        )

    def forward(self, x: torch.Tensor, hook: dict | None = None) -> tuple[torch.Tensor, torch.Tensor, dict | None]:
        x_attn, attn, hook = self.attn(x, hook=hook)
        x, hook = self.mlp(x_attn, hook=hook)
        return x, attn, hook


class MS_SPS(nn.Module):  # noqa: N801 (official class name: the hook keys start with it)
    """Patch splitting: 3x3 Conv + BN + LIF stages with the max pools that ``pooling_stat`` switches on, the last
    stage pooled before its LIF, and the membrane-shortcut position embedding ``rpe_bn(rpe_conv(s)) + x``."""

    def __init__(
        self,
        img_size_h=128,
        img_size_w=128,
        patch_size=4,
        in_channels=2,
        embed_dims=256,
        pooling_stat="1111",
        spike_mode="lif",
        *,
        backend="auto",
    ):
        super().__init__()
        _check_spike_mode(spike_mode)
        patch_geometry(self, img_size_h, img_size_w, patch_size, in_channels)
        self.pooling_stat = pooling_stat
        widths = [in_channels, embed_dims // 8, embed_dims // 4, embed_dims // 2, embed_dims]
        add_sps_stages(self, widths, lambda: spike_node(spike_mode, backend), (True,) * 4)  # all built (official)
        self.rpe_conv = nn.Conv2d(embed_dims, embed_dims, kernel_size=3, stride=1, padding=1, bias=False)
        self.rpe_bn = nn.BatchNorm2d(embed_dims)
        self.rpe_lif = spike_node(spike_mode, backend)  # built, unused (official)

    def forward(self, x: torch.Tensor, hook: dict | None = None) -> tuple[torch.Tensor, tuple[int, int], dict | None]:
        H, W = x.shape[-2:]
        for i, suffix in enumerate(("", "1", "2")):
            x = per_step(getattr(self, f"proj_bn{suffix}"), per_step(getattr(self, f"proj_conv{suffix}"), x))
            x = getattr(self, f"proj_lif{suffix}")(x)
            if hook is not None:
                hook[self._get_name() + "_lif" + suffix] = x.detach()
            if self.pooling_stat[i] == "1":
                x = per_step(getattr(self, f"maxpool{suffix}"), x)
        x = per_step(self.proj_bn3, per_step(self.proj_conv3, x))
        if self.pooling_stat[3] == "1":
            x = per_step(self.maxpool3, x)
        feat = x
        x = self.proj_lif3(x)
        if hook is not None:
            hook[self._get_name() + "_lif3"] = x.detach()
        x = per_step(self.rpe_bn, per_step(self.rpe_conv, x)) + feat
        return x, (H // self.patch_size[0], W // self.patch_size[1]), hook


class SpikeDrivenTransformer(nn.Module):
    """Spike-Driven Transformer v1: ``forward(x, hook=None)`` -> ``(logits, hook)`` as the official model.

    ``x`` is an image batch [B, C, H, W] (repeated over ``T`` steps) or a sequence [B, T, C, H, W]; logits
    [B, num_classes], or [T, B, num_classes] with ``TET=True``.

    Args:
        img_size_h, img_size_w, patch_size, in_channels, num_classes, embed_dims, num_heads, mlp_ratios,
        qkv_bias, qk_scale, drop_rate, attn_drop_rate, drop_path_rate, norm_layer, depths, sr_ratios, T,
        pooling_stat, attn_mode, spike_mode, get_embed, dvs_mode, TET, cml, pretrained, pretrained_cfg:
            the official keywords (``depths`` a number of blocks; dropout, drop path, ``attn_mode``,
            ``get_embed`` and ``cml`` have no effect in the official forward either).
        backend (str, Optional): backend of every neuron. Default: "auto".
    """

    def __init__(
        self,
        img_size_h: int = 128,
        img_size_w: int = 128,
        patch_size: int | tuple[int, int] = 16,
        in_channels: int = 2,
        num_classes: int = 11,
        embed_dims: int = 512,
        num_heads: int = 8,
        mlp_ratios: int = 4,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        depths: int = 8,
        sr_ratios: int = 1,
        T: int = 4,
        pooling_stat: str = "1111",
        attn_mode: str = "direct_xor",
        spike_mode: str = "lif",
        get_embed: bool = False,
        dvs_mode: bool = False,
        TET: bool = False,
        cml: bool = False,
        pretrained: bool = False,
        pretrained_cfg: object = None,
        *,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        _check_spike_mode(spike_mode)
        self.num_classes = num_classes
        self.depths = depths
        self.T = T
        self.TET = TET
        self.dvs = dvs_mode
        self.backend = backend
        dpr = drop_path_schedule(drop_path_rate, depths)
        self.patch_embed = MS_SPS(
            img_size_h, img_size_w, patch_size, in_channels, embed_dims, pooling_stat, spike_mode, backend=backend
        )
        opts = (embed_dims, num_heads, mlp_ratios, qkv_bias, qk_scale, drop_rate, attn_drop_rate, norm_layer, sr_ratios)
        modes = dict(attn_mode=attn_mode, spike_mode=spike_mode, dvs=dvs_mode)
        self.block = block_list(MS_Block_Conv, dpr, *opts, backend=backend, numbered=True, **modes)
        self.head_lif = spike_node(spike_mode, backend)
        self.head = classifier_head(embed_dims, num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """The official rule: Conv2d weights truncated normal (std .02), biases 0; BatchNorm2d 1 / 0; the Linear
        head and the Conv1d / BatchNorm1d layers keep PyTorch's defaults."""
        init_trunc_normal(m, nn.Conv2d, nn.BatchNorm2d)

    def forward_features(self, x: torch.Tensor, hook: dict | None = None) -> tuple[torch.Tensor, dict | None]:
        x, _, hook = self.patch_embed(x, hook=hook)
        for blk in self.block:
            x, _, hook = blk(x, hook=hook)
        return x.flatten(3).mean(3), hook

    def forward(self, x: torch.Tensor, hook: dict | None = None) -> tuple[torch.Tensor, dict | None]:
        x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1) if x.dim() < 5 else x.transpose(0, 1)
        x, hook = self.forward_features(x, hook=hook)
        x = self.head_lif(x)
        if hook is not None:
            hook["head_lif"] = x.detach()
        x = self.head(x)
        if not self.TET:
            x = x.mean(0)
        return x, hook


def sdt(**kwargs) -> SpikeDrivenTransformer:
    """The official registry entry ``sdt(**kwargs)``."""
    return SpikeDrivenTransformer(**kwargs)
