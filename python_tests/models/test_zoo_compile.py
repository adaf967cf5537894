"""Every network of the zoo traces under torch.compile with zero graph breaks on the fused backend ("ours
inside, compiled around"), at the smoke sizes of bench.networks, and the compiled training
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
    for g, g_e in zip(grads, grads_eager, strict=True):
        torch.testing.assert_close(g, g_e, rtol=1e-5, atol=1e-6)


def _small_zoo() -> dict:
    """One small instance of every network class of the zoo (the named presets build these classes)."""
    from snnkernels import models as M

    staa = {"m_init": 0.5, "n_init": 1.0}
    return {
        "MSResNet": (
            lambda b: M.MSResNet(
                layers=(1, 1, 1), num_classes=10, time_step=2, widths=(8, 8, 8), stem_channels=8, backend=b
            ),
            lambda B: (B, 3, 12, 12),
        ),
        "TCJA_DVS128": (
            lambda b: M.TCJA_DVS128(channels=8, T=4, num_classes=11, backend=b),
            lambda B: (B, 4, 2, 128, 128),
        ),
        "MASNN": (
            lambda b: M.MASNN(
                T=4,
                channels=(8, 8),
                pools=(2, 2),
                input_size=8,
                hidden=16,
                t_ratio=2,
                c_ratio=2,
                num_classes=5,
                backend=b,
            ),
            lambda B: (B, 4, 2, 8, 8),
        ),
        "AttResSNN": (
            lambda b: M.AttResSNN(
                (1, 1), num_classes=5, T=2, widths=(8, 8), stem_channels=8, c_ratio=2, dropout=0.0, backend=b
            ),
            lambda B: (2, B, 3, 16, 16),
        ),
        "STAAResNet": (
            lambda b: M.STAAResNet(
                (1, 1, 1, 1),
                10,
                2,
                staa_options=staa,
                input_size=16,
                stem_channels=8,
                widths=(8, 8, 8, 8),
                seed=0,
                backend=b,
            ),
            lambda B: (B, 3, 16, 16),
        ),
    }


def _zoo_params():
    return [
        pytest.param(name, backend, id=f"{name}-{backend}", marks=[pytest.mark.triton] if backend == "triton" else [])
        for name in _small_zoo()
        for backend in ("torch", "triton")
    ]


@pytest.mark.parametrize("name, backend", _zoo_params())
def test_network_compiles_with_dynamic_shapes_without_recompiling(name, backend):
    """torch.compile(dynamic=True, fullgraph=True) of each zoo network: one graph for two batch sizes (a last
    batch of another size must not recompile), eager's output and parameter gradients."""
    from torch._dynamo.testing import CompileCounterWithBackend

    make, shape = _small_zoo()[name]
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = make(backend)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device).eval()  # eval: no dropout draws or running statistics to keep in step
    params = [p for p in model.parameters() if p.requires_grad]
    counter = CompileCounterWithBackend("inductor" if device == "cuda" else "aot_eager")
    compiled = torch.compile(model, backend=counter, dynamic=True, fullgraph=True)
    frames = []
    # batch sizes that equal no other dimension (dynamo gives equal sizes one symbol: a guard on the channel
    # count would pin such a batch too)
    for batch in (5, 7):
        x = torch.rand(shape(batch), device=device)
        with torch._dynamo.config.patch(error_on_recompile=batch > 5):
            out = compiled(x)
        grads = torch.autograd.grad(out.square().sum(), params)
        frames.append(counter.frame_count)
        out_eager = model(x)
        grads_eager = torch.autograd.grad(out_eager.square().sum(), params)
        tol = dict(rtol=1e-5, atol=1e-6) if device == "cuda" else dict(rtol=0, atol=0)
        torch.testing.assert_close(out, out_eager, **tol)
        for i, (g, g_e) in enumerate(zip(grads, grads_eager, strict=True)):
            torch.testing.assert_close(g, g_e, rtol=1e-5, atol=1e-6, msg=lambda m, i=i: f"grad {i}: {m}")
    assert frames[0] >= 1 and frames[1] == frames[0], f"graphs compiled after each call: {frames}"
