"""Shadow Hand transceivers: pure functions, no server."""

from __future__ import annotations

import numpy as np
import pytest

from neuroloop.plugins.experiments.rotations import quat_from_axis_angle, quat_mul
from neuroloop.plugins.transceivers.shadow_hand import has_object, sensation_from_physics
from neuroloop.sensation import Sensation


def physics(worlds: int, with_object: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    pose = np.zeros((worlds, 7))
    if with_object:
        pose[:, :3] = [1.0, 0.87, 0.17]
        pose[:, 3] = 1.0
    return {
        "joint_positions": rng.normal(size=(worlds, 24)),
        "joint_velocities": rng.normal(size=(worlds, 24)),
        "touch": rng.uniform(size=(worlds, 97)),
        "fingertip_positions": rng.normal(size=(worlds, 5, 3)),
        "object_pose": pose,
        "object_velocities": rng.normal(size=(worlds, 6)) if with_object else np.zeros((worlds, 6)),
    }


def test_sensation_without_object() -> None:
    packs = physics(3, with_object=False)
    goal = np.arange(3 * 15, dtype=float).reshape(3, 15)
    sensation = sensation_from_physics(packs, goal=goal, goal_orientation=np.ones((3, 4)))
    assert not has_object(packs)
    assert set(sensation) == {"proprioception", "touch", "goal", "asymmetric"}
    np.testing.assert_array_equal(sensation["proprioception"][:, :24], packs["joint_positions"])
    np.testing.assert_array_equal(sensation["proprioception"][:, 24:], packs["joint_velocities"])
    np.testing.assert_array_equal(sensation["touch"], packs["touch"])
    np.testing.assert_array_equal(sensation["goal"], goal)
    np.testing.assert_array_equal(
        sensation["asymmetric"], packs["fingertip_positions"].reshape(3, 15)
    )


def test_sensation_with_object_adds_velocities_and_relative_orientation() -> None:
    packs = physics(2, with_object=True)
    turn = quat_from_axis_angle(np.array([0.0, 0.0, 1.0]), np.array([0.3, -0.3]))
    goal = quat_mul(turn, packs["object_pose"][:, 3:])
    sensation = sensation_from_physics(packs, goal=goal, goal_orientation=goal)
    asymmetric = sensation["asymmetric"]
    assert asymmetric.shape == (2, 15 + 6 + 4)
    np.testing.assert_array_equal(asymmetric[:, 15:21], packs["object_velocities"])
    np.testing.assert_allclose(asymmetric[:, 21:], turn, atol=1e-12)
    assert "goal" in sensation and sensation["goal"].shape == (2, 4)
    without_goal = sensation_from_physics(packs)
    assert "goal" not in without_goal
    assert without_goal["asymmetric"].shape == (2, 21)


def test_sensation_names_a_missing_datapack() -> None:
    packs = physics(1, with_object=False)
    del packs["touch"]
    with pytest.raises(ValueError, match=r"expected physics datapack 'touch'"):
        sensation_from_physics(packs)


def test_sensation_dict_builds_a_sensation() -> None:
    packs = physics(2, with_object=True)
    sensation = Sensation(**sensation_from_physics(packs, goal=np.ones((2, 4))))
    assert sensation.asymmetric is not None and sensation.asymmetric.shape == (2, 21)
