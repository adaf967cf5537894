"""Makes the spiking transformers' official model files importable on a current stack, for the tests.

Nothing of the official repositories is in this repository: ``scripts/fetch_official.sh`` clones them at the
commits below into ``.official/`` (ignored by git), or ``SNNKERNELS_OFFICIAL_DIR`` names a folder that holds
them (one sub-folder per repository, named as the repository). ``load(key)`` imports one official model file
with these stand-ins in place of what it imports, and removes them (and the official modules) from
``sys.modules`` afterwards, so the rest of the suite sees the real packages:

- ``spikingjelly.clock_driven``: ``neuron.MultiStepLIFNode`` / ``MultiStepParametricLIFNode`` with the
  SpikingJelly 0.0.0.0.x semantics the official code ran (written here from docs/spiking_transformers.md
  "The neuron": charge ``v + (x - (v - v_reset)) / tau`` or ``* sigmoid(w)``, fire on ``h >= v_threshold``
  with the ``Sigmoid(alpha=4)`` surrogate, hard reset with the spike detached, every call from rest), and
  empty ``surrogate`` / ``layer`` / ``functional`` modules;
- ``timm``: ``register_model`` (identity), ``trunc_normal_`` (``torch.nn.init.trunc_normal_``: timm's
  algorithm and bounds), ``DropPath`` (never applied by these forwards), ``to_2tuple``, ``_cfg``,
  ``create_model`` (refuses: the tests build the classes directly);
- ``einops.layers.torch.Rearrange`` and ``torchinfo.summary``: imported, never used by the model classes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]

# repository folder name -> (GitHub owner/name, commit the tests were written against)
REPOS = {
    "spikformer": ("ZK-Zhou/spikformer", "621268981827af47aa666c1b5f774de4281d90ad"),
    "Spikingformer": ("zhouchenlin2096/Spikingformer", "4378623b82bb1999b137244950ad648566e148fd"),
    "Spike-Driven-Transformer": ("BICLab/Spike-Driven-Transformer", "3faa82272eb499e4d56ea77707d4536e7c69a54b"),
    "Spike-Driven-Transformer-V2": ("BICLab/Spike-Driven-Transformer-V2", "35f245f4f79acf1a2b3ef22698c58ab05c1ede33"),
    "QKFormer": ("zhouchenlin2096/QKFormer", "c2a00e8e54538e76f5954614a60c1d53824bbee9"),
}

# model key -> (repository folder, model file, extra folder put on sys.path for the file's own imports)
FILES = {
    "spikformer_cifar": ("spikformer", "cifar10/model.py", None),
    "spikformer_imagenet": ("spikformer", "imagenet/model.py", None),
    "spikingformer_cifar": ("Spikingformer", "cifar10/model.py", None),
    "sdt": ("Spike-Driven-Transformer", "model/spikeformer.py", "."),
    "meta_spikformer": ("Spike-Driven-Transformer-V2", "classification/models.py", None),
    "qkformer_cifar": ("QKFormer", "cifar10/model.py", None),
    "qkformer_imagenet": ("QKFormer", "imagenet/qkformer.py", None),
}


def official_dir() -> Path:
    return Path(os.environ.get("SNNKERNELS_OFFICIAL_DIR", ROOT / ".official"))


def missing_reason(key: str) -> str | None:
    """Why ``load(key)`` cannot run here (None when it can)."""
    repo, path, _ = FILES[key]
    file = official_dir() / repo / path
    if not file.is_file():
        return (
            f"official code absent: {file} (run scripts/fetch_official.sh, which clones {REPOS[repo][0]} "
            f"@ {REPOS[repo][1][:7]}, or set SNNKERNELS_OFFICIAL_DIR)"
        )
    return None


class _SigmoidSpike(torch.autograd.Function):
    """Heaviside forward; ``alpha * s * (1 - s)``, ``s = sigmoid(alpha * x)``, backward."""

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(ctx.alpha * x)
        return grad * (1.0 - s) * s * ctx.alpha, None


class Sigmoid(nn.Module):
    def __init__(self, alpha=4.0, spiking=True):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return _SigmoidSpike.apply(x, self.alpha)


class MultiStepLIFNode(nn.Module):
    """SpikingJelly 0.0.0.0.x ``MultiStepLIFNode`` on [T, ...], eagerly, starting from rest at every call."""

    def __init__(
        self,
        tau=2.0,
        decay_input=True,
        v_threshold=1.0,
        v_reset=0.0,
        surrogate_function=None,
        detach_reset=False,
        backend="torch",
        lava_s_cale=1 << 6,
    ):
        super().__init__()
        self.tau = tau
        self.decay_input = decay_input
        self.v_threshold = v_threshold
        self.v_reset = v_reset
        self.surrogate_function = Sigmoid() if surrogate_function is None else surrogate_function
        self.detach_reset = detach_reset
        self.backend = backend

    def charge(self, v, x):
        if self.decay_input:
            return v + (x - (v - self.v_reset)) / self.tau
        return v - (v - self.v_reset) / self.tau + x

    def forward(self, x_seq):
        if self.v_reset is None:
            raise NotImplementedError("the official models use hard reset only")
        v = torch.full_like(x_seq[0], self.v_reset)
        out = []
        for x in x_seq:
            h = self.charge(v, x)
            spike = self.surrogate_function(h - self.v_threshold)
            s = spike.detach() if self.detach_reset else spike
            v = (1.0 - s) * h + s * self.v_reset
            out.append(spike)
        return torch.stack(out)


class MultiStepParametricLIFNode(MultiStepLIFNode):
    """``MultiStepParametricLIFNode``: the rate ``sigmoid(w)`` learned, ``w = -log(init_tau - 1)``."""

    def __init__(self, init_tau=2.0, decay_input=True, v_threshold=1.0, v_reset=0.0, surrogate_function=None, **kw):
        super().__init__(2.0, decay_input, v_threshold, v_reset, surrogate_function, **kw)
        self.w = nn.Parameter(torch.as_tensor(-math.log(init_tau - 1.0)))

    def charge(self, v, x):
        if self.decay_input:
            return v + (x - (v - self.v_reset)) * self.w.sigmoid()
        return v - (v - self.v_reset) * self.w.sigmoid() + x


class DropPath(nn.Module):
    def __init__(self, drop_prob=0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        raise AssertionError("DropPath is never applied by the official forwards")


def _to_2tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)


def _refuse(*args, **kwargs):
    raise AssertionError("the tests build the official classes directly")


def _fake_modules() -> dict[str, types.ModuleType]:
    def module(name: str, **attrs) -> types.ModuleType:
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        m.__path__ = []  # a package, so that submodules resolve from sys.modules
        return m

    neuron = module(
        "spikingjelly.clock_driven.neuron",
        MultiStepLIFNode=MultiStepLIFNode,
        MultiStepParametricLIFNode=MultiStepParametricLIFNode,
    )
    surrogate = module("spikingjelly.clock_driven.surrogate", Sigmoid=Sigmoid)
    layer = module("spikingjelly.clock_driven.layer")
    functional = module("spikingjelly.clock_driven.functional")
    clock_driven = module(
        "spikingjelly.clock_driven", neuron=neuron, surrogate=surrogate, layer=layer, functional=functional
    )
    layers = module("timm.models.layers", to_2tuple=_to_2tuple, trunc_normal_=nn.init.trunc_normal_, DropPath=DropPath)
    registry = module("timm.models.registry", register_model=lambda fn: fn)
    vit = module("timm.models.vision_transformer", _cfg=lambda **kw: dict(kw))
    timm_models = module("timm.models", layers=layers, registry=registry, vision_transformer=vit, create_model=_refuse)
    einops_torch = module("einops.layers.torch", Rearrange=_refuse)
    mods = {
        "spikingjelly": module("spikingjelly", clock_driven=clock_driven),
        "spikingjelly.clock_driven": clock_driven,
        "spikingjelly.clock_driven.neuron": neuron,
        "spikingjelly.clock_driven.surrogate": surrogate,
        "spikingjelly.clock_driven.layer": layer,
        "spikingjelly.clock_driven.functional": functional,
        "timm": module("timm", models=timm_models),
        "timm.models": timm_models,
        "timm.models.layers": layers,
        "timm.models.registry": registry,
        "timm.models.vision_transformer": vit,
        "einops": module("einops"),
        "einops.layers": module("einops.layers", torch=einops_torch),
        "einops.layers.torch": einops_torch,
        "torchinfo": module("torchinfo", summary=_refuse),
    }
    return mods


@contextlib.contextmanager
def _stand_ins(extra_path: Path | None) -> Iterator[None]:
    fakes = _fake_modules()
    saved = {name: sys.modules[name] for name in fakes if name in sys.modules}
    before = set(sys.modules)
    sys.modules.update(fakes)
    if extra_path is not None:
        sys.path.insert(0, str(extra_path))
    try:
        yield
    finally:
        if extra_path is not None:
            sys.path.remove(str(extra_path))
        base = str(official_dir())
        for name in set(sys.modules) - before:
            file = getattr(sys.modules[name], "__file__", None) or ""
            if name in fakes or file.startswith(base):
                del sys.modules[name]
        sys.modules.update(saved)


_CACHE: dict[str, types.ModuleType] = {}


def load(key: str) -> types.ModuleType:
    """The official model file ``FILES[key]`` as a module (imported once per process)."""
    if key in _CACHE:
        return _CACHE[key]
    reason = missing_reason(key)
    if reason:
        raise FileNotFoundError(reason)
    repo, path, extra = FILES[key]
    folder = official_dir() / repo
    file = folder / path
    with _stand_ins(folder / extra if extra else None):
        spec = importlib.util.spec_from_file_location(f"official_{key}", file)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    _CACHE[key] = mod
    return mod
