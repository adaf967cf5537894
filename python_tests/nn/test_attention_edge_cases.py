"""Every attention module of ``snnkernels.nn`` on empty input and on fp16 input into an fp32 module, on every
backend: one behaviour everywhere (docs/tcja_dta.md "Empty input and dtypes").

- Empty input (B = 0, H = W = 0, W = 0; L = 0 for the FC layers): an empty output of the right shape and the
  input's dtype, and a backward that gives the input an empty gradient and every parameter a zero one.
- fp16 input into an fp32 module outside autocast: the attention layers raise one ``TypeError`` naming both
  dtypes (torch's own layers refuse the mix too); the neuron layers (``TCSALIFNode``, ``STAALIFNode``) run
  their fp32 state on the fp16 values and return fp16 spikes, the fp32 run's spikes on those values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from snnkernels import nn as snn
from snnkernels.nn.fused import AttentionNeuron, neuron_dta, neuron_tcja_pool
from snnkernels.nn.ma_snn import TemporalWiseAttention

from attention_checks import FusedPair

T, B, C, H, W, L = 4, 2, 8, 4, 6, 10
BACKENDS = ["torch", pytest.param("triton", marks=pytest.mark.triton), "auto"]


@dataclass
class Case:
    """A module under test: ``make(backend)`` builds it, ``call(module, x)`` runs it, ``rank`` is its input's."""

    make: Callable[[str], nn.Module]
    rank: int = 5
    call: Callable[[nn.Module, torch.Tensor], torch.Tensor] = lambda m, x: m(x)
    out_shape: Callable[[tuple], tuple] = lambda shape: shape
    neuron: bool = False  # the neuron layers' dtype rule (fp32 state) instead of the attention layers'


def _lif(backend: str) -> nn.Module:
    return snn.LIFNode(step_mode="m", backend=backend)


def _tcja(backend: str) -> nn.Module:
    return snn.TCJA(2, 1, T, C, backend=backend)


def _mda(backend: str) -> nn.Module:
    return snn.MultiDimensionalAttention(T, C, 2, 2, backend=backend)


def _eager(backend: str) -> str:
    return "torch" if backend == "triton" else backend  # modules without Triton kernels


