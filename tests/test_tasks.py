"""Tasks: rewards, success and termination on hand-built states with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroloop.engine import EngineHost
from neuroloop.plugins.engines.mujoco_engine import MujocoEngine
from neuroloop.plugins.experiments import GoalProgress, get_task, total_reward
from neuroloop.plugins.experiments.freereach import ZONE_RADIUS, FreeReachTask
from neuroloop.plugins.experiments.manipulate_block import (
    DROP_DEPTH,
    GOAL_TIMEOUT_S,
    MAX_GOALS,
    SUCCESS_ROTATION,
    ManipulateBlockTask,
)
from neuroloop.plugins.experiments.reach import (
    MEETING_GAP,
    MEETING_POINT_OFFSET,
    SUCCESS_DISTANCE,
    ReachTask,
)
from neuroloop.plugins.experiments.rotations import (
    quat_difference,
    quat_from_axis_angle,
    quat_mul,
    random_quaternions,
    rotation_distance,
)

X_AXIS = np.array([1.0, 0.0, 0.0])
Z_AXIS = np.array([0.0, 0.0, 1.0])
IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])
PALM = np.array([1.0, 0.96, 0.14])
SHADOW_HAND = str(
    Path(__file__).resolve().parents[1] / "experiments" / "bodies" / "shadow_hand.yaml"
)
CONTROL_DT_S = 0.02


# ---------------------------------------------------------------------------- rotations


def test_rotation_distance_of_known_rotations() -> None:
    angles = np.array([0.0, 0.3, 1.0, np.pi / 2, np.pi])
    turned = quat_from_axis_angle(np.tile(X_AXIS, (5, 1)), angles)
    np.testing.assert_allclose(rotation_distance(turned, np.tile(IDENTITY, (5, 1))), angles)
    # q and -q are the same orientation; scale does not matter.
    np.testing.assert_allclose(rotation_distance(-2.0 * turned[1], turned[1]), 0.0, atol=1e-7)
    # Distance is invariant under a common rotation.
    common = quat_from_axis_angle(Z_AXIS, 0.7)
    np.testing.assert_allclose(
        rotation_distance(quat_mul(common, turned[2]), quat_mul(common, IDENTITY)), 1.0
    )


def test_quat_difference_turns_b_into_a() -> None:
    b = quat_from_axis_angle(np.array([0.3, -0.2, 0.9]), 1.1)
    turn = quat_from_axis_angle(Z_AXIS, -0.4)
    a = quat_mul(turn, b)
    diff = quat_difference(a, b)
    np.testing.assert_allclose(diff, turn * np.sign(turn[0]), atol=1e-12)
    np.testing.assert_allclose(quat_mul(diff, b), a, atol=1e-12)


def test_random_quaternions_are_unit_and_canonical() -> None:
    q = random_quaternions(np.random.default_rng(0), 1000)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0)
    assert np.all(q[:, 0] >= 0)
    # Uniform rotations: the mean rotation angle is pi/2 + 2/pi.
    angle = rotation_distance(q, np.tile(IDENTITY, (1000, 1)))
    assert abs(angle.mean() - (np.pi / 2 + 2 / np.pi)) < 0.05


# ---------------------------------------------------------------------------- block


def block_state(angle: np.ndarray, height_below_palm: np.ndarray | float = -0.027) -> dict:
    """Cube turned by ``angle`` about x from the identity, at a height relative to the palm."""
    angle = np.atleast_1d(np.asarray(angle, dtype=float))
    worlds = angle.size
    pose = np.zeros((worlds, 7))
    pose[:, :3] = PALM
    pose[:, 2] = PALM[2] - np.broadcast_to(height_below_palm, (worlds,))
    pose[:, 3:] = quat_from_axis_angle(np.tile(X_AXIS, (worlds, 1)), angle)
    return {"object_pose": pose, "palm_position": np.tile(PALM, (worlds, 1))}


def identity_goals(worlds: int) -> np.ndarray:
    return np.tile(IDENTITY, (worlds, 1))


def test_block_progress_is_the_decrease_in_rotation_distance() -> None:
    task = ManipulateBlockTask()
    goal = identity_goals(2)
    prev, now = block_state(np.array([1.0, 0.5])), block_state(np.array([0.5, 1.0]))
    terms = task.reward(prev, now, goal)
    np.testing.assert_allclose(terms["progress"], [0.5, -0.5])


def test_block_success_threshold_is_inclusive() -> None:
    task = ManipulateBlockTask()
    angles = np.array([SUCCESS_ROTATION - 1e-6, SUCCESS_ROTATION, SUCCESS_ROTATION + 1e-6])
    success = task.success(block_state(angles), identity_goals(3))
    np.testing.assert_array_equal(success, [True, True, False])


def test_block_drop_detection_and_termination() -> None:
    task = ManipulateBlockTask()
    depth = np.array([-0.027, DROP_DEPTH - 1e-6, DROP_DEPTH + 1e-6, 0.115])
    state = block_state(np.zeros(4), depth)
    np.testing.assert_array_equal(task.dropped(state), [False, False, True, True])
    np.testing.assert_array_equal(task.terminated(state, identity_goals(4)), task.dropped(state))


def test_block_reward_combines_weighted_terms() -> None:
    task = ManipulateBlockTask()
    goal = identity_goals(2)
    prev = block_state(np.array([0.5, 0.5]))
    now = block_state(np.array([0.3, 0.6]), np.array([-0.027, 0.1]))
    terms = task.reward(prev, now, goal)
    assert set(terms) == {"progress", "success", "drop", "time"}
    # World 0: progress 0.2, success, on the palm. World 1: progress -0.1, no success, dropped.
    np.testing.assert_allclose(total_reward(terms), [0.2 + 5.0 - 0.1, -0.1 - 20.0 - 0.1])
    ablated = task.reward(prev, now, goal, {"drop": 0.0, "time": 0.0})
    np.testing.assert_allclose(total_reward(ablated), [5.2, -0.1])
    with pytest.raises(ValueError, match=r"\[manipulate_block\] reward config.*'dorp'"):
        task.reward(prev, now, goal, {"dorp": 1.0})


def test_block_goals_advance_on_success_up_to_the_budget() -> None:
    task = ManipulateBlockTask()
    progress = GoalProgress.start(2)
    for _ in range(MAX_GOALS - 1):
        progress, new_goal, truncated = task.advance(progress, np.array([True, False]), 0.02)
        assert new_goal.tolist() == [True, False]
        assert not truncated[0]
    progress, new_goal, truncated = task.advance(progress, np.array([True, False]), 0.02)
    assert progress.goals_reached.tolist() == [MAX_GOALS, 0]
    assert new_goal.tolist() == [False, False]
    assert truncated[0]
    np.testing.assert_array_equal(task.metric_value(progress, np.zeros(2, bool)), [MAX_GOALS, 0])
    assert task.metric == "consecutive_goals_reached"


def test_block_goal_times_out_after_eight_seconds() -> None:
    task = ManipulateBlockTask()
    steps = round(GOAL_TIMEOUT_S / CONTROL_DT_S)
    progress = GoalProgress.start(1)
    for _ in range(steps - 1):
        progress, _, truncated = task.advance(progress, np.array([False]), CONTROL_DT_S)
        assert not truncated[0]
    progress, _, truncated = task.advance(progress, np.array([False]), CONTROL_DT_S)
    assert truncated[0]
    # A success restarts the goal clock.
    progress = GoalProgress.start(1)
    for step in range(steps + 10):
        success = np.array([step == steps // 2])
        progress, _, truncated = task.advance(progress, success, CONTROL_DT_S)
        assert not truncated[0]
    assert progress.restart(np.array([True])).goals_reached.tolist() == [0]


def test_block_goals_are_random_orientations() -> None:
    task = ManipulateBlockTask()
    goal = task.sample_goal(np.random.default_rng(0), block_state(np.zeros(3)))
    assert goal.shape == (3, 4)
    np.testing.assert_allclose(np.linalg.norm(goal, axis=1), 1.0)


# ---------------------------------------------------------------------------- reach


def hand_tips(worlds: int) -> np.ndarray:
    """Fingertips spread across the fingers' ends, thumb to the side (world frame, m)."""
    tips = np.array(
        [
            [1.03, 0.77, 0.14],
            [1.01, 0.76, 0.14],
            [0.99, 0.77, 0.14],
            [0.97, 0.78, 0.14],
            [0.90, 0.86, 0.15],
        ]
    )
    return np.tile(tips, (worlds, 1, 1))


