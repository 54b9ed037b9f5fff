"""Model weights as one flat float32 vector: the ``weights`` datapack and MPI broadcast layout.

``flat_weights(model)`` concatenates every array of ``model.get_weights()`` (trainable and
non-trainable, e.g. input-normalization statistics) raveled in order;
``assign_flat_weights(model, flat)`` is its inverse. Both follow ``model.weights`` order,
so a vector taken from one model fits any model built the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

FLAT_DTYPE = np.float32
"""dtype of flat weight vectors."""

WEIGHTS_SUFFIX = ".weights.h5"
"""File name ending Keras requires of ``save_weights`` / ``load_weights`` files."""


def weight_shapes(model: keras.Model) -> list[tuple[int, ...]]:
    """Shape of every weight of ``model``, in ``model.weights`` order.

    Args:
        model: A built Keras model.
    """
    return [tuple(int(size) for size in weight.shape) for weight in model.weights]


def flat_weights(model: keras.Model) -> np.ndarray:
    """Every array of ``model.get_weights()`` flattened and concatenated, as float32.

    Args:
        model: A Keras model, usually ``brain.joint``.

    Returns:
        ``[N]`` float32, ``N`` the number of scalars in the model's weights.
    """
    return flatten(model.get_weights())


def flatten(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Arrays (e.g. ``model.get_weights()``) raveled and concatenated in order, as float32."""
    if not arrays:
        return np.zeros(0, FLAT_DTYPE)
    return np.concatenate([np.ravel(array) for array in arrays]).astype(FLAT_DTYPE)


def assign_flat_weights(model: keras.Model, flat: Any) -> None:
    """Set every weight of ``model`` from a vector laid out as ``flat_weights`` returns it.

    Args:
        model: A built Keras model.
        flat: ``[N]`` finite floats, ``N`` the number of scalars in the model's weights
            (any float dtype; cast to float32).

    Raises:
        ValueError: If ``flat`` is not a float array of that shape, or not finite. The
            model's weights are left unchanged.
    """
    shapes = weight_shapes(model)
    total = sum(math.prod(shape) for shape in shapes)
    array = np.asarray(flat) if isinstance(flat, np.ndarray | np.generic) else None
    if array is None or array.dtype.kind != "f" or array.shape != (total,):
        received = (
            type(flat).__name__ if array is None else f"dtype={array.dtype}, shape {array.shape}"
        )
        raise ValueError(
            f"expected a flat float32 array of shape ({total},): every array of the "
            f"{model.name} model's get_weights() flattened and concatenated in order. "
            f"Received: {received}"
        )
    if not np.isfinite(array).all():
        raise ValueError("expected finite weights. Received: NaN or inf")
    values = array.astype(FLAT_DTYPE, copy=False)
    offsets = np.cumsum([math.prod(shape) for shape in shapes])[:-1]
    pieces = np.split(values, offsets)
    model.set_weights([piece.reshape(shape) for piece, shape in zip(pieces, shapes, strict=True)])
