"""Independent re-implementations of the official TCJA / DTA modules (official names and layouts), written
from docs/tcja_dta.md, shared by the reference tests (reference/test_tcja_dta.py, reference/test_ma_snn.py)
and the fused sweeps' tests (ops/test_pooled_attention.py): TCJA [T, B, C, H, W], TCJA-TET and DTA
[B, T, C, H, W], with ``nn.Conv1d(padding='same')`` / ``nn.Conv2d`` doing the convolutions, so the explicit
padding of the references is checked against PyTorch's own rule."""

from __future__ import annotations

import torch
from torch import nn

from conftest import DEVICE

F64 = dict(dtype=torch.float64, device=DEVICE)
DTA_C = 64  # the official T-XA hard-codes C = 64


class OfficialStyleTCJA(nn.Module):
    """[T, B, C, H, W]. ``conv``: T conv-channels sliding along C (kernel_size_t); ``conv_c``: C conv-channels
    sliding along T (kernel_size_c). The gate multiplies the logits of the branches present."""

    branches = ("conv", "conv_c")

    def __init__(self, kernel_size_t=2, kernel_size_c=1, T=8, channel=128):
        super().__init__()
        if "conv" in self.branches:
            self.conv = nn.Conv1d(T, T, kernel_size_t, padding="same", bias=False)
        if "conv_c" in self.branches:
            self.conv_c = nn.Conv1d(channel, channel, kernel_size_c, padding="same", bias=False)

    def logits(self, z_btc):
        out = []
        if "conv" in self.branches:
            out.append(self.conv(z_btc))
        if "conv_c" in self.branches:
            out.append(self.conv_c(z_btc.transpose(1, 2)).transpose(1, 2))
        return out

    def forward(self, x):
        z = x.mean(dim=(-2, -1)).transpose(0, 1)  # [B, T, C]
        logit = 1.0
        for term in self.logits(z):
            logit = logit * term
        return x * torch.sigmoid(logit).transpose(0, 1).unsqueeze(-1).unsqueeze(-1)


class OfficialStyleTLA(OfficialStyleTCJA):
    branches = ("conv_c",)


class OfficialStyleCLA(OfficialStyleTCJA):
    branches = ("conv",)


class OfficialStyleTCJATET(nn.Module):
    """TCJA-TET: [B, T, C, H, W], ``conv`` wrapped in a Sequential (key ``conv.0.weight``)."""

    def __init__(self, kernel_size_t=2, kernel_size_c=1, T=8, channel=128):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(T, T, kernel_size_t, padding="same", bias=False))
        self.conv_c = nn.Conv1d(channel, channel, kernel_size_c, padding="same", bias=False)

    def forward(self, x):
        z = x.mean(dim=(-2, -1))  # [B, T, C]
        gate = torch.sigmoid(self.conv(z) * self.conv_c(z.transpose(1, 2)).transpose(1, 2))
        return x * gate[..., None, None]


class OfficialStyleTXA(nn.Module):
    """T_XA on [B, T, 64, H, W]."""

    def __init__(self, time_step):
        super().__init__()
        self.conv_t = nn.Conv1d(time_step, time_step, 3, padding="same", bias=False)
        self.conv_c = nn.Conv1d(64, 64, 6, padding="same", bias=False)
        self.scale_t = nn.Parameter(torch.tensor(1.0))
        self.scale_c = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        z = x.mean(dim=(-2, -1))  # [B, T, C]
        map_t = torch.sigmoid(self.conv_t(z)) * self.scale_t
        map_c = torch.sigmoid(self.conv_c(z.transpose(1, 2)).transpose(1, 2)) * self.scale_c
        return (x + map_t[..., None, None]) * (x + map_c[..., None, None])


class OfficialStyleTCA(nn.Module):
    def __init__(self, dim, kernel_size, dilation=3, reduction=16):
        super().__init__()
        d_k = 2 * dilation - 1
        dd_k = kernel_size // dilation + ((kernel_size // dilation) % 2 - 1)  # the official TCA bookkeeping
        self.LTCA = nn.Sequential(
            nn.Conv2d(dim, dim, d_k, padding=(d_k - 1) // 2, groups=dim),
            nn.Conv2d(dim, dim, dd_k, padding=dilation * (dd_k - 1) // 2, groups=dim, dilation=dilation),
            nn.Conv2d(dim, dim, 1),
        )
        r = max(dim // reduction, 4)
        self.MLP_block = nn.Sequential(
            nn.Linear(dim, dim // r, bias=False), nn.ReLU(), nn.Linear(dim // r, dim, bias=False)
        )

    def forward(self, e):
        g = self.MLP_block(e.mean(dim=(2, 3)))
        return g[:, :, None, None] * self.LTCA(e) * e


class OfficialStyleTNA(nn.Module):
    """T_NA on the fused [B, D, H, W]; the official class default kernel_size is 21."""

    def __init__(self, in_planes, kernel_size=21, attn_shortcut=True):
        super().__init__()
        self.encoding = nn.Sequential(nn.Conv2d(in_planes, in_planes, 1), nn.GELU())
        self.tca = OfficialStyleTCA(in_planes, kernel_size)
        self.decoding = nn.Conv2d(in_planes, in_planes, 1)
        self.attn_shortcut = attn_shortcut

    def forward(self, x):
        out = self.decoding(self.tca(self.encoding(x)))
        return out + x if self.attn_shortcut else out


class OfficialStyleDTA(nn.Module):
    """DTA on [B, T, C, H, W]: sig(T_NA(fused X) * T_XA(X)) * S."""

    def __init__(self, T, out_channels):
        super().__init__()
        self.T_NA = OfficialStyleTNA(out_channels * T, kernel_size=7)
        self.T_XA = OfficialStyleTXA(T)

    def forward(self, x_seq, spikes):
        na = self.T_NA(x_seq.flatten(1, 2)).view_as(x_seq)  # t-major fused channels
        return torch.sigmoid(na * self.T_XA(x_seq)) * spikes


def randomized(module: nn.Module) -> nn.Module:
    """float64 on DEVICE, every parameter moved off its init (scales off 1, weights rescaled at random)."""
    module = module.to(**F64)
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() == 0:
                p.copy_(0.5 + torch.rand(()))
            else:
                p.mul_(1 + 0.5 * torch.randn_like(p))
    return module


def loaded(ours: nn.Module, official: nn.Module) -> nn.Module:
    ours = ours.to(**F64)
    ours.load_state_dict(official.state_dict())  # strict: same keys and shapes
    return ours


def tb_to_bt(t: torch.Tensor) -> torch.Tensor:
    return t.transpose(0, 1)
