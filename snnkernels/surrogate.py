"""Surrogate gradients: the one source of truth for every backend.

A surrogate replaces the derivative of the Heaviside step ``s = H(x)`` (``x = u - V_th``) in the
backward pass. Each class here carries

- ``id``: the integer the kernels switch on (Triton ``SG_ID`` constexpr, CUDA template argument);
- ``param``: its one float parameter, passed to the kernels as ``sg_param``;
- ``derivative(x)``: ds/dx as a torch formula, used by the eager reference;
- ``primitive(x)``: a smooth (or piecewise-linear) function whose derivative is ``derivative``;
  tests check ``derivative`` against autograd of ``primitive``.

Calling a surrogate object, ``sg(x)``, returns the Heaviside step of ``x`` with ``sg.derivative``
as its gradient, like SpikingJelly's surrogate modules.

Formulas (x = u - V_th), each with unit area where bounded:

======================  ==================================================  ====================
class                   ds/dx                                               matches
======================  ==================================================  ====================
``ATan(alpha=2)``       ``(alpha/2) / (1 + (pi/2 * alpha * x)^2)``          SJ ``ATan``
``Sigmoid(alpha=4)``    ``alpha * sig(alpha x) * (1 - sig(alpha x))``       SJ ``Sigmoid``
``Triangle(gamma=1)``   ``max(0, gamma - |x|) / gamma^2``                   SJ ``PiecewiseQuadratic(1/gamma)``, TET/DTA
``Rectangle(width=1)``  ``1[|x| < width/2] / width``                        MA-SNN, Att-Res, STAA
``PiecewiseExp(a=1)``   ``(a/2) exp(-a |x|)``                               SJ ``PiecewiseExp``
``SoftSign(a=2)``       ``(a/2) / (1 + a |x|)^2``                           SJ ``SoftSign``
``SuperSpike(a=1)``     ``a / (1 + |x|)^2`` (area 2a, as SpikingJelly's)    SJ ``SuperSpike``
``Erf(a=2)``            ``(a / sqrt(pi)) exp(-(a x)^2)``                    SJ ``Erf``
======================  ==================================================  ====================

The last four complete SpikingJelly's Triton set (Sigmoid, ATan, PiecewiseQuadratic, PiecewiseExp,
SoftSign, SuperSpike, Erf), so a model using any of them runs on every backend here.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

__all__ = [
    "Surrogate",
    "ATan",
    "Sigmoid",
    "Triangle",
    "Rectangle",
    "PiecewiseExp",
    "SoftSign",
    "SuperSpike",
    "Erf",
    "SURROGATE_IDS",
    "by_id",
    "coerce_surrogate",
]


def heaviside(x: torch.Tensor, strict: bool = False) -> torch.Tensor:
    """Spike of ``x = u - V_th``: ``x >= 0`` (or ``x > 0`` when ``strict``), in ``x``'s dtype."""
    return (x > 0).to(x.dtype) if strict else (x >= 0).to(x.dtype)


class _SpikeFunction(torch.autograd.Function):
    """Heaviside forward; backward: the incoming gradient times the surrogate derivative, which the caller
    forms outside the Function (``Surrogate.spike``) so that the Function holds no reference to the
    surrogate object: torch.compile(dynamic=True) may make its parameter a symbol, which a traced
    autograd.Function cannot capture."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, derivative: torch.Tensor | None, strict: bool) -> torch.Tensor:
        ctx.save_for_backward(derivative)
        return heaviside(x, strict)

    @staticmethod
    def backward(ctx: Any, grad_spike: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (derivative,) = ctx.saved_tensors
        return grad_spike * derivative, None, None


class Surrogate:
    """Base class. Subclasses set ``id``, ``param_name`` and the two formulas."""

    id: ClassVar[int]
    param_name: ClassVar[str]
    default_param: ClassVar[float]

    def __init__(self, param: float | None = None) -> None:
        value = self.default_param if param is None else float(param)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(
                f"{type(self).__name__}: {self.param_name} must be a positive finite number, got {param!r}"
            )
        self.param = value

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def spike(self, x: torch.Tensor, strict: bool = False) -> torch.Tensor:
        """Heaviside step of ``x`` whose gradient is ``self.derivative``."""
        needs_grad = torch.is_grad_enabled() and x.requires_grad
        return _SpikeFunction.apply(x, self.derivative(x.detach()) if needs_grad else None, strict)

    __call__ = spike

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.param_name}={self.param!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.param == self.param  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.param))


class _AlphaSurrogate(Surrogate):
    """A surrogate whose one parameter SpikingJelly calls ``alpha`` (its default: ``default_param``)."""

    param_name = "alpha"

    def __init__(self, alpha: float | None = None) -> None:
        super().__init__(alpha)

    @property
    def alpha(self) -> float:
        return self.param


class ATan(_AlphaSurrogate):
    """Arc-tangent surrogate, SpikingJelly's ``ATan(alpha=2)``."""

    id = 0
    default_param = 2.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return (self.param / 2) / (1 + (math.pi / 2 * self.param * x) ** 2)

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        return torch.atan(math.pi / 2 * self.param * x) / math.pi + 0.5


