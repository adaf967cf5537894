"""``torch.compile(dynamic=True, fullgraph=True)`` of the neuron's functional API and modules on every backend: one
graph, eager's spikes, states and gradients, and a second batch size that does not recompile (dynamo's
``error_on_recompile``). The zoo networks are covered in test_zoo_compile.py, the attention modules in
test_attention_compile.py.

``backend="torch"`` and ``"native"`` compile with Inductor (CPU here); ``"triton"`` with Inductor on CUDA and
``aot_eager`` under Triton's CPU interpreter, which Inductor cannot launch.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from snnkernels import functional as F
from snnkernels import nn as snn
from snnkernels.backends import backend_problem

ON_CUDA = torch.cuda.is_available()
DEVICE = "cuda" if ON_CUDA else "cpu"
BACKENDS = [b for b in ("torch", "native", "triton") if backend_problem(b, torch.zeros(2, 2, device=DEVICE)) is None]
C = 3


def _compiler(backend: str) -> str:
    return "inductor" if backend != "triton" or ON_CUDA else "aot_eager"


FUNCTIONS: dict[str, Callable] = {
    "lif": lambda x, b: F.multistep_lif(x, tau=2.0, backend=b),
    "lif-state-in-out": lambda x, b: F.multistep_lif(
        x, x[0].detach() * 0.3, tau=2.0, v_reset=None, backend=b, return_final_state=True
    ),
    "leaky-per-channel": lambda x, b: F.multistep_leaky(
        x, decay=torch.linspace(0.2, 0.9, C, device=x.device), input_gain=0.8, backend=b
    ),
    "lif-v-seq": lambda x, b: F.multistep_lif(x, tau=3.0, backend=b, return_v_seq=True),
}


def _outputs(out) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


def _check(fn: Callable[[torch.Tensor], object], make_input: Callable[[int], torch.Tensor], backend: str) -> None:
    torch._dynamo.reset()
    counter = CompileCounterWithBackend(_compiler(backend))
    compiled = torch.compile(fn, backend=counter, dynamic=True, fullgraph=True)
    frames = []
    for batch in (2, 3):
        x = make_input(batch)
        with torch._dynamo.config.patch(error_on_recompile=batch > 2):
            got = _outputs(compiled(x.detach().clone().requires_grad_(True)))
        frames.append(counter.frame_count)
        leaf = x.detach().clone().requires_grad_(True)
        want = _outputs(fn(leaf))
        assert torch.equal(got[0], want[0]), "spikes"
        for g, w in zip(got[1:], want[1:], strict=True):
            torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-6)
    # dynamo may restart its analysis once on the first call (a float it then specializes); none after
    assert frames[0] >= 1 and frames[1] == frames[0], frames


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_functional_compiles_with_dynamic_batch(name, backend):
    _check(lambda x: FUNCTIONS[name](x, backend), lambda B: torch.randn(4, B, C, 5, device=DEVICE) + 0.4, backend)


def test_functional_gradients_through_compiled_graph():
    """The compiled graph's backward is the op's: gradients equal eager's (torch backend, Inductor)."""
    torch._dynamo.reset()
    fn = torch.compile(lambda x: F.multistep_lif(x, tau=2.0, backend="torch"), dynamic=True, fullgraph=True)
    for batch in (2, 5):
        x = (torch.randn(4, batch, 6, device=DEVICE) + 0.4).requires_grad_(True)
        weight = torch.randn(4, batch, 6, device=DEVICE)
        (g_compiled,) = torch.autograd.grad((fn(x) * weight).sum(), x)
        (g_eager,) = torch.autograd.grad((F.multistep_lif(x, tau=2.0, backend="torch") * weight).sum(), x)
        torch.testing.assert_close(g_compiled, g_eager, rtol=1e-5, atol=1e-6)


MODULES: dict[str, Callable[[str], torch.nn.Module]] = {
    "LIFNode-stateless": lambda b: snn.LIFNode(step_mode="m", stateful=False, backend=b),
    "ParametricLIFNode-stateless": lambda b: snn.ParametricLIFNode(step_mode="m", stateful=False, backend=b),
    "LeakyNode-per-channel": lambda b: snn.LeakyNode(channels=C, learnable=True, backend=b),
    "TETLIFNode": lambda b: snn.TETLIFNode(backend=b),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(MODULES))
def test_module_compiles_with_dynamic_batch(name, backend):
    module = MODULES[name](backend).to(DEVICE)
    _check(module, lambda B: torch.randn(4, B, C, 5, device=DEVICE) + 0.4, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stateful_module_compiles_and_carries_its_state(backend):
    """A SpikingJelly-style node (state carried between calls, reset_net between batches) compiled with dynamic
    shapes: the state it keeps equals eager's call after call. The first chunk (resting float state) and the
    next (a tensor state) are two graphs; a new batch size after reset_net recompiles neither."""
    torch._dynamo.reset()
    compiled_node = snn.LIFNode(step_mode="m", backend=backend).to(DEVICE)
    eager_node = snn.LIFNode(step_mode="m", backend=backend).to(DEVICE)
    counter = CompileCounterWithBackend(_compiler(backend))
    compiled = torch.compile(compiled_node, backend=counter, dynamic=True, fullgraph=True)
    frames = []
    for batch in (2, 3):
        for _ in range(2):  # two chunks of one sequence
            x = torch.randn(3, batch, 5, device=DEVICE) + 0.5
            with torch._dynamo.config.patch(error_on_recompile=batch > 2):
                assert torch.equal(compiled(x), eager_node(x))
            torch.testing.assert_close(compiled_node.v, eager_node.v, rtol=0, atol=0)
        snn.reset_net(compiled_node)
        snn.reset_net(eager_node)
        assert compiled_node.v == 0.0
        frames.append(counter.frame_count)
    assert frames[1] == frames[0], frames
