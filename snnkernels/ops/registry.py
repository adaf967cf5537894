"""Every op registered under ``torch.ops.snnkernels``, as data: one ``OpEntry`` per op.

An entry names the op, the module whose import registers it, the backend and devices that implement it,
the Triton kernels it launches (the AOT compile list, python_tests/triton_aot.py, covers each), whether it
has its own autograd formula, whether its results are bit-identical run to run, and a factory of tiny valid
inputs that python_tests/test_op_registry.py hands to ``torch.library.opcheck``. ``CAPABILITIES`` (op x
backend / device -> None when it runs there, else the reason it cannot) is derived from the entries.

Adding an op is one entry here: the registry test fails for a registered op without one (and for an entry
whose op is not registered), and runs opcheck on the entry's samples.

Importing this module imports no op module; ``load()`` does (and loads the native extension).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..surrogate import Sigmoid, Triangle

__all__ = [
    "CAPABILITIES",
    "ENTRIES",
    "NAMESPACE",
    "REGISTRY",
    "TARGETS",
    "OpEntry",
    "audit",
    "capability",
    "load",
    "registered_ops",
]

NAMESPACE = "snnkernels"
NATIVE_MODULE = "snnkernels._C"
# (backend, device) pairs an op of this package can run on; Triton runs on CPU tensors only under its
# interpreter (TRITON_INTERPRET=1, tests), see snnkernels/backends.py
TARGETS = (("triton", "cuda"), ("triton", "cpu"), ("native", "cpu"), ("native", "cuda"), ("cupy", "cuda"))

Samples = Callable[[str], list[tuple]]


@dataclass(frozen=True)
class OpEntry:
    name: str  # the op is torch.ops.snnkernels.<name>
    module: str  # importing it registers the op (NATIVE_MODULE: loaded by snnkernels._ext.load_native)
    backend: str  # "triton", "native" or "cupy"
    samples: Samples  # device -> argument tuples for opcheck (tiny, valid)
    devices: tuple[str, ...] = ("cpu", "cuda")
    kernels: tuple[str, ...] = ()  # Triton kernels it launches
    autograd: bool = False  # its own register_autograd formula; else an autograd.Function around it differentiates
    deterministic: bool = True  # fixed-order reductions, no atomics: bit-identical reruns
    # opcheck util -> why the op cannot pass it (none today; an exemption must say why)
    opcheck_exempt: dict[str, str] = field(default_factory=dict)
    # why a kernel in ``kernels`` is not among python_tests/triton_aot.py's variants (kernel -> reason)
    aot_exempt: dict[str, str] = field(default_factory=dict)

    @property
    def qualname(self) -> str:
        return f"{NAMESPACE}::{self.name}"

    def op(self) -> Any:
        return getattr(getattr(torch.ops, NAMESPACE), self.name).default


# ---------------------------------------------------------------------------------------------------------
# sample inputs (CPU under the interpreter: a few elements each)

T, B, C, H, W = 3, 2, 3, 2, 3


def _randn(dev: str, *shape: int, grad: bool = False) -> torch.Tensor:
    return torch.randn(*shape, device=dev, requires_grad=grad)


def _rand(dev: str, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, device=dev)


def _op(name: str) -> Any:
    return getattr(torch.ops.snnkernels, name).default


def _leaky_fwd_samples(dev: str) -> list[tuple]:
    """FWD_SCHEMA (ops/leaky.py): trained and not, per-channel coefficients or scalars; one soft-reset
    sequence that also stores v_seq."""
    out = []
    for training in (True, False):
        for per_channel in (True, False):
            x, v0 = _randn(dev, 5, 2, 3, 4, 5, grad=training), _randn(dev, 2, 3, 4, 5, grad=training)
            coef = [
                torch.full((3,), c, device=dev, requires_grad=training) if per_channel else None for c in (0.6, 0.9)
            ]
            out.append(
                (
                    x,
                    v0,
                    *coef,
                    None,
                    0.5,
                    1.0,
                    0.1,
                    1.0,
                    0.0,
                    0.0,
                    True,
                    True,
                    False,
                    Triangle.id,
                    1.0,
                    training,
                    True,
                    2,
                )
            )
    bias_t = torch.full((3,), 0.2, device=dev, requires_grad=True)
    out.append(
        (
            _randn(dev, 4, 2, 3, grad=True),
            None,
            None,
            None,
            bias_t,
            0.5,
            1.0,
            0.0,
            1.0,
            0.0,
            0.0,
            False,
            False,
            True,
            Sigmoid.id,
            4.0,
            True,
            False,
            3,
            True,
        )
    )
    return out


def _leaky_bwd_samples(backend: str) -> Samples:
    """BWD_SCHEMA, from the same backend's forward: every coefficient gradient, and a soft reset with
    dL/dv_seq and no initial state."""

    def samples(dev: str) -> list[tuple]:
        fwd = _op(f"leaky_fwd_{backend}")
        x, v0 = _randn(dev, 5, 2, 3, 4, 5), _randn(dev, 2, 3, 4, 5)
        decay, gain = torch.full((3,), 0.6, device=dev), torch.full((3,), 0.9, device=dev)
        spikes, v_final, ckpt, _ = fwd(
            x, v0, decay, gain, None, 0.5, 1.0, 0.1, 1.0, 0.0, 0.0, True, True, False, Triangle.id, 1.0, True, True, 2
        )
        first = (
            torch.randn_like(spikes),
            torch.randn_like(v_final),
            x,
            v0,
            ckpt,
            decay,
            gain,
            None,
            0.5,
            1.0,
            0.1,
            1.0,
            0.0,
            0.0,
            True,
            True,
            False,
            Triangle.id,
            1.0,
            2,
            True,
            True,
            True,
            False,
        )
        x2 = _randn(dev, 4, 2, 3)
        spikes2, _, ckpt2, v_seq = fwd(
            x2,
            None,
            None,
            None,
            None,
            0.5,
            1.0,
            0.0,
            1.0,
            0.0,
            0.0,
            False,
            False,
            True,
            Sigmoid.id,
            4.0,
            True,
            False,
            3,
            True,
        )
        second = (
            torch.randn_like(spikes2),
            None,
            x2,
            None,
            ckpt2,
            None,
            None,
            None,
            0.5,
            1.0,
            0.0,
            1.0,
            0.0,
            0.0,
            False,
            False,
            True,
            Sigmoid.id,
            4.0,
            3,
            False,
            False,
            False,
            False,
            torch.randn_like(v_seq),
        )
        return [first, second]

    return samples


def _counted_fwd_samples(dev: str) -> list[tuple]:
    out = []
    for training in (True, False):
        x, v0 = _randn(dev, 5, 2, 3, 4, grad=training), _randn(dev, 2, 3, 4, grad=training)
        decay = torch.full((3,), 0.6, device=dev, requires_grad=training)
        out.append(
            (
                x,
                v0,
                decay,
                None,
                None,
                0.6,
                1.0,
                0.1,
                1.0,
                0.0,
                0.0,
                True,
                False,
                False,
                Triangle.id,
                1.0,
                training,
                True,
                2,
            )
        )
    return out


def _neuron(hard: bool, strict: bool) -> tuple:
    # (decay, gain, bias, v_threshold, v_reset, v_init_value, hard_reset, strict)
    return 0.5, 1.0, 0.1, 1.0, 0.0, 0.0, hard, strict


def _gated_fwd_samples(dev: str) -> list[tuple]:
    x, scale, spatial = 2 * _randn(dev, T, B, C, H, W), _rand(dev, T, B, C), _rand(dev, B, H * W)
    return [
        (x, scale, None, False, *_neuron(True, False), True, 2, True),
        (x, scale, spatial, True, *_neuron(False, True), False, 2, False),
    ]


def _gated_bwd_samples(dev: str) -> list[tuple]:
    x, scale, spatial = 2 * _randn(dev, T, B, C, H, W), _rand(dev, T, B, C), _rand(dev, B, H * W)
    out = []
    for relu, gates, hard, sg in ((False, None, True, Triangle.id), (True, spatial, False, Sigmoid.id)):
        spikes, ckpt, _ = _op("gated_leaky_fwd")(x, scale, gates, relu, *_neuron(hard, False), True, 2, False)
        out.append((torch.randn_like(spikes), x, scale, gates, ckpt, relu, *_neuron(hard, False), not hard, sg, 1.0, 2))
    return out


def _dta_inputs(dev: str) -> tuple:
    x = _randn(dev, T, B, C, H, W) + 0.5  # fires, and keeps sig(NA * ...) within fp32's exp
    na_bt = _randn(dev, B, T, C, H, W).transpose(0, 1)  # T-NA's [B, T] output, read in place
    return x, _randn(dev, T, B, C, H, W), na_bt, _rand(dev, T, B, C), _rand(dev, T, B, C), _randn(dev, T, B, C)


def _dta_leaky_fwd_samples(dev: str) -> list[tuple]:
    x, na, na_bt, a, b, na_bias = _dta_inputs(dev)
    return [
        (x, na, a, b, None, *_neuron(True, False), True, 2, True),
        (x, na_bt, a, b, na_bias, *_neuron(False, True), False, 2, False),
    ]


def _dta_leaky_bwd_samples(dev: str) -> list[tuple]:
    x, na, na_bt, a, b, na_bias = _dta_inputs(dev)
    out = []
    for n, bias, hard, sg in ((na, None, True, Triangle.id), (na_bt, na_bias, False, Sigmoid.id)):
        y, ckpt, _ = _op("dta_leaky_fwd")(x, n, a, b, bias, *_neuron(hard, False), True, 2, False)
        out.append((torch.randn_like(y), x, n, a, b, bias, ckpt, *_neuron(hard, False), not hard, sg, 1.0, 2))
    return out


def _tcsa_fwd_samples(dev: str) -> list[tuple]:
    v, sc, gs = _randn(dev, B, C, H, W), _rand(dev, B, C), _rand(dev, B, H * W)
    return [
        (v, sc, gs, None, 1.0, 0.0, 0.5, torch.float32),
        (v, sc, gs, _randn(dev, B, C, H, W), 0.5, 0.0, 0.5, torch.float16),
    ]


def _tcsa_bwd_samples(dev: str) -> list[tuple]:
    v, sc, gs = _randn(dev, B, C, H, W), _rand(dev, B, C), _rand(dev, B, H * W)
    return [
        (_randn(dev, B, C, H, W), None, v, sc, gs, 1.0, 0.0, 0.5, False, Triangle.id, 1.0),
        (_randn(dev, B, C, H, W), _randn(dev, B, C, H, W), v, sc, gs, 0.5, 0.0, 0.5, True, Sigmoid.id, 4.0),
    ]


def _gc_fwd_samples(dev: str) -> list[tuple]:
    return [(_randn(dev, T, B, C, H, W), _randn(dev, C))]


def _gc_bwd_samples(dev: str) -> list[tuple]:
    x, wk = _randn(dev, T, B, C, H, W), _randn(dev, C)
    ctx, stats = _op("gc_context_fwd")(x, wk)
    return [(torch.randn_like(ctx), x, wk, ctx, stats)]


def _rows(dev: str) -> tuple:
    """(x, na, s, per-row values) of the pooled attentions' sweeps."""
    x = _randn(dev, T, B, C, H, W)
    return x, torch.randn_like(x), (torch.rand_like(x) > 0.5).float(), _rand(dev, T, B, C)


