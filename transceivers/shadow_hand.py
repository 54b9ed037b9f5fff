"""Shadow Hand transceivers as pure functions: physics datapacks -> sensation, sample -> ctrl.

Everything is batched: the first axis of every array is the world.

Sensing (``sensation_from_physics``) returns a dict keyed by Sensation modality:

- ``proprioception``: joint positions ⊕ joint velocities ``[W, 2 nj]``
- ``touch``: touch sensor readings ``[W, nt]``
- ``goal``: the task's goal vector ``[W, G]`` (when given)
- ``asymmetric``: fingertip positions flattened ``[W, 15]``, then, when the model has a free
  object, its velocities ``[W, 6]`` and, when a goal orientation is given, the rotation from
  the object to the goal orientation ``[W, 4]`` (quaternion difference, ``w >= 0``)

Acting maps a policy sample to actuator targets inside ``actuator_ctrlrange`` ``[nu, 2]``:

- Beta sample ``x`` in [0, 1] -> ``low + x (high - low)``, exactly ``low`` at 0 and ``high``
  at 1 (computed as ``(1 - x) low + x high``);
- Gaussian sample -> clipped to ``[low, high]``;
- multicategorical bin ``b`` in ``{0..K-1}`` -> the centre of bin ``b`` when ``[low, high]``
  is cut into ``K`` equal bins: ``low + (b + 0.5) (high - low) / K``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from neuroloop.plugins.experiments.rotations import quat_difference

BETA = "beta"
"""Distribution name of a Beta policy head (samples in [0, 1])."""

GAUSSIAN = "gaussian"
"""Distribution name of a Gaussian policy head (unbounded samples)."""

MULTICATEGORICAL = "multicategorical"
"""Distribution name of a multicategorical policy head (one bin index per actuator)."""

DISTRIBUTIONS = (BETA, GAUSSIAN, MULTICATEGORICAL)
"""Distributions ``action_to_ctrl`` understands."""

ORIENTATION = slice(3, 7)
"""Quaternion columns of the ``object_pose`` datapack."""


def _datapack(datapacks: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    if name not in datapacks:
        raise ValueError(
            f"[shadow_hand] sensation: expected physics datapack {name!r}. "
            f"Received: {sorted(datapacks)}"
        )
    return np.asarray(datapacks[name], dtype=np.float64)


def has_object(datapacks: Mapping[str, np.ndarray]) -> bool:
    """True when ``object_pose`` describes a real object (the engine sends zeros otherwise)."""
    if "object_pose" not in datapacks:
        return False
    pose = np.asarray(datapacks["object_pose"])
    return bool(np.any(pose[:, ORIENTATION] != 0.0))


def sensation_from_physics(
    datapacks: Mapping[str, np.ndarray],
    goal: np.ndarray | None = None,
    goal_orientation: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Turn the physics engine's datapacks into sensation modalities.

    Args:
        datapacks: Physics datapacks by name: ``joint_positions``, ``joint_velocities``,
            ``touch``, ``fingertip_positions`` and, for object tasks, ``object_pose`` and
            ``object_velocities``.
        goal: The task's goal vector ``[W, G]``, or ``None`` for no goal modality.
        goal_orientation: The object's goal orientation ``[W, 4]`` (w, x, y, z), for the
            relative orientation in ``asymmetric``; ignored without an object.

    Returns:
        ``{"proprioception", "touch", "asymmetric"}`` and ``"goal"`` when given, each
        ``[W, n]`` float64.

    Raises:
        ValueError: If a needed datapack is missing or the worlds disagree.
    """
    positions = _datapack(datapacks, "joint_positions")
    n_worlds = positions.shape[0]
    sensation = {
        "proprioception": np.concatenate(
            [positions, _datapack(datapacks, "joint_velocities")], axis=-1
        ),
        "touch": _datapack(datapacks, "touch"),
    }
    asymmetric = [_datapack(datapacks, "fingertip_positions").reshape(n_worlds, -1)]
    if has_object(datapacks):
        asymmetric.append(_datapack(datapacks, "object_velocities"))
        if goal_orientation is not None:
            orientation = _datapack(datapacks, "object_pose")[:, ORIENTATION]
            asymmetric.append(quat_difference(np.asarray(goal_orientation), orientation))
    sensation["asymmetric"] = np.concatenate(asymmetric, axis=-1)
    if goal is not None:
        sensation["goal"] = np.asarray(goal, dtype=np.float64).reshape(n_worlds, -1)
    for name, value in sensation.items():
        if value.shape[0] != n_worlds:
            raise ValueError(
                f"[shadow_hand] sensation: expected {n_worlds} worlds in every modality. "
                f"Received: {name} with shape {value.shape}"
            )
    return sensation


