"""Keras layers of the brain contract: ``RunningNormalization`` (observation statistics kept
inside the brain, so pushing weights pushes them too)."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from neuroloop.brain.normalization import NORMALIZATION_CLIP, NORMALIZATION_EPSILON


def _checked_positive(option: str, value: Any) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` unless it is finite and > 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"RunningNormalization: `{option}` must be a finite number > 0. "
            f"Received: {option}={value!r}"
        )
    return float(value)


@keras.saving.register_keras_serializable(package="neuroloop")
class RunningNormalization(keras.layers.Layer):
    """Normalize the last axis with externally kept statistics, then clip.

    ``call(x) = clip((x - mean) / sqrt(variance + epsilon), -clip, clip)`` on ``x [..., n]``.
    ``mean [n]`` and ``variance [n]`` are non-trainable weights (initially 0 and 1, the
    identity up to clipping) that training sets from a running ``RunningMeanStd``
    (``set_statistics``); gradients never change them.

    Args:
        clip: Bound of the output's magnitude, finite and > 0.
        epsilon: Added to the variance, finite and > 0.
        **kwargs: Base layer keyword arguments (``name``, ``dtype``, ...).

    Raises:
        ValueError: If ``clip`` or ``epsilon`` is not a finite number > 0.
    """

    def __init__(
        self,
        clip: float = NORMALIZATION_CLIP,
        epsilon: float = NORMALIZATION_EPSILON,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.clip = _checked_positive("clip", clip)
        self.epsilon = _checked_positive("epsilon", epsilon)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        size = input_shape[-1]
        if size is None:
            raise ValueError(
                "RunningNormalization needs a known last dimension. "
                f"Received: input_shape={input_shape}"
            )
        self.mean = self.add_weight(
            shape=(size,), initializer="zeros", trainable=False, name="mean"
        )
        self.variance = self.add_weight(
            shape=(size,), initializer="ones", trainable=False, name="variance"
        )

    def call(self, inputs: Any) -> Any:
        mean = keras.ops.cast(self.mean, inputs.dtype)
        variance = keras.ops.cast(self.variance, inputs.dtype)
        normalized = (inputs - mean) / keras.ops.sqrt(variance + self.epsilon)
        return keras.ops.clip(normalized, -self.clip, self.clip)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update({"clip": self.clip, "epsilon": self.epsilon})
        return config

    def set_statistics(self, mean: Any, variance: Any) -> None:
        """Write new statistics (cast to the weights' dtype).

        Args:
            mean: ``[n]`` finite means.
            variance: ``[n]`` finite variances >= 0.

        Raises:
            ValueError: If the layer is not built, or a shape or value is invalid.
        """
        if not self.built:
            raise ValueError(f"RunningNormalization {self.name!r}: build the layer first.")
        size = tuple(self.mean.shape)
        mean_array = np.asarray(mean, dtype=np.float64)
        variance_array = np.asarray(variance, dtype=np.float64)
        if mean_array.shape != size or variance_array.shape != size:
            raise ValueError(
                f"RunningNormalization {self.name!r}: expected mean and variance of shape "
                f"{size}. Received: mean.shape={mean_array.shape}, "
                f"variance.shape={variance_array.shape}"
            )
        finite = np.isfinite(mean_array).all() and np.isfinite(variance_array).all()
        if not finite or (variance_array < 0).any():
            raise ValueError(
                f"RunningNormalization {self.name!r}: expected finite means and finite "
                "variances >= 0. Received: NaN, inf or a negative variance"
            )
        self.mean.assign(mean_array.astype(self.mean.dtype))
        self.variance.assign(variance_array.astype(self.variance.dtype))

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """The current ``(mean [n], variance [n])``."""
        return np.asarray(self.mean.numpy()), np.asarray(self.variance.numpy())