def test_reach_goal_moves_thumb_and_one_finger_to_a_meeting_point() -> None:
    task = ReachTask()
    worlds = 200
    tips = hand_tips(worlds)
    state = {"fingertip_positions": tips, "palm_position": np.tile(PALM, (worlds, 1))}
    goal = task.sample_goal(np.random.default_rng(3), state).reshape(worlds, 5, 3)
    moved = np.any(goal != tips, axis=2)
    stay = ~moved.any(axis=1)
    assert 0 < stay.sum() < 0.25 * worlds
    active = ~stay
    assert np.all(moved[active, 4])
    assert np.all(moved[active, :4].sum(axis=1) == 1)
    meeting = PALM + np.asarray(MEETING_POINT_OFFSET)
    thumb = goal[active, 4]
    assert np.all(np.linalg.norm(thumb - meeting, axis=1) < MEETING_GAP + 0.03)
    finger = goal[active][:, :4][moved[active, :4]]
    np.testing.assert_array_less(np.linalg.norm(thumb - finger, axis=1), 2 * MEETING_GAP + 1e-12)


def test_reach_distance_success_and_reward() -> None:
    task = ReachTask()
    tips = hand_tips(3)
    goal = tips.reshape(3, 15).copy()
    goal[:, 12] += [0.0, SUCCESS_DISTANCE - 1e-6, SUCCESS_DISTANCE]
    state = {"fingertip_positions": tips}
    np.testing.assert_array_equal(task.success(state, goal), [True, True, False])
    terms = task.reward(state, state, goal)
    np.testing.assert_allclose(
        terms["distance"], [0.0, -(SUCCESS_DISTANCE - 1e-6), -SUCCESS_DISTANCE]
    )
    np.testing.assert_allclose(terms["success"], [0.1, 0.1, 0.0])
    assert np.all(task.terminated(state, goal) == False)  # noqa: E712


