"""Backend choice happens in one layer: ``snnkernels.functional``.

- The scan: the resolvers of ``snnkernels.backends`` (``resolve_backend``, ``resolve_triton_op_backend``) are
  called, or imported, only by the modules in ``ALLOWED``; modules and networks pass their ``backend``
  string to a functional entry (or ask ``functional.resolved_backend`` when they decide whether two layers
  fuse, or report what runs).
- The entries that the modules call: each equals its module's output and gradients exactly, on "torch" and
  on "triton" (the module now calls the entry, so anything else is a wiring mistake), and the "triton" entry
  agrees with the eager reference within the tolerances of that op's own tests (test_global_context.py,
  test_staa_loop.py, test_ma_snn_fused.py, test_pooled_attention.py, test_gated_leaky.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

import snnkernels
from snnkernels import functional as SF
from snnkernels import surrogate as sg
from snnkernels.models import SeqToANN
from snnkernels.nn import TCJA, TNA, LIFNode, MultiDimensionalAttention
from snnkernels.nn.fused import attention_neuron, neuron_settings, neuron_tcja_pool
from snnkernels.nn.ma_snn import TCSALIFNode
from snnkernels.nn.staa import GlobalContextBlock, STAALIFNode
from snnkernels.reference.staa import GCParams

from attention_checks import (
    SUM_RTOL,
    check_global_context_block,
    check_grads_without_flips,
    compare,
    gc_weights,
    leaves,
)
from conftest import DEVICE
from utils import GRAD_TOL, MAX_FLIP_RATE, assert_close_verbose, assert_equal_verbose

RESOLVERS = ("resolve_backend", "resolve_triton_op_backend")
# path inside the package -> why it may resolve
ALLOWED = {
    "backends.py": "defines the resolvers",
    "functional.py": "every op's entry resolves its backend argument; resolved_backend serves the rest",
    "diagnostics.py": "reports what 'auto' picks per layer and device without running anything",
}
PACKAGE = Path(snnkernels.__file__).parent


def resolver_uses(path: Path) -> list[str]:
    """'line: what' for every call of a resolver (by name or as an attribute) and every import of one."""
    uses = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name in RESOLVERS:
                uses.append(f"{node.lineno}: calls {name}")
        elif isinstance(node, ast.ImportFrom):
            uses += [f"{node.lineno}: imports {a.name}" for a in node.names if a.name in RESOLVERS]
    return uses


def test_only_the_functional_layer_resolves_backends():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel not in ALLOWED:
            offenders += [f"snnkernels/{rel}:{use}" for use in resolver_uses(path)]
    assert not offenders, (
        "backend resolution outside snnkernels.functional (call a functional entry with the "
        "module's backend, or functional.resolved_backend):\n" + "\n".join(offenders)
    )


def test_the_scan_sees_resolver_calls():
    """The scan can fail: it finds the entries' own calls, and an aliased attribute call."""
    assert any("calls resolve_triton_op_backend" in u for u in resolver_uses(PACKAGE / "functional.py"))
    assert any("calls resolve_backend" in u for u in resolver_uses(PACKAGE / "diagnostics.py"))
    assert set(ALLOWED) <= {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}


# --- each entry equals its module ------------------------------------------------------------------------

BACKENDS = ["torch", pytest.param("triton", marks=pytest.mark.triton)]


