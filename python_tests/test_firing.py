"""Firing statistics: the counted Triton forward (``leaky_fwd_counted_triton``), neuron recording and
``snnkernels.firing``.

The counted op must return exactly ``spikes.sum`` per step and leave spikes, states and gradients bit-identical
to the plain op; recording must not change a model's outputs; the utility's figures must equal a hand
computation from the recorded spikes. Tiny sizes: the kernels run under Triton's interpreter on the CPU.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from snnkernels import firing
from snnkernels import nn as snn
from snnkernels.functional import leaky_neuron
from snnkernels.models._blocks import SeqToANN
from snnkernels.nn.neuron import SpikingNeuron
from snnkernels.surrogate import ATan, Sigmoid, Triangle

from conftest import DEVICE

ROOT = Path(__file__).resolve().parents[1]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _ops():
    from snnkernels.ops import leaky_triton

    return leaky_triton


def _fwd_args(x, v0, decay_t, training, chunk, *, bias=0.1, hard=True, strict=False):
    # (x, v_init, decay_t, gain_t, bias_t, decay, gain, bias, v_threshold, v_reset, v_init_value, hard_reset,
    #  strict, detach_reset, surrogate_id, surrogate_param, training, store_final_state, chunk)
    return (
        x,
        v0,
        decay_t,
        None,
        None,
        0.6,
        1.0,
        bias,
        1.0,
        0.0,
        0.0,
        hard,
        strict,
        False,
        Triangle.id,
        1.0,
        training,
        True,
        chunk,
    )


def _per_step(spikes: torch.Tensor) -> torch.Tensor:
    return spikes.detach().reshape(spikes.shape[0], -1).sum(1, dtype=torch.int64)


@pytest.fixture
def poisoned_counts(monkeypatch):
    """int32 allocations (the kernel's partial counts) start as a large sentinel, so a slot the kernel forgets
    to write shows up in the sum (conftest poisons only floating tensors)."""
    original = torch.Tensor.new_empty

    def new_empty(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if out.dtype == torch.int32:
            out.fill_(1 << 20)
        return out

    monkeypatch.setattr(torch.Tensor, "new_empty", new_empty)


# ---------------------------------------------------------------------------------------------------------------
# The counted op


COUNT_CASES = [  # (T, neurons per step, chunk, dtype)
    (1, (2, 3, 9), 8, torch.float32),
    (13, (2, 3, 7), 8, torch.float32),  # T not a multiple of the chunk, odd N
    (7, (3, 11), 3, torch.float16),  # a chunk that is not a power of two
    (10, (2, 3, 5), 4, torch.bfloat16),
    (33, (2, 5), 32, torch.float32),  # the largest chunk: bit 31 of the chunk's spike bits
]


@pytest.mark.triton
@pytest.mark.parametrize("T, shape, chunk, dtype", COUNT_CASES)
@pytest.mark.parametrize("hard, strict", [(True, False), (False, True)], ids=["hard", "soft-strict"])
def test_counted_op_counts_and_matches_plain(poisoned_counts, T, shape, chunk, dtype, hard, strict):
    """counts == spikes.sum per step exactly; spikes, final state, checkpoints and every gradient bit-identical
    to the plain op's (the same kernel body and the same backward)."""
    ops = _ops()
    C = shape[1] if len(shape) > 1 else 1
    x0 = (torch.randn(T, *shape, device=DEVICE) * 1.5 + 0.3).to(dtype)
    v0 = torch.randn(*shape, device=DEVICE) * 0.5
    decay0 = torch.full((C,), 0.6, device=DEVICE) + 0.05 * torch.randn(C, device=DEVICE)
    results = []
    for op in (ops.leaky_fwd_counted_triton, ops.leaky_fwd_triton):
        x, v, decay = (t.clone().requires_grad_(True) for t in (x0, v0, decay0))
        outs = op(*_fwd_args(x, v, decay, True, chunk, hard=hard, strict=strict))
        gen = torch.Generator().manual_seed(7)
        grad_s = torch.randn(outs[0].shape, generator=gen).to(dtype)
        grad_v = torch.randn(outs[1].shape, generator=gen)
        grads = torch.autograd.grad([outs[0], outs[1]], [x, v, decay], [grad_s, grad_v])
        results.append((outs, grads))
    (counted, grads_c), (plain, grads_p) = results
    spikes, v_final, ckpt, _v_seq, counts = counted
    assert counts.dtype == torch.int64 and counts.shape == (T,) and not counts.requires_grad
    assert torch.equal(counts, _per_step(spikes)), (counts, _per_step(spikes))
    if spikes.numel() >= 50:
        assert 0 < counts.sum() < spikes.numel(), "the data must exercise both firing and silence"
    for name, a, b in zip(("spikes", "v_final", "checkpoints"), (spikes, v_final, ckpt), plain[:3], strict=True):
        assert torch.equal(a, b), name
    for name, a, b in zip(("x", "v_init", "decay"), grads_c, grads_p, strict=True):
        assert torch.equal(a, b), f"grad {name}"


@pytest.mark.triton
@pytest.mark.parametrize("block, warps", [(32, 1), (128, 4), (512, 4)])
@pytest.mark.parametrize("training", [True, False])
def test_counted_op_many_programs_masked_tail(monkeypatch, poisoned_counts, block, warps, training):
    """Several programs, partial counts per warp, a partly masked last program whose idle lanes would fire
    (bias above the threshold makes x = 0 fire): they must not be counted."""
    ops = _ops()
    monkeypatch.setattr(ops, "launch_config", lambda n, backward, **_: ops.LaunchConfig(block, warps))
    x = torch.randn(11, 2, 3, 101, device=DEVICE) * 2.0 - 1.0
    spikes, *_, counts = ops.leaky_fwd_counted_triton(*_fwd_args(x, None, None, training, 4, bias=1.2))
    assert torch.equal(counts, _per_step(spikes))
    assert torch.equal(spikes, ops.leaky_fwd_triton(*_fwd_args(x, None, None, training, 4, bias=1.2))[0])


@pytest.mark.triton
def test_counted_op_zero_neurons_and_long_chunk():
    ops = _ops()
    x = torch.randn(4, 0, 3, device=DEVICE)
    assert torch.equal(
        ops.leaky_fwd_counted_triton(*_fwd_args(x, None, None, False, 8))[-1], torch.zeros(4, dtype=torch.int64)
    )
    with pytest.raises(ValueError, match="chunk <= 32"):
        ops.leaky_fwd_counted_triton(*_fwd_args(torch.randn(4, 5, device=DEVICE), None, None, False, 33))


def _counted_lif(x, decay):
    (spikes, v), counts = leaky_neuron(
        x,
        None,
        decay=decay,
        input_gain=1.0,
        bias=0.0,
        v_threshold=1.0,
        v_reset=0.0,
        strict_threshold=False,
        detach_reset=False,
        surrogate_function=Sigmoid(),
        backend="triton",
        return_final_state=True,
        v_init_value=0.0,
        count_spikes=True,
    )
    return spikes.sum(0) + v, counts


@pytest.mark.triton
def test_counted_forward_compiles_fullgraph():
    """The counted op under torch.compile(fullgraph=True): same outputs, counts and gradients as eager."""
    torch._dynamo.reset()
    x = torch.randn(5, 2, 3, 4, 5, device=DEVICE, requires_grad=True)
    decay = torch.full((3,), 0.6, device=DEVICE, requires_grad=True)
    backend = "inductor" if DEVICE == "cuda" else "aot_eager"
    compiled = torch.compile(_counted_lif, backend=backend, fullgraph=True)
    out_e, counts_e = _counted_lif(x, decay)
    grads_e = torch.autograd.grad(out_e.square().sum(), (x, decay))
    out_c, counts_c = compiled(x, decay)
    grads_c = torch.autograd.grad(out_c.square().sum(), (x, decay))
    assert torch.equal(counts_c, counts_e) and counts_c.dtype == torch.int64
    torch.testing.assert_close(out_c, out_e, rtol=0, atol=0)
    for g_c, g_e in zip(grads_c, grads_e, strict=True):
        torch.testing.assert_close(g_c, g_e, rtol=1e-6, atol=1e-6)


def test_counted_kernel_compiles_for_gpus():
    """The counted kernel for sm_80 and sm_90 (no GPU needed): the real compiler accepts it, without register
    spills or contracted multiply-adds (the interpreter accepts code the compiler rejects)."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _AOT_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"AOT compilation failed:\n{proc.stderr[-4000:]}"
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 8, proc.stdout
    assert all(r["local"] == 0 and not r["fma"] for r in rows), rows


_AOT_SCRIPT = r"""
import json, os, re, subprocess, tempfile
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from snnkernels.kernels.triton.leaky import leaky_fwd_counted_kernel as fn
from snnkernels.ops.leaky_triton import COMPILE_OPTIONS, DEFAULT_CHUNK, _counted_launch_config

cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
cfg = _counted_launch_config(1 << 22)
flags = ("HAS_V_INIT", "DECAY_T", "GAIN_T", "BIAS_T", "HARD_RESET", "STRICT", "TRAINING", "STORE_FINAL", "STORE_V_SEQ")
for arch in (80, 90):
    for dtype, on in (("fp32", True), ("fp32", False), ("bf16", True), ("fp16", False)):
        constexprs = dict({f: on if i % 2 else not on for i, f in enumerate(flags)}, STEPS=DEFAULT_CHUNK,
                          GROUPS=cfg.num_warps, CHUNK=DEFAULT_CHUNK, BLOCK=cfg.block)
        sig = {}
        for name in fn.arg_names:
            if name in constexprs:
                sig[name] = "constexpr"
            elif name == "counts_ptr":
                sig[name] = "*i32"
            elif name.endswith("_ptr"):
                sig[name] = "*" + dtype if name in ("x_ptr", "spikes_ptr") else "*fp32"
            else:
                sig[name] = "i32" if name in ("T", "N", "S", "C") else "fp32"
        k = triton.compile(ASTSource(fn, signature=sig, constexprs=constexprs), target=GPUTarget("cuda", arch, 32),
                           options=dict(COMPILE_OPTIONS, num_warps=cfg.num_warps))
        with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
            f.write(k.asm["cubin"])
            f.flush()
            res = subprocess.run([cuobjdump, "-res-usage", f.name], capture_output=True, text=True, check=True).stdout
        local = int(dict(re.findall(r"(LOCAL):(\d+)", res)).get("LOCAL", 0))
        print(json.dumps({"arch": arch, "dtype": dtype, "local": local,
                          "fma": bool(re.search(r"\bfma\.rn\.f32\b", k.asm["ptx"]))}), flush=True)
"""


# ---------------------------------------------------------------------------------------------------------------
# Neuron modules


def _backends():
    return [pytest.param("triton", marks=pytest.mark.triton), "torch"]


@pytest.mark.triton
@pytest.mark.parametrize("dtype", DTYPES)
def test_module_recording_triton_and_torch_agree(dtype):
    """A neuron module's spike_counts: the same on the Triton path (counted in the kernel) and the torch path
    (summed afterwards); its spikes the same with and without recording."""
    x = (torch.randn(9, 2, 3, 5, device=DEVICE) * 1.5 + 0.3).to(dtype)
    results = {}
    for backend in ("triton", "torch"):
        node = snn.LeakyNode(decay=0.6, surrogate_function=ATan(), backend=backend)
        plain = node(x)
        assert node.spike_counts is None
        node.record_spike_counts = True
        recorded = node(x)
        assert torch.equal(recorded, plain)
        assert node.spike_counts.dtype == torch.int64 and node.spike_counts.shape == (9,)
        assert torch.equal(node.spike_counts, _per_step(recorded))
        results[backend] = (recorded, node.spike_counts)
    assert torch.equal(results["triton"][0], results["torch"][0])
    assert torch.equal(results["triton"][1], results["torch"][1])


@pytest.mark.parametrize("backend", _backends())
def test_module_recording_keeps_gradients_and_state(backend):
    """Recording changes neither the gradients nor a stateful neuron's carried state; step mode 's' counts
    one step per call."""
    x0 = torch.randn(6, 2, 4, device=DEVICE) * 1.5 + 0.3
    outs = {}
    for record in (False, True):
        node = snn.ParametricLIFNode(step_mode="m", backend=backend, stateful=True)
        node.record_spike_counts = record
        x = x0.clone().requires_grad_(True)
        s = node(x)
        g = torch.autograd.grad((s * torch.arange(s.numel()).view_as(s)).sum(), (x, node.w))
        outs[record] = (s, node.v, g)
    for a, b in zip(outs[False][:2], outs[True][:2], strict=True):
        assert torch.equal(a, b)
    for a, b in zip(outs[False][2], outs[True][2], strict=True):
        assert torch.equal(a, b)
    step = snn.LIFNode(backend=backend)
    step.record_spike_counts = True
    s = step(x0[0])
    assert step.spike_counts.shape == (1,) and step.spike_counts.item() == int(s.sum())


@pytest.mark.triton
def test_module_recording_compiles_fullgraph():
    torch._dynamo.reset()
    node = snn.LIFNode(tau=2.0, step_mode="m", stateful=False, backend="triton")
    node.record_spike_counts = True
    x = torch.randn(5, 2, 6, device=DEVICE) * 2.0
    eager = node(x)
    counts = node.spike_counts
    node.spike_counts = None
    compiled = torch.compile(node, backend="aot_eager", fullgraph=True)
    assert torch.equal(compiled(x), eager)
    assert torch.equal(node.spike_counts, counts)


# ---------------------------------------------------------------------------------------------------------------
# snnkernels.firing


def _network(backend: str) -> nn.Sequential:
    """conv -> LIF -> strided conv -> LIF -> flatten -> linear -> LIF on [T, B, 2, 4, 4]."""
    return nn.Sequential(
        SeqToANN(nn.Conv2d(2, 3, 3, padding=1)),
        snn.LeakyNode(decay=0.5, backend=backend),
        SeqToANN(nn.Conv2d(3, 4, 3, stride=2, padding=1)),
        snn.LIFNode(tau=2.0, step_mode="m", stateful=False, backend=backend),
        nn.Flatten(2),
        nn.Linear(16, 5),
        snn.TETLIFNode(backend=backend),
    ).to(DEVICE)


def _spy(model: nn.Module) -> dict[str, list[torch.Tensor]]:
    """The spikes of every neuron module, captured independently of the recording."""
    seen: dict[str, list[torch.Tensor]] = {}
    for name, m in model.named_modules():
        if isinstance(m, SpikingNeuron):
            m.register_forward_hook(lambda mod, args, out, name=name: seen.setdefault(name, []).append(out.detach()))
    return seen


@pytest.mark.parametrize("backend", _backends())
def test_record_matches_hand_computation(backend):
    """Per-layer counts, rates, NSAR / NASAR, SOPs and energy of two batches equal a computation by hand from
    the spikes; the default consumers are the next conv / linear."""
    model = _network(backend)
    seen = _spy(model)
    batches = [torch.randn(4, 2, 2, 4, 4, device=DEVICE) * 2.0, torch.randn(4, 3, 2, 4, 4, device=DEVICE) * 2.0]
    with firing.record(model) as stats:
        with torch.no_grad():
            outputs = [model(x) for x in batches]
    assert all(m.record_spike_counts is False for m in model if hasattr(m, "record_spike_counts"))

    assert {n: stats.layers[n].consumer for n in stats.layers} == {"1": "2.0", "3": "5", "6": None}
    fan = {"1": 4 * 9 / 4, "3": 5.0, "6": None}
    per_step = {n: sum(_per_step(s) for s in spikes).tolist() for n, spikes in seen.items()}
    neurons = {n: sum(s[0].numel() for s in spikes) for n, spikes in seen.items()}  # per step, both batches
    assert stats.spike_counts() == per_step
    assert stats.samples == 5
    assert stats.firing_rates() == {n: sum(per_step[n]) / (neurons[n] * 4) for n in per_step}
    nsar = [sum(per_step[n][t] for n in per_step) / sum(neurons.values()) for t in range(4)]
    assert stats.nsar() == pytest.approx(nsar, rel=1e-12)
    assert stats.nasar() == pytest.approx(sum(nsar) / 4, rel=1e-12)
    total = sum(sum(c) for c in per_step.values())
    assert stats.nasar() == pytest.approx(total / (sum(neurons.values()) * 4), rel=1e-12)  # same T throughout
    sops = sum(per_step["1"]) * fan["1"] + sum(per_step["3"]) * fan["3"]
    assert stats.synaptic_operations(per_sample=False) == pytest.approx(sops, rel=1e-12)
    assert stats.synaptic_operations() == pytest.approx(sops / 5, rel=1e-12)
    assert stats.total_spikes() == total and stats.total_spikes(per_sample=True) == total / 5
    macs = firing.dense_macs(model[0][0], (3, 4, 4)) * 4  # the encoder conv at every step, per sample
    assert stats.energy(macs) == pytest.approx(4.6e-12 * macs + 0.9e-12 * sops / 5, rel=1e-12)
    assert stats.unrecorded == []
    reads = []
    spike_counts = stats.spike_counts
    stats.spike_counts = lambda: reads.append(1) or spike_counts()  # count the device-to-host reads
    summary = stats.summary()
    del stats.spike_counts
    assert len(reads) == 1  # the table and the network figures from one read of the counts
    assert f"NASAR {sum(nsar) / 4:.4f}; samples 5; SOPs {sops:.6g} in total" in summary
    assert outputs[0].shape == (4, 2, 5)

    stats.reset()
    with pytest.raises(ValueError, match="no forward pass"):
        stats.nasar()


@pytest.mark.triton
def test_record_same_statistics_on_triton_and_torch():
    x = torch.randn(5, 2, 2, 4, 4, device=DEVICE) * 2.0
    figures = {}
    for backend in ("triton", "torch"):
        torch.manual_seed(0)
        model = _network(backend)
        with firing.record(model) as stats, torch.no_grad():
            model(x)
        figures[backend] = (stats.spike_counts(), stats.nasar(), stats.synaptic_operations())
    assert figures["triton"] == figures["torch"]


def test_record_step_mode_matches_multi_step():
    """Step mode 's': calls continue the sequence until reset(), so per-step counts and samples equal those of
    the same neuron in mode 'm'."""
    x = torch.randn(6, 3, 7, device=DEVICE) * 2.0
    multi = snn.LIFNode(step_mode="m", stateful=False, backend="torch")
    single = snn.LIFNode(step_mode="s", backend="torch")
    with firing.record(multi) as stats_m, firing.record(single) as stats_s:
        for _ in range(2):  # two sequences
            multi(x)
            for t in range(x.shape[0]):
                single(x[t])
            single.reset()
    assert stats_s.spike_counts() == stats_m.spike_counts()
    assert stats_s.samples == stats_m.samples == 6
    assert stats_s.nsar() == stats_m.nsar()


def test_record_restores_flags_and_stops_counting():
    model = _network("torch")
    model[3].record_spike_counts = True  # already on before: stays on after
    x = torch.randn(2, 1, 2, 4, 4, device=DEVICE)
    with pytest.raises(RuntimeError, match="inside"):
        with firing.record(model):
            raise RuntimeError("inside")
    assert [model[i].record_spike_counts for i in (1, 3, 6)] == [False, True, False]
    with firing.record(model) as stats:
        model(x)
    counts = stats.spike_counts()
    model(x)  # after the block: hooks removed
    assert stats.spike_counts() == counts and stats.layers["1"].forwards == 1
    assert [model[i].record_spike_counts for i in (1, 3, 6)] == [False, True, False]


def test_record_warns_about_layers_that_did_not_run():
    """A neuron whose forward is bypassed (here: never called) is missing from the figures: a warning says so."""
    model = _network("torch")
    x = torch.randn(2, 1, 2, 4, 4, device=DEVICE)
    with pytest.warns(UserWarning, match=r"\['6'\] ran no forward"):
        with firing.record(model) as stats:
            model[:6](x)
    assert stats.unrecorded == ["6"] and "not recorded" in stats.summary()


def test_record_explicit_consumers():
    model = _network("torch")
    x = torch.randn(3, 2, 2, 4, 4, device=DEVICE) * 2.0
    with firing.record(model, consumers={"1": 2.5, "3": None, "6": nn.Linear(5, 7)}) as stats:
        model(x)
    counts = {n: sum(c) for n, c in stats.spike_counts().items()}
    assert stats.synaptic_operations(per_sample=False) == pytest.approx(counts["1"] * 2.5 + counts["6"] * 7)


def test_fan_out_and_dense_macs():
    assert firing.fan_out(nn.Linear(10, 7)) == 7
    assert firing.fan_out(nn.Conv2d(3, 8, (3, 5), stride=(1, 2))) == 8 * 15 / 2
    assert firing.fan_out(nn.Conv2d(8, 8, 3, groups=8)) == 9  # depthwise: one output channel per input
    assert firing.fan_out(nn.Conv1d(2, 4, 5, stride=5)) == 4
    assert firing.fan_out(nn.Conv3d(2, 6, 3, stride=(1, 3, 3))) == 6 * 27 / 9
    assert firing.dense_macs(nn.Conv2d(3, 8, 3), (8, 10, 10)) == 800 * 27
    assert firing.dense_macs(nn.Linear(10, 7), (7,)) == 70
    assert firing.energy(10, 2) == pytest.approx(10 * firing.E_AC + 2 * firing.E_MAC)
    assert (firing.E_AC, firing.E_MAC) == (0.9e-12, 4.6e-12)


def test_bad_arguments():
    model = _network("torch")
    with pytest.raises(TypeError, match="nn.Module"):
        with firing.record("model"):
            pass
    with pytest.raises(ValueError, match="no snnkernels neuron"):
        with firing.record(nn.Sequential(nn.Linear(2, 2), nn.ReLU())):
            pass
    with pytest.raises(ValueError, match=r"\['9'\] are not neuron modules"):
        with firing.record(model, consumers={"9": nn.Linear(2, 2)}):
            pass
    with pytest.raises(TypeError, match="unsupported module ReLU"):
        with firing.record(model, consumers={"1": nn.ReLU()}):
            pass
    with pytest.raises(ValueError, match="finite number >= 0"):
        with firing.record(model, consumers={"1": -1.0}):
            pass
    with pytest.raises(TypeError, match="must be a mapping"):
        with firing.record(model, consumers=[("1", 2.0)]):
            pass
    with pytest.raises(TypeError, match="unsupported module"):
        firing.fan_out(nn.ConvTranspose2d(2, 2, 3))
    with pytest.raises(TypeError, match="unsupported module"):
        firing.dense_macs(nn.ReLU(), (3,))
    with pytest.raises(ValueError, match=">= 0"):
        firing.energy(-1.0)
    assert [model[i].record_spike_counts for i in (1, 3, 6)] == [False, False, False]
    with firing.record(model) as stats:
        pass
    with pytest.raises(ValueError, match="no forward pass"):
        stats.synaptic_operations()
    assert math.isnan(firing._ratio(0, 0))