# ---------------------------------------------------------------------------- free reach


def test_freereach_rewards_closeness_and_penalises_the_zone() -> None:
    task = FreeReachTask()
    tips = np.zeros((1, 5, 3))
    tips[0, 0] = [0.01, 0.0, 0.0]  # target: the forefinger, 1 cm from the thumb
    tips[0, 1] = [0.0, 0.03, 0.0]  # middle finger inside the zone
    tips[0, 2] = [0.0, 0.0, 0.1]  # ring finger outside
    tips[0, 3] = [0.0, -0.07, 0.0]  # little finger outside
    state = {"fingertip_positions": tips}
    goal = np.array([[1.0, 0.0, 0.0, 0.0]])
    terms = task.reward_terms(state, state, goal)
    np.testing.assert_allclose(terms["distance"], [-0.01])
    np.testing.assert_allclose(terms["success"], [1.0])
    np.testing.assert_allclose(terms["zone"], [-(ZONE_RADIUS - 0.03)])
    weighted = task.reward(state, state, goal)
    np.testing.assert_allclose(weighted["zone"], [-0.01 * (ZONE_RADIUS - 0.03)])
    # The target finger is never penalised for being close, whichever it is.
    goal_middle = np.array([[0.0, 1.0, 0.0, 0.0]])
    terms = task.reward_terms(state, state, goal_middle)
    np.testing.assert_allclose(terms["distance"], [-0.03])
    np.testing.assert_allclose(terms["zone"], [-(ZONE_RADIUS - 0.01)])
    np.testing.assert_array_equal(task.success(state, goal_middle), [False])


def test_freereach_goal_is_one_hot() -> None:
    task = FreeReachTask()
    goal = task.sample_goal(np.random.default_rng(0), {"fingertip_positions": hand_tips(50)})
    assert goal.shape == (50, 4)
    np.testing.assert_array_equal(goal.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="one-hot"):
        task.target(np.array([[1.0, 1.0, 0.0, 0.0]]))


# ---------------------------------------------------------------------------- registry


def test_registry() -> None:
    assert isinstance(get_task("reach"), ReachTask)
    assert isinstance(get_task("freereach"), FreeReachTask)
    assert isinstance(get_task("manipulate_block"), ManipulateBlockTask)
    with pytest.raises(ValueError, match=r"get_task: expected one of .*Received: 'lift'"):
        get_task("lift")


@pytest.mark.parametrize(
    ("task_name", "model"), [("reach", "reach"), ("manipulate_block", "manipulate_block")]
)
def test_tasks_run_on_real_engine_states(task_name: str, model: str) -> None:
    engine = MujocoEngine("physics")
    host = EngineHost(engine)
    names = host.initialize(
        {
            "EngineTimestep": CONTROL_DT_S,
            "EngineExtraConfigs": {"Model": model, "Body": SHADOW_HAND, "Worlds": 2},
        }
    )
    outputs = [name for name in names if name not in ("ctrl", "target_pose")]

    def observe(timestep_ns: int) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in host.step([], timestep_ns, outputs)[1].items()}

    host.reset(0)
    task = get_task(task_name)
    state = observe(0)
    goal = task.sample_goal(np.random.default_rng(0), state)
    prev = state
    for _ in range(3):
        state = observe(int(CONTROL_DT_S * 1e9))
        terms = task.reward(prev, state, goal)
        assert set(terms) == set(task.default_reward_config)
        assert all(value.shape == (2,) and np.all(np.isfinite(value)) for value in terms.values())
        prev = state
    assert not np.any(task.terminated(state, goal))
    engine.shutdown()