def randomize(module: nn.Module, scale: float = 0.5, small: tuple[str, ...] = ()) -> None:
    """Weights off their init (zero last convs, gates at 0.5) so that every path matters."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.normal_(0.0, 0.1 if name.startswith(small) else scale)


def assert_same_run(module_call, entry_call, x: torch.Tensor, params: list[torch.Tensor]) -> None:
    """Bit-equal outputs and gradients (x and ``params``) of two calls on copies of x."""
    x_mod, x_ent = leaves(x, x)
    out, want = entry_call(x_ent), module_call(x_mod)
    assert_equal_verbose(out, want, "output")
    grad_out = torch.randn_like(want)
    grads = torch.autograd.grad(out, [x_ent, *params], grad_out, allow_unused=True)
    grads_ref = torch.autograd.grad(want, [x_mod, *params], grad_out, allow_unused=True)
    assert grads_ref[0] is not None
    for i, (g, g_ref) in enumerate(zip(grads, grads_ref, strict=True)):
        assert (g is None) == (g_ref is None), f"gradient {i}: one side has none"
        if g is not None:
            assert_equal_verbose(g, g_ref, f"gradient {i}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fusion, shape", [("add", (3, 2, 5, 3, 5)), ("mul", (4, 5, 3, 7))])
def test_global_context_equals_the_module(fusion, shape, backend):
    block = GlobalContextBlock(5, 2, fusion=fusion, backend=backend).to(DEVICE)
    randomize(block)
    x = torch.randn(shape, device=DEVICE)
    assert_same_run(
        block,
        lambda x: SF.global_context(
            x, block.params(), fusion=block.fusion, layer_norm=block.layer_norm, ln_eps=block.ln_eps, backend=backend
        ),
        x,
        list(block.parameters()),
    )


STAA_CASES = {"steps": ("C", "steps"), "persistent-scalar": ("scalar", "persistent"), "per-pixel": ("CHW", "steps")}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(STAA_CASES))
def test_staa_lif_equals_the_module(case, backend):
    coefficient_shape, loop_kernel = STAA_CASES[case]
    T, B, C, H, W = 3, 2, 4, 3, 5
    node = STAALIFNode(
        T,
        C,
        H,
        W,
        reduction=2,
        sa_reduction=2,
        coefficient_shape=coefficient_shape,
        loop_kernel=loop_kernel,
        backend=backend,
    ).to(DEVICE)
    randomize(node, 0.3)
    with torch.no_grad():
        node.M.fill_(0.8), node.N.fill_(1.0)
    mask = torch.tensor([False, True, False])  # one dropped step (TSRD), the others attended
    x = torch.randn(T, B, C, H, W, device=DEVICE) * 2
    assert_same_run(
        lambda x: node(x, mask),
        lambda x: SF.staa_lif(
            x, node.params(), drop_mask=mask, loop_kernel=node.loop_kernel, backend=backend, **node.options()
        ),
        x,
        list(node.parameters()),
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dims", ["TCS", "CS"])
def test_tcsa_lif_paper_equals_the_module(dims, backend):
    T, B, C, H, W = 3, 2, 4, 3, 5
    node = TCSALIFNode(T, C, 2, 2, 3, dims, backend=backend).to(DEVICE)
    randomize(node, small=("sa.",))
    x = torch.randn(T, B, C, H, W, device=DEVICE) * 1.5
    assert_same_run(
        node,
        lambda x: SF.tcsa_lif_paper(
            x,
            node.dims,
            *node.weights(),
            beta=node.beta,
            u_th=node.u_th,
            v_reset=node.v_reset,
            surrogate_function=node.surrogate_function,
            detach_reset=node.detach_reset,
            backend=backend,
        ),
        x,
        list(node.parameters()),
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shortcut", [True, False])
def test_tna_on_the_fused_input_equals_the_module(shortcut, backend):
    module = TNA(6, attn_shortcut=shortcut, backend=backend).to(DEVICE)
    randomize(module)
    x = torch.randn(2, 6, 3, 5, device=DEVICE)  # the official [B, T * C, H, W]
    assert_same_run(
        module,
        lambda x: SF.tna(
            x, module.params(), dilation=module.tca.dilation, attn_shortcut=module.attn_shortcut, backend=backend
        ),
        x,
        list(module.parameters()),
    )


T_, B_, C_, H_, W_ = 4, 2, 6, 3, 5


def lif(backend: str) -> LIFNode:
    return LIFNode(tau=2.0, v_threshold=0.5, detach_reset=True, step_mode="m", stateful=False, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tcja_gated_leaky_equals_the_fused_pair(backend):
    """TCJA then a LIF: the pair's call (gate in the neuron's kernel on "triton", the two modules on "torch")
    is ``gated_leaky`` driven by ``tcja_gate``."""
    att, neu = TCJA(3, 2, T_, C_, backend=backend).to(DEVICE), lif(backend)
    randomize(att, 0.7)
    x = torch.randn(T_, B_, C_, H_, W_, device=DEVICE) * 4
    assert_same_run(
        lambda x: attention_neuron(att, neu, x),
        lambda x: SF.gated_leaky(
            x,
            SF.tcja_gate(x, *att.weights(), mode=att.mode, backend=backend),
            neuron=neuron_settings(neu),
            backend=backend,
        ),
        x,
        list(att.parameters()),
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dims", ["TCS", "CS"])
def test_multi_dimensional_attention_gated_leaky_equals_the_fused_pair(dims, backend):
    att = MultiDimensionalAttention(T_, C_, reduction_t=2, reduction_c=2, dims=dims, backend=backend).to(DEVICE)
    neu = lif(backend)
    randomize(att, 0.7, small=("sa.",))
    x = torch.randn(T_, B_, C_, H_, W_, device=DEVICE) * 4
    assert_same_run(
        lambda x: attention_neuron(att, neu, x),
        lambda x: SF.multi_dimensional_attention_gated_leaky(
            x, att.dims, *att.weights(), neuron=neuron_settings(neu), backend=backend
        ),
        x,
        list(att.parameters()),
    )


@pytest.mark.triton
def test_tcja_gate_from_counts_equals_the_fused_neuron_tcja_pool():
    """A LIF's spikes into TCJA and a max pool: the neuron counts its spikes (``gated_leaky`` with a gate of
    ones), the gate comes from the counts and multiplies the pooled spikes."""
    att, neu, pool = TCJA(3, 2, T_, C_, backend="triton").to(DEVICE), lif("triton"), SeqToANN(nn.MaxPool2d(2))
    randomize(att, 0.7)
    x = torch.randn(T_, B_, C_, 4, 6, device=DEVICE) * 2

    def entries(x):
        ones = x.new_ones(x.shape[:3], dtype=torch.float32)
        spikes, counts = SF.gated_leaky(x, ones, neuron=neuron_settings(neu), count_spikes=True, backend="triton")
        gate = SF.tcja_gate_from_counts(spikes, counts, *att.weights(), mode=att.mode, backend="triton")
        return pool(spikes) * gate[..., None, None].to(spikes.dtype)

    assert_same_run(lambda x: neuron_tcja_pool(neu, att, pool, x), entries, x, list(att.parameters()))


# --- the "triton" entries against the eager reference ---------------------------------------------------


@pytest.mark.triton
@pytest.mark.parametrize("fusion", ["add", "mul"])
def test_global_context_on_triton_matches_reference(fusion):
    """test_global_context.test_block_matches_reference's comparison, through the entry (its C and hidden
    width: the LayerNorm over C // r features amplifies fp32 noise by 1 / their std, which its bounds allow
    for at C // r = 4)."""
    T, B, C, H, W = 3, 2, 16, 3, 5
    x = torch.randn(T, B, C, H, W, device=DEVICE)
    inputs = leaves(x, *gc_weights(C, 4, True, True))
    ref = leaves(*[t.double() for t in inputs])
    out = SF.global_context(inputs[0], GCParams(*inputs[1:]), fusion=fusion, backend="triton")
    want = SF.global_context(ref[0], GCParams(*ref[1:]), fusion=fusion, backend="torch")
    present = list(range(len(inputs) - 1))  # every field: bias and LayerNorm on
    check_global_context_block(out, want, inputs, ref, GCParams(*ref[1:]), present, fusion, True)


