"""snnkernels.nn.pooling.AvgPool2d against nn.AvgPool2d: the same output and input gradient bit for bit in every
dtype, on odd shapes whose last rows / columns no window covers, while autograd keeps none of the input; the
settings whose windows do not tile the input run the plain layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snnkernels.nn.pooling import AvgPool2d

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