class Sigmoid(_AlphaSurrogate):
    """Logistic surrogate, SpikingJelly's ``Sigmoid(alpha=4)``."""

    id = 1
    default_param = 4.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        sig = torch.sigmoid(self.param * x)
        return self.param * sig * (1 - sig)

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.param * x)


class Triangle(Surrogate):
    """Triangle surrogate of TET/DTA; equals SpikingJelly's ``PiecewiseQuadratic(alpha=1/gamma)``."""

    id = 2
    param_name = "gamma"
    default_param = 1.0

    def __init__(self, gamma: float = 1.0) -> None:
        super().__init__(gamma)

    @property
    def gamma(self) -> float:
        return self.param

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        g = self.param
        return torch.clamp(g - x.abs(), min=0) / (g * g)

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        g = self.param
        y = torch.clamp(x / g, -1.0, 1.0)
        # integral of the triangle on [-g, g], scaled to [0, 1]
        return torch.where(y < 0, 0.5 * (1 + y) ** 2, 1 - 0.5 * (1 - y) ** 2)


class Rectangle(Surrogate):
    """Rectangular surrogate of MA-SNN, Att-Res-SNN and STAA: ``1[|x| < width/2] / width``."""

    id = 3
    param_name = "width"
    default_param = 1.0

    def __init__(self, width: float = 1.0) -> None:
        super().__init__(width)

    @property
    def width(self) -> float:
        return self.param

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        w = self.param
        return (x.abs() < w / 2).to(x.dtype) / w

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x / self.param + 0.5, 0.0, 1.0)


class PiecewiseExp(_AlphaSurrogate):
    """Two-sided exponential surrogate, SpikingJelly's ``PiecewiseExp(alpha=1)``: ``(a/2) exp(-a |x|)``."""

    id = 4
    default_param = 1.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return (self.param * 0.5) * torch.exp(-(self.param * x.abs()))

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        half = 0.5 * torch.exp(-(self.param * x.abs()))
        return torch.where(x < 0, half, 1 - half)


class SoftSign(_AlphaSurrogate):
    """Soft-sign surrogate, SpikingJelly's ``SoftSign(alpha=2)``: ``(a/2) / (1 + a |x|)^2``."""

    id = 5
    default_param = 2.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        z = 1 + self.param * x.abs()
        return (self.param * 0.5) / (z * z)

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        z = self.param * x
        return (z / (1 + z.abs()) + 1) / 2


class SuperSpike(_AlphaSurrogate):
    """SuperSpike (Zenke & Ganguli), SpikingJelly's ``SuperSpike(alpha=1)``: ``a / (1 + |x|)^2``. Its area is
    2a, not 1, as in SpikingJelly."""

    id = 6
    default_param = 1.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        z = 1 + x.abs()
        return self.param / (z * z)

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        return self.param * x / (1 + x.abs())


class Erf(_AlphaSurrogate):
    """Gaussian-error surrogate, SpikingJelly's ``Erf(alpha=2)``: ``(a / sqrt(pi)) exp(-(a x)^2)``."""

    id = 7
    default_param = 2.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        z = self.param * x
        return torch.exp(-(z * z)) * (self.param / math.sqrt(math.pi))

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erfc(-self.param * x) / 2