@pytest.mark.triton
@pytest.mark.parametrize("case", list(STAA_CASES))
def test_staa_lif_on_triton_matches_reference(case):
    """test_global_context.test_staa_layer_on_triton's comparison (the spike flip rate), through the entry."""
    coefficient_shape, loop_kernel = STAA_CASES[case]
    T, B, C, H, W = 3, 3, 4, 3, 5
    node = STAALIFNode(T, C, H, W, reduction=2, sa_reduction=2, coefficient_shape=coefficient_shape).to(DEVICE)
    randomize(node, 0.3)
    with torch.no_grad():
        node.M.fill_(0.8), node.N.fill_(1.0)
    x = torch.randn(T, B, C, H, W, device=DEVICE) * 2
    mask = torch.tensor([False, True, False])
    out = SF.staa_lif(x, node.params(), drop_mask=mask, loop_kernel=loop_kernel, backend="triton", **node.options())
    want = SF.staa_lif(x, node.params(), drop_mask=mask, backend="torch", **node.options())
    flips = (out != want).float().mean().item()
    assert flips <= MAX_FLIP_RATE, f"spike flip rate {flips:.2e}"
    assert 0.01 < want.mean().item() < 0.9


@pytest.mark.triton
@pytest.mark.parametrize("dims", ["TCS", "CS"])
def test_tcsa_lif_paper_on_triton_matches_reference(dims):
    """test_ma_snn_fused.test_tcsa_lif_paper_on_triton's comparison, through the entry."""
    T, B, C, H, W = 3, 4, 4, 3, 5
    node = TCSALIFNode(T, C, 2, 2, 3, dims).to(DEVICE)
    randomize(node, small=("sa.",))
    weights = [w.detach() for w in _flat(node.weights())]
    x = torch.randn(T, B, C, H, W, device=DEVICE) * 1.5
    ours, ref = leaves(x, *weights), leaves(*[t.double() for t in (x, *weights)])
    out = SF.tcsa_lif_paper(ours[0], dims, *_unflat(dims, ours[1:]), backend="triton")
    want = SF.tcsa_lif_paper(ref[0], dims, *_unflat(dims, ref[1:]), backend="torch")
    assert 0.01 < want.mean().item() < 0.8
    differ = out.double() != want
    assert differ.double().mean().item() <= MAX_FLIP_RATE
    flipped = differ.flatten(2).any(-1).any(0)  # [B]: samples with a flip
    assert not flipped.all(), "every sample flipped: nothing left to compare"
    grad_out = torch.randn(T, B, C, H, W, device=DEVICE)
    grads = torch.autograd.grad(out, ours, grad_out)
    grads_ref = torch.autograd.grad(want, ref, grad_out.double())
    check_grads_without_flips(grads, grads_ref, flipped)


