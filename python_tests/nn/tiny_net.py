"""A small network built from the library's layers, shared by the ecosystem and checkpointing tests."""

from __future__ import annotations

import torch
from torch import nn

from snnkernels.nn import TCJA, LIFNode, ParametricLIFNode

T, C = 4, 6


class TinyNet(nn.Module):
    """conv -> LIF -> TCJA -> conv -> PLIF -> mean over space -> linear, on [T, B, 2, 8, 8], with stateless
    multi-step neurons. No batch statistics, so data-parallel gradients must equal single-process ones.
    The convolutions start wide enough that both neuron layers fire (~10-30 % on 2 * rand input), so the
    gradients the tests compare flow through the spikes, not only through the last layer's bias."""

    def __init__(self, backend: str = "auto") -> None:
        super().__init__()
        attention_backend = backend if backend in ("auto", "torch", "triton") else "auto"  # TCJA: Triton only
        self.conv1 = nn.Conv2d(2, C, 3, padding=1)
        self.lif1 = LIFNode(tau=2.0, step_mode="m", stateful=False, backend=backend)
        self.tcja = TCJA(2, 3, T, C, backend=attention_backend)
        self.conv2 = nn.Conv2d(C, C, 3, padding=1)
        self.lif2 = ParametricLIFNode(init_tau=2.0, step_mode="m", stateful=False, backend=backend)
        self.fc = nn.Linear(C, 3)
        for conv, std in ((self.conv1, 0.6), (self.conv2, 1.5)):
            nn.init.normal_(conv.weight, std=std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        per_step = lambda conv, t: conv(t.flatten(0, 1)).unflatten(0, t.shape[:2])  # noqa: E731
        s = self.tcja(self.lif1(per_step(self.conv1, x)))
        s = self.lif2(per_step(self.conv2, s))
        return self.fc(s.mean(dim=(3, 4))).mean(0)


class TinyBNNet(nn.Module):
    """conv -> BatchNorm + LIF (``BNLIF``, one op) -> mean over space -> linear, on [T, B, 2, 8, 8]: the
    Conv -> BatchNorm -> neuron chain of the zoo. Training mode uses each process's batch statistics, so the
    data-parallel check compares against the same data-parallel run on the eager modules, not one process."""

    def __init__(self, backend: str = "auto") -> None:
        super().__init__()
        from snnkernels.nn import BNLIF

        self.conv = nn.Conv2d(2, C, 3, padding=1)
        lif = LIFNode(tau=2.0, step_mode="m", stateful=False, backend=backend)
        self.bn = BNLIF(C, lif, backend=backend)
        self.fc = nn.Linear(C, 3)
        with torch.no_grad():
            self.bn.weight.uniform_(0.8, 1.6)
            self.bn.bias.uniform_(0.0, 0.4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.bn(self.conv(x.flatten(0, 1)).unflatten(0, x.shape[:2]))
        return self.fc(s.mean(dim=(3, 4))).mean(0)
