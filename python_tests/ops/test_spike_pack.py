"""The 1-bit spike packing (docs/spike_pack.md "Layout") on every backend: the bytes equal numpy's
``packbits(bitorder="little")`` of the flattened contiguous tensor and the eager reference's, unpacking is the
exact inverse, a non-binary tensor raises naming its first offending element, and the ops trace under
torch.compile without a graph break.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnkernels import functional as SF
from snnkernels.backends import BackendUnavailableError
from snnkernels.ops.spike_pack import pack_in_place_order
from snnkernels.reference.spike_pack import packed_numel, spike_pack_reference, spike_unpack_reference

from conftest import DEVICE, native_packing

BACKENDS = [
    "torch",
    native_packing(),
    pytest.param("triton", marks=pytest.mark.triton),
]
# element counts around byte boundaries, and odd multi-dim shapes
SHAPES = [(0,), (1,), (7,), (8,), (9,), (3, 5, 7), (2, 3, 5, 11, 13)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _spikes(shape, dtype, p=0.4):
    return (torch.rand(shape, device=DEVICE) < p).to(dtype)


def _numpy_packed(x: torch.Tensor) -> np.ndarray:
    return np.packbits(x.detach().cpu().float().numpy().astype(np.uint8).reshape(-1), bitorder="little")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_pack_is_numpys_little_endian_packbits_and_unpack_inverts_it(backend, shape, dtype):
    x = _spikes(shape, dtype)
    packed = SF.spike_pack(x, backend=backend)
    assert packed.dtype == torch.uint8 and packed.shape == (packed_numel(x.numel()),)
    assert np.array_equal(packed.cpu().numpy(), _numpy_packed(x))
    assert torch.equal(packed, spike_pack_reference(x))
    back = SF.spike_unpack(packed, x.shape, dtype, backend=backend)
    assert back.dtype == dtype and back.shape == x.shape and back.is_contiguous()
    assert torch.equal(back, x)


@pytest.mark.parametrize("backend", ["torch", native_packing()])
def test_fp64_round_trip(backend):
    x = _spikes((3, 7, 5), torch.float64, p=0.7)
    assert torch.equal(SF.spike_unpack(SF.spike_pack(x, backend=backend), x.shape, x.dtype, backend=backend), x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unpack_reads_every_bit_and_ignores_the_last_bytes_spare_bits(backend):
    """Random bytes (every bit pattern, the spare high bits of the last byte set): unpack equals the reference
    and numpy's unpackbits; the result's every element is written (NaN-poisoned allocations)."""
    n = 3 * 5 * 7  # 105 = 13 bytes + 1 bit
    packed = torch.randint(0, 256, (packed_numel(n),), dtype=torch.uint8, device=DEVICE)
    out = SF.spike_unpack(packed, [3, 5, 7], torch.float32, backend=backend)
    bits = np.unpackbits(packed.cpu().numpy(), bitorder="little")[:n].reshape(3, 5, 7)
    assert np.array_equal(out.cpu().numpy(), bits.astype(np.float32))
    assert torch.equal(out, spike_unpack_reference(packed, (3, 5, 7), torch.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_input_packs_in_its_logical_order(backend):
    x = _spikes((5, 9, 3), torch.float32).permute(2, 0, 1)
    assert not x.is_contiguous()
    packed = SF.spike_pack(x, backend=backend)
    assert np.array_equal(packed.cpu().numpy(), _numpy_packed(x.contiguous()))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [0.5, -1.0, 2.0, float("nan"), float("inf")])
def test_non_binary_input_raises_naming_its_first_offending_element(backend, bad):
    x = _spikes((3, 5, 7), torch.float32)
    x[2, 4, 6] = 3.0  # a later offender, reported only if the first is missed
    x[1, 2, 3] = bad
    with pytest.raises(ValueError, match=r"element \(1, 2, 3\) \(flat index 52 of shape \(3, 5, 7\)\) is "):
        SF.spike_pack(x, backend=backend)
    # unchecked: the bit is x != 0
    packed = SF.spike_pack(x, check=False, backend=backend)
    assert torch.equal(packed, spike_pack_reference((x != 0).float()))


def _strides(x: torch.Tensor) -> list[int]:
    """The strides that place elements (a size-1 dim's stride is never used)."""
    return [s for s, n in zip(x.stride(), x.shape, strict=True) if n > 1]


def _views(dtype):
    """(name, tensor, dense): a contiguous tensor, transposed and permuted views, the official attention view,
    a gapped slice and an expanded (overlapping) one."""
    base = _spikes((3, 5, 7, 2), dtype)
    official = _spikes((2, 3, 4 * 5, 7), dtype).view(2, 3, 4, 5, 7).transpose(-1, -2)
    return [
        ("contiguous", base, True),
        ("permuted", base.permute(2, 0, 3, 1), True),
        ("official", official, True),
        ("size-1 dim", _spikes((5, 1, 7), dtype).transpose(0, 2), True),
        ("gapped", base[:, ::2], False),
        ("expanded", _spikes((5, 1), dtype).expand(5, 6), False),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_pack_in_place_order_reads_memory_order_and_unpacks_the_same_strides(backend, dtype):
    """docs/spike_pack.md "Layout": a dense view is packed as its storage lies (no copy) and comes back with
    its strides; a gapped or overlapping one is packed in its logical order and comes back contiguous."""
    for name, x, dense in _views(dtype):
        packed, layout = pack_in_place_order(x, True, backend)
        assert packed.numel() == packed_numel(x.numel()), name
        back = layout.unpack(packed)
        assert back.dtype == dtype and torch.equal(back, x), name
        if dense:
            assert _strides(back) == _strides(x), name
            stored = x.permute(layout.order)
            assert stored.data_ptr() == x.data_ptr() and stored.is_contiguous(), name
            assert np.array_equal(packed.cpu().numpy(), _numpy_packed(stored)), name
        else:
            assert back.is_contiguous(), name
            assert np.array_equal(packed.cpu().numpy(), _numpy_packed(x.contiguous())), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_pack_in_place_order_names_the_bad_element_in_the_views_coordinates(backend):
    x = _spikes((4, 6, 5), torch.float32).permute(2, 0, 1)  # stored order differs from the logical one
    x[3, 1, 2] = 0.5
    with pytest.raises(ValueError, match=r"element \(3, 1, 2\) \(flat index 80 of shape \(5, 4, 6\)\)"):
        pack_in_place_order(x, True, backend)
    packed, layout = pack_in_place_order(x, False, backend)  # unchecked: the bit is x != 0
    assert torch.equal(layout.unpack(packed), (x != 0).float())


def test_bool_input_and_bad_arguments():
    x = torch.rand(3, 5, device=DEVICE) < 0.5
    assert torch.equal(SF.spike_pack(x), spike_pack_reference(x.float()))
    with pytest.raises(TypeError, match="float"):
        SF.spike_pack(torch.ones(3, dtype=torch.int64))
    with pytest.raises(TypeError, match="uint8"):
        SF.spike_unpack(torch.ones(3), [3])
    with pytest.raises(ValueError, match="backend"):
        SF.spike_pack(x.float(), backend="nope")
    with pytest.raises(BackendUnavailableError, match="cupy"):
        SF.spike_pack(x.float(), backend="cupy")
    with pytest.raises(ValueError, match="needs 2 packed bytes"):
        SF.spike_unpack(torch.zeros(1, dtype=torch.uint8), [3, 5])


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_pack_and_unpack_compile_without_graph_breaks(backend):
    """The ops trace as one graph (the check runs inside the op). The eager reference ("torch") branches on
    its check's data, which dynamo cannot trace in one graph."""

    def round_trip(x):
        return SF.spike_unpack(SF.spike_pack(x, backend=backend), x.shape, x.dtype, backend=backend) * 2

    x = _spikes((3, 5, 7), torch.float32)
    compiled = torch.compile(round_trip, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(x), 2 * x)


@pytest.mark.skipif(DEVICE != "cpu", reason="the CPU's packing backends")
def test_auto_on_a_cpu_without_the_extension_packs_on_the_reference(monkeypatch):
    """Where the native extension is not built, "auto" packs on the eager reference (the same bytes, and a spike
    conv still keeps its input packed), and an explicit "native" raises with the reason."""
    from snnkernels import functional as F_module
    from snnkernels.nn import SpikeConv2d

    monkeypatch.setattr(F_module, "native_packing_problem", lambda: "the native extension snnkernels._C is not built")
    x = _spikes((3, 5, 7), torch.float32)
    assert torch.equal(SF.spike_pack(x), spike_pack_reference(x))
    with pytest.raises(BackendUnavailableError, match="not built"):
        SF.spike_pack(x, backend="native")
    conv = SpikeConv2d(3, 2, 3)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.dtype) or t, lambda t: t):
        conv(x[None].requires_grad_())
    assert torch.uint8 in saved and torch.float32 in saved  # the packed input and the weight