SURROGATE_IDS: dict[int, type[Surrogate]] = {
    cls.id: cls for cls in (ATan, Sigmoid, Triangle, Rectangle, PiecewiseExp, SoftSign, SuperSpike, Erf)
}


# SpikingJelly's surrogates that have our name and formula, with the same `alpha`
_SPIKINGJELLY_SAME_NAME: dict[str, type[Surrogate]] = {
    cls.__name__: cls for cls in (ATan, Sigmoid, PiecewiseExp, SoftSign, SuperSpike, Erf)
}


def by_id(surrogate_id: int, param: float) -> Surrogate:
    """Rebuild a surrogate from the (id, param) pair that the ops carry."""
    try:
        cls = SURROGATE_IDS[int(surrogate_id)]
    except KeyError:
        raise ValueError(f"unknown surrogate id {surrogate_id}; known: {sorted(SURROGATE_IDS)}") from None
    return cls(param)


def _spikingjelly_surrogate_parent(cls: type) -> type | None:
    """The first class in ``cls``'s MRO that SpikingJelly's surrogate module defines, if any."""
    for parent in cls.__mro__:
        if parent.__module__.startswith("spikingjelly.") and parent.__name__ != "Module":
            return parent
    return None


def coerce_surrogate(obj: Any) -> Surrogate:
    """The kernels' surrogate for ``obj``: one of ours, or SpikingJelly's ATan / Sigmoid / PiecewiseQuadratic /
    PiecewiseExp / SoftSign / SuperSpike / Erf converted with its *current* ``alpha`` (modules keep the
    SpikingJelly object and convert it at every call, so a later change of its alpha takes effect).

    Rule (docs/spikingjelly.md "Surrogates"): a surrogate is accepted when its class is exactly one of these. A
    subclass is refused, ours or SpikingJelly's, since it may override the formula and the kernels compute the
    parent's; anything else is refused too: silently substituting a different surrogate would change the
    gradients."""
    if type(obj) in SURROGATE_IDS.values():
        return obj
    if isinstance(obj, Surrogate):
        parent = next((c for c in type(obj).__mro__ if c in SURROGATE_IDS.values()), Surrogate)
        raise TypeError(
            f"surrogate_function of type {type(obj).__name__} subclasses snnkernels' {parent.__name__}: "
            "subclasses are refused because the kernels compute the parent's formula, not an override. Use "
            f"one of {', '.join(cls.__name__ for cls in SURROGATE_IDS.values())} as it is"
        )
    cls = type(obj)
    parent = _spikingjelly_surrogate_parent(cls)
    if parent is not None:
        name = cls.__name__
        exact = cls is parent and cls.__module__ == "spikingjelly.activation_based.surrogate"
        if exact and getattr(obj, "spiking", True) is False:
            raise ValueError(f"SpikingJelly surrogate {name} with spiking=False is not a spiking neuron; unsupported")
        alpha = getattr(obj, "alpha", None)
        if exact and alpha is not None and name in _SPIKINGJELLY_SAME_NAME:
            return _SPIKINGJELLY_SAME_NAME[name](alpha)
        if exact and alpha is not None and name == "PiecewiseQuadratic":
            return Triangle(1.0 / float(alpha))
        if not exact and parent.__name__ in (*_SPIKINGJELLY_SAME_NAME, "PiecewiseQuadratic"):
            raise TypeError(
                f"surrogate_function of type {name} subclasses SpikingJelly's {parent.__name__}: subclasses are "
                "refused because the kernels compute the parent's formula, not an override. Pass SpikingJelly's "
                f"{parent.__name__} itself, or one of snnkernels.surrogate's classes"
            )
    raise TypeError(
        f"unsupported surrogate_function {obj!r}; use one of snnkernels.surrogate's "
        f"{', '.join(cls.__name__ for cls in SURROGATE_IDS.values())} (SpikingJelly's ATan, Sigmoid, "
        "PiecewiseQuadratic, PiecewiseExp, SoftSign, SuperSpike and Erf are converted automatically)"
    )
