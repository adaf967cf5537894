"""Compile the Triton kernels for real GPU targets without a GPU (run by test_triton_compile.py).

The interpreter accepts code the compiler rejects (non-constexpr globals, loop-carried dtype changes,
bad tuple indexing), so every kernel variant the launchers can produce is also compiled to cubin for
sm_80 and sm_90 here, with the launchers' own options. Prints one JSON line per variant with the
register count, spills (LOCAL/STACK bytes from cuobjdump) and whether the PTX contains a contracted
fp32 multiply-add. Must run WITHOUT TRITON_INTERPRET (jit functions are interpreted objects under it).

Each variant is compiled as a launch specialises it: a launch of the same kernel is captured at a benchmark
shape (``bench.static_launches``), the variant's constexprs and dtype replace the captured ones, and
Triton's binder adds ``tt.divisibility`` and the integers equal to 1 as a CUDA launch would. A kernel
without such a launch (``TEMPLATE_CASES`` reaches none) falls back to the hand-written signature; each row
says which (``"signature": "captured"`` or ``"hand"``).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import tempfile

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from snnkernels.kernels.triton import ma_snn, tna
from snnkernels.kernels.triton import pooled_attention as pa
from snnkernels.kernels.triton.bn_lif import (
    bn_lif_bwd_kernel,
    bn_lif_fwd_kernel,
    bn_lif_input_grad_kernel,
    bn_lif_stats_kernel,
)
from snnkernels.kernels.triton.dta_leaky import dta_leaky_bwd_kernel, dta_leaky_fwd_kernel
from snnkernels.kernels.triton.gated_leaky import gated_leaky_bwd_kernel, gated_leaky_fwd_kernel
from snnkernels.kernels.triton.global_context import gc_context_bwd_kernel, gc_context_fwd_kernel
from snnkernels.kernels.triton.leaky import leaky_bwd_kernel, leaky_fwd_kernel, leaky_fwd_packed_kernel
from snnkernels.kernels.triton.spike_pack import spike_pack_fwd_kernel, spike_unpack_fwd_kernel
from snnkernels.kernels.triton.staa_loop import staa_loop_bwd_kernel, staa_loop_fwd_kernel
from snnkernels.kernels.triton.staa_step import staa_step_bwd_kernel, staa_step_fwd_kernel
from snnkernels.kernels.triton.tcsa_step import tcsa_step_bwd_kernel, tcsa_step_fwd_kernel
from snnkernels.ops import (
    global_context_triton,
    registry,
    spike_pack_triton,
    staa_loop_triton,
    tcsa_step_triton,
)
from snnkernels.ops.leaky_triton import COMPILE_OPTIONS, DEFAULT_CHUNK, launch_config
from snnkernels.ops.triton_launch import half_tiles, neuron_tiles, row_tiles
from snnkernels.surrogate import SURROGATE_IDS

INT_ARGS = {
    "T",
    "N",
    "S",
    "C",
    "R",
    "R1",
    "B",
    "st",
    "sb",
    "sc",
    "nst",
    "nsb",
    "nsc",
    "rows_per_split",
    "n_pblk",
    "HID",
    "n_slots",
    "H",
    "D",
    "P",
    # the spiking attention kernels' five strides per tensor
    *(f"{t}s{i}" for t in ("q", "kv", "s", "w", "g", "x", "a", "b", "y") for i in range(5)),
    "n",
    "n_bytes",
}
# pointers to int32 values (indices, counts, TSRD drop flags)
INDEX_PTRS = {"arg_ptr", "max_arg_ptr", "row_arg_ptr", "counts_ptr", "drop_ptr"}
# pointers of other fixed types: the packed spikes and the packing's first-offender flag
FIXED_PTRS = {"packed_ptr": "*u8", "first_bad_ptr": "*i64"}
DTYPES = {"fp32": "*fp32", "fp16": "*fp16", "bf16": "*bf16"}
# Pointers that carry the input dtype; all others are fp32 (states, coefficients, partial sums).
DATA_PTRS = {"x_ptr", "spikes_ptr", "grad_spikes_ptr", "grad_x_ptr"}
TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Benchmark ops at a batch of 2 whose captured launches serve as templates (only the non-constexpr arguments'
# specialisation is taken from them: every size stays a multiple of 16, as at the benchmark shapes, and the CPU
# work around the launches stays small). With the benchmark rows of the registry's entries (each row's first CPU
# shape, ``registry_templates``) they launch every kernel except the TCSA step's.
TEMPLATE_CASES = (
    ("lif", "lif", (8, 2, 4096)),
    ("lif", "lif_packed", (8, 2, 4096)),
    ("attention", "lif_tcja_maxpool", (20, 2, 128, 16, 16)),
    ("attention", "txa", (4, 2, 64, 32, 32)),
    ("attention", "dta_product", (4, 2, 64, 32, 32)),
    ("attention", "dta", (4, 2, 64, 32, 32)),
    ("attention", "dta_lif", (4, 2, 64, 32, 32)),
    ("attention", "ma_tcsa", (60, 2, 128, 8, 8)),
    ("attention", "staa_lif", (4, 2, 64, 16, 16)),
    ("attention", "staa_lif_persistent", (4, 2, 64, 16, 16)),
    ("attention", "bn_lif", (6, 2, 64, 16, 16)),
    ("registry", "spike_pack_triton", ()),
    ("registry", "spike_unpack_triton", ()),
)
CUOBJDUMP = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")


# The pooled-attention sweeps: (kernel, its pointers that carry the input dtype, constexpr variants).
ROWWISE = [
    (pa.row_sums_kernel, {"a_ptr", "b_ptr"}, [dict(HAS_B=True), dict(HAS_B=False)]),
    (pa.row_map_fwd_kernel, {"x_ptr", "y_ptr"}, [dict(MODE=pa.GATE), dict(MODE=pa.CROSS)]),
    (pa.row_map_bwd_kernel, {"gy_ptr", "x_ptr", "dx_ptr"}, [dict(MODE=pa.GATE), dict(MODE=pa.CROSS)]),
    (pa.dta_fwd_kernel, {"x_ptr", "na_ptr", "s_ptr", "y_ptr"}, [dict(NA_RESIDUAL=True), dict(NA_RESIDUAL=False)]),
    (
        pa.dta_bwd_kernel,
        {"gy_ptr", "x_ptr", "na_ptr", "s_ptr", "dna_ptr", "ds_ptr"},
        [dict(NEED_DS=True, NA_RESIDUAL=True), dict(NEED_DS=False, NA_RESIDUAL=False)],
    ),
    (tna.gelu_rows_kernel, {"pre_ptr", "e_ptr"}, [{}]),
    (tna.gelu_bwd_kernel, {"de_ptr", "pre_ptr", "dpre_ptr"}, [{}]),
    (tna.gated_product_fwd_kernel, {"l_ptr", "e_ptr", "a_ptr"}, [{}]),
    (tna.gated_product_bwd_kernel, {"da_ptr", "l_ptr", "e_ptr", "dl_ptr", "de_ptr"}, [{}]),
    (ma_snn.row_sum_max_kernel, {"x_ptr"}, [{}]),
    (ma_snn.apply_kernel, {"x_ptr", "y_ptr"}, [dict(HAS_MAP=True), dict(HAS_MAP=False)]),
    (ma_snn.row_dot_map_kernel, {"x_ptr"}, [{}]),
    (
        ma_snn.bwd_input_kernel,
        {"gy_ptr", "x_ptr", "dx_ptr"},
        [
            dict(HAS_MAP=True, HAS_DIRECT=True, ADD_PART=False),
            dict(HAS_MAP=False, HAS_DIRECT=True, ADD_PART=False),
            dict(HAS_MAP=True, HAS_DIRECT=False, ADD_PART=True),
            dict(HAS_MAP=False, HAS_DIRECT=False, ADD_PART=False),
        ],
    ),
]
# MA-SNN's pixel programs: (kernel, data pointers, variants); BLOCK_P as the launcher's largest
PIXEL = [
    (ma_snn.pixel_stats_kernel, {"x_ptr"}, [{}]),
    (ma_snn.bwd_pixel_sums_kernel, {"gy_ptr", "x_ptr"}, [dict(HAS_MAP=True), dict(HAS_MAP=False)]),
]


def rowwise_cases():
    """Every rowwise variant in every dtype with the whole-row tile of 32 x 32 planes, and in fp32 with the
    many-rows tile of 8 x 8 planes."""
    for fn, data_ptrs, variants in ROWWISE:
        for plane, dtypes in ((1024, DTYPES), (64, ("fp32",))):
            block_r, block_s, warps = row_tiles(1 << 20, plane)
            for dtype, flags in itertools.product(dtypes, variants):
                yield fn, data_ptrs, dtype, dict(flags, BLOCK_R=block_r, BLOCK_S=block_s), warps
    for fn, data_ptrs, variants in PIXEL:
        for dtype, flags in itertools.product(DTYPES, variants):
            yield fn, data_ptrs, dtype, dict(flags, BLOCK_P=256), 4


def gated_cases():
    """The gated neuron, TCJA-style (identity pre, no map) and MA-SNN-style (ReLU and map): both in every
    dtype with 32 x 32 planes, the backward across surrogates and reset modes in fp32, and 8 x 8 planes
    (many rows per tile) once each way."""

    def tile(plane):
        block_r, block_s, warps = neuron_tiles(1 << 16, plane)
        return dict(CHUNK=DEFAULT_CHUNK, BLOCK_R=block_r, BLOCK_S=block_s), warps

    def fwd(relu, training):
        return dict(RELU=relu, HAS_MAP=relu, HARD_RESET=relu, STRICT=not relu, TRAINING=training, COUNT=not relu)

    def bwd(relu, sg):
        return dict(RELU=relu, HAS_MAP=relu, HARD_RESET=sg % 2 == 0, STRICT=False, DETACH_RESET=sg < 2, SG_ID=sg)

    (big, warps), (small, small_warps) = tile(1024), tile(64)
    for dtype, relu in itertools.product(DTYPES, (False, True)):
        yield gated_leaky_fwd_kernel, dtype, dict(big, **fwd(relu, True)), warps
        yield gated_leaky_bwd_kernel, dtype, dict(big, **bwd(relu, 1 if dtype == "fp32" else 3)), warps
    for sg in (0, 2, 3):
        yield gated_leaky_bwd_kernel, "fp32", dict(big, **bwd(sg % 2 == 0, sg)), warps
    yield gated_leaky_fwd_kernel, "fp32", dict(big, **fwd(True, False)), warps
    yield gated_leaky_fwd_kernel, "fp32", dict(small, **fwd(True, True)), small_warps
    yield gated_leaky_bwd_kernel, "fp32", dict(small, **bwd(False, 0)), small_warps


def dta_leaky_cases():
    """DTA on the spikes of its neuron: every dtype at 32 x 32 planes (the residual and counting toggled),
    the backward across surrogates and reset modes in fp32, and 8 x 8 planes once each way. dL/dX is fp32."""
    data = {"x_ptr", "na_ptr", "y_ptr", "grad_y_ptr", "grad_na_ptr"}

    def tile(plane):
        block_r, block_s, warps = neuron_tiles(1 << 16, plane)
        return dict(CHUNK=DEFAULT_CHUNK, BLOCK_R=block_r, BLOCK_S=block_s), warps

    def fwd(i):
        return dict(NA_RESIDUAL=i % 2 == 0, HARD_RESET=True, STRICT=i == 1, TRAINING=i != 2, COUNT=i == 1)

    def bwd(sg):
        return dict(NA_RESIDUAL=sg != 1, HARD_RESET=sg % 2 == 0, STRICT=False, DETACH_RESET=sg < 2, SG_ID=sg)

    (big, warps), (small, small_warps) = tile(1024), tile(64)
    for i, dtype in enumerate(DTYPES):
        yield dta_leaky_fwd_kernel, data, dtype, dict(big, **fwd(i)), warps
        yield dta_leaky_bwd_kernel, data, dtype, dict(big, **bwd(i)), warps
    yield dta_leaky_bwd_kernel, data, "fp32", dict(big, **bwd(3)), warps
    yield dta_leaky_fwd_kernel, data, "fp32", dict(small, **fwd(0)), small_warps
    yield dta_leaky_bwd_kernel, data, "fp32", dict(small, **bwd(0)), small_warps


def bn_lif_cases():
    """BatchNorm + neuron: the statistics and input-gradient sweeps with the whole-row tile of 32 x 32 planes in
    every dtype; the neuron forward in every dtype and its backward with batch statistics (dL/dy kept in fp32)
    in every dtype, with running statistics (dL/dx in x's dtype) in fp32, across surrogates and resets; 8 x 8
    planes once each way."""
    block_r, block_s, warps = row_tiles(1 << 20, 1024)
    for dtype in DTYPES:
        yield bn_lif_stats_kernel, {"x_ptr"}, dtype, dict(BLOCK_R=block_r, BLOCK_S=block_s), warps
        yield bn_lif_input_grad_kernel, {"x_ptr", "grad_x_ptr"}, dtype, dict(BLOCK_R=block_r, BLOCK_S=block_s), warps

    def tile(plane):
        block_r, block_s, warps = neuron_tiles(1 << 16, plane)
        return dict(CHUNK=DEFAULT_CHUNK, BLOCK_R=block_r, BLOCK_S=block_s), warps

    def bwd(batch, sg):
        need = dict(NEED_GRAD_DECAY=batch, NEED_GRAD_GAIN=sg < 2, NEED_GRAD_BIAS=batch)
        return dict(need, BATCH_STATS=batch, HARD_RESET=sg % 2 == 0, STRICT=sg == 1, DETACH_RESET=sg < 2, SG_ID=sg)

    data = {"x_ptr", "spikes_ptr", "grad_spikes_ptr"}
    (big, warps), (small, small_warps) = tile(1024), tile(64)
    for i, dtype in enumerate(DTYPES):
        fwd = dict(big, HARD_RESET=i != 1, STRICT=i == 1, TRAINING=i != 2)
        yield bn_lif_fwd_kernel, data, dtype, dict(fwd, PACK=False), warps
        yield bn_lif_fwd_kernel, data, dtype, dict(fwd, PACK=True), warps  # the spikes also written packed
        yield bn_lif_bwd_kernel, data, dtype, dict(big, **bwd(True, i)), warps
    yield bn_lif_bwd_kernel, data | {"grad_out_ptr"}, "fp32", dict(big, **bwd(False, 3)), warps
    small_fwd = dict(small, HARD_RESET=True, STRICT=False, TRAINING=True)
    for pack in (False, True):
        yield bn_lif_fwd_kernel, data, "fp32", dict(small_fwd, PACK=pack), small_warps
    yield bn_lif_bwd_kernel, data, "fp32", dict(small, **bwd(True, 0)), small_warps


def gc_cases():
    """The global-context sweeps at STAA's ResNet widths: C = 64 (32-pixel tiles) in every dtype, C = 512
    (4-pixel tiles, 8 warps) in fp32."""
    for C, dtypes in ((64, DTYPES), (512, ("fp32",))):
        block_c, block_p, warps = global_context_triton._tiles(C, 1024)
        for fn, dtype in itertools.product((gc_context_fwd_kernel, gc_context_bwd_kernel), dtypes):
            yield fn, {"x_ptr", "dx_ptr"}, dtype, dict(BLOCK_C=block_c, BLOCK_P=block_p), warps


def staa_cases():
    """STAA-LIF's step kernels at a 16 x 16 plane: the spikes (and their gradient) in every dtype, the
    backward across surrogates and reset modes."""
    block_r, block_s, warps = half_tiles(1 << 14, 256)
    tile = dict(BLOCK_R=block_r, BLOCK_S=block_s)
    for dtype in DTYPES:
        yield staa_step_fwd_kernel, {"s_ptr"}, dtype, tile, warps
    for dtype, sg in zip(("fp32", "fp16", "bf16", "fp32"), range(4), strict=True):
        yield (
            staa_step_bwd_kernel,
            {"ds_ptr"},
            dtype,
            dict(tile, HAS_DH=sg != 2, HAS_DSUM=sg != 1, DETACH_RESET=sg % 2 == 1, SG_ID=sg),
            warps,
        )


def staa_loop_cases():
    """STAA-LIF's persistent loop at the ResNet-20 shapes: C = 64 at 32 x 32 (hidden 16; spikes in every
    dtype, every gate form), C = 256 at 8 x 8 (hidden 64: the MLP in chunks), with and without the step
    attention and TSRD."""
    for C, S, hid, dtypes in ((64, 1024, 16, tuple(DTYPES)), (256, 64, 64, ("fp32",))):
        blocks = staa_loop_triton._blocks(C, S, hid)
        warps = blocks.pop("num_warps")
        for i, dtype in enumerate(dtypes):
            flags = dict(blocks, HAS_SA=i != 1, GATE=i % 3, HAS_DROP=i != 2)
            yield staa_loop_fwd_kernel, {"s_ptr"}, dtype, flags, warps
            yield (staa_loop_bwd_kernel, {"ds_ptr"}, dtype, dict(flags, DETACH_RESET=i == 0, SG_ID=3 - i), warps)


def tcsa_cases():
    """The paper TCSA-LIF's step kernels: C = 64 at 32 x 32 (spikes in every dtype), C = 512 at 8 x 8."""
    for C, S, dtypes in ((64, 1024, tuple(DTYPES)), (512, 64, ("fp32",))):
        block_c, block_s, warps = tcsa_step_triton._tiles(C, S)
        tile = dict(BLOCK_C=block_c, BLOCK_S=block_s)
        for i, dtype in enumerate(dtypes):
            yield tcsa_step_fwd_kernel, {"s_ptr"}, dtype, dict(tile, HAS_NEXT=i % 2 == 0), warps
        for sg in (0, 3):
            yield (
                tcsa_step_bwd_kernel,
                {"ds_ptr"},
                dtypes[-1],
                dict(tile, HAS_DH=sg == 3, DETACH_RESET=sg == 0, SG_ID=sg),
                warps,
            )