def _flat(weights) -> list[torch.Tensor]:
    ta, ca, sa = weights
    return [*(ta or ()), *(ca or ()), *([] if sa is None else [sa])]


def _unflat(dims: str, ws: list[torch.Tensor]) -> tuple:
    ws = list(ws)
    ta = (ws.pop(0), ws.pop(0)) if "T" in dims else None
    ca = (ws.pop(0), ws.pop(0)) if "C" in dims else None
    return ta, ca, (ws.pop(0) if "S" in dims else None)


@pytest.mark.triton
@pytest.mark.parametrize("shortcut", [True, False])
def test_tna_on_the_fused_input_on_triton_matches_reference(shortcut):
    """test_pooled_attention.test_tna_matches_reference's comparison (fp32), on [B, T * C, H, W]."""
    module = TNA(6, attn_shortcut=shortcut).to(DEVICE)
    randomize(module)
    x = torch.randn(2, 6, 3, 5, device=DEVICE)
    inputs = leaves(x, *[p.detach() for p in module.params()])
    params = type(module.params())

    compare(
        "tna [B, T * C, H, W]",
        inputs,
        lambda x, *w: SF.tna(x, params(*w), attn_shortcut=shortcut, backend="triton"),
        lambda x, *w: SF.tna(x, params(*w), attn_shortcut=shortcut, backend="torch"),
        torch.randn(2, 6, 3, 5, device=DEVICE),
        n_data=1,
        summed=(0,),
    )


# test_gated_leaky's ground truth: spikes equal in every dtype, gradients as its check_op / check_gradients
GATE_SUM_RTOL = {torch.float32: SUM_RTOL, torch.float16: 2.0**-9, torch.bfloat16: 2.0**-6}


