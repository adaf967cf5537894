"""SpikingJelly's module contract on our neurons (docs/spikingjelly.md), in our own
words and on every backend this machine runs: the memory API and ``isinstance`` with SpikingJelly's base class,
``v`` after construction and ``reset_net``, the step mode switched after construction, ``detach_net`` for
truncated BPTT, live SpikingJelly surrogates, carried state across batch sizes, [T] and 0-d inputs,
``functional_forward``, copies and pickles. Each comparison runs SpikingJelly's own module on the same input.
``scripts/spikingjelly_suite.py`` runs SpikingJelly's own test files against our classes.
"""

from __future__ import annotations

import copy
import io
import subprocess
import sys

import pytest
import torch

from snnkernels import nn as snn
from snnkernels.backends import backend_problem
from snnkernels.surrogate import ATan

sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron", reason="spikingjelly 2.x not installed")
sj_base = pytest.importorskip("spikingjelly.activation_based.base")
sj_functional = pytest.importorskip("spikingjelly.activation_based.functional")
sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")

BACKENDS = [b for b in ("torch", "native", "triton") if backend_problem(b, torch.zeros(2, 2)) is None]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


def _grads(out: torch.Tensor, inputs: tuple[torch.Tensor, ...], seed: int = 0) -> tuple[torch.Tensor, ...]:
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad((out * weight).sum(), inputs)


def test_memory_api_and_spikingjelly_base_class(backend):
    net = torch.nn.Sequential(snn.IFNode(backend=backend), torch.nn.Identity(), snn.LIFNode(backend=backend))
    node = net[0]
    assert isinstance(node, sj_base.MemoryModule) and isinstance(node, sj_base.StepModule)
    assert list(node.named_memories()) == [("v", 0.0)] and node._memories == {"v": 0.0}
    assert [name for name, _ in sj_base.named_memories(net)] == ["0.v", "2.v"]
    node.register_memory("extra", 1.5)
    assert node.extra == 1.5 and node.get_reset_value("extra") == 1.5
    node.extra = 2.5
    node.reset()
    assert node.extra == 1.5
    del node.extra
    assert "extra" not in node._memories
    assert "v" in dir(node)
    assert node.state_dict() == {}  # memories are not parameters or buffers


def test_works_without_spikingjelly():
    code = (
        "import sys; sys.modules['spikingjelly'] = None\n"
        "import torch, snnkernels.nn as snn\n"
        "from snnkernels.nn import memory\n"
        "assert memory.SPIKINGJELLY_BASES == ()\n"
        "node = snn.LIFNode(step_mode='m', backend='torch')\n"
        "out = node(torch.randn(3, 2, 4)); assert isinstance(node.v, torch.Tensor)\n"
        "memory.reset_net(torch.nn.Sequential(node)); assert node.v == 0.0\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("v_reset", [0.0, -0.5, None])
def test_v_after_construction_forward_and_reset_net(backend, v_reset):
    rest = 0.0 if v_reset is None else v_reset
    ours = snn.LIFNode(v_reset=v_reset, step_mode="m", backend=backend)
    theirs = sj_neuron.LIFNode(v_reset=v_reset, step_mode="m")
    assert ours.v == theirs.v == rest and type(ours.v) is float
    x = torch.randn(5, 3, 4) + 0.5
    ours(x), theirs(x)
    assert isinstance(ours.v, torch.Tensor) and ours.v.shape == theirs.v.shape
    torch.testing.assert_close(ours.v, theirs.v)
    sj_functional.reset_net(torch.nn.Sequential(ours))
    assert ours.v == rest and type(ours.v) is float


@pytest.mark.parametrize("switch", ["assign", "set_step_mode"])
def test_multi_step_node_switched_to_single_step_carries_state(backend, switch):
    x = (torch.randn(6, 2, 5) * 0.8 + 0.3).requires_grad_()
    ours = snn.IFNode(step_mode="m", backend=backend)
    theirs = sj_neuron.IFNode(step_mode="m")
    for node in (ours, theirs):
        if switch == "assign":
            node.step_mode = "s"
        else:
            sj_functional.set_step_mode(torch.nn.Sequential(node), "s")
    out_ours = torch.stack([ours(x_t) for x_t in x])
    out_theirs = torch.stack([theirs(x_t) for x_t in x])
    assert 0 < out_ours.mean() < 1, "the input must make some neurons fire"
    assert torch.equal(out_ours, out_theirs)
    torch.testing.assert_close(ours.v, theirs.v)
    for g_ours, g_theirs in zip(_grads(out_ours, (x,)), _grads(out_theirs, (x,)), strict=True):
        torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-6)