def spike_pack_cases():
    """The spike packing at the launcher's GPU tile, spikes in every dtype."""
    block, warps = spike_pack_triton.pack_block(1 << 20)
    for dtype in DTYPES:
        yield spike_pack_fwd_kernel, {"x_ptr"}, dtype, dict(BLOCK=block), warps
        yield spike_unpack_fwd_kernel, {"out_ptr"}, dtype, dict(BLOCK=block), warps


def signature(fn, dtype: str, constexprs: dict, data_ptrs: set[str] = DATA_PTRS) -> dict:
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in INDEX_PTRS:
            sig[name] = "*i32"
        elif name in FIXED_PTRS:
            sig[name] = FIXED_PTRS[name]
        elif name.endswith("_ptr"):
            sig[name] = DTYPES[dtype] if name in data_ptrs else "*fp32"
        elif name in INT_ARGS:
            sig[name] = "i32"
        else:
            sig[name] = "fp32"
    return sig


def fwd_variants():
    flags = (
        "HAS_V_INIT",
        "DECAY_T",
        "GAIN_T",
        "BIAS_T",
        "HARD_RESET",
        "STRICT",
        "TRAINING",
        "STORE_FINAL",
        "STORE_V_SEQ",
    )
    # every flag both ways at least once, across the three dtypes
    rows = [
        (True,) * 9,
        (False,) * 9,
        (True, False, True, False, True, False, True, False, False),
        (False, True, False, True, False, True, False, True, True),
    ]
    for dtype, row in itertools.product(DTYPES, rows):
        yield dtype, dict(zip(flags, row, strict=True))