@pytest.mark.triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("relu, has_map", [(False, False), (True, True)], ids=["tcja", "ma"])
def test_gated_leaky_on_triton_matches_reference(relu, has_map, dtype):
    T, B, C, H, W = 5, 2, 3, 3, 5
    x = (torch.randn(T, B, C, H, W, device=DEVICE) * 2).to(dtype)
    scale = torch.rand(T, B, C, device=DEVICE) * 1.5 + 0.1
    spatial = torch.rand(B, H * W, device=DEVICE) + 0.2 if has_map else None
    surrogate = sg.Sigmoid()
    neuron = (0.5, 0.5, 0.0, 1.0, 0.0, 0.0, True, False, True, surrogate.id, surrogate.param)
    tensors = [t for t in (x, scale, spatial) if t is not None]
    ours, ref = leaves(*tensors), leaves(*tensors)

    def split(ts):
        return ts[0], ts[1], (ts[2] if has_map else None)

    (out, counts) = SF.gated_leaky(*split(ours), relu=relu, neuron=neuron, count_spikes=True, backend="triton")
    (want, counts_ref) = SF.gated_leaky(*split(ref), relu=relu, neuron=neuron, count_spikes=True, backend="torch")
    assert_equal_verbose(out, want, "spikes")
    assert_equal_verbose(counts, counts_ref, "spike counts")
    assert 0.02 < want.float().mean().item() < 0.9
    grad_out = torch.randn(T, B, C, H, W, device=DEVICE).to(dtype)
    grads = torch.autograd.grad(out, ours, grad_out)
    grads_ref = torch.autograd.grad(want, ref, grad_out)
    atol, rtol = GRAD_TOL[dtype]
    assert_close_verbose(grads[0], grads_ref[0], atol, rtol, "grad x")
    for name, g, g_ref in zip(("scale", "spatial"), grads[1:], grads_ref[1:], strict=False):  # TCJA: no spatial map
        top = g_ref.abs().max().item()
        assert top > 0
        assert_close_verbose(g, g_ref, GATE_SUM_RTOL[dtype] * top, GATE_SUM_RTOL[dtype], f"grad {name}")


@pytest.mark.triton
def test_multi_dimensional_attention_gated_leaky_on_triton_matches_reference():
    att = MultiDimensionalAttention(T_, C_, reduction_t=2, reduction_c=2, dims="TCS").to(DEVICE)
    randomize(att, 0.7, small=("sa.",))
    settings = neuron_settings(lif("torch"))
    x = torch.randn(T_, B_, C_, H_, W_, device=DEVICE) * 4
    x_ours, x_ref = leaves(x, x)
    out = SF.multi_dimensional_attention_gated_leaky(x_ours, "TCS", *att.weights(), neuron=settings, backend="triton")
    want = SF.multi_dimensional_attention_gated_leaky(x_ref, "TCS", *att.weights(), neuron=settings, backend="torch")
    assert_equal_verbose(out, want, "spikes")
    assert 0.01 < want.mean().item() < 0.95
    params = list(att.parameters())
    grad_out = torch.randn_like(want)
    grads = torch.autograd.grad(out, [x_ours, *params], grad_out)
    grads_ref = torch.autograd.grad(want, [x_ref, *params], grad_out)
    atol, rtol = GRAD_TOL[torch.float32]
    assert_close_verbose(grads[0], grads_ref[0], atol, rtol, "grad x")
    for i, (g, g_ref) in enumerate(zip(grads[1:], grads_ref[1:], strict=True)):
        top = g_ref.abs().max().item()
        assert top > 0
        assert_close_verbose(g, g_ref, SUM_RTOL * top, SUM_RTOL, f"grad of parameter {i}")


@pytest.mark.triton
def test_tcja_gate_from_counts_on_triton_matches_reference():
    """test_pooled_attention's TCJA comparison: the gate of binary spikes from their counts vs the mean."""
    T, B, C, H, W = 5, 3, 7, 3, 5
    spikes = (torch.rand(T, B, C, H, W, device=DEVICE) < 0.3).float()
    counts = spikes.sum(dim=(3, 4), dtype=torch.int32)
    inputs = leaves(spikes, torch.randn(C, C, 3, device=DEVICE) / 3, torch.randn(T, T, 2, device=DEVICE) / 2)
    compare(
        "tcja_gate_from_counts",
        inputs,
        lambda s, wt, wc: SF.tcja_gate_from_counts(s, counts, wt, wc, backend="triton"),
        lambda s, wt, wc: SF.tcja_gate_from_counts(s, counts, wt, wc, backend="torch"),
        torch.randn(T, B, C, device=DEVICE),
        n_data=1,
    )