def _bounds(sample: np.ndarray, ctrlrange: np.ndarray, who: str) -> tuple[np.ndarray, np.ndarray]:
    ctrlrange = np.asarray(ctrlrange, dtype=np.float64)
    if ctrlrange.ndim != 2 or ctrlrange.shape[1] != 2:
        raise ValueError(
            f"[shadow_hand] {who}: expected ctrlrange of shape [nu, 2]. "
            f"Received: shape {ctrlrange.shape}"
        )
    if sample.shape[-1:] != ctrlrange.shape[:1]:
        raise ValueError(
            f"[shadow_hand] {who}: expected samples of shape [..., {ctrlrange.shape[0]}] "
            f"(one per actuator). Received: shape {sample.shape}"
        )
    if not np.all(np.isfinite(sample)):
        raise ValueError(f"[shadow_hand] {who}: expected finite samples. Received: NaN or inf")
    return ctrlrange[:, 0], ctrlrange[:, 1]


def _lerp(low: np.ndarray, high: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """``low`` at fraction 0 and ``high`` at fraction 1, exactly."""
    return (1.0 - fraction) * low + fraction * high


def beta_to_ctrl(sample: np.ndarray, ctrlrange: np.ndarray) -> np.ndarray:
    """Map Beta samples in [0, 1] ``[..., nu]`` to ``low + x (high - low)``.

    Samples are clipped to [0, 1] first (a float Beta sampler can overshoot by rounding).

    Raises:
        ValueError: If shapes disagree or a sample is not finite.
    """
    sample = np.asarray(sample, dtype=np.float64)
    low, high = _bounds(sample, ctrlrange, "beta_to_ctrl")
    return _lerp(low, high, np.clip(sample, 0.0, 1.0))


def gaussian_to_ctrl(sample: np.ndarray, ctrlrange: np.ndarray) -> np.ndarray:
    """Clip Gaussian samples ``[..., nu]`` to the control range.

    Raises:
        ValueError: If shapes disagree or a sample is not finite.
    """
    sample = np.asarray(sample, dtype=np.float64)
    low, high = _bounds(sample, ctrlrange, "gaussian_to_ctrl")
    return np.clip(sample, low, high)


def bins_to_ctrl(bins: np.ndarray, ctrlrange: np.ndarray, n_bins: int) -> np.ndarray:
    """Map bin indices ``b`` in ``{0..K-1}`` ``[..., nu]`` to bin centres.

    ``[low, high]`` is cut into ``K = n_bins`` equal bins; bin ``b`` maps to
    ``low + (b + 0.5) (high - low) / K``.

    Raises:
        ValueError: If ``n_bins < 1``, shapes disagree, or an index is not an integer in
            ``[0, K - 1]``.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(
            f"[shadow_hand] bins_to_ctrl: expected n_bins >= 1. Received: n_bins={n_bins!r}"
        )
    indices = np.asarray(bins)
    low, high = _bounds(indices.astype(np.float64), ctrlrange, "bins_to_ctrl")
    if indices.dtype.kind not in "iu" and np.any(indices != np.round(indices)):
        raise ValueError(
            f"[shadow_hand] bins_to_ctrl: expected integer bin indices. "
            f"Received: dtype={indices.dtype}"
        )
    if np.any((indices < 0) | (indices >= n_bins)):
        raise ValueError(
            f"[shadow_hand] bins_to_ctrl: expected bin indices in [0, {n_bins - 1}]. "
            f"Received: min={indices.min()}, max={indices.max()}"
        )
    return _lerp(low, high, (indices.astype(np.float64) + 0.5) / n_bins)


def action_to_ctrl(
    distribution: str,
    sample: np.ndarray,
    ctrlrange: np.ndarray,
    n_bins: int | None = None,
) -> np.ndarray:
    """Map a policy sample to actuator targets for the policy's distribution.

    Args:
        distribution: ``"beta"``, ``"gaussian"`` or ``"multicategorical"``.
        sample: The policy's sample ``[..., nu]`` (bin indices for multicategorical).
        ctrlrange: The engine's ``actuator_ctrlrange`` ``[nu, 2]``.
        n_bins: Bins per actuator; required for ``"multicategorical"``.

    Raises:
        ValueError: If the distribution is unknown, ``n_bins`` is missing, or the sample is
            invalid for the distribution.
    """
    if distribution == BETA:
        return beta_to_ctrl(sample, ctrlrange)
    if distribution == GAUSSIAN:
        return gaussian_to_ctrl(sample, ctrlrange)
    if distribution == MULTICATEGORICAL:
        if n_bins is None:
            raise ValueError(
                "[shadow_hand] action_to_ctrl: expected n_bins for a multicategorical "
                "distribution. Received: n_bins=None"
            )
        return bins_to_ctrl(sample, ctrlrange, n_bins)
    raise ValueError(
        f"[shadow_hand] action_to_ctrl: expected a distribution among {list(DISTRIBUTIONS)}. "
        f"Received: {distribution!r}"
    )
