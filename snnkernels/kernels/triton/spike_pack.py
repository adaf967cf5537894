"""Triton kernels that pack spikes to 1 bit each and unpack them (docs/spike_pack.md "Layout").

Element i of the flattened contiguous tensor (n elements) is bit i % 8 of byte i // 8 (least significant bit
first, numpy's ``packbits(bitorder="little")``); the last byte's unused high bits are 0. A program owns
BLOCK bytes, i.e. a [BLOCK, 8] tile of elements.

``spike_bytes_2d`` forms the bytes of a tile of spikes in registers; ``bn_lif``'s forward calls it to write the packed
copy of its spikes as it fires (docs/spike_pack.md "Packed by the neuron").
"""

import triton
import triton.language as tl


@triton.jit
def spike_pack_fwd_kernel(x_ptr, packed_ptr, first_bad_ptr, n, n_bytes, BLOCK: tl.constexpr):
    """packed [n_bytes] uint8 from x [n]; first_bad [1] int64 (preset to n) <- min(its value, the smallest
    index of an element that is neither 0 nor 1 in this program's tile). grid (cdiv(n_bytes, BLOCK),)."""
    pid = tl.program_id(0)
    byte = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # [BLOCK]
    bit = tl.arange(0, 8)  # [8]
    offs = byte[:, None] * 8 + bit[None, :]  # [BLOCK, 8]
    mask = offs < n
    v = tl.load(x_ptr + offs, mask=mask, other=0.0)  # compared in its own dtype: exact for fp64 too
    one = (v != 0).to(tl.int32)
    # NaN fails both comparisons, so it is reported too (the check is fused: no second pass over x)
    bad = mask & (v != 0) & (v != 1)
    first = tl.min(tl.where(bad, offs, n), axis=1)  # [BLOCK]
    tl.atomic_min(first_bad_ptr, tl.min(first, axis=0))
    word = tl.sum(one << bit[None, :], axis=1)  # [BLOCK] in 0..255, the bits are disjoint
    tl.store(packed_ptr + byte, word.to(tl.uint8), mask=byte < n_bytes)


@triton.jit
def spike_unpack_fwd_kernel(packed_ptr, out_ptr, n, n_bytes, BLOCK: tl.constexpr):
    """out [n] (its dtype) of 0s and 1s from packed [n_bytes] uint8. grid (cdiv(n_bytes, BLOCK),)."""
    pid = tl.program_id(0)
    byte = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # [BLOCK]
    bit = tl.arange(0, 8)  # [8]
    word = tl.load(packed_ptr + byte, mask=byte < n_bytes, other=0).to(tl.int32)
    offs = byte[:, None] * 8 + bit[None, :]  # [BLOCK, 8]
    s = (word[:, None] >> bit[None, :]) & 1
    tl.store(out_ptr + offs, s.to(tl.float32).to(out_ptr.dtype.element_ty), mask=offs < n)


@triton.jit
def spike_bytes_2d(spike, ROWS: tl.constexpr, BYTES: tl.constexpr):
    """The bytes of each row of a [ROWS, 8 * BYTES] tile of spikes (bool), element 8 k + j of a row in bit j of
    its byte k: [ROWS, BYTES] uint8. The reshape keeps the order."""
    bits = tl.reshape(tl.where(spike, 1, 0), [ROWS, BYTES, 8])
    return tl.sum(bits << tl.arange(0, 8)[None, None, :], axis=2).to(tl.uint8)
