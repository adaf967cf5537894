"""The whole-network benchmark's machinery on CPU smoke sizes (no timing claims): it verifies the first-step
loss against eager, times, and writes its results; a provider whose loss differs is FAILED, not timed."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bench import networks as N


def test_cpu_smoke_run_writes_results(tmp_path):
    rc = N.main(["--device", "cpu", "--quick", "--providers", "torch-eager", "snnkernels", "--out", str(tmp_path)])
    assert rc == 0
    (result,) = tmp_path.glob("*_networks.json")
    rows = json.loads(result.read_text())["rows"]
    assert {(r["op"], r["provider"], r["status"]) for r in rows} == {
        ("dta_snn_18", "torch-eager", "ok"),
        ("dta_snn_18", "snnkernels", "ok"),
    }
    assert all(r["ms_p50"] > 0 and r["mode"] == "train-step" for r in rows)
    # CIFAR-10's 50000 training images at the smoke run's batch of 4: 12500 steps of the median step
    assert all(abs(r["epoch_s"] - 12500 * r["ms_p50"] / 1000) < 1e-9 * r["epoch_s"] for r in rows)
    assert {r["dataset"] for r in rows} == {"CIFAR-10"}


def test_a_wrong_provider_fails_verification(tmp_path, monkeypatch):
    real = N.build

    def off(provider, name, device, small):
        model, step, shape = real(provider, name, device, small)
        return model, ((lambda: step() * 1.01) if provider == "snnkernels" else step), shape

    monkeypatch.setattr(N, "build", off)
    rc = N.main(["--device", "cpu", "--quick", "--providers", "torch-eager", "snnkernels", "--out", str(tmp_path)])
    assert rc == 1
    rows = json.loads(next(tmp_path.glob("*_networks.json")).read_text())["rows"]
    (ours,) = [r for r in rows if r["provider"] == "snnkernels"]
    assert ours["status"] == "FAILED" and "first-step loss" in ours["note"]
    assert torch.isfinite(torch.tensor(rows[0]["ms_p50"]))


@pytest.mark.parametrize("name", N.TRANSFORMERS)
def test_the_transformers_take_a_verified_step_on_each_provider(name, tmp_path):
    # torch-compile is left to the GPU run (compiling a whole transformer takes minutes on this CPU)
    providers = ["torch-eager", "official-eager", "snnkernels"]
    rc = N.main(["--device", "cpu", "--networks", name, "--providers", *providers, "--out", str(tmp_path)])
    rows = json.loads(next(tmp_path.glob("*_networks.json")).read_text())["rows"]
    assert rc == 0, [r["note"] for r in rows]
    assert {(r["op"], r["provider"], r["status"]) for r in rows} == {(name, p, "ok") for p in providers}
    assert all(r["ms_p50"] > 0 and r["mode"] == "train-step" for r in rows)
    assert {r["dataset"] for r in rows} == {N.TRAIN_SAMPLES[name][0]}
    # the loss check sees the network: its weights make it fire, so the logits are not all equal (loss ln 10)
    _, step, _ = N.build("torch-eager", name, "cpu", True)
    assert abs(step().item() - math.log(10)) > 1e-2


def test_official_eager_is_for_the_transformers_only(tmp_path):
    with pytest.raises(ValueError, match="exists for"):
        N.build("official-eager", "dta_snn_18", "cpu", True)
    rc = N.main(["--device", "cpu", "--quick", "--providers", "torch-eager", "official-eager", "--out", str(tmp_path)])
    assert rc == 0
    rows = json.loads(next(tmp_path.glob("*_networks.json")).read_text())["rows"]
    assert [(r["op"], r["provider"]) for r in rows] == [("dta_snn_18", "torch-eager")]
