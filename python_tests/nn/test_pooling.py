"""snnkernels.nn.pooling.AvgPool2d / MaxPool2d against nn.AvgPool2d / nn.MaxPool2d: the same output and input
gradient bit for bit in every dtype, on odd shapes whose last rows / columns no window covers, while autograd keeps
none of the input (the max pool: one uint8 per window); the settings whose windows do not tile the input run the
plain layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snnkernels.nn.pooling import AvgPool2d, MaxPool2d

from utils import assert_equal_verbose

DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


def _saved_storages(fn, x):
    """Output of fn(x) and the number of bytes autograd saved for its backward."""
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = fn(x)
    return y, sum(t.untyped_storage().nbytes() for t in {t.untyped_storage().data_ptr(): t for t in saved}.values())


def _compare(pool, plain, x):
    a, b = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
    ya, held = _saved_storages(pool, a)
    yb = plain(b)
    assert_equal_verbose(ya, yb, "output")
    g = torch.randn(yb.shape, dtype=torch.float64).to(x.dtype)
    (ga,), (gb,) = torch.autograd.grad(ya, a, g), torch.autograd.grad(yb, b, g)
    assert_equal_verbose(ga, gb, "input gradient")
    return held


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kernel", [2, 4, (2, 4), (1, 2)])
@pytest.mark.parametrize("shape", [(3, 5, 11, 13), (7, 9, 8), (2, 3, 4, 4)])
def test_lean_pool_is_the_plain_pool_and_keeps_no_input(dtype, kernel, shape):
    x = (torch.randn(shape, dtype=torch.float64) * 50).to(dtype)
    pool = AvgPool2d(kernel)
    assert pool.lean_for(x.requires_grad_())
    held = _compare(pool, nn.AvgPool2d(kernel), x)
    assert held == 0, f"{held} bytes saved: the lean pool keeps only the shape"


def test_lean_pool_channels_last_and_a_view():
    x = torch.randn(3, 6, 9, 10).to(memory_format=torch.channels_last)
    _compare(AvgPool2d(2), nn.AvgPool2d(2), x)
    base = torch.randn(4, 6, 9, 11)
    _compare(AvgPool2d(2), nn.AvgPool2d(2), base[:, 1:5, :, 1:])


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((3,), {}),  # window area 9: the ATen kernels' division is kept
        ((2,), {"stride": 1}),
        ((2,), {"padding": 1}),
        ((2,), {"ceil_mode": True}),
        ((2,), {"divisor_override": 3}),
        ((2,), {"lean": False}),
    ],
)
def test_other_settings_run_the_plain_layer(args, kwargs):
    x = torch.randn(2, 3, 9, 7, requires_grad=True)
    pool = AvgPool2d(*args, **kwargs)
    assert not pool.lean_for(x)
    kwargs.pop("lean", None)
    held = _compare(pool, nn.AvgPool2d(*args, **kwargs), x)
    assert held == x.untyped_storage().nbytes()


def test_no_grad_input_and_too_small_input_run_the_plain_layer():
    pool = AvgPool2d(4)
    assert not pool.lean_for(torch.randn(2, 3, 8, 8))
    small = torch.randn(2, 3, 3, 8, requires_grad=True)
    assert not pool.lean_for(small)
    with pytest.raises(RuntimeError):
        nn.AvgPool2d(4)(small)
    with pytest.raises(RuntimeError):
        pool(small)


def test_same_state_dict_and_module_type():
    pool = AvgPool2d(2)
    assert isinstance(pool, nn.AvgPool2d) and pool.state_dict() == {} and "lean=True" in repr(pool)


# ---------------------------------------------------------------------------------------------------------
# MaxPool2d: keeps the position of each window's maximum (uint8)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view({8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()])


def _compare_max(pool, plain, x, zero_share=0.3):
    """As ``_compare``, with a gradient that holds -0.0 (the ATen kernels add it to zero: +0.0) and a bitwise
    check of the input gradient (the sign of zero included)."""
    a, b = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
    ya, held = _saved_storages(pool, a)
    yb = plain(b)
    assert_equal_verbose(ya, yb, "output")
    g = torch.randn(yb.shape, dtype=torch.float64)
    g[g.abs() < zero_share] = -0.0
    g = g.to(x.dtype)
    (ga,), (gb,) = torch.autograd.grad(ya, a, g), torch.autograd.grad(yb, b, g)
    assert_equal_verbose(ga, gb, "input gradient")
    assert torch.equal(_bits(ga), _bits(gb)), "input gradient differs in bits (a zero's sign)"
    return ya, held


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kernel", [2, 3, (2, 4), (1, 2)])
@pytest.mark.parametrize("shape", [(3, 5, 11, 13), (7, 9, 8), (2, 3, 4, 4)])
@pytest.mark.parametrize("values", ["spikes", "real"])
def test_lean_max_pool_is_the_plain_pool_and_keeps_a_byte_a_window(dtype, kernel, shape, values):
    """Spikes (0 / 1: ties in most windows, all-zero windows) and reals."""
    x = torch.randn(shape, dtype=torch.float64)
    x = ((x > 0.4) if values == "spikes" else x * 50).to(dtype)
    pool = MaxPool2d(kernel)
    assert pool.lean_for(x.requires_grad_())
    y, held = _compare_max(pool, nn.MaxPool2d(kernel), x)
    assert held == y.numel(), f"{held} bytes saved for {y.numel()} windows: the lean pool keeps one byte a window"


def test_lean_max_pool_nan_inf_channels_last_and_a_view():
    x = torch.randn(3, 6, 9, 10)
    x[0, 0, 0, 0], x[0, 1, 2, 2:4], x[1, 2, 5, 5] = float("nan"), float("inf"), -float("inf")
    x[2, 3, :4, :4] = float("nan")  # several NaN in one window
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = MaxPool2d(2)(a), nn.MaxPool2d(2)(b)
    assert torch.equal(_bits(ya), _bits(yb))
    g = torch.randn(ya.shape)
    ya.backward(g), yb.backward(g)
    assert torch.equal(_bits(a.grad), _bits(b.grad))
    _compare_max(MaxPool2d(2), nn.MaxPool2d(2), torch.randn(3, 6, 9, 10).to(memory_format=torch.channels_last))
    base = torch.randn(4, 6, 9, 11)
    _compare_max(MaxPool2d(3), nn.MaxPool2d(3), base[:, 1:5, :, 1:])


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((2,), {"stride": 1}),
        ((2,), {"padding": 1}),
        ((2,), {"dilation": 2}),
        ((2,), {"ceil_mode": True}),
        ((17,), {}),  # 289 positions: more than a byte holds
        ((2,), {"lean": False}),
    ],
)
def test_max_pool_other_settings_run_the_plain_layer(args, kwargs):
    x = torch.randn(2, 3, 19, 17, requires_grad=True)
    pool = MaxPool2d(*args, **kwargs)
    assert not pool.lean_for(x)
    kwargs.pop("lean", None)
    _, held = _compare_max(pool, nn.MaxPool2d(*args, **kwargs), x)
    assert held > x.untyped_storage().nbytes()  # the input and the int64 indices


def test_max_pool_return_indices_no_grad_and_small_input_run_the_plain_layer():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    pool = MaxPool2d(2, return_indices=True)
    assert not pool.lean_for(x)
    (y, i), (y_ref, i_ref) = pool(x), nn.MaxPool2d(2, return_indices=True)(x)
    assert torch.equal(y, y_ref) and torch.equal(i, i_ref)
    assert not MaxPool2d(2).lean_for(torch.randn(2, 3, 8, 8))
    small = torch.randn(2, 3, 3, 8, requires_grad=True)
    assert not MaxPool2d(4).lean_for(small)
    with pytest.raises(RuntimeError):
        MaxPool2d(4)(small)


def test_max_pool_same_state_dict_and_module_type():
    pool = MaxPool2d(2)
    assert isinstance(pool, nn.MaxPool2d) and pool.state_dict() == {} and "lean=True" in repr(pool)
