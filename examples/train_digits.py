"""End-to-end training of a small spiking network on scikit-learn's handwritten digits, twice.

The same network is trained from the same seed on the same batches twice: once with ``backend="torch"``
(the eager reference everywhere) and once with ``backend="auto"`` (the fastest implementation for the
tensors at hand: on a CPU the native C++ neuron kernels when ``snnkernels._C`` is built, on a GPU the
Triton kernels). The two loss curves must agree up to float-rounding drift; the script reports their
largest difference, the final test accuracies, the time per training step and the memory, writes a
results JSON + CSV and a plot under ``--out``, and prints a short table.

Data: ``sklearn.datasets.load_digits`` (1797 images of 8x8 pixels, bundled with scikit-learn, no
download), 80/20 train/test split from ``--seed``. ``--encoding static`` repeats each image over the T
steps (the DTA-SNN recipe for static images); ``--encoding events`` turns each pixel's intensity p into
a Bernoulli spike train (a spike with probability p at every step), drawn once from ``--seed``.

Networks (``--model``): ``dta`` (default) is a shrunken DTA-SNN (``snnkernels.models.MSResNet``: stem 16
channels, DTA, two MS blocks of 32 and 64 channels, TET LIF neurons); ``tcja`` is a small conv SNN
(conv-BN-LIF-TCJA-pool x2, SpikingJelly LIF neurons, ``snnkernels.nn.TCJA``).

Memory on a CPU: each backend's run goes to a fresh Python process (unless ``--no-isolate``) and the
peak is that process's ``resource.getrusage`` max RSS during training minus its max RSS just before
training ("maxrss delta"). The script also counts the bytes autograd holds for the backward of one
training step (``torch.autograd.graph.saved_tensors_hooks``, each storage once), which isolates the
activations that fused kernels save. On a GPU the peak is ``torch.cuda.max_memory_allocated``.

``--synthetic-cifar`` times DTA_SNN_18 at the CIFAR shape ([B, 3, 32, 32], T = 6, batch 64 by default)
on random data instead (for a GPU; on a CPU use a tiny ``--image-size`` / ``--batch-size`` as a smoke).

    python examples/train_digits.py                        # ~2.5 min on a 2-core CPU
    python examples/train_digits.py --rounding-control     # + the eager run with its weights moved by 1 ulp
    python examples/train_digits.py --encoding events --model tcja          # < 1 min
    python examples/train_digits.py --device cuda --synthetic-cifar
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import snnkernels  # noqa: E402
from snnkernels.models import DTA_SNN_18, MSResNet, SeqToANN, resolved_backends  # noqa: E402
from snnkernels.nn import TCJA, LIFNode  # noqa: E402
from snnkernels.surrogate import ATan  # noqa: E402

BACKENDS = ("torch", "auto")
# The rounding-drift control (--rounding-control): the eager run again, every initial weight moved by one
# ulp. How far it drifts from the eager run is what float rounding alone does to a training curve.
CONTROL = "torch_1ulp"


class SmallTCJANet(nn.Module):
    """conv-BN-LIF-TCJA-MaxPool twice, then a linear read-out per step, on [B, T, 1, 8, 8]."""

    def __init__(self, T: int, num_classes: int = 10, *, backend: str = "auto") -> None:
        super().__init__()
        self.T = T

        def lif() -> LIFNode:
            return LIFNode(
                tau=2.0,
                surrogate_function=ATan(),
                detach_reset=True,
                step_mode="m",
                stateful=False,
                backend=backend,
            )

        self.features = nn.Sequential(
            SeqToANN(nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)),
            lif(),
            TCJA(2, 2, T, 32, backend=backend),
            SeqToANN(nn.MaxPool2d(2)),
            SeqToANN(nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64)),
            lif(),
            TCJA(2, 2, T, 64, backend=backend),
            SeqToANN(nn.MaxPool2d(2)),
        )
        self.fc = SeqToANN(nn.Flatten(), nn.Linear(64 * 2 * 2, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x.transpose(0, 1))).transpose(0, 1)  # [B, T, classes]


def build_model(name: str, T: int, events: bool, backend: str) -> nn.Module:
    if name == "dta":
        # DTA-SNN's layout at 1/4 width and 2 stages; 8x8 input -> 4x4 after the stride-2 stage
        return MSResNet(
            (1, 1),
            10,
            T,
            True,
            events,
            in_channels=1,
            stem_channels=16,
            widths=(32, 64),
            strides=(1, 2),
            backend=backend,
        )
    if name == "tcja":
        return SmallTCJANet(T, backend=backend)
    raise ValueError(f"unknown model {name!r}")


def load_data(seed: int, T: int, encoding: str, model: str, subset: int | None) -> dict[str, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 16.0  # [N, 8, 8] in [0, 1]
    labels = torch.tensor(digits.target, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=gen)
    n_test = len(labels) // 5
    split = {"test": order[:n_test], "train": order[n_test:]}
    if subset is not None:
        split = {k: v[: max(1, subset if k == "train" else subset // 4)] for k, v in split.items()}
    x = images.unsqueeze(1)  # [N, 1, 8, 8]
    if encoding == "events":
        x = torch.bernoulli(x.unsqueeze(1).expand(-1, T, -1, -1, -1), generator=gen)  # [N, T, 1, 8, 8]
    elif model == "tcja":
        x = x.unsqueeze(1).expand(-1, T, -1, -1, -1).contiguous()  # the TCJA net takes sequences
    data = {}
    for k, idx in split.items():
        data[f"x_{k}"], data[f"y_{k}"] = x[idx].contiguous(), labels[idx]
    return data


class SavedBytes:
    """Bytes that autograd holds for the backward at the end of the forward (each storage counted once).

    The pack hook keeps weak references only; what is still alive on exit is what the backward will
    read (saved tensors of graph branches that were dropped on the way are not counted).
    """

    def __init__(self) -> None:
        self._saved: list[weakref.ref] = []
        self.bytes = 0

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        self._saved.append(weakref.ref(t))
        return t

    def __enter__(self) -> SavedBytes:
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)
        storages = {}
        for ref in self._saved:
            t = ref()
            if t is not None:  # all alive at once here, so no two storages share an address
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        self.bytes = sum(storages.values())
        self._saved.clear()


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, device: torch.device):
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            xb, yb = x[i : i + batch].to(device), y[i : i + batch].to(device)
            logits = model(xb).mean(1)  # [B, T, classes] -> mean over T
            loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
            correct += (logits.argmax(1) == yb).sum().item()
    model.train()
    return loss_sum / len(y), correct / len(y)


def _nudge_one_ulp(model: nn.Module) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.nextafter(p, torch.full_like(p, math.inf)))


def _progress_bar(epochs: range, run: str, off: bool) -> tuple[Any, Any]:
    """(the epochs, a line printer): a tqdm bar and tqdm.write, or without a bar the plain range and print,
    so that --no-progress runs without tqdm installed."""
    if off:
        return epochs, print
    from tqdm import tqdm

    return tqdm(epochs, desc=run, leave=False), tqdm.write


def train_one(args: argparse.Namespace, run: str) -> dict[str, Any]:
    """One full training run (``run``: a backend, or the control); everything seeded from ``args.seed``."""
    backend = "torch" if run == CONTROL else run
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    data = load_data(args.seed, args.T, args.encoding, args.model, args.subset)
    torch.manual_seed(args.seed)
    model = build_model(args.model, args.T, args.encoding == "events", backend).to(device)
    if run == CONTROL:
        _nudge_one_ulp(model)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, args.epochs))
    shuffle = torch.Generator().manual_seed(args.seed + 1)
    x_train, y_train = data["x_train"], data["y_train"]
    resolved = resolved_backends(model, x_train[:2].to(device))

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        mem_before = torch.cuda.memory_allocated(device)
    rss_before = _max_rss_mib()
    epochs, step_losses, step_ms = [], [], []
    saved_bytes = None
    t_start = time.perf_counter()
    bar, write = _progress_bar(range(args.epochs), run, args.no_progress)
    for epoch in bar:
        perm = torch.randperm(len(y_train), generator=shuffle)
        loss_sum, correct = 0.0, 0
        for i in range(0, len(perm), args.batch_size):
            idx = perm[i : i + args.batch_size]
            xb, yb = x_train[idx].to(device), y_train[idx].to(device)
            _sync(device)
            t0 = time.perf_counter()
            if saved_bytes is None:  # measure one step's saved activations (same math as the others)
                with SavedBytes() as counter:
                    logits = model(xb).mean(1)
                    loss = F.cross_entropy(logits, yb)
                saved_bytes = counter.bytes
            else:
                logits = model(xb).mean(1)
                loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            _sync(device)
            step_ms.append(1000.0 * (time.perf_counter() - t0))
            step_losses.append(loss.item())
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
        sched.step()
        test_loss, test_acc = _evaluate(model, data["x_test"], data["y_test"], 256, device)
        row = dict(
            epoch=epoch + 1,
            train_loss=loss_sum / len(perm),
            train_acc=correct / len(perm),
            test_loss=test_loss,
            test_acc=test_acc,
        )
        epochs.append(row)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{row['train_loss']:.4f}", test_acc=f"{test_acc:.3f}")
        if not args.quiet:
            write(
                f"  [{run}] epoch {epoch + 1:3d}/{args.epochs}  train loss {row['train_loss']:.5f}  "
                f"train acc {row['train_acc']:.4f}  test loss {test_loss:.5f}  test acc {test_acc:.4f}"
            )
    train_s = time.perf_counter() - t_start
    warm = step_ms[3:] if len(step_ms) > 6 else step_ms
    if device.type == "cuda":
        memory = {
            "peak_mib": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_growth_mib": (torch.cuda.max_memory_allocated(device) - mem_before) / 2**20,
            "method": "torch.cuda.max_memory_allocated (peak during training, and minus the allocation before it)",
        }
    else:
        memory = {
            "peak_rss_mib": _max_rss_mib(),
            "peak_growth_mib": _max_rss_mib() - rss_before,
            "method": "resource.getrusage(RUSAGE_SELF).ru_maxrss: the process's max RSS, and its growth "
            "during training (maxrss delta)"
            + ("" if args.isolated else "; NOT isolated (earlier runs share the process)"),
            "isolated_process": bool(args.isolated),
        }
    return {
        "backend": backend,
        "initial_weights": "official init moved up by one ulp" if run == CONTROL else "seeded init",
        "resolved_backends": resolved,
        "epochs": epochs,
        "step_losses": step_losses,
        "final_test_acc": epochs[-1]["test_acc"] if epochs else None,
        "final_train_loss": epochs[-1]["train_loss"] if epochs else None,
        "steps": len(step_ms),
        "ms_per_step_median": statistics.median(warm) if warm else None,
        "ms_per_step_mean": statistics.fmean(warm) if warm else None,
        "train_seconds": train_s,
        "memory": memory,
        "saved_for_backward_mib_one_step": None if saved_bytes is None else saved_bytes / 2**20,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def synthetic_cifar_one(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    """Time DTA_SNN_18 training steps at the CIFAR shape on random data."""
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = DTA_SNN_18(num_classes=10, time_step=args.T, backend=backend).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-5)  # official CIFAR script
    gen = torch.Generator().manual_seed(args.seed + 1)
    steps = args.synthetic_steps + args.synthetic_warmup
    xs = torch.randn(steps, args.batch_size, 3, args.image_size, args.image_size, generator=gen)
    ys = torch.randint(0, 10, (steps, args.batch_size), generator=gen)
    resolved = resolved_backends(model, xs[0, :2].to(device))
    losses, step_ms = [], []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = _max_rss_mib()
    saved_bytes = None
    for i in range(steps):
        xb, yb = xs[i].to(device), ys[i].to(device)
        _sync(device)
        t0 = time.perf_counter()
        with SavedBytes() as counter:
            loss = F.cross_entropy(model(xb).mean(1), yb)
        saved_bytes = counter.bytes if saved_bytes is None else saved_bytes
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        if i >= args.synthetic_warmup:
            step_ms.append(1000.0 * (time.perf_counter() - t0))
        losses.append(loss.item())
    memory = (
        {"peak_mib": torch.cuda.max_memory_allocated(device) / 2**20, "method": "torch.cuda.max_memory_allocated"}
        if device.type == "cuda"
        else {
            "peak_growth_mib": _max_rss_mib() - rss_before,
            "method": "ru_maxrss delta",
            "isolated_process": bool(args.isolated),
        }
    )
    return {
        "backend": backend,
        "resolved_backends": resolved,
        "step_losses": losses,
        "ms_per_step_median": statistics.median(step_ms),
        "ms_per_step_mean": statistics.fmean(step_ms),
        "steps_timed": len(step_ms),
        "memory": memory,
        "saved_for_backward_mib_one_step": saved_bytes / 2**20,
    }


def _run_backend(args: argparse.Namespace, argv: list[str], backend: str) -> dict[str, Any]:
    """One backend's run, in a fresh process when isolated (clean max-RSS), else in this one."""
    if not args.isolate:
        args.isolated = False
        threads = torch.get_num_threads()
        try:
            return (synthetic_cifar_one if args.synthetic_cifar else train_one)(args, backend)
        finally:  # leave the caller's process as it was (the runs set their own thread count)
            torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--_worker", backend, "--_worker-json", str(out)]
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        commit = (
            subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "host_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "snnkernels": snnkernels.__version__,
        "commit": commit,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _curve_diffs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    pairs = list(zip(a["step_losses"], b["step_losses"], strict=True))
    diffs = {
        "max_abs_diff_step_loss": max((abs(x - y) for x, y in pairs), default=0.0),
        # how long the two runs stay bit for bit equal before rounding differences start to drift
        "steps_bit_identical": next((i for i, (x, y) in enumerate(pairs) if x != y), len(pairs)),
    }
    if "epochs" in a:
        for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
            diffs[f"max_abs_diff_epoch_{key}"] = max(
                (abs(x[key] - y[key]) for x, y in zip(a["epochs"], b["epochs"], strict=True)), default=0.0
            )
    return diffs


def _plot(runs: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_step, ax_acc) = plt.subplots(1, 3, figsize=(15, 4.2))
    styles = {
        "torch": dict(color="tab:blue", lw=2.5, alpha=0.6),
        "auto": dict(color="tab:red", lw=1.2, ls="--"),
        CONTROL: dict(color="tab:gray", lw=0.8, alpha=0.8),
    }
    for backend, run in runs.items():
        label = "torch, weights +1 ulp" if backend == CONTROL else f"backend={backend!r}"
        ep = [r["epoch"] for r in run["epochs"]]
        ax_loss.plot(ep, [r["train_loss"] for r in run["epochs"]], label=f"{label} train", **styles[backend])
        ax_loss.plot(
            ep, [r["test_loss"] for r in run["epochs"]], label=f"{label} test", marker="o", ms=3, **styles[backend]
        )
        ax_step.plot(run["step_losses"], label=label, **styles[backend])
        ax_acc.plot(ep, [r["test_acc"] for r in run["epochs"]], label=f"{label} test", **styles[backend])
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss per epoch", yscale="log")
    ax_step.set(xlabel="training step", ylabel="cross-entropy", title="loss per step", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="test accuracy")
    for ax in (ax_loss, ax_step, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(runs: dict[str, dict[str, Any]], synthetic: bool) -> str:
    head = (
        "| backend | resolved (layers) | final test acc | ms/step (median) | peak mem growth MiB | saved for bwd MiB |"
    )
    if synthetic:
        head = head.replace("final test acc", "last loss")
    lines = [head, "|" + "---|" * 6]
    for backend, run in runs.items():
        counts: dict[str, int] = {}
        for impl in run["resolved_backends"].values():
            counts[impl] = counts.get(impl, 0) + 1
        resolved = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))
        first = run["step_losses"][-1] if synthetic else run["final_test_acc"]
        memory = run["memory"].get("peak_growth_mib", run["memory"].get("peak_mib"))
        lines.append(
            f"| {backend} | {resolved} | {first:.4f} | {run['ms_per_step_median']:.2f} | {memory:.1f} | "
            f"{run['saved_for_backward_mib_one_step']:.2f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    p.add_argument("--T", type=int, default=None, help="time steps (default 4; 6 with --synthetic-cifar, as DTA-SNN)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--out", default=str(ROOT / "examples" / "results"), help="results folder")
    p.add_argument("--model", choices=("dta", "tcja"), default="dta")
    p.add_argument("--encoding", choices=("static", "events"), default="static")
    p.add_argument("--batch-size", type=int, default=None, help="default 64 (also for --synthetic-cifar, as DTA-SNN)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate, cosine schedule (digits)")
    p.add_argument("--subset", type=int, default=None, help="use only this many training images (smoke runs)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: at these sizes a second thread gains little, and on a\n"
        "shared 2-core machine OpenMP threads that wait for each other make the timing erratic)",
    )
    p.add_argument(
        "--no-isolate",
        dest="isolate",
        action="store_false",
        help="run both backends in this process (faster start; the CPU memory numbers then mix)",
    )
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar (tqdm is then not needed)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.add_argument(
        "--synthetic-cifar",
        action="store_true",
        help="time DTA_SNN_18 at CIFAR shape on random data instead of training on digits",
    )
    p.add_argument("--image-size", type=int, default=32, help="synthetic CIFAR image size (default 32)")
    p.add_argument("--synthetic-steps", type=int, default=20, help="timed steps per backend (default 20)")
    p.add_argument("--synthetic-warmup", type=int, default=3, help="untimed warm-up steps (default 3)")
    p.add_argument(
        "--rounding-control",
        action="store_true",
        help="also train the eager run with every initial weight moved by one ulp: the drift that\n"
        "float rounding alone causes, to compare the torch-vs-auto difference with",
    )
    p.add_argument("--_worker", choices=BACKENDS + (CONTROL,), default=None, help=argparse.SUPPRESS)
    p.add_argument("--_worker-json", dest="worker_json", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.batch_size is None:
        args.batch_size = 64
    if args.T is None:
        args.T = 6 if args.synthetic_cifar else 4
    args.isolated = args._worker is not None
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the comparison (or, with the hidden ``--_worker``, one backend) and return the results dict."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args._worker is not None:
        result = (synthetic_cifar_one if args.synthetic_cifar else train_one)(args, args._worker)
        Path(args.worker_json).write_text(json.dumps(result))
        return result

    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    runs = {}
    for backend in BACKENDS + ((CONTROL,) if args.rounding_control and not args.synthetic_cifar else ()):
        what = "eager run, initial weights +1 ulp (rounding control)" if backend == CONTROL else f"backend={backend!r}"
        print(
            f"== {what}: {'synthetic CIFAR timing' if args.synthetic_cifar else 'training'} "
            f"({'fresh process' if args.isolate else 'in process'})",
            flush=True,
        )
        runs[backend] = _run_backend(args, argv, backend)
        print(f"   layers resolved to: {runs[backend]['resolved_backends']}", flush=True)
    wall = time.perf_counter() - t0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = (
        f"synthetic_cifar_{args.device}_T{args.T}_b{args.batch_size}_{args.image_size}px"
        if args.synthetic_cifar
        else f"digits_{args.model}_{args.encoding}_T{args.T}"
    )
    comparison = _curve_diffs(runs["torch"], runs["auto"])
    if CONTROL in runs:
        comparison.update({f"control_{k}": v for k, v in _curve_diffs(runs["torch"], runs[CONTROL]).items()})
    results = {
        "what": (
            "DTA_SNN_18 training steps on random CIFAR-shaped data"
            if args.synthetic_cifar
            else f"train a small SNN ({args.model}) on sklearn digits, {args.encoding} encoding"
        ),
        "machine": _machine(),
        "args": {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "worker_json"},
        "wall_seconds": wall,
        # other processes on the machine slow the timed steps (OpenMP threads especially): recorded here
        "load_avg_1min": {"start": load_start, "end": os.getloadavg()[0]},
        "comparison": comparison,
        "runs": runs,
    }
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1))
    if not args.synthetic_cifar:
        with open(out / f"{stem}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["backend", "epoch", "train_loss", "train_acc", "test_loss", "test_acc"])
            for backend, run in runs.items():
                for r in run["epochs"]:
                    writer.writerow(
                        [backend, r["epoch"], r["train_loss"], r["train_acc"], r["test_loss"], r["test_acc"]]
                    )
        title = (
            f"{results['what']}, T={args.T}, seed {args.seed}: backend='torch' vs 'auto', max |step-loss diff| "
            f"{comparison['max_abs_diff_step_loss']:.2e}"
        )
        if CONTROL in runs:
            control = comparison["control_max_abs_diff_step_loss"]
            title += f" (rounding control, eager with weights +1 ulp: {control:.2e})"
        _plot(runs, out / f"{stem}.png", title)
    print()
    print(_table(runs, args.synthetic_cifar))
    print()
    for key, value in comparison.items():
        print(f"{key}: {value}" if isinstance(value, int) else f"{key}: {value:.3e}")
    print(f"wall time {wall:.1f} s; results in {out / stem}.json")
    return results


if __name__ == "__main__":
    main()