def test_stateless_option_restarts_every_call(backend):
    node = snn.LIFNode(step_mode="m", stateful=False, backend=backend)
    x = torch.randn(4, 3, 2) + 1.0
    first = node(x)
    assert node.v == 0.0, "a stateless call keeps no final state"
    assert torch.equal(node(x), first)
    node.step_mode = "s"  # single steps always carry the state
    node(x[0])
    assert isinstance(node.v, torch.Tensor)


def test_detach_net_allows_truncated_bptt(backend):
    ours = snn.LIFNode(step_mode="m", backend=backend)
    theirs = sj_neuron.LIFNode(step_mode="m")
    weight = torch.full((3,), 0.7, requires_grad=True)
    grads = []
    for node in (ours, theirs):
        weight.grad = None
        for chunk in torch.randn(3, 4, 2, 3, generator=torch.Generator().manual_seed(1)).unbind(0):
            node(chunk * weight + 0.4).sum().backward()  # fails without detach: the graph was freed
            sj_functional.detach_net(torch.nn.Sequential(node))
        grads.append(weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_spikingjelly_surrogate_stays_live(backend):
    surrogate = sj_surrogate.ATan(alpha=2.0)
    ours = snn.IFNode(surrogate_function=surrogate, step_mode="m", backend=backend)
    assert any(m is surrogate for m in ours.modules())
    x = (torch.randn(5, 3, 4) * 0.8 + 0.3).requires_grad_()
    first = _grads(ours(x), (x,))
    ours.reset()
    surrogate.alpha = 5.0  # SpikingJelly reads alpha at every call; so do we
    (after,) = _grads(ours(x), (x,))
    (expected,) = _grads(sj_neuron.IFNode(surrogate_function=sj_surrogate.ATan(alpha=5.0), step_mode="m")(x), (x,))
    assert not torch.allclose(first[0], after)
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-6)


def test_piecewise_quadratic_keeps_its_alpha():
    node = snn.LIFNode(surrogate_function=sj_surrogate.PiecewiseQuadratic(alpha=2.0))
    assert type(node.surrogate_function).__name__ == "PiecewiseQuadratic" and node.surrogate_function.alpha == 2.0


def test_surrogate_can_be_replaced_after_construction(backend):
    node = snn.IFNode(surrogate_function=ATan(3.0), step_mode="m", backend=backend)
    node.surrogate_function = sj_surrogate.Sigmoid(alpha=3.0)  # a submodule now
    assert node._modules["surrogate_function"] is node.surrogate_function
    node.surrogate_function = ATan(3.0)  # a plain object again
    assert "surrogate_function" not in node._modules and node.surrogate_function == ATan(3.0)
    node(torch.randn(3, 2))


def test_surrogate_subclasses_are_refused():
    class Custom(sj_surrogate.ATan):
        pass

    with pytest.raises(TypeError, match="subclasses SpikingJelly's ATan"):
        snn.LIFNode(surrogate_function=Custom())


def test_batch_size_change_restarts_from_rest(backend):
    ours = snn.LIFNode(step_mode="m", backend=backend)
    theirs = sj_neuron.LIFNode(step_mode="m")
    for batch in (4, 3):
        x = torch.randn(3, batch, 5) + 0.6
        assert torch.equal(ours(x), theirs(x))
        torch.testing.assert_close(ours.v, theirs.v)


@pytest.mark.parametrize("v", [0.5, torch.tensor(0.5)], ids=["float", "0-d"])
def test_float_and_0d_state_as_spikingjelly(backend, v):
    ours = snn.IFNode(step_mode="m", backend=backend)
    theirs = sj_neuron.IFNode(step_mode="m")
    ours.v, theirs.v = v, copy.copy(v)
    x = torch.randn(4, 2, 3) * 0.5 + 0.3
    assert torch.equal(ours(x), theirs(x))  # a float is broadcast; a 0-d tensor of another shape restarts
    torch.testing.assert_close(ours.v, theirs.v)


def test_step_mode_must_be_s_or_m():
    with pytest.raises(ValueError, match="step_mode"):
        snn.LIFNode(step_mode="x")
    node = snn.LIFNode()
    with pytest.raises(ValueError, match="step_mode"):
        node.step_mode = "multi"
    with pytest.raises(ValueError, match="step_mode"):
        sj_functional.set_step_mode(torch.nn.Sequential(node), "q")


