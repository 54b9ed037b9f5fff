"""The center-out task: targets on a circle, success, reach metrics, and its trial functions
running on the arm26 body."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroloop.datapack import DataPackIdentifier
from neuroloop.plugins.experiments.center_out import (
    CenterOutTask,
    reach_metrics,
    target_positions,
)
from neuroloop.simulation import Simulation
from neuroloop.tasks import task_class

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "simulation_configs" / "arm26_center_out.json"

GOAL_CUE = DataPackIdentifier("goal_cue", "physics")
CENTER = np.array([-0.017, 0.454])
DT_S = 0.01


def test_eight_targets_lie_evenly_on_the_circle() -> None:
    targets = target_positions(CENTER, 0.1, 8)
    assert targets.shape == (8, 2)
    offsets = targets - CENTER
    np.testing.assert_allclose(np.linalg.norm(offsets, axis=1), 0.1)
    angles = np.degrees(np.arctan2(offsets[:, 1], offsets[:, 0])) % 360
    np.testing.assert_allclose(angles, np.arange(8) * 45.0, atol=1e-9)


def test_goals_are_drawn_around_the_hand_and_success_is_within_the_distance() -> None:
    task = CenterOutTask(radius=0.1, success_distance=0.01)
    hands = np.array([[0.0, 0.4, 0.0], [0.1, 0.5, 0.0], [-0.1, 0.3, 0.0]])
    goal = task.sample_goal(np.random.default_rng(0), {"hand_position": hands})
    assert goal.shape == (3, 4)
    np.testing.assert_array_equal(goal[:, 2:4], hands[:, 0:2])  # the centre is the hand
    np.testing.assert_allclose(np.linalg.norm(goal[:, 0:2] - goal[:, 2:4], axis=1), 0.1)
    # 9 mm from the target succeeds, 11 mm does not (the z coordinate does not count).
    near = np.c_[goal[:, 0] + 0.009, goal[:, 1], np.full(3, 0.5)]
    far = np.c_[goal[:, 0], goal[:, 1] - 0.011, np.zeros(3)]
    assert task.success({"hand_position": near}, goal).all()
    assert not task.success({"hand_position": far}, goal).any()
    terms = task.reward_terms({}, {"hand_position": far}, goal)
    np.testing.assert_allclose(terms["distance"], -0.011)
    assert task_class("center_out") is CenterOutTask  # the installed entry point


def test_reach_metrics_of_paths_with_known_answers() -> None:
    hold_s, steps = 0.2, 101
    time = np.arange(steps) * DT_S
    goal = np.r_[CENTER + np.array([0.1, 0.0]), CENTER][None]  # the target 10 cm along +x
    # A straight reach: holds at the centre, then a minimum-jerk profile over 0.5 s.
    phase = np.clip((time - hold_s) / 0.5, 0.0, 1.0)
    profile = 10 * phase**3 - 15 * phase**4 + 6 * phase**5
    straight = CENTER + np.outer(profile, [0.1, 0.0])
    # The same reach bowed sideways by 2 cm at its middle (a sine bump), stopping 2 cm short.
    bowed = CENTER + np.c_[0.08 * profile, 0.02 * np.sin(np.pi * profile)]
    paths = np.stack([straight, bowed], axis=1)  # [T, 2 trials, 2]
    metrics = reach_metrics(paths, np.repeat(goal, 2, axis=0), DT_S, hold_s, 0.01)
    np.testing.assert_allclose(metrics.endpoint_error, [0.0, 0.02], atol=1e-12)
    np.testing.assert_array_equal(metrics.success, [True, False])
    np.testing.assert_allclose(metrics.max_deviation, [0.0, 0.02], atol=1e-4)
    np.testing.assert_allclose(metrics.path_ratio[0], 1.0)
    # The bump makes the bowed path longer than its 8 cm chord.
    assert metrics.path_ratio[1] > 0.8 and metrics.max_deviation[1] > 0.019
    # Time to target: the first sample after the cue with the profile past 0.9 (1 cm short).
    first = np.flatnonzero(profile > 0.9)[0]
    assert metrics.time_to_target[0] == pytest.approx(time[first] - hold_s)
    assert np.isnan(metrics.time_to_target[1])


def test_the_trial_functions_cue_the_target_and_reset_the_arm() -> None:
    with Simulation.from_config(CONFIG, local=True, seed=0) as sim:
        cues, hands = [], []
        for _ in range(101):  # one trial (1 s) and the first step of the next
            sim.step()
            cues.append(np.asarray(sim.loop.store.preprocessed[GOAL_CUE].data))
            hands.append(np.asarray(sim.datapack("hand_position", "physics")))
        status = sim.loop.functions.last_status
    cues_array, hands_array = np.stack(cues), np.stack(hands)
    center = cues_array[0, :, 0:2]
    holding, reaching = cues_array[:19], cues_array[21:99]
    assert np.all(holding[..., 2] == 0) and np.all(reaching[..., 2] == 1)
    np.testing.assert_allclose(holding[..., 0:2], np.broadcast_to(center, holding[..., :2].shape))
    distance = np.linalg.norm(reaching[..., 0:2] - center, axis=-1)
    np.testing.assert_allclose(distance, 0.1, atol=1e-6)
    # With no excitation the hand stays far from the target: each trial fails, and the
    # reported endpoint error is the hand's distance to the target at the trial's end.
    assert status["trials"] == 4 and status["success"] == 0.0
    expected = np.linalg.norm(hands_array[99, :, 0:2] - reaching[-1, :, 0:2], axis=-1)
    assert status["endpoint_error"] == pytest.approx(expected.mean(), rel=1e-5)
    # After the trial every world was reset: the hand is back near the centre.
    np.testing.assert_allclose(hands_array[100, :, 0:2], center, atol=0.005)