def bwd_variants():
    # the first four surrogates with every reset mode; the other four once each, the reset modes in turn
    combos = list(itertools.product(range(4), (True, False), (True, False)))
    combos += [(sg, sg % 2 == 0, sg // 2 % 2 == 0) for sg in range(4, len(SURROGATE_IDS))]
    for sg, hard, detach in combos:
        all_on = (sg + hard + detach) % 2 == 0
        yield (
            "fp32",
            dict(
                HAS_V_INIT=all_on,
                HAS_GRAD_V_FINAL=not all_on,
                STORE_GRAD_V_INIT=all_on,
                DECAY_T=True,
                GAIN_T=all_on,
                BIAS_T=not all_on,
                NEED_GRAD_DECAY=True,
                NEED_GRAD_GAIN=all_on,
                NEED_GRAD_BIAS=not all_on,
                HAS_GRAD_V_SEQ=sg % 3 == 1,
                HARD_RESET=hard,
                STRICT=not hard,
                DETACH_RESET=detach,
                SG_ID=sg,
            ),
        )
    for dtype in ("fp16", "bf16"):
        yield (
            dtype,
            dict(
                HAS_V_INIT=True,
                HAS_GRAD_V_FINAL=True,
                STORE_GRAD_V_INIT=True,
                DECAY_T=True,
                GAIN_T=True,
                BIAS_T=True,
                NEED_GRAD_DECAY=True,
                NEED_GRAD_GAIN=True,
                NEED_GRAD_BIAS=True,
                HAS_GRAD_V_SEQ=True,
                HARD_RESET=True,
                STRICT=False,
                DETACH_RESET=False,
                SG_ID=1,
            ),
        )


def resource_usage(cubin: bytes) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([CUOBJDUMP, "-res-usage", f.name], capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"(REG|STACK|LOCAL|SHARED):(\d+)", out))
    return {k.lower(): int(v) for k, v in fields.items()}


_TEMPLATES: dict | None = None


def registry_templates() -> tuple:
    """A template case per benchmark row that an op's registry entry carries (its first CPU shape)."""
    return tuple(("attention", row.name, row.cpu_shapes[0]) for e in registry.REGISTRY for row in e.bench)


def registry_cases():
    """The compile variants that the ops' registry entries carry (``OpEntry.aot``)."""
    for entry in registry.REGISTRY:
        if entry.aot is not None:
            yield from entry.aot()


def templates() -> dict:
    """kernel name -> a captured launch of it (``TEMPLATE_CASES``, fp32)."""
    global _TEMPLATES
    if _TEMPLATES is None:
        from bench import static_launches as sl

        _TEMPLATES = {}
        for source, op, shape in TEMPLATE_CASES + registry_templates():
            for launch in sl.capture_case(sl.StaticCase(source, op, shape, torch.float32)):
                _TEMPLATES.setdefault(launch.kernel, launch)
    return _TEMPLATES


def captured_source(fn, arch: int, dtype: str, constexprs: dict, num_warps: int, data_ptrs: set[str]):
    """The variant compiled as a launch would specialise it: a captured launch of ``fn`` with the variant's
    constexprs and data dtype (None when no template case launches ``fn``)."""
    from bench import static_launches as sl

    template = templates().get(fn.__name__)
    if template is None:
        return None
    args = {}
    for p in fn.params:
        v = template.args.get(p.name)
        if p.name in constexprs:
            v = constexprs[p.name]
        elif p.name.endswith("_ptr") and (v is None or (p.name in data_ptrs and v.is_floating_point())):
            # an absent pointer the variant may use, or a data pointer in the variant's dtype (aligned: a fresh
            # allocation)
            dt = torch.int32 if p.name in INDEX_PTRS else TORCH_DTYPES[dtype if p.name in data_ptrs else "fp32"]
            v = torch.empty(0, dtype=dt)
        args[p.name] = v
    # the launcher's compile options (e.g. the persistent STAA loop's register cap) with the variant's warps
    launch = sl.Launch("aot", fn, args, dict(template.options, num_warps=num_warps), (1, 1, 1))
    sig, specialised, attrs, options = sl.specialise(launch, arch)
    return ASTSource(fn, sig, specialised, attrs), options.__dict__


def compile_one(
    fn, arch: int, dtype: str, constexprs: dict, num_warps: int, data_ptrs: set[str] = DATA_PTRS, captured: bool = True
) -> dict:
    found = captured_source(fn, arch, dtype, constexprs, num_warps, data_ptrs) if captured else None
    if found is None:
        src = ASTSource(fn, signature=signature(fn, dtype, constexprs, data_ptrs), constexprs=constexprs)
        options = dict(COMPILE_OPTIONS, num_warps=num_warps)
    else:
        src, options = found
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)
    return {
        **resource_usage(compiled.asm["cubin"]),
        "contracted_fma": bool(re.search(r"\bfma\.rn\.f32\b", compiled.asm["ptx"])),
        "signature": "hand" if found is None else "captured",
    }


