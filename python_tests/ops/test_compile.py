"""torch.compile contract: the registered ops trace with zero graph breaks and compiled forward/backward equal
eager (opcheck of every registered op: test_op_registry.py)."""

from __future__ import annotations

import pytest
import torch

from snnkernels import functional as F
from snnkernels.surrogate import Sigmoid

pytestmark = pytest.mark.triton


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _lif(x, v0):
    s, v = F.multistep_lif(x, v0, tau=3.0, backend="triton", return_final_state=True)
    return s.sum(0) + v


def _plif_channels(x, decay, gain):
    return F.multistep_leaky(
        x, decay=decay, input_gain=gain, bias=0.05, v_reset=None, surrogate_function=Sigmoid(), backend="triton"
    ).mean(0)


def _inputs():
    dev = _device()
    x = torch.randn(5, 2, 3, 4, 5, device=dev, requires_grad=True)
    v0 = torch.randn(2, 3, 4, 5, device=dev, requires_grad=True)
    decay = torch.full((3,), 0.6, device=dev, requires_grad=True)
    gain = torch.full((3,), 0.9, device=dev, requires_grad=True)
    return x, v0, decay, gain


@pytest.mark.parametrize("fn, args", [(_lif, (0, 1)), (_plif_channels, (0, 2, 3))], ids=["lif", "per-channel"])
def test_zero_graph_breaks(fn, args):
    inputs = _inputs()
    explanation = torch._dynamo.explain(fn)(*[inputs[i] for i in args])
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("fn, args", [(_lif, (0, 1)), (_plif_channels, (0, 2, 3))], ids=["lif", "per-channel"])
def test_compiled_matches_eager(fn, args):
    torch._dynamo.reset()
    inputs = _inputs()
    leaves = [inputs[i] for i in args]
    # Inductor compiles user Triton ops on CUDA; on the CPU (interpreter) aot_eager covers fakes + autograd
    backend = "inductor" if _device() == "cuda" else "aot_eager"
    compiled = torch.compile(fn, backend=backend, fullgraph=True)
    out_eager = fn(*leaves)
    grads_eager = torch.autograd.grad(out_eager.square().sum(), leaves)
    out_compiled = compiled(*leaves)
    grads_compiled = torch.autograd.grad(out_compiled.square().sum(), leaves)
    torch.testing.assert_close(out_compiled, out_eager, rtol=0, atol=0)
    for g_c, g_e in zip(grads_compiled, grads_eager, strict=True):
        torch.testing.assert_close(g_c, g_e, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# pooled attentions (TCJA, T-XA, DTA product): custom ops inside autograd.Functions


def _attention_inputs():
    dev = _device()
    T, B, C = 4, 2, 6
    x = torch.randn(T, B, C, 3, 5, device=dev, requires_grad=True)
    na = torch.randn_like(x, requires_grad=True)
    s = (torch.rand_like(x) > 0.5).float()
    w_tla = torch.randn(C, C, 2, device=dev, requires_grad=True)
    w_cla = torch.randn(T, T, 3, device=dev, requires_grad=True)
    conv_t = torch.randn(T, T, 3, device=dev, requires_grad=True)
    conv_c = torch.randn(C, C, 6, device=dev, requires_grad=True)
    scale = torch.tensor(0.8, device=dev, requires_grad=True)
    from snnkernels.nn import TNA

    _TNA["params"] = TNA(T * C).to(dev).params()
    _TNA["ma"] = (
        (torch.randn(2, T, device=dev, requires_grad=True), torch.randn(T, 2, device=dev, requires_grad=True)),
        (torch.randn(3, C, device=dev, requires_grad=True), torch.randn(C, 3, device=dev, requires_grad=True)),
        torch.randn(1, 2, 3, 3, device=dev, requires_grad=True),
    )
    return x, na, s, w_tla, w_cla, conv_t, conv_c, scale


def _tcja(x, na, s, w_tla, w_cla, conv_t, conv_c, scale):
    return F.tcja(x, w_tla, w_cla, backend="triton")


def _txa(x, na, s, w_tla, w_cla, conv_t, conv_c, scale):
    return F.txa(x, conv_t, conv_c, scale, 1.0, backend="triton")


def _dta(x, na, s, w_tla, w_cla, conv_t, conv_c, scale):
    return F.dta_product(x, na, s, conv_t, conv_c, scale, scale, backend="triton")


def _tcja_gate_after_pool(x, na, s, w_tla, w_cla, conv_t, conv_c, scale):
    gate = F.tcja_gate(x, w_tla, w_cla, backend="triton")
    return torch.nn.functional.max_pool2d(x.flatten(0, 1), (3, 5)).unflatten(0, x.shape[:2]) * gate[..., None, None]


_TNA = {}  # T-NA and MA-SNN weights, built outside the traced functions


def _dta_full(x, na, s, w_tla, w_cla, conv_t, conv_c, scale):
    return F.dta(x, s, conv_t, conv_c, scale, 1.0, _TNA["params"], backend="triton")


def _ma_tcsa(x, na, s, w_tla, w_cla, conv_t, conv_c, scale):
    return F.multi_dimensional_attention(x, "TCS", *_TNA["ma"], backend="triton")


ATTENTION = [_tcja, _txa, _dta, _tcja_gate_after_pool, _dta_full, _ma_tcsa]


@pytest.mark.parametrize("fn", ATTENTION, ids=lambda f: f.__name__[1:])
def test_attention_zero_graph_breaks(fn):
    explanation = torch._dynamo.explain(fn)(*_attention_inputs())
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("fn", ATTENTION, ids=lambda f: f.__name__[1:])
def test_attention_compiled_matches_eager(fn):
    torch._dynamo.reset()
    inputs = _attention_inputs()
    leaves = [t for t in inputs if t.requires_grad]
    backend = "inductor" if _device() == "cuda" else "aot_eager"
    compiled = torch.compile(fn, backend=backend, fullgraph=True)
    out_eager = fn(*inputs)
    grads_eager = torch.autograd.grad(out_eager.square().sum(), leaves, allow_unused=True)
    out_compiled = compiled(*inputs)
    grads_compiled = torch.autograd.grad(out_compiled.square().sum(), leaves, allow_unused=True)
    torch.testing.assert_close(out_compiled, out_eager, rtol=1e-6, atol=1e-6)
    for g_c, g_e in zip(grads_compiled, grads_eager, strict=True):
        assert (g_c is None) == (g_e is None)
        if g_e is not None:
            torch.testing.assert_close(g_c, g_e, rtol=1e-5, atol=1e-5)
