"""The attention benchmark's own machinery: its verification accepts the fused ops and rejects a wrong
one, and a CPU run writes its results (no timing claims here; the numbers come from bench/results)."""

from __future__ import annotations

import json

import pytest
import torch

from bench import attention as A


@pytest.mark.triton
@pytest.mark.parametrize("op", list(A.PASSES))
def test_verification_accepts_the_fused_ops(op):
    # STAA's GC LayerNorm runs over C // 4 features (C = 6 would leave one, a degenerate norm); the paper TCSA
    # takes C >= its CA reduction 8
    case = A.Case(
        op, (4, 2, 16 if op in ("staa_lif", "staa_lif_persistent", "ma_tcsa_paper") else 6, 5, 3), torch.float32
    )
    assert A.verify("snnkernels-triton", case, "cpu" if not torch.cuda.is_available() else "cuda") is None


def test_verification_rejects_a_wrong_provider(monkeypatch):
    real = A.op_fn

    def off_by_a_bit(case, device, backend):
        fn = real(case, device, backend)
        return (lambda *a: fn(*a) * 1.001) if backend == "triton" else fn

    monkeypatch.setattr(A, "op_fn", off_by_a_bit)
    monkeypatch.setattr(A, "build", lambda provider, case, device: off_by_a_bit(case, device, "triton"))
    reason = A.verify("torch-compile", A.Case("tcja", (4, 2, 6, 5, 3), torch.float32), "cpu")
    assert reason is not None and "differs from eager" in reason


def test_cpu_run_writes_results(tmp_path):
    rc = A.main(
        [
            "--device",
            "cpu",
            "--quick",
            "--ops",
            "tcja",
            "--providers",
            "torch-eager",
            "snnkernels-triton",
            "--out",
            str(tmp_path),
            "--no-plot",
        ]
    )
    assert rc == 0
    (result,) = tmp_path.glob("*_attention.json")
    rows = json.loads(result.read_text())["rows"]
    ok = {(r["provider"], r["mode"]) for r in rows if r["status"] == "ok"}
    assert ok == {("torch-eager", "fwd"), ("torch-eager", "fwd+bwd")}
    (ours,) = [r for r in rows if r["provider"] == "snnkernels-triton"]
    assert ours["status"] == "unavailable" and "need CUDA" in ours["note"]
    assert all(r["GB/s"] > 0 for r in rows if r["status"] == "ok")


@pytest.mark.parametrize("op", A.SPIKINGJELLY_OPS)
def test_spikingjelly_rows_verify_against_eager(op, monkeypatch):
    pytest.importorskip("spikingjelly.activation_based.layer")
    case = A.Case(op, (3, 2, 16, 5, 3), torch.float32)
    assert A.verify("spikingjelly", case, "cpu") is None
    # the check can fail: SpikingJelly's attention LIF at another threshold must not pass
    from spikingjelly.activation_based import neuron

    real_init = neuron.LIFNode.__init__

    def other_threshold(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.v_threshold = 0.75

    monkeypatch.setattr(neuron.LIFNode, "__init__", other_threshold)
    reason = A.verify("spikingjelly", case, "cpu")
    assert reason is not None and "differs from eager" in reason


def test_spikingjelly_runs_only_where_it_has_a_layer(tmp_path):
    pytest.importorskip("spikingjelly.activation_based.layer")
    argv = ["--device", "cpu", "--quick", "--ops", "sdsa", "qk_token", "--providers", "torch-eager", "spikingjelly"]
    assert A.main([*argv, "--out", str(tmp_path), "--no-plot"]) == 0
    rows = json.loads(next(tmp_path.glob("*_attention.json")).read_text())["rows"]
    assert {(r["op"], r["provider"], r["mode"], r["status"]) for r in rows} == {
        (op, provider, mode, "ok")
        for op, providers in (("sdsa", ["torch-eager"]), ("qk_token", ["torch-eager", "spikingjelly"]))
        for provider in providers
        for mode in ("fwd", "fwd+bwd")
    }
