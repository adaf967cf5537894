"""Bytes that autograd holds for the backward, per zoo network, eager (``backend="torch"``) vs fused, split by
kind (docs/spike_pack.md "Memory benchmark"). No GPU needed: what a forward saves for its backward is the same
set of tensors on any device, so the CPU count is the GPU's too (peak memory is not: see bench/gpu_check.sh).

    python -m bench.memory [--networks DTA_SNN_18 ...] [--official-dta PATH] [--triton-interpreter NET ...]

``SavedTensorCensus`` counts, at the end of one training-mode forward, every storage that autograd saved
(``torch.autograd.graph.saved_tensors_hooks``), each once (by its untyped storage), parameters and buffers
excluded, and sorts it into one kind, first rule that applies:

1. ``spikes``: a floating tensor holding only 0s and 1s, or a uint8 / bool tensor saved inside a conv / linear
   module (the spike layers' packed input);
2. ``conv_outputs``: the output of a conv / linear module (``nn.Conv1d/2d/3d``, ``nn.Linear`` and subclasses);
3. ``bn_outputs``: the output of a BatchNorm module (``nn.modules.batchnorm._NormBase`` subclasses);
4. ``membranes``: anything else saved while the innermost running module is a neuron (a SpikingJelly /
   snnkernels ``MemoryModule`` or ``BaseNode``, a module class named ``*Node`` / ``*Neuron``, or one of
   ``FOREIGN_NEURONS``): membranes, checkpoints, the neuron's own intermediates;
5. ``other``: the rest (attention intermediates, pooling, the network's input, masks).

The networks are built by their zoo constructors at run time and every rule reads module types and values,
so a change of the zoo's layers (bn_lif, the spike layers) shows up in the next run without editing this
file. The fused row on the CPU is ``backend="native"``: the native C++ neurons, with the attention layers
(Triton only) on their torch path; ``--triton-interpreter`` adds a ``backend="triton"`` row run by Triton's
interpreter (slow; the kernels and what they save are those of the GPU).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .utils import cpu_name

KINDS = ("spikes", "conv_outputs", "bn_outputs", "membranes", "other")
# neuron modules of foreign (official) code, by class name
FOREIGN_NEURONS = ("LIFSpike",)
RESULTS = Path(__file__).resolve().parent / "results"
DATE = "2026-12-06"
MIB = 2.0**20


def _neuron_types() -> tuple[type, ...]:
    from snnkernels.nn.memory import MemoryModule

    types: list[type] = [MemoryModule]
    try:
        from spikingjelly.activation_based import base, neuron

        types += [base.MemoryModule, neuron.BaseNode]
    except ImportError:
        pass
    return tuple(types)


def is_neuron(module: nn.Module, neuron_types: tuple[type, ...] | None = None) -> bool:
    """Whether ``module`` is a spiking neuron for the census (rule 4 of the module docstring)."""
    name = type(module).__name__
    if isinstance(module, neuron_types if neuron_types is not None else _neuron_types()):
        return True
    return name.endswith(("Node", "Neuron")) or name in FOREIGN_NEURONS


CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
BN_TYPES = (nn.modules.batchnorm._NormBase,)


def _is_binary(t: torch.Tensor) -> bool:
    if t.is_floating_point():
        return t.numel() > 0 and bool(((t == 0) | (t == 1)).all())
    return False


class SavedTensorCensus:
    """Context manager: the storages autograd saves inside it, each once, by kind (``KINDS``).

    Args:
        exclude (iterable of Tensor, Optional): tensors whose storages are not counted (a model's
            parameters and buffers: they exist whether or not a backward follows). Default: ()

    After the block: ``bytes`` {kind: bytes}, ``total``, ``storages`` {data_ptr: (kind, bytes)} of the saved
    tensors still alive when the block ends (the pack hook keeps weak references: a tensor saved by a part of
    the graph that was dropped on the way is not held for the backward, and is not counted). Those are all
    alive at once, so no two of them share an address. The conv / BN outputs are held (strong references)
    until ``close()`` so that their addresses, which classify the saved tensors, are not reused meanwhile.
    """

    def __init__(self, exclude=()) -> None:
        self._exclude = {t.untyped_storage().data_ptr() for t in exclude}
        self._neuron_types = _neuron_types()
        self.storages: dict[int, tuple[str, int]] = {}
        self._saved: list[tuple[weakref.ref, str]] = []
        self._held: list[torch.Tensor] = []
        self._outputs: dict[int, str] = {}  # storage of a conv / BN output -> its kind
        self._stack: list[nn.Module] = []

    # module bookkeeping: the innermost running module, and which storages conv / BN modules produced
    def _pre(self, module: nn.Module, args: Any) -> None:
        self._stack.append(module)

    def _post(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._stack and self._stack[-1] is module:
            self._stack.pop()
        kind = (
            "conv_outputs" if isinstance(module, CONV_TYPES) else "bn_outputs" if isinstance(module, BN_TYPES) else None
        )
        if kind is not None and isinstance(output, torch.Tensor):
            self._outputs.setdefault(output.untyped_storage().data_ptr(), kind)
            self._held.append(output)

    def classify(self, t: torch.Tensor) -> str:
        inner = self._stack[-1] if self._stack else None
        if _is_binary(t) or (t.dtype in (torch.uint8, torch.bool) and isinstance(inner, CONV_TYPES)):
            return "spikes"
        kind = self._outputs.get(t.untyped_storage().data_ptr())
        if kind is not None:
            return kind
        if inner is not None and is_neuron(inner, self._neuron_types):
            return "membranes"
        return "other"

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() not in self._exclude:
            self._saved.append((weakref.ref(t), self.classify(t)))
        return t

    def __enter__(self) -> SavedTensorCensus:
        from torch.nn.modules import module as module_hooks

        self._handles = [
            module_hooks.register_module_forward_pre_hook(self._pre),
            module_hooks.register_module_forward_hook(self._post, always_call=True),
        ]
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)
        for h in self._handles:
            h.remove()
        for ref, kind in self._saved:  # the first save of a storage names its kind
            t = ref()
            if t is not None and t.untyped_storage().nbytes() > 0:
                self.storages.setdefault(t.untyped_storage().data_ptr(), (kind, t.untyped_storage().nbytes()))
        self._saved.clear()

    @property
    def bytes(self) -> dict[str, int]:
        out = dict.fromkeys(KINDS, 0)
        for kind, n in self.storages.values():
            out[kind] += n
        return out

    @property
    def total(self) -> int:
        return sum(n for _, n in self.storages.values())

    def close(self) -> None:
        self._held.clear()
        self._outputs.clear()


def saved_bytes(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """{kind: bytes} held for the backward by one training-mode forward of ``model`` on ``x``, and "total"."""
    model.train()
    census = SavedTensorCensus(exclude=[*model.parameters(), *model.buffers()])
    with census:
        out = model(x)
    counts = {**census.bytes, "total": census.total}
    census.close()
    del out
    return counts


# ---------------------------------------------------------------------------------------------------------
# the zoo at its papers' T


@dataclass(frozen=True)
class Network:
    name: str
    build: Callable[[str], nn.Module]  # backend -> the network
    input_shape: tuple[int, ...]
    events: bool  # DVS event counts (Poisson) rather than images (uniform)
    T: int
    setting: str  # where T and the input size come from
    default: bool = True  # run without --networks (False: needs more RAM than a small CPU machine has)

    def input(self) -> torch.Tensor:
        if self.events:
            return torch.poisson(torch.full(self.input_shape, 0.5))
        return torch.rand(self.input_shape)


def zoo() -> list[Network]:
    from snnkernels import models as M

    return [
        Network(
            "DTA_SNN_18",
            lambda b: M.DTA_SNN_18(num_classes=10, time_step=6, backend=b),
            (2, 3, 32, 32),
            False,
            6,
            "CIFAR-10, T = 6 (official scripts/run_cifar10.sh)",
        ),
        Network(
            "DTA_SNN_34",
            lambda b: M.DTA_SNN_34(num_classes=1000, time_step=6, backend=b),
            (1, 3, 224, 224),
            False,
            6,
            "ImageNet 224x224, T = 6 (official scripts/run_imgnet.sh)",
            default=False,  # its eager forward holds several GiB and the census more: name it to run it
        ),
        Network(
            "TCJA_DVS128",
            lambda b: M.TCJA_DVS128(backend=b),
            (1, 20, 2, 128, 128),
            True,
            20,
            "DVS128 Gesture 128x128, T = 20 (preset DVS128_GESTURE)",
        ),
        Network(
            "TCJA_CIFAR10DVS",
            lambda b: M.TCJA_CIFAR10DVS(backend=b),
            (1, 10, 2, 128, 128),
            True,
            10,
            "CIFAR10-DVS 128x128 (pooled to 48 inside), T = 10 (preset CIFAR10_DVS)",
        ),
        Network(
            "MASNN_DVSGesture",
            lambda b: M.MASNN_DVSGesture(backend=b),
            (1, 60, 2, 32, 32),
            True,
            60,
            "DVS Gesture 32x32, T = 60 (official Config.py)",
        ),
        Network(
            "MASNN_CIFAR10DVS",
            lambda b: M.MASNN_CIFAR10DVS(backend=b),
            (1, 20, 2, 128, 128),
            True,
            20,
            "CIFAR10-DVS 128x128, T = 20 (official Config.py)",
        ),
        Network(
            "MASNN_DVSGait",
            lambda b: M.MASNN_DVSGait(backend=b),
            (1, 8, 2, 128, 128),
            True,
            8,
            "DVS Gait 128x128, T = 8 (official Config.py)",
        ),
        Network(
            "AttResSNN18",
            lambda b: M.AttResSNN18(backend=b),
            (1, 3, 224, 224),
            False,
            1,
            "ImageNet 224x224, T = 1 (official time_window)",
        ),
        Network(
            "STAA_ResNet20",
            lambda b: M.STAA_ResNet20(T=4, backend=b),
            (2, 3, 32, 32),
            False,
            4,
            "CIFAR-10 32x32, T = 4 (the paper's largest T on static images)",
        ),
    ]


def official_dta_snn_18(path: str) -> Network:
    """The official MnJnKIM/DTA-SNN ``DTA_SNN_18`` from a checkout at ``path`` (imported as ``models``)."""
    sys.path.insert(0, str(Path(path).resolve()))
    from models.DTA_SNN import DTA_SNN_18 as official  # noqa: PLC0415 - only with --official-dta

    return Network(
        "DTA_SNN_18 (official code)",
        lambda b: official(num_classes=10, time_step=6, DTA_ON=True, dvs=False),
        (2, 3, 32, 32),
        False,
        6,
        "CIFAR-10, T = 6, MnJnKIM/DTA-SNN models/DTA_SNN.py as released",
    )


def measure(net: Network, backend: str, seed: int = 0) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = net.build(backend)
    x = net.input()
    counts = saved_bytes(model, x)
    return {
        "network": net.name,
        "backend": backend,
        "T": net.T,
        "batch": net.input_shape[0],
        "input": list(net.input_shape),
        "setting": net.setting,
        "bytes": counts,
    }


# ---------------------------------------------------------------------------------------------------------
# output


def _mib(n: int) -> str:
    return f"{n / MIB:.1f}"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any] | None = None) -> str:
    """One line per (network, backend): MiB held, the ratio to the network's ``backend="torch"`` row, and the
    split by kind (docs/spike_pack.md "Memory benchmark"), after a few lines on how it was measured."""
    by_net: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_net.setdefault(r["network"], {})[r["backend"]] = r
    head = "| network | T | batch | input | backend | total MiB | vs torch | " + " | ".join(KINDS) + " |"
    intro = []
    if meta:
        intro = [
            f"# Bytes held for the backward ({meta['date']}, {meta['machine']}, torch {meta['torch']})",
            "",
            f"{meta['what']}. Made by `{meta['command']}`. Backends: `torch` = the eager path; `auto` = on a CPU "
            "the native C++ neurons and `bn_lif`, attention layers (Triton kernels only) on their torch path; "
            "`triton` = the "
            "Triton kernels run by Triton's interpreter (what a GPU run saves); `official` = the official "
            'MnJnKIM/DTA-SNN code. Kinds: docs/spike_pack.md "Memory benchmark". Inputs: uniform images, '
            "Poisson(0.5) event counts. MiB = 2^20 bytes.",
            "",
        ]
    lines = [*intro, head, "|" + "---|" * (7 + len(KINDS))]
    for name, runs in by_net.items():
        eager = runs.get("torch")
        for backend, r in runs.items():
            b = r["bytes"]
            ratio = f"{b['total'] / eager['bytes']['total']:.2f}x" if eager else ""
            shape = "x".join(str(s) for s in r["input"])
            cells = [name, str(r["T"]), str(r["batch"]), shape, backend, _mib(b["total"]), ratio]
            cells += [_mib(b[k]) for k in KINDS]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Stacked MiB by kind per (network, backend), and each row's total as a fraction of its network's
    ``backend="torch"`` row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['network']}\n{r['backend']}" for r in rows]
    eager = {r["network"]: r["bytes"]["total"] for r in rows if r["backend"] == "torch"}
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(max(8, 0.6 * len(rows)), 9), height_ratios=(2, 1), sharex=True)
    bottom = [0.0] * len(rows)
    for kind in KINDS:
        vals = [r["bytes"][kind] / MIB for r in rows]
        ax.bar(range(len(rows)), vals, bottom=bottom, label=kind)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("MiB held for the backward")
    ax.set_title(f"Bytes autograd holds for the backward, by kind (counted on a CPU, {DATE})")
    ax.legend(fontsize=8)
    ratios = [r["bytes"]["total"] / eager[r["network"]] if r["network"] in eager else float("nan") for r in rows]
    ax2.bar(range(len(rows)), ratios, color="gray")
    ax2.axhline(1.0, color="black", lw=0.8)
    ax2.set_ylabel('total / backend="torch"')
    ax2.set_xticks(range(len(rows)), labels, rotation=60, ha="right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="*", help="zoo networks to run (default: all)")
    parser.add_argument("--fused", default="auto", help="the fused row's backend (auto: native neurons on a CPU)")
    parser.add_argument("--official-dta", help="a checkout of MnJnKIM/DTA-SNN: adds the official DTA_SNN_18 row")
    parser.add_argument("--triton-interpreter", nargs="*", default=[], help="networks to add a triton row for")
    tag = "-".join(cpu_name().lower().split())
    parser.add_argument("--out", default=str(RESULTS / f"{DATE}_cpu-{tag}_memory"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--from-json", help="rewrite the table and the plot of a results JSON (nothing measured)")
    args = parser.parse_args(argv)
    if args.from_json:
        rows = json.loads(Path(args.from_json).read_text())["rows"]
        out = Path(args.from_json).with_suffix("")
        data = json.loads(Path(args.from_json).read_text())
        out.with_suffix(".md").write_text(markdown(rows, data["metadata"]))
        plot(rows, out.with_suffix(".png"))
        return
    torch.set_num_threads(args.threads)
    nets = [n for n in zoo() if n.name in args.networks] if args.networks else [n for n in zoo() if n.default]
    rows = []
    if args.official_dta:
        rows.append(measure(official_dta_snn_18(args.official_dta), "official"))
        print(json.dumps(rows[-1]), flush=True)
    for net in nets:
        backends = ["torch", args.fused] + (["triton"] if net.name in args.triton_interpreter else [])
        for backend in backends:
            if backend == "triton" and os.environ.get("TRITON_INTERPRET") != "1":
                raise SystemExit("--triton-interpreter needs TRITON_INTERPRET=1 set before the run")
            try:
                rows.append(measure(net, backend))
            except Exception as exc:  # noqa: BLE001 - a network that cannot run a backend is reported, not fatal
                print(f"{net.name} on {backend}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                continue
            print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    meta = {
        "date": DATE,
        "machine": f"{cpu_name()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "what": "bytes of the storages autograd saves in one training-mode forward (each once, parameters and "
        "buffers excluded), by kind; fp32",
        "kinds": list(KINDS),
        # the interpreter is how the triton rows run on a CPU: part of the command
        "command": ("TRITON_INTERPRET=1 " if os.environ.get("TRITON_INTERPRET") == "1" else "")
        + "python -m bench.memory "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    out.with_suffix(".json").write_text(json.dumps({"metadata": meta, "rows": rows}, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(rows, meta))
    plot(rows, out.with_suffix(".png"))
    print(markdown(rows))


if __name__ == "__main__":
    main()
