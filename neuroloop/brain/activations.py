"""LIF-derived activations: the stationary firing rate of a leaky integrate-and-fire neuron.

A LIF neuron ``tau_m dV/dt = -V + R I`` (rest 0) spikes when ``V`` reaches ``V_th``, is reset
to ``V_reset`` and stays silent for ``tau_ref``. Under a constant current its rate is

    r(I) = 1 / (tau_ref + tau_m ln((R I - V_reset) / (R I - V_th)))   if R I > V_th, else 0

(``ln`` of ``1 + (V_th - V_reset) / (R I - V_th)``: the time to charge from reset to
threshold). ``lif`` is that rate. Its gradient is zero below threshold and unbounded just
above it, so ``soft_lif`` smooths it the way Hunsberger & Eliasmith (2015) do: the drive
above threshold ``x = R I - V_th`` is replaced by ``gamma * softplus(x / gamma)``. Why this
smoothing rather than the Siegert (diffusion) rate of a neuron with noisy input: it is the
hard rate with ``max(x, 0)`` smoothed over a width ``gamma`` — the blur that input noise of
that size gives the threshold — it is never below the hard rate, it converges to it
uniformly as ``gamma -> 0`` (``softplus`` is within ``gamma ln 2`` of ``max(x, 0)``), its
gradient is finite and positive everywhere (so silent units still learn), and it costs a
softplus and two logs, where the Siegert rate needs a quadrature of
``exp(u^2)(1 + erf u)`` that overflows float32 in the regime of small noise.

Brains name an activation by a string (``"lif"``, ``"soft_lif"`` or any Keras activation,
e.g. ``"tanh"``) or by a mapping ``{"name": "lif", "tau_m": 0.01, ...}`` whose other keys
are ``LIFRate`` arguments; ``activation_layer`` turns either into a layer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeAlias

import keras

ActivationSpec: TypeAlias = str | Mapping[str, Any]
"""A Keras activation name, ``"lif"``, ``"soft_lif"``, or ``{"name": ..., **LIFRate args}``."""

LIF = "lif"
SOFT_LIF = "soft_lif"
LIF_NAMES: tuple[str, ...] = (LIF, SOFT_LIF)
LIF_PARAMETERS: tuple[str, ...] = (
    "tau_m",
    "tau_ref",
    "v_th",
    "v_reset",
    "resistance",
    "amplitude",
    "smoothing",
)
"""The arguments of ``LIFRate`` an activation spec may set."""

TAU_M = 0.02
"""Membrane time constant (s)."""
TAU_REF = 0.002
"""Refractory period (s)."""
V_TH = 1.0
"""Firing threshold (rest is 0)."""
V_RESET = 0.0
"""Potential after a spike."""
RESISTANCE = 1.0
"""Membrane resistance: the potential a unit current holds the membrane at."""
AMPLITUDE = 0.01
"""Output = amplitude * rate: 0.01 s gives the rate in units of 100 Hz, so a brain's
activations stay of order one (at most ``amplitude / tau_ref`` = 5)."""
SOFT_LIF_SMOOTHING = 0.1
"""``soft_lif``'s default smoothing width ``gamma`` (units of potential)."""

_LOG_SOFTPLUS_LINEAR_BELOW = -20.0
"""Below this ``z``, ``ln softplus(z)`` is computed as ``z`` (error under ``e^-20``), so
neither it nor its gradient goes through a softplus that underflows to zero."""


def _checked(option: str, value: Any, *, minimum: float, inclusive: bool) -> float:
    """``value`` as a float; ``ValueError`` unless finite and above (or at) ``minimum``."""
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if (
        number is None
        or not math.isfinite(number)
        or number < minimum
        or (not inclusive and number == minimum)
    ):
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise ValueError(
            f"LIFRate: `{option}` must be a finite number {bound}. Received: {option}={value!r}"
        )
    return float(number)