def _row_sums_samples(dev: str) -> list[tuple]:
    x, na, _, _ = _rows(dev)
    return [(x, None), (x, na)]


def _row_map_fwd_samples(dev: str) -> list[tuple]:
    x, _, _, r = _rows(dev)
    return [(x, r, r * 2, mode) for mode in (0, 1)]  # GATE, CROSS (kernels/triton/rowwise.py)


def _row_map_bwd_samples(dev: str) -> list[tuple]:
    x, na, _, r = _rows(dev)
    return [(na, x, r, r * 2, r / 3, mode) for mode in (0, 1)]


def _dta_fwd_samples(dev: str) -> list[tuple]:
    x, na, s, r = _rows(dev)
    return [(x, na, s, r, r * 2, bias) for bias in (None, r / 5)]


def _dta_bwd_samples(dev: str) -> list[tuple]:
    x, na, s, r = _rows(dev)
    return [
        (na, x, na, s, r, r * 2, None, True),
        (na, x, na, s, r, r * 2, r / 5, True),
        (na, x, na, s, r, r * 2, None, False),
    ]


def _tna_inputs(dev: str) -> tuple:
    """(a [B, D, H, W] plane, another, per-(b, d) gate)."""
    return _randn(dev, B, C, H, W), _randn(dev, B, C, H, W), _rand(dev, B, C)


