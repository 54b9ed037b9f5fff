"""The continuous 6-D representation of rotations (Zhou et al., CVPR 2019).

A rotation matrix is represented by its first two columns; a network's six outputs are
mapped back to a rotation by Gram-Schmidt: normalize the first column, remove its part from
the second and normalize that, and take their cross product as the third. Unlike Euler angles
or quaternions, the map has no discontinuity, which makes it a good regression target.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

SIX_D = 6
"""Numbers in the representation."""
EPSILON = 1e-8
"""Keeps normalizing a (near-)zero column finite."""


def matrix_to_6d(rotations: np.ndarray) -> np.ndarray:
    """Rotations ``[..., 3, 3]`` -> their first two columns ``[..., 6]`` (column 0 first)."""
    matrices = np.asarray(rotations, dtype=np.float64)
    if matrices.shape[-2:] != (3, 3):
        raise ValueError(f"expected rotation matrices [..., 3, 3]. Received: {matrices.shape}")
    return np.concatenate([matrices[..., :, 0], matrices[..., :, 1]], axis=-1)


def sixd_to_matrix(sixd: np.ndarray) -> np.ndarray:
    """``[..., 6]`` -> rotation matrices ``[..., 3, 3]`` by Gram-Schmidt."""
    values = np.asarray(sixd, dtype=np.float64)
    if values.shape[-1] != SIX_D:
        raise ValueError(f"expected 6-D rotations [..., 6]. Received: {values.shape}")
    first = values[..., :3] / (np.linalg.norm(values[..., :3], axis=-1, keepdims=True) + EPSILON)
    second = values[..., 3:] - np.sum(first * values[..., 3:], axis=-1, keepdims=True) * first
    second = second / (np.linalg.norm(second, axis=-1, keepdims=True) + EPSILON)
    return np.stack([first, second, np.cross(first, second)], axis=-1)


def sixd_to_matrix_tensor(sixd: Any) -> Any:
    """``sixd_to_matrix`` in Keras ops (differentiable): ``[B, 6]`` -> ``[B, 3, 3]``."""
    ops = keras.ops
    first = sixd[..., :3] / (ops.norm(sixd[..., :3], axis=-1, keepdims=True) + EPSILON)
    second = sixd[..., 3:] - ops.sum(first * sixd[..., 3:], axis=-1, keepdims=True) * first
    second = second / (ops.norm(second, axis=-1, keepdims=True) + EPSILON)
    return ops.stack([first, second, ops.cross(first, second)], axis=-1)


def angle_between(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Geodesic angle (degrees) between rotations ``[..., 3, 3]``: that of ``Pᵀ A``."""
    relative = np.einsum("...ji,...jk->...ik", predicted, actual)
    cosine = (np.trace(relative, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def mean_rotation(rotations: np.ndarray) -> np.ndarray:
    """The chordal mean of rotations ``[N, 3, 3]``: their average projected onto SO(3)."""
    u, _, vt = np.linalg.svd(np.mean(rotations, axis=0))
    sign = np.sign(np.linalg.det(u @ vt))
    return np.asarray(u @ np.diag([1.0, 1.0, sign]) @ vt)
