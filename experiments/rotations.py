"""Quaternion maths for tasks and transceivers, batched over leading axes.

Quaternions are ``[..., 4]`` arrays in MuJoCo's order ``(w, x, y, z)``.
"""

from __future__ import annotations

import numpy as np

QUATERNION_SIZE = 4
"""Entries of a quaternion: w, x, y, z."""

Z_AXIS = (0.0, 0.0, 1.0)
"""The world's vertical axis."""


def _check(q: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(q, dtype=np.float64)
    if array.shape[-1:] != (QUATERNION_SIZE,):
        raise ValueError(
            f"[rotations] {name}: expected quaternions of shape [..., 4] (w, x, y, z). "
            f"Received: shape {array.shape}"
        )
    return array


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a ⊗ b`` (apply ``b``, then ``a``), broadcasting leading axes."""
    a, b = _check(a, "quat_mul a"), _check(b, "quat_mul b")
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Conjugate ``(w, -x, -y, -z)``: the inverse rotation of a unit quaternion."""
    q = _check(q, "quat_conjugate")
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Scale quaternions to unit norm.

    Raises:
        ValueError: If a quaternion has zero norm.
    """
    q = _check(q, "quat_normalize")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm == 0.0):
        raise ValueError("[rotations] quat_normalize: expected non-zero quaternions. Received: 0")
    return q / norm


def quat_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation ``a ⊗ conj(b)`` that turns ``b`` into ``a``, with ``w >= 0``.

    The sign is fixed (``q`` and ``-q`` are the same rotation) so that a network input is
    continuous near the identity.
    """
    diff = quat_mul(a, quat_conjugate(b))
    return np.where(diff[..., :1] < 0.0, -diff, diff)


def rotation_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in radians, in ``[0, pi]``, of the rotation between orientations ``a`` and ``b``.

    Computed as ``2 atan2(|v|, |w|)`` of ``a ⊗ conj(b)``, which is accurate near 0 and pi and
    treats ``q`` and ``-q`` as the same orientation. Inputs need not be normalised.
    """
    diff = quat_mul(quat_normalize(a), quat_conjugate(quat_normalize(b)))
    return 2.0 * np.arctan2(np.linalg.norm(diff[..., 1:], axis=-1), np.abs(diff[..., 0]))


def quat_from_axis_angle(axis: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """Unit quaternions rotating by ``angle`` (rad) about ``axis`` (``[..., 3]``, any length)."""
    axis = np.asarray(axis, dtype=np.float64)
    unit = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    half = 0.5 * np.asarray(angle, dtype=np.float64)[..., None]
    return np.concatenate([np.cos(half), np.sin(half) * unit], axis=-1)


def random_quaternions(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` orientations drawn uniformly over all rotations, ``[n, 4]`` with ``w >= 0``.

    A normalised 4-D standard normal vector is uniform on the unit sphere of quaternions.
    """
    q = quat_normalize(rng.standard_normal((n, QUATERNION_SIZE)))
    return np.where(q[:, :1] < 0.0, -q, q)


def random_z_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` rotations about the world's z axis by angles uniform in ``[-pi, pi)``, ``[n, 4]``
    with ``w >= 0`` (gymnasium-robotics' ``target_rotation="z"`` goals)."""
    return quat_from_axis_angle(np.asarray(Z_AXIS), rng.uniform(-np.pi, np.pi, n))
