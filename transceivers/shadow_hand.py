"""Shadow Hand sensing as a pure function: physics datapacks -> Sensation.

Everything is batched: the first axis of every array is the world.

Sensing (``sensation_from_physics``) returns a dict keyed by Sensation modality:

- ``proprioception``: joint positions ⊕ joint velocities ``[W, 2 nj]``
- ``touch``: touch sensor readings ``[W, nt]``
- ``goal``: the task's goal vector ``[W, G]`` (when given)
- ``asymmetric``: fingertip positions flattened ``[W, 15]``, then, when the model has a free
  object, its velocities ``[W, 6]`` and, when a goal orientation is given, the rotation from
  the object to the goal orientation ``[W, 4]`` (quaternion difference, ``w >= 0``)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from neuroloop.plugins.experiments.rotations import quat_difference

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