@keras.saving.register_keras_serializable(package="neuroloop")
class LIFRate(keras.layers.Layer):
    """Elementwise LIF firing rate of the input current, times ``amplitude``.

    ``smoothing = 0`` is the hard rate (``lif``); ``smoothing = gamma > 0`` the softplus-
    smoothed rate (``soft_lif``, see the module docstring), which tends to the hard one as
    ``gamma -> 0``.

    Args:
        tau_m: Membrane time constant (s), > 0.
        tau_ref: Refractory period (s), >= 0.
        v_th: Threshold potential.
        v_reset: Reset potential, < ``v_th``.
        resistance: Membrane resistance, > 0.
        amplitude: Output scale (s), > 0: the layer returns ``amplitude * rate``.
        smoothing: Smoothing width ``gamma`` (potential), >= 0; 0 is the hard rate.
        **kwargs: Base layer keyword arguments (``name``, ``dtype``, ...).

    Raises:
        ValueError: If a parameter is out of its range.
    """

    def __init__(
        self,
        tau_m: float = TAU_M,
        tau_ref: float = TAU_REF,
        v_th: float = V_TH,
        v_reset: float = V_RESET,
        resistance: float = RESISTANCE,
        amplitude: float = AMPLITUDE,
        smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tau_m = _checked("tau_m", tau_m, minimum=0.0, inclusive=False)
        self.tau_ref = _checked("tau_ref", tau_ref, minimum=0.0, inclusive=True)
        self.v_th = _checked("v_th", v_th, minimum=-math.inf, inclusive=False)
        self.v_reset = _checked("v_reset", v_reset, minimum=-math.inf, inclusive=False)
        if self.v_reset >= self.v_th:
            raise ValueError(
                "LIFRate: `v_reset` must be below `v_th`. "
                f"Received: v_reset={v_reset!r}, v_th={v_th!r}"
            )
        self.resistance = _checked("resistance", resistance, minimum=0.0, inclusive=False)
        self.amplitude = _checked("amplitude", amplitude, minimum=0.0, inclusive=False)
        self.smoothing = _checked("smoothing", smoothing, minimum=0.0, inclusive=True)

    def call(self, inputs: Any) -> Any:
        drive = self.resistance * inputs - self.v_th
        gap = self.v_th - self.v_reset
        if self.smoothing == 0.0:
            # Two wheres keep the gradient of the silent branch finite (it is zero).
            firing = drive > 0
            safe = keras.ops.where(firing, drive, 1.0)
            charge_time = self.tau_m * keras.ops.log1p(gap / safe)
            rate = keras.ops.where(firing, 1.0 / (self.tau_ref + charge_time), 0.0)
        else:
            # ln(1 + gap / rho) = ln(rho + gap) - ln(rho), rho = gamma softplus(drive / gamma),
            # with ln(rho) taken in the log domain so that it stays finite where rho underflows.
            z = drive / self.smoothing
            linear = z < _LOG_SOFTPLUS_LINEAR_BELOW
            log_softplus = keras.ops.where(
                linear, z, keras.ops.log(keras.ops.softplus(keras.ops.where(linear, 0.0, z)))
            )
            rho = self.smoothing * keras.ops.softplus(z)
            log_rho = math.log(self.smoothing) + log_softplus
            charge_time = self.tau_m * (keras.ops.log(rho + gap) - log_rho)
            rate = 1.0 / (self.tau_ref + charge_time)
        return self.amplitude * rate

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "tau_m": self.tau_m,
                "tau_ref": self.tau_ref,
                "v_th": self.v_th,
                "v_reset": self.v_reset,
                "resistance": self.resistance,
                "amplitude": self.amplitude,
                "smoothing": self.smoothing,
            }
        )
        return config


def _lif_arguments(spec: ActivationSpec) -> tuple[str, dict[str, Any]]:
    """The activation's name and, for ``lif``/``soft_lif``, its ``LIFRate`` arguments."""
    if isinstance(spec, str):
        name, arguments = spec, {}
    elif isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        name = spec["name"]
        arguments = {key: value for key, value in spec.items() if key != "name"}
        if arguments and name not in LIF_NAMES:
            raise ValueError(
                f"`activation` parameters apply to {list(LIF_NAMES)} only. Received: "
                f"activation={dict(spec)!r}"
            )
    else:
        raise ValueError(
            "`activation` must be a name (a Keras activation, 'lif' or 'soft_lif') or "
            f"{{'name': ..., **LIF parameters}}. Received: activation={spec!r}"
        )
    if name == SOFT_LIF:
        arguments = {"smoothing": SOFT_LIF_SMOOTHING, **arguments}
    return name, arguments


def activation_name(spec: ActivationSpec) -> str:
    """The activation's name: ``spec`` itself, or its ``name`` key.

    Raises:
        ValueError: If ``spec`` is neither a name nor a mapping with a ``name``.
    """
    return _lif_arguments(spec)[0]


def is_keras_activation(spec: ActivationSpec) -> bool:
    """True when ``spec`` is a plain Keras activation name (a ``Dense`` can apply it)."""
    return isinstance(spec, str) and spec not in LIF_NAMES


def activation_layer(spec: ActivationSpec, *, name: str) -> keras.layers.Layer:
    """The layer that applies ``spec``: an ``LIFRate`` or a Keras ``Activation``.

    Args:
        spec: ``"lif"``, ``"soft_lif"``, a Keras activation name, or a mapping with
            ``name`` and ``LIFRate`` arguments.
        name: The layer's name.

    Raises:
        ValueError: If ``spec`` names no activation or a parameter is invalid.
    """
    activation, arguments = _lif_arguments(spec)
    if activation in LIF_NAMES:
        unknown = sorted(set(arguments) - set(LIF_PARAMETERS))
        if unknown:
            raise ValueError(
                f"`activation` {activation!r} takes {', '.join(LIF_PARAMETERS)}. "
                f"Received: {unknown}"
            )
        return LIFRate(**arguments, name=name)
    try:
        keras.activations.get(activation)
    except ValueError as error:
        raise ValueError(
            f"`activation` must be 'lif', 'soft_lif' or a Keras activation name. "
            f"Received: activation={activation!r}"
        ) from error
    return keras.layers.Activation(activation, name=name)