def _ma_inputs(dev: str) -> tuple:
    return _randn(dev, T, B, C, H, W), _rand(dev, T, B, C), _rand(dev, B, H * W)


def _ma_bwd_input_samples(dev: str) -> list[tuple]:
    x, scale, spatial = _ma_inputs(dev)
    _, _, row_at = _op("ma_row_stats")(x)
    _, _, pix_at = _op("ma_pixel_stats")(x, scale)
    avg, top, row_add, row_max = _rand(dev, B, H * W), _rand(dev, B, H * W), _randn(dev, T, B, C), _randn(dev, T, B, C)
    return [
        (torch.randn_like(x), x, scale, spatial, avg, top, pix_at, row_add, row_max, row_at, None),
        (None, x, scale, None, None, None, None, row_add, row_max, row_at, torch.randn_like(x)),
    ]


def _staa_step_inputs(dev: str) -> tuple:
    """(h, y [B, C, H, W], a, b [C], ga, gb [B * C])."""
    return (
        _randn(dev, B, C, H, W),
        2 * _rand(dev, B, C, H, W),
        _rand(dev, C),
        _rand(dev, C),
        _rand(dev, B * C),
        _rand(dev, B * C),
    )


def _staa_step_bwd_samples(dev: str) -> list[tuple]:
    h, *rest = _staa_step_inputs(dev)
    return [
        (torch.randn_like(h), None, None, h, *rest, 1.0, 0.0, False, Triangle.id, 1.0),
        (torch.randn_like(h), torch.randn_like(h), _randn(dev, B, C), h, *rest, 1.0, 0.0, True, Sigmoid.id, 4.0),
    ]