def test_vector_sequence_and_0d_step_inputs(backend):
    x = torch.tensor([0.6, 0.7, -0.2, 1.4, 0.1])
    ours_m, theirs_m = snn.IFNode(step_mode="m", backend=backend), sj_neuron.IFNode(step_mode="m")
    assert torch.equal(ours_m(x), theirs_m(x)) and ours_m.v.shape == theirs_m.v.shape == ()
    ours_s, theirs_s = snn.IFNode(backend=backend), sj_neuron.IFNode()
    for x_t in x:
        out = ours_s(x_t)
        assert out.shape == () and torch.equal(out, theirs_s(x_t))
    torch.testing.assert_close(ours_s.v, theirs_s.v)


@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_functional_forward_is_pure(backend, step_mode):
    node = snn.LIFNode(step_mode=step_mode, backend=backend)
    x = torch.randn(4, 2, 3) + 0.5
    x = x if step_mode == "m" else x[0]
    v0 = torch.rand(2, 3)
    (out,), (v1,) = node.functional_forward((x,), (v0,))
    assert node.v == 0.0, "functional_forward must not touch the module's memories"
    node.v = v0.clone()
    assert torch.equal(node(x), out)
    torch.testing.assert_close(node.v, v1)


def test_deepcopy_and_pickle_of_a_stateful_node_after_forward(backend):
    node = snn.ParametricLIFNode(step_mode="m", store_v_seq=False, backend=backend)
    x = (torch.randn(4, 2, 3) + 0.5).requires_grad_()
    node(x)
    assert node.v.grad_fn is not None
    twin = copy.deepcopy(node)
    assert twin.v.grad_fn is None and torch.equal(twin.v, node.v) and twin.v.data_ptr() != node.v.data_ptr()
    buffer = io.BytesIO()
    torch.save(node, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    torch.testing.assert_close(loaded.v, node.v.detach())
    assert torch.equal(twin(x), node(x))


# -- deliberate differences (docs/spikingjelly.md "Deliberate differences"): each pinned here ---------------
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_difference_state_is_fp32_for_16_bit_input(backend, dtype):
    if backend_problem(backend, torch.zeros(2, 2, dtype=dtype)) is not None:
        pytest.skip(backend_problem(backend, torch.zeros(2, 2, dtype=dtype)))
    ours, theirs = snn.LIFNode(step_mode="m", backend=backend), sj_neuron.LIFNode(step_mode="m")
    x = torch.randn(3, 2, 4).to(dtype)
    assert ours(x).dtype == theirs(x).dtype == dtype
    assert ours.v.dtype == torch.float32 and theirs.v.dtype == dtype


def test_difference_tau_at_most_one_raises_value_error():
    with pytest.raises(AssertionError):
        sj_neuron.LIFNode(tau=1.0)
    with pytest.raises(ValueError, match="tau must be a finite float > 1"):
        snn.LIFNode(tau=1.0)


def test_difference_not_a_spikingjelly_base_node():
    # one fused op per call: SpikingJelly's per-op hooks (neuronal_charge / fire / reset) and the op counters
    # that look for them do not see inside; snnkernels.firing counts spikes, SOPs and energy instead
    node = snn.LIFNode()
    assert isinstance(node, sj_base.MemoryModule) and not isinstance(node, sj_neuron.BaseNode)
    assert not hasattr(node, "neuronal_charge")


@pytest.mark.parametrize("when", ["constructor", "later"])
def test_store_v_seq_as_spikingjelly(backend, when):
    x = (torch.randn(5, 2, 4) * 0.8 + 0.3).requires_grad_()
    ours = snn.IFNode(step_mode="m", store_v_seq=when == "constructor", backend=backend)
    theirs = sj_neuron.IFNode(step_mode="m", store_v_seq=True)
    ours.store_v_seq = True
    s_ours, s_theirs = ours(x), theirs(x)
    assert torch.equal(s_ours, s_theirs)
    assert ours.v_seq.shape == theirs.v_seq.shape == x.shape
    torch.testing.assert_close(ours.v_seq, theirs.v_seq)
    # the sequence is differentiable: a loss on the membrane reaches the input through it
    (g_ours,) = _grads(torch.stack((ours.v_seq, s_ours)), (x,))
    (g_theirs,) = _grads(torch.stack((theirs.v_seq, s_theirs)), (x,))
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-6)
    ours.store_v_seq = False
    assert ours.v_seq is None
    ours(x)
    assert ours.v_seq is None


def test_store_v_seq_in_single_steps_appends(backend):
    x = torch.randn(4, 3) * 0.8 + 0.3
    ours = snn.IFNode(store_v_seq=True, backend=backend)
    theirs = sj_neuron.IFNode(store_v_seq=True)
    for x_t in x:
        ours(x_t), theirs(x_t)
    torch.testing.assert_close(ours.v_seq, theirs.v_seq)
    ours.reset()
    assert ours.v_seq is None and ours.v == 0.0
