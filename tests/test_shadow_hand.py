"""Shadow Hand transceivers: pure functions, no server."""

from __future__ import annotations

import numpy as np
import pytest

from neuroloop.plugins.experiments.rotations import quat_from_axis_angle, quat_mul
from neuroloop.plugins.transceivers.shadow_hand import (
    action_to_ctrl,
    beta_to_ctrl,
    bins_to_ctrl,
    gaussian_to_ctrl,
    has_object,
    sensation_from_physics,
)
from neuroloop.sensation import Sensation

# The Shadow Hand's first four actuator ranges, with awkward decimals on purpose.
CTRLRANGE = np.array([[-0.489, 0.14], [-0.698, 0.489], [0.0, 1.571], [-1.571, 0.0]])
LOW, HIGH = CTRLRANGE.T


def test_beta_is_exact_at_the_bounds_and_linear_between() -> None:
    np.testing.assert_array_equal(beta_to_ctrl(np.zeros((2, 4)), CTRLRANGE), [LOW, LOW])
    np.testing.assert_array_equal(beta_to_ctrl(np.ones((2, 4)), CTRLRANGE), [HIGH, HIGH])
    np.testing.assert_allclose(beta_to_ctrl(np.full(4, 0.5), CTRLRANGE), (LOW + HIGH) / 2)
    np.testing.assert_allclose(beta_to_ctrl(np.full(4, 0.25), CTRLRANGE), LOW + 0.25 * (HIGH - LOW))


def test_beta_rounding_overshoot_is_clipped() -> None:
    sample = np.array([1.0 + 1e-12, -1e-12, 0.0, 1.0])
    ctrl = beta_to_ctrl(sample, CTRLRANGE)
    np.testing.assert_array_equal(ctrl, [HIGH[0], LOW[1], LOW[2], HIGH[3]])


def test_gaussian_is_clipped_to_the_range() -> None:
    sample = np.array([[-10.0, 0.1, 2.0, -0.5]])
    np.testing.assert_array_equal(
        gaussian_to_ctrl(sample, CTRLRANGE), [[LOW[0], 0.1, HIGH[2], -0.5]]
    )


def test_bins_map_to_bin_centres() -> None:
    k = 5
    width = (HIGH - LOW) / k
    for b in range(k):
        ctrl = bins_to_ctrl(np.full((1, 4), b), CTRLRANGE, k)
        np.testing.assert_allclose(ctrl[0], LOW + (b + 0.5) * width, rtol=0, atol=1e-15)
    # Two bins: the centres sit at a quarter and three quarters of the range.
    np.testing.assert_allclose(
        bins_to_ctrl(np.array([0, 1, 0, 1]), CTRLRANGE, 2),
        [LOW[0] + 0.25 * (HIGH[0] - LOW[0]), LOW[1] + 0.75 * (HIGH[1] - LOW[1]), 0.39275, -0.39275],
    )
    # One bin: the middle of the range.
    np.testing.assert_allclose(bins_to_ctrl(np.zeros(4, int), CTRLRANGE, 1), (LOW + HIGH) / 2)


@pytest.mark.parametrize("bins", [np.array([0, 1, 2, 3]), np.array([-1, 0, 0, 0])])
def test_bins_out_of_range_are_rejected(bins: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"bin indices in \[0, 2\]"):
        bins_to_ctrl(bins, CTRLRANGE, 3)


def test_fractional_bins_are_rejected() -> None:
    with pytest.raises(ValueError, match="integer bin indices"):
        bins_to_ctrl(np.array([0.5, 0.0, 0.0, 0.0]), CTRLRANGE, 3)


def test_action_to_ctrl_dispatches_and_checks() -> None:
    np.testing.assert_array_equal(action_to_ctrl("beta", np.ones(4), CTRLRANGE), HIGH)
    np.testing.assert_array_equal(action_to_ctrl("gaussian", np.full(4, -9.0), CTRLRANGE), LOW)
    np.testing.assert_allclose(
        action_to_ctrl("multicategorical", np.zeros(4, int), CTRLRANGE, n_bins=1), (LOW + HIGH) / 2
    )
    with pytest.raises(ValueError, match="n_bins"):
        action_to_ctrl("multicategorical", np.zeros(4, int), CTRLRANGE)
    with pytest.raises(ValueError, match=r"distribution among.*Received: 'poisson'"):
        action_to_ctrl("poisson", np.zeros(4), CTRLRANGE)


def test_samples_must_match_the_actuators_and_be_finite() -> None:
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 4\].*Received: shape \(2, 3\)"):
        beta_to_ctrl(np.zeros((2, 3)), CTRLRANGE)
    with pytest.raises(ValueError, match="finite"):
        gaussian_to_ctrl(np.array([np.nan, 0, 0, 0]), CTRLRANGE)


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
