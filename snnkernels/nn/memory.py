"""SpikingJelly's stateful-module contract (``MemoryModule``), written for snnkernels' neurons.

SpikingJelly keeps a neuron's state in *memories*: named values registered with ``register_memory`` that read
and write like attributes (``node.v``), go back to their registered value on ``reset()``, are cut from the
autograd graph by ``detach()``, and can be run purely through ``functional_forward(inputs, states)``. Its
network tools (``functional.reset_net``, ``detach_net``, ``set_step_mode``, ``base.to_functional_forward``,
memopt) work on any module that follows this contract. ``MemoryModule`` here implements it (docs/spikingjelly.md).

When SpikingJelly is installed, ``MemoryModule`` also derives from SpikingJelly's own
``spikingjelly.activation_based.base.MemoryModule``, so ``isinstance(node, base.MemoryModule)`` holds and
those tools take our neurons for theirs; every method is defined here, so the behaviour is the same with or
without it, and SpikingJelly stays an optional package.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["MemoryModule", "reset_net", "detach_net", "SPIKINGJELLY_BASES"]

STEP_MODES = ("s", "m")


def _spikingjelly_bases() -> tuple[type, ...]:
    """SpikingJelly's ``MemoryModule`` class when the package is importable, else nothing. Importing its
    ``base`` module is cheap (SpikingJelly's package imports lazily) and has no side effects."""
    try:
        if importlib.util.find_spec("spikingjelly") is None:
            return ()
        from spikingjelly.activation_based import base
    except Exception:  # noqa: BLE001 - a broken or partial install must not break snnkernels
        return ()
    cls = getattr(base, "MemoryModule", None)
    return (cls,) if isinstance(cls, type) and issubclass(cls, nn.Module) else ()


SPIKINGJELLY_BASES: tuple[type, ...] = _spikingjelly_bases()


def _detached(value: Any) -> Any:
    """A tensor cut from its graph (copying and pickling refuse non-leaf tensors); anything else unchanged."""
    return value.detach() if isinstance(value, torch.Tensor) and value.grad_fn is not None else value


class MemoryModule(*SPIKINGJELLY_BASES, nn.Module):  # type: ignore[misc]
    """A module whose state lives in registered memories (SpikingJelly's ``MemoryModule`` contract).

    - ``register_memory(name, value)``: a state read and written as ``self.<name>``; ``value`` is also its
      reset value (a float stands for "a tensor of the input's shape filled with it", made on first use).
    - ``reset()``: every memory back to its reset value; ``detach()``: every tensor memory cut from its graph.
    - ``memories()`` / ``named_memories()``: the current values; ``set_reset_value`` / ``get_reset_value``.
    - ``step_mode``: ``'s'`` (one step per call) or ``'m'`` (input [T, ...]); other values raise ValueError.
    - ``functional_forward(inputs, states) -> (outputs, states)``: the forward as a pure function of explicit
      states (``materialize_states`` first turns float states into tensors); ``forward`` runs it on the
      module's own memories and stores the states it returns.
    - Copies (``copy.deepcopy``) and pickles detach tensor memories, which autograd would otherwise refuse.
    """

    def __init__(self) -> None:
        super().__init__()
        self._memories: dict[str, Any] = {}
        self._memories_rv: dict[str, Any] = {}
        self._step_mode = "s"

    # -- step mode ---------------------------------------------------------------------------------------
    def supported_step_mode(self) -> tuple[str, ...]:
        return STEP_MODES

    @property
    def step_mode(self) -> str:
        return self._step_mode

    @step_mode.setter
    def step_mode(self, value: str) -> None:
        if value not in self.supported_step_mode():
            raise ValueError(
                f"{type(self).__name__}: step_mode must be 's' (one step, input [...]) or 'm' (input [T, ...]), "
                f"got {value!r}"
            )
        self._step_mode = value

    # -- memories ----------------------------------------------------------------------------------------
    def register_memory(self, name: str, value: Any) -> None:
        if hasattr(self, name):
            raise AttributeError(
                f"{type(self).__name__}: {name!r} is already an attribute; cannot register it as a memory"
            )
        self._memories[name] = value
        self.set_reset_value(name, value)

    def set_reset_value(self, name: str, value: Any) -> None:
        self._memories_rv[name] = copy.deepcopy(value)

    def get_reset_value(self, name: str) -> Any:
        if name not in self._memories:
            raise KeyError(f"{name} is not a registered memory.")
        if name not in self._memories_rv:
            raise KeyError(f"{name} has no reset value. Call set_reset_value first.")
        return self._memories_rv[name]

    def reset(self) -> None:
        """Every memory back to its reset value (a fresh copy, so that no graph or storage is shared)."""
        for name in self._memories:
            self._memories[name] = copy.deepcopy(self._memories_rv[name])

    def detach(self) -> None:
        """Cut every tensor memory from the autograd graph (truncated backpropagation through time)."""
        for name, value in self._memories.items():
            if isinstance(value, torch.Tensor):
                self._memories[name] = value.detach()

    def memories(self) -> Iterator[Any]:
        yield from self._memories.values()

    def named_memories(self) -> Iterator[tuple[str, Any]]:
        yield from self._memories.items()

    def __getattr__(self, name: str) -> Any:
        memories = self.__dict__.get("_memories")
        if memories is not None and name in memories:
            return memories[name]
        return super().__getattr__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        memories = self.__dict__.get("_memories")
        if memories is not None and name in memories:
            memories[name] = value
        else:
            super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name in self.__dict__.get("_memories", {}):
            del self._memories[name]
            del self._memories_rv[name]
        else:
            super().__delattr__(name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._memories))

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> MemoryModule:
        # .to() / .cuda() / .half() move tensor memories and their reset values with the parameters
        for store in (self._memories, self._memories_rv):
            for name, value in store.items():
                if isinstance(value, torch.Tensor):
                    store[name] = fn(value)
        return super()._apply(fn, *args, **kwargs)

    def _replicate_for_data_parallel(self) -> MemoryModule:
        replica = super()._replicate_for_data_parallel()
        replica._memories = self._memories.copy()
        return replica

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_memories"] = {name: _detached(value) for name, value in self._memories.items()}
        return {name: _detached(value) for name, value in state.items()}

    # -- forward -----------------------------------------------------------------------------------------
    def materialize_states(self, inputs: tuple, states: tuple, step_mode: str) -> tuple:
        """The states ``functional_forward`` starts from, made concrete for ``inputs`` (identity here)."""
        return states

    def single_step_functional_forward(self, inputs: tuple, states: tuple, **kwargs: Any) -> tuple[tuple, tuple]:
        raise NotImplementedError(f"{type(self).__name__} does not implement single_step_functional_forward.")

    def multi_step_functional_forward(self, inputs: tuple, states: tuple, **kwargs: Any) -> tuple[tuple, tuple]:
        """One single step per time step (subclasses fuse the loop)."""
        steps = []
        for t in range(inputs[0].shape[0]):
            outputs, states = self.single_step_functional_forward(tuple(x[t] for x in inputs), states, **kwargs)
            steps.append(outputs)
        return tuple(torch.stack(seq) for seq in zip(*steps, strict=True)), states

    def functional_forward(self, inputs: tuple, states: tuple, **kwargs: Any) -> tuple[tuple, tuple]:
        """``(outputs, new_states)`` of ``inputs`` from ``states``, in the current step mode; the module's own
        memories are neither read nor written."""
        states = self.materialize_states(inputs, tuple(states), self.step_mode)
        if self.step_mode == "s":
            return self.single_step_functional_forward(inputs, states, **kwargs)
        return self.multi_step_functional_forward(inputs, states, **kwargs)

    def single_step_forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return self._stateful_call(self.single_step_functional_forward, "s", (x, *args), kwargs)

    def multi_step_forward(self, x_seq: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return self._stateful_call(self.multi_step_functional_forward, "m", (x_seq, *args), kwargs)

    def _stateful_call(self, step: Any, step_mode: str, inputs: tuple, kwargs: dict) -> Any:
        states = self.materialize_states(inputs, tuple(self._memories.values()), step_mode)
        outputs, states = step(inputs, states, **kwargs)
        for name, value in zip(list(self._memories), states, strict=True):
            self._memories[name] = value
        return outputs[0] if len(outputs) == 1 else outputs

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.step_mode == "s":
            return self.single_step_forward(*args, **kwargs)
        return self.multi_step_forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode!r}"


def reset_net(net: nn.Module) -> None:
    """Call ``reset()`` on every module of ``net`` that has one: SpikingJelly's ``functional.reset_net``, for
    users without SpikingJelly (with it installed, its own ``reset_net`` does the same on our neurons)."""
    for module in net.modules():
        reset = getattr(module, "reset", None)
        if callable(reset):
            reset()


def detach_net(net: nn.Module) -> None:
    """Detach every memory of ``net`` from the autograd graph (SpikingJelly's ``functional.detach_net``)."""
    for module in net.modules():
        if isinstance(module, MemoryModule):
            module.detach()
