"""What a policy's actions mean: their action space and their mapping to actuator targets.

One class per distribution, free of TensorFlow, so transceivers and the Gymnasium view use
them in processes that never start it; a TensorFlow ``Distribution`` hands out its own with
``Distribution.actions()``. Targets stay inside the control range ``ctrl_range [nu, 2]``:

- Beta sample ``x`` in [0, 1] -> ``low + x (high - low)``, exactly ``low`` at 0 and ``high``
  at 1 (computed as ``(1 - x) low + x high``);
- Gaussian sample -> clipped to ``[low, high]``;
- multicategorical bin ``b`` in ``{0..K-1}`` -> the centre of bin ``b`` when ``[low, high]``
  is cut into ``K`` equal bins: ``low + (b + 0.5) (high - low) / K``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium
import numpy as np

DEFAULT_N_BINS = 11
"""Bins per joint of the multicategorical distribution."""


def _bounds(sample: np.ndarray, ctrl_range: Any, who: str) -> tuple[np.ndarray, np.ndarray]:
    """``(low [nu], high [nu])`` of ``ctrl_range``, checked against a finite ``sample``."""
    ctrl_range = np.asarray(ctrl_range, dtype=np.float64)
    if ctrl_range.ndim != 2 or ctrl_range.shape[1] != 2:
        raise ValueError(
            f"[{who}] to_control: expected ctrl_range of shape [nu, 2]. "
            f"Received: shape {ctrl_range.shape}"
        )
    if sample.shape[-1:] != ctrl_range.shape[:1]:
        raise ValueError(
            f"[{who}] to_control: expected samples of shape [..., {ctrl_range.shape[0]}] "
            f"(one per actuator). Received: shape {sample.shape}"
        )
    if not np.all(np.isfinite(sample)):
        raise ValueError(f"[{who}] to_control: expected finite samples. Received: NaN or inf")
    return ctrl_range[:, 0], ctrl_range[:, 1]


def _lerp(low: np.ndarray, high: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """``low`` at fraction 0 and ``high`` at fraction 1, exactly."""
    return (1.0 - fraction) * low + fraction * high


class Actions(abc.ABC):
    """The actions of one policy distribution."""

    name: ClassVar[str]
    """The distribution's name, e.g. ``"beta"``."""

    @abc.abstractmethod
    def to_control(self, sample: Any, ctrl_range: Any) -> np.ndarray:
        """Actuator targets ``[..., nu]`` for policy samples ``[..., nu]``.

        Raises:
            ValueError: If shapes disagree or a sample is not valid for the distribution.
        """

    @abc.abstractmethod
    def space(self, action_dim: int) -> gymnasium.spaces.Space[np.ndarray]:
        """The Gymnasium space of one action with ``action_dim`` dimensions."""


class BetaActions(Actions):
    """Samples in [0, 1] (clipped first: a float Beta sampler can overshoot by rounding)."""

    name = "beta"

    def to_control(self, sample: Any, ctrl_range: Any) -> np.ndarray:
        sample = np.asarray(sample, dtype=np.float64)
        low, high = _bounds(sample, ctrl_range, self.name)
        return _lerp(low, high, np.clip(sample, 0.0, 1.0))

    def space(self, action_dim: int) -> gymnasium.spaces.Space[np.ndarray]:
        return gymnasium.spaces.Box(0.0, 1.0, (action_dim,), np.float32)


class GaussianActions(Actions):
    """Unbounded samples, clipped to the control range."""

    name = "gaussian"

    def to_control(self, sample: Any, ctrl_range: Any) -> np.ndarray:
        sample = np.asarray(sample, dtype=np.float64)
        low, high = _bounds(sample, ctrl_range, self.name)
        return np.clip(sample, low, high)

    def space(self, action_dim: int) -> gymnasium.spaces.Space[np.ndarray]:
        return gymnasium.spaces.Box(-np.inf, np.inf, (action_dim,), np.float32)


class BinnedActions(Actions):
    """One bin index per joint, mapped to the bin's centre.

    Args:
        n_bins: Bins per joint ``K``.

    Raises:
        ValueError: If ``n_bins`` is not an int >= 1.
    """

    name = "multicategorical"

    def __init__(self, n_bins: int = DEFAULT_N_BINS) -> None:
        if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
            raise ValueError(
                f"[{self.name}] expected n_bins to be an int >= 1. Received: n_bins={n_bins!r}"
            )
        self.n_bins = int(n_bins)

    def to_control(self, sample: Any, ctrl_range: Any) -> np.ndarray:
        indices = np.asarray(sample)
        low, high = _bounds(indices.astype(np.float64), ctrl_range, self.name)
        if indices.dtype.kind not in "iu" and np.any(indices != np.round(indices)):
            raise ValueError(
                f"[{self.name}] to_control: expected integer bin indices. "
                f"Received: dtype={indices.dtype}"
            )
        if np.any((indices < 0) | (indices >= self.n_bins)):
            raise ValueError(
                f"[{self.name}] to_control: expected bin indices in [0, {self.n_bins - 1}]. "
                f"Received: min={indices.min()}, max={indices.max()}"
            )
        return _lerp(low, high, (indices.astype(np.float64) + 0.5) / self.n_bins)

    def space(self, action_dim: int) -> gymnasium.spaces.Space[np.ndarray]:
        return gymnasium.spaces.MultiDiscrete(np.full(action_dim, self.n_bins))


def get_actions(name: str, options: Mapping[str, Any] | None = None) -> Actions:
    """The actions of the distribution ``name`` configured with ``DistributionOptions``.

    Args:
        name: ``"beta"``, ``"gaussian"`` or ``"multicategorical"``.
        options: The distribution's options; only ``n_bins`` (multicategorical) matters
            to its actions.

    Raises:
        ValueError: If ``name`` is unknown or ``n_bins`` is invalid.
    """
    options = options or {}
    if name == BinnedActions.name:
        return BinnedActions(options.get("n_bins", DEFAULT_N_BINS))
    for actions in (BetaActions, GaussianActions):
        if name == actions.name:
            return actions()
    raise ValueError(
        f"Unknown distribution; expected one of "
        f"{[BetaActions.name, GaussianActions.name, BinnedActions.name]}. Received: {name!r}"
    )
