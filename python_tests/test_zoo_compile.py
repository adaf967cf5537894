"""Every network of the zoo traces under torch.compile with zero graph breaks on the fused backend (issue 6
item 4: "ours inside, compiled around"), at the smoke sizes of bench.networks, and the compiled training
step gives eager's loss and gradients."""
from __future__ import annotations

import pytest
import torch

from bench import networks as N

pytestmark = pytest.mark.triton


@pytest.mark.parametrize("name", list(N.NETWORKS))
def test_network_compiles_without_graph_breaks(name):
    model, shape, classes = N._net(name, "cpu" if not torch.cuda.is_available() else "cuda", True, "triton")
    device = next(model.parameters()).device
    x = torch.rand((1, *shape[1:]), device=device)
    model.eval()  # the explain pass runs the model: no batch statistics or TSRD draws to move
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("name", ["masnn_gesture", "tcja_dvs128", "dta_snn_18"])
def test_compiled_training_step_matches_eager(name):
    """The networks whose fused paths bypass module forwards (gates in the neurons, gates after the pools,
    DTA formed in its neuron's loop): compiled forward and backward equal eager."""
    torch._dynamo.reset()
    model, shape, classes = N._net(name, "cpu" if not torch.cuda.is_available() else "cuda", True, "triton")
    device = next(model.parameters()).device
    x = torch.rand((1, *shape[1:]), device=device)
    backend = "inductor" if device.type == "cuda" else "aot_eager"
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    out_eager = model(x)
    grads_eager = torch.autograd.grad(out_eager.square().sum(), list(model.parameters()))
    out = compiled(x)
    grads = torch.autograd.grad(out.square().sum(), list(model.parameters()))
    torch.testing.assert_close(out, out_eager, rtol=0, atol=0)
    for g, g_e in zip(grads, grads_eager):
        torch.testing.assert_close(g, g_e, rtol=1e-5, atol=1e-6)