def _staa_loop_inputs(dev: str, attention: bool) -> tuple:
    """(y, a, b, w1 [HID, C], w2 [2C, HID], drop int32 [T, B]), without the step attention and TSRD when
    not ``attention``."""
    y, a, b = 2 * _rand(dev, T, B, C, H, W), _rand(dev, C), _rand(dev, C)
    if not attention:
        return y, a, b, None, None, None
    drop = (torch.rand(T, B, device=dev) > 0.3).to(torch.int32)
    return y, a, b, _randn(dev, 2, C), _randn(dev, 2 * C, 2), drop


def _staa_loop_fwd_samples(dev: str) -> list[tuple]:
    # gate: 0 sigmoid, 1 softmax, 2 scaled logits (kernels/triton/staa_loop.py)
    return [
        (*_staa_loop_inputs(dev, True), 0.5, 1, 1.0, 0.0, torch.float32, True),
        (*_staa_loop_inputs(dev, False), 0.5, 0, 1.0, 0.0, torch.float16, False),
    ]


def _staa_loop_bwd_samples(dev: str) -> list[tuple]:
    out = []
    for attention, gate, sg in ((True, 2, Triangle.id), (False, 0, Sigmoid.id)):
        inputs = _staa_loop_inputs(dev, attention)
        spikes, states, ga, gb, hidden, mean_h, mean_y = _op("staa_loop_fwd")(
            *inputs, 0.5, gate, 1.0, 0.0, torch.float32, True
        )
        out.append(
            (
                torch.randn_like(spikes),
                *inputs,
                states,
                ga,
                gb,
                hidden,
                mean_h,
                mean_y,
                0.5,
                gate,
                1.0,
                0.0,
                attention,
                sg,
                1.0,
            )
        )
    return out


