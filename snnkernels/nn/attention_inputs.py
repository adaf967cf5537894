"""Inputs of the attention modules (``nn.attention``, ``nn.ma_snn``, ``nn.staa``, ``nn.fused``): layouts, shape and
dtype checks, and the output for an empty input, so every module reports a bad input the same way."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LAYOUTS", "positive_int", "to_tb", "from_tb", "check_t_c", "dtype_mismatch", "check_dtype", "empty_output"]

LAYOUTS = ("TB", "BT")


def positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def to_tb(owner: str, x: torch.Tensor, layout: str, name: str = "input") -> torch.Tensor:
    """``x`` in the [T, B, C, H, W] layout (a view), after checking it is 5-D."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 5:
        expected = "[T, B, C, H, W]" if layout == "TB" else "[B, T, C, H, W]"
        raise ValueError(f"{owner}: {name} must have shape {expected} (layout={layout!r}), got {list(x.shape)}")
    return x if layout == "TB" else x.transpose(0, 1)


def from_tb(y: torch.Tensor, layout: str) -> torch.Tensor:
    return y if layout == "TB" else y.transpose(0, 1)


def check_t_c(owner: str, x_tb: torch.Tensor, T: int, C: int, layout: str, name: str = "input") -> None:
    """T and C of the [T, B, C, H, W] view must be the constructor's (they are conv channel counts)."""
    t_dim = 0 if layout == "TB" else 1
    got_t, got_c = x_tb.shape[0], x_tb.shape[2]
    if got_t != T:
        hint = ""
        if x_tb.shape[1] == T:
            hint = f"; dim {1 - t_dim} has {T}: is the input in the other layout (layout={LAYOUTS[1 - t_dim]!r})?"
        raise ValueError(
            f"{owner} was built for T = {T} time steps but the {name} has {got_t} at dim {t_dim} "
            f"(layout={layout!r}, shape {_shape(x_tb, layout)}){hint}"
        )
    if got_c != C:
        raise ValueError(
            f"{owner} was built for C = {C} channels but the {name} has {got_c} at dim 2 "
            f"(layout={layout!r}, shape {_shape(x_tb, layout)})"
        )


def _shape(x_tb: torch.Tensor, layout: str) -> list[int]:
    return list(from_tb(x_tb, layout).shape)


def _parameter_dtype(module: nn.Module) -> torch.dtype | None:
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), None)


def dtype_mismatch(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``x`` breaks the attention layers' dtype rule (docs/tcja_dta.md "Empty input and dtypes"):
    outside autocast, the input has the parameters' dtype, as for torch's own layers."""
    dtype = _parameter_dtype(module)
    return dtype is not None and x.dtype != dtype and not torch.is_autocast_enabled(x.device.type)


def check_dtype(owner: str, module: nn.Module, x: torch.Tensor, name: str = "input") -> None:
    """One ``TypeError`` on every backend for an input whose dtype is not the parameters' (outside autocast)."""
    if dtype_mismatch(module, x):
        dtype = _parameter_dtype(module)
        raise TypeError(
            f"{owner}: the {name} is {x.dtype} but the parameters are {dtype}; outside torch.autocast "
            f"they must match, as for torch's own layers: cast the module (module.to({x.dtype})) or "
            f"the {name} (.to({dtype}))"
        )


def empty_output(
    x: torch.Tensor, module: nn.Module, *inputs: torch.Tensor, shape: tuple[int, ...] | None = None
) -> torch.Tensor:
    """The output for an empty input (docs/tcja_dta.md "Empty input and dtypes"): zeros of x's shape (or
    ``shape``) and dtype, computed without any backend, and tied to x, the other inputs and the parameters so
    that a backward gives each of them a zero gradient (an empty one to x), as a computation over no element
    would."""
    out = torch.zeros_like(x) if shape is None else x.new_zeros(shape)
    for t in (x, *inputs, *module.parameters()):
        if t.requires_grad:
            out = out + (t.sum() * 0).to(out.dtype)
    return out