CASES = {
    "MultiDimensionalAttention": Case(_mda),
    "MultiDimensionalAttention-CS-BT": Case(
        lambda b: snn.MultiDimensionalAttention(None, C, 2, 2, 7, "CS", layout="BT", backend=b)
    ),
    "TemporalAttentionFC": Case(lambda b: snn.TemporalAttentionFC(T, 2, backend=_eager(b)), rank=3),
    "TemporalWiseAttention-2": Case(lambda b: TemporalWiseAttention(T, 2, 2, backend=_eager(b)), rank=3),
    "TemporalWiseAttention-4": Case(lambda b: TemporalWiseAttention(T, 2, 4, backend=_eager(b))),
    "TCSALIFNode": Case(lambda b: snn.TCSALIFNode(T, C, 2, 2, backend=b), neuron=True),
    "AttResBlock": Case(lambda b: snn.AttResBlock(C, C, c_ratio=2, backend=b)),
    "AttResBlock-stride2": Case(
        lambda b: snn.AttResBlock(C, 2 * C, 2, c_ratio=2, backend=b),
        out_shape=lambda s: (s[0], s[1], 2 * C, s[3] // 2, s[4] // 2),
    ),
    "TCJA": Case(_tcja),
    "TLA": Case(lambda b: snn.TLA(2, 3, T, C, backend=b)),
    "CLA-BT": Case(lambda b: snn.CLA(3, 1, T, C, layout="BT", backend=b)),
    "TXA": Case(lambda b: snn.TXA(T, C, backend=b)),
    "TNA": Case(lambda b: snn.TNA(T * C, backend=b)),
    "TNA-fused-4d": Case(lambda b: snn.TNA(T * C, backend=b), rank=4),
    "DTA": Case(lambda b: snn.DTA(T, C, backend=b), call=lambda m, x: m(x, (x.detach() > 0).to(x.dtype))),
    "STAALIFNode": Case(lambda b: snn.STAALIFNode(T, C, pe_shape="TC", backend=b).eval(), neuron=True),
    "STAALIFNode-persistent": Case(
        lambda b: snn.STAALIFNode(T, C, pe_shape="T", backend=b, loop_kernel="persistent").eval(), neuron=True
    ),
    "GlobalContextBlock": Case(lambda b: snn.GlobalContextBlock(C, 2, backend=b)),
    "PositionEncoding": Case(lambda b: snn.PositionEncoding(T, C, shape="TC")),
    "AttentionNeuron-MDA": Case(lambda b: AttentionNeuron(_mda(b), _lif(b))),
    "AttentionNeuron-TCJA": Case(lambda b: AttentionNeuron(_tcja(b), _lif(b))),
    "neuron_tcja_pool": Case(
        lambda b: FusedPair(lambda n, a, x: neuron_tcja_pool(n, a, nn.Identity(), x), _lif(b), _tcja(b))
    ),
    "neuron_dta": Case(lambda b: FusedPair(neuron_dta, _lif(b), snn.DTA(T, C, backend=b))),
}
EMPTY = {
    5: {"B=0": (T, 0, C, H, W), "H=W=0": (T, B, C, 0, 0), "W=0": (T, B, C, H, 0)},
    4: {"B=0": (0, T * C, H, W), "H=W=0": (B, T * C, 0, 0), "W=0": (B, T * C, H, 0)},
    3: {"B=0": (T, 0, L), "L=0": (T, B, 0)},
}
EMPTY_CASES = [(name, empty) for name, case in CASES.items() for empty in EMPTY[case.rank]]


def _layout_shape(module: nn.Module, shape: tuple) -> tuple:
    """``shape`` given as [T, B, ...] in the module's own layout."""
    return (shape[1], shape[0], *shape[2:]) if getattr(module, "layout", "TB") == "BT" and len(shape) == 5 else shape


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, empty", EMPTY_CASES, ids=[f"{n}-{e}" for n, e in EMPTY_CASES])
def test_empty_input_gives_an_empty_output(name, empty, backend):
    case = CASES[name]
    module = case.make(backend)
    shape = _layout_shape(module, EMPTY[case.rank][empty])
    x = torch.randn(shape, requires_grad=True)
    out = case.call(module, x)
    assert out.shape == _layout_shape(module, case.out_shape(EMPTY[case.rank][empty])), name
    assert out.dtype == x.dtype and out.numel() == 0
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    for pname, p in module.named_parameters():
        assert p.grad is not None and torch.equal(p.grad, torch.zeros_like(p)), pname


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_half_input_into_a_float_module(name, backend):
    case = CASES[name]
    module = case.make(backend)
    shape = {5: (T, B, C, H, W), 4: (B, T * C, H, W), 3: (T, B, L)}[case.rank]
    x = (torch.randn(_layout_shape(module, shape)) * 2 + 0.5).to(torch.float16)
    if not case.neuron:
        with pytest.raises(TypeError, match=r"the (input|x_seq) is torch.float16 but the parameters are torch.float32"):
            case.call(module, x)
        return
    spikes = case.call(module, x)
    assert spikes.dtype == torch.float16
    # the fp32 state runs on the fp16 values: the spikes of the fp32 run on those values, bit for bit
    assert torch.equal(spikes, case.call(module, x.float()).half())
    assert 0 < spikes.float().mean() < 1


def test_autocast_lifts_the_dtype_rule():
    """Under autocast a module sees its fp32 parameters with a low-precision input by design: no TypeError."""
    module = _mda("torch")
    x = torch.randn(T, B, C, H, W).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert module(x).shape == x.shape


def test_empty_input_leaves_the_batch_statistics_alone():
    block = snn.AttResBlock(C, C, c_ratio=2, backend="torch").train()
    before = {k: v.clone() for k, v in block.state_dict().items()}
    block(torch.randn(T, 0, C, H, W))
    for key, value in block.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("backend", BACKENDS)
def test_tcja_gate_of_empty_input(backend):
    tcja = _tcja(backend)
    assert tcja.gate(torch.randn(T, 0, C, H, W)).shape == (T, 0, C)
    with pytest.raises(ValueError, match="gate of an empty H x W plane"):
        tcja.gate(torch.randn(T, B, C, 0, W))
    with pytest.raises(TypeError, match="the input is torch.float16"):
        tcja.gate(torch.randn(T, B, C, H, W).half())