def leaky_cases():
    """The leaky neuron's forward and backward variants at the launchers' tile for a large layer."""
    for kernel, backward, variants in (
        (leaky_fwd_kernel, False, fwd_variants()),
        (leaky_bwd_kernel, True, bwd_variants()),
    ):
        cfg = launch_config(1 << 22, backward=backward)
        for dtype, flags in variants:
            yield kernel, DATA_PTRS, dtype, dict(flags, CHUNK=DEFAULT_CHUNK, BLOCK=cfg.block), cfg.num_warps
    # the forward that packs its spikes (4 neurons a thread, a chunk's bits a neuron): every dtype, flags both ways
    cfg = launch_config(1 << 22, backward=False)
    for dtype, flags in fwd_variants():
        constexprs = dict(flags, STEPS=DEFAULT_CHUNK, CHUNK=DEFAULT_CHUNK, BLOCK=cfg.block)
        yield leaky_fwd_packed_kernel, DATA_PTRS, dtype, constexprs, cfg.num_warps
    # the 2-byte backward without coefficient tensors or their gradients takes 4 neurons a thread
    cfg = launch_config(1 << 22, backward=True, itemsize=2)
    flags = dict(next(bwd_variants())[1], DECAY_T=False, GAIN_T=False, BIAS_T=False, HAS_GRAD_V_SEQ=True)
    flags.update(NEED_GRAD_DECAY=False, NEED_GRAD_GAIN=False, NEED_GRAD_BIAS=False)
    for dtype in ("fp16", "bf16"):
        yield leaky_bwd_kernel, DATA_PTRS, dtype, dict(flags, CHUNK=DEFAULT_CHUNK, BLOCK=cfg.block), cfg.num_warps


def all_cases():
    """(kernel, data pointers, dtype, constexprs, num_warps) of every variant ``main`` compiles."""
    yield from leaky_cases()
    yield from ((fn, DATA_PTRS, dtype, constexprs, warps) for fn, dtype, constexprs, warps in gated_cases())
    for cases in (
        dta_leaky_cases,
        bn_lif_cases,
        staa_cases,
        staa_loop_cases,
        tcsa_cases,
        gc_cases,
        rowwise_cases,
        spike_pack_cases,
        registry_cases,
    ):
        yield from cases()


def main(archs: list[int]) -> None:
    os.environ.pop("TRITON_INTERPRET", None)
    for arch in archs:
        for fn, data_ptrs, dtype, constexprs, warps in all_cases():
            usage = compile_one(fn, arch, dtype, constexprs, warps, data_ptrs)
            # the leaky rows report the variant's flags without the tile (as they always have)
            leaky = fn in (leaky_fwd_kernel, leaky_bwd_kernel)
            flags = {k: v for k, v in constexprs.items() if k not in ("CHUNK", "BLOCK")} if leaky else constexprs
            print(
                json.dumps({"kernel": fn.__name__, "arch": arch, "dtype": dtype, "flags": flags, **usage}), flush=True
            )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [80, 90])
