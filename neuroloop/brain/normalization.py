"""Running statistics for observation and reward normalization, mergeable across ranks.

``RunningMeanStd`` keeps the exact mean and (population) variance of everything it has
seen, in float64, for any per-sample shape; two of them merge exactly (Chan, Golub & LeVeque
1979), so ranks can combine what each gathered. The trainer keeps one of the per-world
discounted return too, and divides rewards by its standard deviation (as OpenAI baselines'
``VecNormalize`` and gymnasium's ``NormalizeReward`` do), clipped to ``REWARD_CLIP``.

Merging across ranks: merge only statistics of *disjoint* data. The usual pattern is a
shared ``RunningMeanStd`` that every rank holds identically, plus a fresh one per rank and
cycle that sees only that cycle's samples; after gathering, every rank merges all ranks'
fresh statistics (``state()`` travels as plain data) into its shared one.

Both serialise to plain dicts of lists and floats (``state()`` / ``from_state``) for JSON or
``np.savez`` checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

STATISTICS_DTYPE = np.float64
"""dtype of every running statistic."""
NORMALIZATION_CLIP = 5.0
"""Normalized observations are clipped to ``[-clip, clip]``."""
NORMALIZATION_EPSILON = 1e-8
"""Added to the variance before taking its square root."""
REWARD_CLIP = 10.0
"""Scaled rewards are clipped to ``[-clip, clip]`` (baselines' ``cliprew``, CleanRL)."""

STATE_KEYS = ("shape", "mean", "var", "count")
"""Keys of ``RunningMeanStd.state()``."""


def _missing_keys(state: Mapping[str, Any], keys: Sequence[str], owner: str) -> None:
    """Raise ``ValueError`` if ``state`` lacks any of ``keys``."""
    missing = [key for key in keys if key not in state]
    if missing:
        raise ValueError(
            f"{owner}.from_state: missing keys {missing}; expected {list(keys)}. "
            f"Received: keys={sorted(state)}"
        )


class RunningMeanStd:
    """Exact running mean and population variance of samples of one shape.

    Before any update, ``mean`` is 0, ``var`` is 1 and ``count`` is 0, so ``normalize`` is
    the identity (up to clipping).

    Args:
        shape: Per-sample shape, e.g. ``(n,)`` for an observation vector, ``()`` for scalars.

    Raises:
        ValueError: If a size in ``shape`` is negative.
    """

    def __init__(self, shape: Sequence[int] = ()) -> None:
        self.shape = tuple(int(size) for size in shape)
        if any(size < 0 for size in self.shape):
            raise ValueError(
                f"RunningMeanStd: `shape` must hold non-negative sizes. Received: shape={shape!r}"
            )
        self._mean = np.zeros(self.shape, STATISTICS_DTYPE)
        self._var = np.ones(self.shape, STATISTICS_DTYPE)
        self._count = 0.0

    @property
    def mean(self) -> np.ndarray:
        """Mean of the samples seen, ``shape``; 0 before any."""
        return self._mean.copy()

    @property
    def var(self) -> np.ndarray:
        """Population variance (``ddof=0``) of the samples seen, ``shape``; 1 before any."""
        return self._var.copy()

    @property
    def std(self) -> np.ndarray:
        """``sqrt(var)``, ``shape``."""
        return np.sqrt(self._var)

    @property
    def count(self) -> float:
        """Number of samples seen."""
        return self._count

    def update(self, batch: Any) -> None:
        """Add samples: ``batch [..., *shape]``, every leading index one sample.

        Args:
            batch: Array-like whose trailing axes equal ``shape``; leading axes (worlds,
                time) are flattened. An empty batch changes nothing.

        Raises:
            ValueError: If the trailing shape differs from ``shape``.
        """
        array = np.asarray(batch, dtype=STATISTICS_DTYPE)
        rank = len(self.shape)
        if array.ndim < rank or array.shape[array.ndim - rank :] != self.shape:
            raise ValueError(
                f"RunningMeanStd.update: expected samples [..., *shape] with trailing shape "
                f"{self.shape}. Received: shape={array.shape}"
            )
        samples = array.reshape(-1, *self.shape)
        if samples.shape[0] == 0:
            return
        self._combine(samples.mean(axis=0), samples.var(axis=0), float(samples.shape[0]))

    def merge(self, other: RunningMeanStd) -> None:
        """Add the samples ``other`` has seen (exact parallel mean and variance).

        Args:
            other: Statistics of disjoint samples of the same shape.

        Raises:
            ValueError: If the shapes differ.
        """
        if other.shape != self.shape:
            raise ValueError(
                "RunningMeanStd.merge: expected statistics of the same shape. "
                f"Received: {self.shape} and {other.shape}"
            )
        if other.count > 0:
            self._combine(other._mean, other._var, other.count)

    def _combine(self, mean: np.ndarray, var: np.ndarray, count: float) -> None:
        """Chan et al.'s pairwise update with the statistics of ``count`` new samples."""
        if self._count == 0:
            self._mean, self._var, self._count = mean.copy(), var.copy(), count
            return
        total = self._count + count
        delta = mean - self._mean
        m2 = self._var * self._count + var * count + np.square(delta) * self._count * count / total
        self._mean = self._mean + delta * count / total
        self._var = m2 / total
        self._count = total

    def normalize(
        self, x: Any, clip: float = NORMALIZATION_CLIP, epsilon: float = NORMALIZATION_EPSILON
    ) -> np.ndarray:
        """``clip((x - mean) / sqrt(var + epsilon), -clip, clip)``.

        Args:
            x: ``[..., *shape]``.
            clip: Bound of the result's magnitude, > 0.
            epsilon: Added to the variance, >= 0.

        Returns:
            ``[..., *shape]`` in ``x``'s float dtype (float64 for non-float ``x``).

        Raises:
            ValueError: If ``clip`` is not positive or ``epsilon`` is negative.
        """
        if not clip > 0 or not epsilon >= 0:
            raise ValueError(
                "RunningMeanStd.normalize: expected clip > 0 and epsilon >= 0. "
                f"Received: clip={clip!r}, epsilon={epsilon!r}"
            )
        array = np.asarray(x)
        dtype = array.dtype if array.dtype.kind == "f" else STATISTICS_DTYPE
        normalized = (array - self._mean) / np.sqrt(self._var + epsilon)
        return np.clip(normalized, -clip, clip).astype(dtype)

    def state(self) -> dict[str, Any]:
        """Plain-data statistics (lists and floats) for JSON or ``np.savez``."""
        return {
            "shape": list(self.shape),
            "mean": self._mean.tolist(),
            "var": self._var.tolist(),
            "count": self._count,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RunningMeanStd:
        """Rebuild statistics from ``state()`` (lists, or arrays as ``np.load`` returns).

        Args:
            state: A mapping with the keys ``STATE_KEYS``.

        Raises:
            ValueError: If a key is missing or the arrays do not fit ``shape``.
        """
        _missing_keys(state, STATE_KEYS, "RunningMeanStd")
        rms = cls(tuple(np.asarray(state["shape"], dtype=np.int64).reshape(-1)))
        mean = np.asarray(state["mean"], dtype=STATISTICS_DTYPE)
        var = np.asarray(state["var"], dtype=STATISTICS_DTYPE)
        count = float(np.asarray(state["count"]))
        if mean.shape != rms.shape or var.shape != rms.shape or count < 0 or (var < 0).any():
            raise ValueError(
                f"RunningMeanStd.from_state: expected mean and var of shape {rms.shape}, "
                f"var >= 0 and count >= 0. Received: mean.shape={mean.shape}, "
                f"var.shape={var.shape}, count={count}"
            )
        rms._mean, rms._var, rms._count = mean, var, count
        return rms

    def __repr__(self) -> str:
        return f"RunningMeanStd(shape={self.shape}, count={self._count})"
