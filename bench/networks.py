"""Whole-network training-step benchmark: eager vs torch.compile vs ours, time per step and peak memory.

    python -m bench.networks [--device auto|cpu|cuda] [--quick] [--networks NAME ...] [--providers P ...]
                             [--out bench/results] [--max-minutes M]

A step is forward, cross-entropy on the time-averaged logits, backward and an SGD update. Networks:

- ``dta_snn_18``: DTA_SNN_18 at CIFAR shape, [64, 3, 32, 32], T = 4;
- ``tcja_dvs128``: TCJA_DVS128 at DVS shape, [16, 20, 2, 128, 128]; ours takes each TCJA's mean from the
  LIF's spike counts and applies the gate after the max pool;
- ``masnn_gesture``: MA-SNN's DVS Gesture net with TCSA at T = 60, [16, 60, 2, 32, 32]; ours applies the
  gates inside the neurons' loops;
- ``staa_resnet20``: the reconstructed STAA ResNet-20 at T = 4, [64, 3, 32, 32], M / N started at
  0.5 / 1.0 so that it fires; ours runs the GC pooling sweep and the step kernels;
- the spiking transformers (docs/spiking_transformers.md) at the official configurations:
  ``spikformer_cifar`` (Spikformer-4-384, 12 heads, patch 4, T = 4, batch 128 as ``cifar10/cifar10.yml``),
  ``sdt_v1_cifar`` (Spike-Driven Transformer 2-512, 8 heads, pooling "0011", T = 4, batch 64 as
  ``conf/cifar10/2_512_300E_t4.yml``), ``qkformer_cifar`` (QKFormer 4-384, patch 4, T = 4, batch 64 as
  ``cifar10/cifar10.yml``) and ``meta_spikformer`` (``metaspikformer_8_384`` on ImageNet [32, 3, 224, 224],
  T = 1 as the official pre-training; batch 32 our choice). Their weights are drawn so that every LIF fires
  (``bench.transformer_block_memory.firing_weights``: the official initialisation leaves the attention LIFs
  silent on a random input). Ours runs the fused attention cores, bn_lif and the 1-bit spike layers.

On the CPU (``--device cpu``) they shrink to a smoke size: the shapes are in the results. Providers:
``torch-eager`` (``backend="torch"``), ``torch-compile`` (``torch.compile`` of that eager model, compiled
in the warm-up) and ``snnkernels`` (``backend="auto"``: Triton on CUDA, the native C++ neurons on the CPU);
for the transformers also ``official-eager``: the eager model with every LIF replaced by
``bench.transformer_block_memory.official_style``'s CuPy-like neuron, which saves for backward what the
official code's CuPy ``MultiStepLIFNode`` saves (its memory is the official code's; its time is a PyTorch
loop over T, not the CuPy kernel's).
``epoch_s`` is the time per training epoch of the network's dataset at the run's batch size (steps x
median step; data loading and evaluation excluded): the zoo's time-per-epoch table at the papers'
settings, from a GPU run. Every provider starts from the same weights; before timing, its first step's
loss must equal eager's within 1e-3 relative (a spike within rounding of its threshold may flip between
implementations, so gradients are not compared here; test_models.py does).
Results: ``<out>/<date>_<device>_networks.{csv,json}``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from torch import nn

from snnkernels import models

from .registry import Case
from .run import markdown_table, metadata, progress, result_row, write_results
from .utils import peak_memory_mb, time_fn

PROVIDERS = ("torch-eager", "torch-compile", "snnkernels", "official-eager")
TRANSFORMERS = ("spikformer_cifar", "sdt_v1_cifar", "qkformer_cifar", "meta_spikformer")
NETWORKS = ("dta_snn_18", "tcja_dvs128", "masnn_gesture", "staa_resnet20", *TRANSFORMERS)
# providers that exist for some networks only
ONLY_FOR = {"official-eager": TRANSFORMERS}
# training samples of each network's dataset (the official splits): time per epoch = steps x time per step
TRAIN_SAMPLES = {
    "dta_snn_18": ("CIFAR-10", 50000),
    "tcja_dvs128": ("DVS128 Gesture", 1176),
    "masnn_gesture": ("DVS128 Gesture", 1176),
    "staa_resnet20": ("CIFAR-10", 50000),
    "spikformer_cifar": ("CIFAR-10", 50000),
    "sdt_v1_cifar": ("CIFAR-10", 50000),
    "qkformer_cifar": ("CIFAR-10", 50000),
    "meta_spikformer": ("ImageNet-1k", 1281167),
}


def epoch_seconds(name: str, batch: int, ms_per_step: float) -> float:
    """Time per training epoch at this batch size: ceil(samples / batch) steps of the measured median step
    (data loading and evaluation excluded)."""
    samples = TRAIN_SAMPLES[name][1]
    return -(-samples // batch) * ms_per_step / 1000.0


LOSS_RTOL = 1e-3


def _transformer(name: str, small: bool, backend: str) -> tuple[nn.Module, tuple[int, ...], int]:
    """The spiking transformers at their official CIFAR-10 / ImageNet configurations, or a smoke size (CPU)."""
    cifar = dict(img_size_h=32, img_size_w=32, patch_size=4, in_channels=3, num_classes=10, mlp_ratios=4, T=4)
    if small:
        cifar.update(img_size_h=16, img_size_w=16, T=2)
    image = (3, cifar["img_size_h"], cifar["img_size_w"])
    if name == "spikformer_cifar":
        size = dict(embed_dims=32, num_heads=4, depths=1) if small else dict(embed_dims=384, num_heads=12, depths=4)
        return models.Spikformer(**cifar, **size, backend=backend), (2 if small else 128, *image), 10
    if name == "sdt_v1_cifar":
        size = dict(embed_dims=32, num_heads=4, depths=1) if small else dict(embed_dims=512, num_heads=8, depths=2)
        model = models.SpikeDrivenTransformer(**cifar, **size, pooling_stat="0011", backend=backend)
        return model, (2 if small else 64, *image), 10
    if name == "qkformer_cifar":
        size = dict(embed_dims=32, depths=3) if small else dict(embed_dims=384, depths=4)
        return models.QKFormer(**cifar, **size, backend=backend), (2 if small else 64, *image), 10
    if small:
        model = models.Spiking_vit_MetaFormer(
            img_size_h=32, img_size_w=32, in_channels=3, num_classes=10, embed_dim=(8, 8, 16, 16), backend=backend
        )
        return model, (2, 3, 32, 32), 10
    return models.metaspikformer_8_384(backend=backend), (32, 3, 224, 224), 1000  # model.T = 1: pre-training


def _net(name: str, device: str, small: bool, backend: str) -> tuple[nn.Module, tuple[int, ...], int]:
    """(model, input shape, classes)."""
    torch.manual_seed(0)  # the same weights for every provider
    if name in TRANSFORMERS:
        from .transformer_block_memory import firing_weights

        model, shape, classes = _transformer(name, small, backend)
        # the official initialisation leaves the attention LIFs (Meta-SpikeFormer: every LIF up to the head)
        # silent on a random input, which would make the first-step loss check blind to them
        return firing_weights(model).to(device), shape, classes
    if name == "dta_snn_18":
        if small:
            model = models.MSResNet(
                layers=(1, 1, 1), num_classes=10, time_step=2, widths=(16, 16, 16), stem_channels=16, backend=backend
            )
            return model.to(device), (4, 3, 16, 16), 10
        return models.DTA_SNN_18(num_classes=10, time_step=4, backend=backend).to(device), (64, 3, 32, 32), 10
    if name == "masnn_gesture":
        if small:
            return models.MASNN_DVSGesture(T=10, backend=backend).to(device), (2, 10, 2, 32, 32), 11
        return models.MASNN_DVSGesture(T=60, backend=backend).to(device), (16, 60, 2, 32, 32), 11
    if name == "staa_resnet20":
        options = {"m_init": 0.5, "n_init": 1.0}  # the paper's M = 2, N = 0.1 start is silent (docs/models.md)
        if small:
            model = models.STAAResNet(
                (1, 1, 1, 1),
                10,
                2,
                staa_options=options,
                input_size=16,
                stem_channels=8,
                widths=(8, 8, 8, 8),
                seed=0,
                backend=backend,
            )
            return model.to(device), (2, 3, 16, 16), 10
        model = models.STAA_ResNet20(10, 4, staa_options=options, seed=0, backend=backend)
        return model.to(device), (64, 3, 32, 32), 10
    if small:
        model = models.TCJA_DVS128(channels=8, T=4, num_classes=11, backend=backend)
        return model.to(device), (2, 4, 2, 128, 128), 11
    return models.TCJA_DVS128(T=20, backend=backend).to(device), (16, 20, 2, 128, 128), 11


def _step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out  # Spike-Driven Transformer: (logits, hook)
        logits = out.mean(1) if out.dim() == 3 else out  # [B, T, classes] -> time average
        loss = nn.functional.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def build(provider: str, name: str, device: str, small: bool):
    if name not in ONLY_FOR.get(provider, (name,)):
        raise ValueError(f"provider {provider} exists for {', '.join(ONLY_FOR[provider])} only")
    backend = "auto" if provider == "snnkernels" else "torch"
    model, shape, classes = _net(name, device, small, backend)
    if provider == "official-eager":
        from .transformer_block_memory import official_style  # the official code's CuPy-LIF saved tensors

        model = official_style(model)
    gen = torch.Generator(device=device).manual_seed(1)
    x = torch.rand(shape, generator=gen, device=device)
    y = torch.randint(0, classes, (shape[0],), generator=gen, device=device)
    run_model = torch.compile(model) if provider == "torch-compile" else model
    return model, _step_fn(run_model, x, y), shape


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--quick", action="store_true", help="dta_snn_18 only (unless --networks names others)")
    ap.add_argument("--networks", nargs="*", default=None, choices=list(NETWORKS), help="default: all")
    ap.add_argument("--providers", nargs="*", default=list(PROVIDERS), choices=list(PROVIDERS))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    small = device != "cuda"
    names = args.networks or (["dta_snn_18"] if args.quick else list(NETWORKS))
    meta = metadata(device)
    meta.update(
        byte_model="none (whole networks: time per step and peak memory only)",
        copy_bandwidth_GBps=None,
        sizes="smoke sizes (CPU)" if small else "paper sizes",
    )
    started, rows, first_loss = time.time(), [], {}
    jobs = [(n, p) for n in names for p in args.providers if n in ONLY_FOR.get(p, (n,))]
    for name, provider in progress(jobs, len(jobs), "networks"):
        if args.max_minutes is not None and time.time() - started > 60 * args.max_minutes:
            rows.append(
                result_row(Case(name, (0,), torch.float32), provider, device, status="not run", note="time budget")
            )
            continue
        try:
            model, step, shape = build(provider, name, device, small)
            case = Case(name, (model.T, *shape), torch.float32)
            state = copy.deepcopy(model.state_dict())
            loss = step().item()  # warm-up, compilation, and the verification loss of the first step
            base = first_loss.setdefault(name, loss) if provider == "torch-eager" else first_loss.get(name)
            if base is not None and abs(loss - base) > LOSS_RTOL * abs(base):
                rows.append(
                    result_row(
                        case, provider, device, status="FAILED", note=f"first-step loss {loss:.6g} vs eager {base:.6g}"
                    )
                )
                continue
            model.load_state_dict(state)
            timing = time_fn(step, device, min_reps=3, min_time_s=0.5, max_reps=50)
            dataset = TRAIN_SAMPLES[name][0]
            rows.append(
                result_row(
                    case,
                    provider,
                    device,
                    mode="train-step",
                    ms_p50=timing.p50_ms,
                    ms_p20=timing.p20_ms,
                    ms_p80=timing.p80_ms,
                    peak_mem_MB=peak_memory_mb(step, device),
                    reps=timing.reps,
                    faults_per_call=timing.faults_per_call,
                    epoch_s=epoch_seconds(name, shape[0], timing.p50_ms),
                    dataset=dataset,
                    status="ok",
                    note=None,
                    **{"GB/s": 0.0},
                    fraction_of_copy_bw=0.0,
                )
            )
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            rows.append(
                result_row(
                    Case(name, (0,), torch.float32),
                    provider,
                    device,
                    status="FAILED",
                    note=f"{type(exc).__name__}: {exc}".splitlines()[0][:300],
                )
            )
        eager = {r["op"]: r["ms_p50"] for r in rows if r["status"] == "ok" and r["provider"] == "torch-eager"}
        for r in rows:
            if r["status"] == "ok" and r["op"] in eager:
                r["speedup_vs_eager"] = eager[r["op"]] / r["ms_p50"]
        write_results(rows, meta, Path(args.out), "networks", plot=False)
    meta["complete"] = True
    paths = write_results(rows, meta, Path(args.out), "networks", plot=False)
    print(markdown_table(rows))
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)
    return 1 if any(r["status"] == "FAILED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