def _spikes(dev: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (torch.rand(T, B, C, H, W, device=dev) > 0.5).to(dtype)


def _spike_pack_samples(dev: str) -> list[tuple]:
    """A 0 / 1 tensor whose element count is not a multiple of 8, checked and not, in fp32 and bf16."""
    return [(_spikes(dev), True), (_spikes(dev, torch.bfloat16), False)]


def _spike_unpack_samples(dev: str) -> list[tuple]:
    packed = torch.randint(0, 256, ((T * B * C * H * W + 7) // 8,), dtype=torch.uint8, device=dev)
    return [(packed, [T, B, C, H, W], torch.float32), (packed, [T * B, C, H * W], torch.float16)]


# ---------------------------------------------------------------------------------------------------------
# the registry

_OPS = "snnkernels.ops."


def _leaky_entries(backend: str, module: str, devices: tuple[str, ...]) -> list[OpEntry]:
    triton = backend == "triton"
    return [
        OpEntry(
            f"leaky_fwd_{backend}",
            module,
            backend,
            _leaky_fwd_samples,
            devices,
            ("leaky_fwd_kernel",) if triton else (),
            autograd=True,
        ),
        OpEntry(
            f"leaky_bwd_{backend}",
            module,
            backend,
            _leaky_bwd_samples(backend),
            devices,
            ("leaky_bwd_kernel",) if triton else (),
            autograd=True,
        ),
    ]


def _triton(name: str, module: str, samples: Samples, *kernels: str, **flags: Any) -> OpEntry:
    return OpEntry(name, _OPS + module, "triton", samples, kernels=kernels, **flags)


REGISTRY: tuple[OpEntry, ...] = (
    *_leaky_entries("triton", _OPS + "leaky_triton", ("cpu", "cuda")),
    _triton(
        "leaky_fwd_counted_triton",
        "leaky_triton",
        _counted_fwd_samples,
        "leaky_fwd_counted_kernel",
        autograd=True,
        aot_exempt={"leaky_fwd_counted_kernel": "python_tests/test_firing.py compiles it with its own AOT script"},
    ),
    *_leaky_entries("native", NATIVE_MODULE, ("cpu", "cuda")),
    *_leaky_entries("cupy", _OPS + "leaky_cupy", ("cuda",)),
    _triton("gated_leaky_fwd", "gated_leaky_triton", _gated_fwd_samples, "gated_leaky_fwd_kernel"),
    _triton("gated_leaky_bwd", "gated_leaky_triton", _gated_bwd_samples, "gated_leaky_bwd_kernel", autograd=True),
    _triton("dta_leaky_fwd", "dta_leaky_triton", _dta_leaky_fwd_samples, "dta_leaky_fwd_kernel"),
    _triton("dta_leaky_bwd", "dta_leaky_triton", _dta_leaky_bwd_samples, "dta_leaky_bwd_kernel", autograd=True),
    _triton("tcsa_step_fwd", "tcsa_step_triton", _tcsa_fwd_samples, "tcsa_step_fwd_kernel"),
    _triton("tcsa_step_bwd", "tcsa_step_triton", _tcsa_bwd_samples, "tcsa_step_bwd_kernel"),
    _triton("gc_context_fwd", "global_context_triton", _gc_fwd_samples, "gc_context_fwd_kernel"),
    _triton("gc_context_bwd", "global_context_triton", _gc_bwd_samples, "gc_context_bwd_kernel"),
    _triton("rowwise_sums", "pooled_attention_triton", _row_sums_samples, "row_sums_kernel"),
    _triton("rowwise_map_fwd", "pooled_attention_triton", _row_map_fwd_samples, "row_map_fwd_kernel"),
    _triton("rowwise_map_bwd", "pooled_attention_triton", _row_map_bwd_samples, "row_map_bwd_kernel"),
    _triton("rowwise_dta_fwd", "pooled_attention_triton", _dta_fwd_samples, "dta_fwd_kernel"),
    _triton("rowwise_dta_bwd", "pooled_attention_triton", _dta_bwd_samples, "dta_bwd_kernel"),
    _triton("ma_row_stats", "ma_snn_triton", lambda d: [_ma_inputs(d)[:1]], "row_sum_max_kernel"),
    _triton("ma_pixel_stats", "ma_snn_triton", lambda d: [_ma_inputs(d)[:2]], "pixel_stats_kernel"),
    _triton("ma_apply", "ma_snn_triton", lambda d: [(*_ma_inputs(d)[:2], None), _ma_inputs(d)], "apply_kernel"),
    _triton(
        "ma_bwd_pixel_sums",
        "ma_snn_triton",
        lambda d: [(torch.randn_like(x), x, s, m) for x, s, g in [_ma_inputs(d)] for m in (g, None)],
        "bwd_pixel_sums_kernel",
    ),
    _triton("ma_row_dot_map", "ma_snn_triton", lambda d: [_ma_inputs(d)[::2]], "row_dot_map_kernel"),
    _triton("ma_bwd_input", "ma_snn_triton", _ma_bwd_input_samples, "bwd_input_kernel"),
    _triton("tna_gelu_rows", "tna_triton", lambda d: [_tna_inputs(d)[:1]], "gelu_rows_kernel"),
    _triton("tna_gelu_bwd", "tna_triton", lambda d: [_tna_inputs(d)], "gelu_bwd_kernel"),
    _triton("tna_gated_fwd", "tna_triton", lambda d: [_tna_inputs(d)], "gated_product_fwd_kernel"),
    _triton(
        "tna_gated_bwd", "tna_triton", lambda d: [(_randn(d, B, C, H, W), *_tna_inputs(d))], "gated_product_bwd_kernel"
    ),
    _triton(
        "staa_step_fwd",
        "staa_step_triton",
        lambda d: [(*_staa_step_inputs(d), 1.0, 0.0, dt) for dt in (torch.float32, torch.bfloat16)],
        "staa_step_fwd_kernel",
    ),
    _triton("staa_step_bwd", "staa_step_triton", _staa_step_bwd_samples, "staa_step_bwd_kernel"),
    _triton("staa_loop_fwd", "staa_loop_triton", _staa_loop_fwd_samples, "staa_loop_fwd_kernel"),
    _triton("staa_loop_bwd", "staa_loop_triton", _staa_loop_bwd_samples, "staa_loop_bwd_kernel"),
    _triton("spike_pack_triton", "spike_pack_triton", _spike_pack_samples, "spike_pack_fwd_kernel"),
    _triton("spike_unpack_triton", "spike_pack_triton", _spike_unpack_samples, "spike_unpack_fwd_kernel"),
    # the CPU kernels of the packing: vectorised torch today, under the name the native C++ op will take
    OpEntry("spike_pack_native", _OPS + "spike_pack", "native", _spike_pack_samples, ("cpu",)),
    OpEntry("spike_unpack_native", _OPS + "spike_pack", "native", _spike_unpack_samples, ("cpu",)),
)

ENTRIES: dict[str, OpEntry] = {e.name: e for e in REGISTRY}


def _capability(entry: OpEntry, backend: str, device: str) -> str | None:
    if backend != entry.backend:
        return f"{entry.qualname} is the {entry.backend} backend's op; {backend} does not implement it"
    if device not in entry.devices:
        return f"{entry.qualname} has no {device} kernel ({entry.backend} runs on {' / '.join(entry.devices)})"
    return None


# op name -> {(backend, device): None where it runs, else the reason it cannot}
CAPABILITIES: dict[str, dict[tuple[str, str], str | None]] = {
    e.name: {(backend, device): _capability(e, backend, device) for backend, device in TARGETS} for e in REGISTRY
}


def capability(name: str, backend: str, device: str, dtype: torch.dtype = torch.float32) -> str | None:
    """Why op ``name`` cannot run on ``backend`` / ``device`` here (the table's reason, else this install's:
    Triton missing or its interpreter off, the extension not built, no CuPy), or None when it can."""
    reason = CAPABILITIES[name].get((backend, device), f"{backend} does not run on {device}")
    if reason is not None:
        return reason
    from ..backends import problem_on

    return problem_on(backend, device, dtype)


def load(entries: tuple[OpEntry, ...] = REGISTRY) -> dict[str, str]:
    """Import the modules that register ``entries``' ops; {module: why it did not load} for those that failed
    (no Triton, no native build)."""
    problems: dict[str, str] = {}
    for module in dict.fromkeys(e.module for e in entries):
        if module == NATIVE_MODULE:
            from .. import _ext

            if not _ext.load_native():
                problems[module] = _ext.native_status()[1]
            continue
        try:
            importlib.import_module(module)
        except ImportError as exc:
            problems[module] = repr(exc)
    return problems


def registered_ops(namespace: str = NAMESPACE) -> set[str]:
    """Names of the ops the dispatcher knows under ``namespace`` (without the namespace)."""
    prefix = f"{namespace}::"
    return {name.removeprefix(prefix) for name in torch._C._dispatch_get_all_op_names() if name.startswith(prefix)}


def audit(
    entries: tuple[OpEntry, ...] = REGISTRY, namespace: str = NAMESPACE, unloaded: tuple[str, ...] = ()
) -> list[str]:
    """What disagrees between the dispatcher and ``entries``: registered ops without an entry, and entries
    whose op is not registered (except those of the ``unloaded`` modules)."""
    registered = registered_ops(namespace)
    names = {e.name for e in entries}
    problems = [
        f"{namespace}::{n} is registered but has no entry in snnkernels/ops/registry.py"
        for n in sorted(registered - names)
    ]
    problems += [
        f"the entry {e.name} names no registered op in {namespace}"
        for e in entries
        if e.name not in registered and e.module not in unloaded
    ]
    return problems
