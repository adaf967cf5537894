"""Backward ops that refuse a second derivative with a clear error.

A fused kernel's backward op has no derivative of its own. Without an autograd formula, PyTorch either returns
zeros for a double backward through it (ops defined with ``torch.library.define``, with only a warning) or raises a
generic error (``torch.library.custom_op``). ``refuse_double_backward`` registers a formula whose backward raises,
naming the op and the way out: the op is recorded as usual under ``create_graph=True`` (first-order gradients are
unaffected), and only differentiating its outputs again fails.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["refuse_double_backward", "double_backward_message"]


def double_backward_message(op_name: str, fallback: str) -> str:
    return (
        f"snnkernels: a second derivative was requested through {op_name}, the backward of a fused kernel, which "
        f"has none (double backward, e.g. torch.autograd.grad(..., create_graph=True) differentiated again). "
        f"{fallback} First-order gradients with create_graph=True work on every backend."
    )


def refuse_double_backward(
    op_name: str, fallback: str = "Use backend='torch' (the eager reference), which supports it."
) -> None:
    """Give the backward op ``op_name`` ("namespace::name") an autograd formula that raises a RuntimeError
    naming it and ``fallback`` when a gradient flows into it."""
    message = double_backward_message(op_name, fallback)

    def setup_context(ctx: Any, inputs: tuple, output: Any) -> None:
        return None

    def backward(ctx: Any, *grads: Any) -> None:
        raise RuntimeError(message)

    torch.library.register_autograd(op_name, backward, setup_context=setup_context)
