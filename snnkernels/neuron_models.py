"""The neuron family as data: how each named neuron maps onto the one parametrisation the kernels run.

Every neuron of the library is the *leaky neuron*: for t = 1..T, with state v_0 (``v_init``)

    h_t = decay * v_{t-1} + input_gain * x_t + bias          (charge; fp32, this op order)
    s_t = H(h_t - v_threshold)                               (fire; H(0) = 1, or 0 when strict)
    v_t = v_reset if s_t else h_t                            (hard reset)
    v_t = h_t - v_threshold * s_t                            (soft reset, v_reset = None)

with the reset's spike detached from the graph when ``detach_reset``. ``decay`` and ``input_gain``
may be tensors of shape [C] broadcast along dim 2 of ``[T, B, C, ...]`` (learnable per channel).

This module holds the mappings from each paper's neuron to those coefficients (docs/neuron.md "The papers'
neurons in this form"), so the reference, the functional API and the modules share one definition.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .surrogate import Rectangle, Surrogate, Triangle

Number = float | torch.Tensor

__all__ = [
    "lif_coefficients",
    "lif_leaky_settings",
    "rate_coefficients",
    "NeuronPreset",
    "TET_LIF",
    "MA_SNN_LIF",
    "ATT_RES_LIF",
    "PRESETS",
]


def lif_coefficients(tau: Number, decay_input: bool, v_reset: float | None) -> tuple[Number, Number, Number]:
    """SpikingJelly LIF as (decay, input_gain, bias).

    SpikingJelly charges ``h = v + (x - (v - v_reset)) / tau`` (decay_input) or
    ``h = v - (v - v_reset) / tau + x``; both are ``(1 - 1/tau) v + g x + v_reset / tau`` with
    ``g = 1/tau`` or ``1``. Soft reset (``v_reset=None``) charges towards 0. The two forms are equal in
    exact arithmetic; in floating point they can differ in the last bit, which flips a spike only when
    ``h`` lies within that bit of the threshold.

    ``tau`` may be a tensor, in which case the coefficients are tensors that carry the gradient back to it.
    """
    return rate_coefficients(1.0 / tau, decay_input, v_reset)


def lif_leaky_settings(tau: Number, decay_input: bool, v_reset: float | None) -> dict[str, object]:
    """SpikingJelly LIF as the leaky neuron's keyword settings: ``lif_coefficients``, SpikingJelly's
    non-strict threshold, and the state starting at ``v_reset`` (0 for soft reset)."""
    decay, gain, bias = lif_coefficients(tau, decay_input, v_reset)
    return {
        "decay": decay,
        "input_gain": gain,
        "bias": bias,
        "v_reset": v_reset,
        "strict_threshold": False,
        "v_init_value": 0.0 if v_reset is None else v_reset,
    }


def rate_coefficients(rate: Number, decay_input: bool, v_reset: float | None) -> tuple[Number, Number, Number]:
    """LIF coefficients from the leak rate ``k = 1/tau`` (PLIF learns ``k = sigmoid(w)`` directly)."""
    decay = 1.0 - rate
    gain = rate if decay_input else 1.0
    bias = 0.0 if v_reset is None or v_reset == 0.0 else v_reset * rate
    return decay, gain, bias


@dataclass(frozen=True)
class NeuronPreset:
    """A paper's neuron as leaky-neuron settings (docs/neuron.md "The papers' neurons in this form")."""

    name: str
    decay: float
    v_threshold: float
    v_reset: float | None
    strict_threshold: bool
    detach_reset: bool
    surrogate: Surrogate
    source: str


# m_t = 0.5 m_{t-1} + x_t; fire on m > 1; hard reset to 0, not detached; triangle gamma = 1.
TET_LIF = NeuronPreset("TET/DTA LIFSpike", 0.5, 1.0, 0.0, True, False, Triangle(1.0), "TET and DTA-SNN official code")
# u_t = h_{t-1} + x_t; fire on u >= 0.3; h_t = 0.3 * (s ? 0.3 : u): reset to the threshold, then decay.
MA_SNN_LIF = NeuronPreset("MA-SNN LIF", 0.3, 0.3, 0.3, False, False, Rectangle(0.5), "MA-SNN official code (IFCell)")
# u_t = 0.25 u_{t-1} (1 - detach(s_{t-1})) + x_t; fire on u > 0.5; rectangle width 1.
ATT_RES_LIF = NeuronPreset("Att-Res-SNN LIF", 0.25, 0.5, 0.0, True, True, Rectangle(1.0), "MA-SNN Att_Res_SNN code")

PRESETS: dict[str, NeuronPreset] = {"tet": TET_LIF, "ma_snn": MA_SNN_LIF, "att_res": ATT_RES_LIF}
