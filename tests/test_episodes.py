"""TaskEpisodes on hand-built states: episode clocks, resets, rewards and the metric."""

from __future__ import annotations

import numpy as np
import pytest

from neuroloop.plugins.experiments.episodes import TaskEpisodes
from neuroloop.plugins.experiments.registry import get_task

IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])
PALM = np.array([1.0, 0.9, 0.2])
RESTING = PALM + np.array([0.0, 0.0, 0.03])


def reach_state(shift: float, worlds: int = 2) -> dict[str, np.ndarray]:
    tips = np.tile(np.linspace(0.0, 0.1, 15).reshape(5, 3), (worlds, 1, 1)) + shift
    return {"fingertip_positions": tips, "palm_position": np.tile(PALM, (worlds, 1))}


def block_state(heights: list[float], quat: np.ndarray = IDENTITY) -> dict[str, np.ndarray]:
    worlds = len(heights)
    position = np.tile(RESTING, (worlds, 1))
    position[:, 2] = heights
    pose = np.concatenate([position, np.tile(quat, (worlds, 1))], axis=1)
    return {"object_pose": pose, "palm_position": np.tile(PALM, (worlds, 1))}


def test_reach_episodes_are_truncated_after_their_length_and_restart() -> None:
    episodes = TaskEpisodes(get_task("reach"), control_dt_s=0.04, episode_steps=3, seed=1)
    first = episodes.observe(reach_state(0.0))
    assert first.episode_start.all() and not first.done.any()
    np.testing.assert_array_equal(first.reward, 0.0)
    goal = first.goal
    outcomes = [episodes.observe(reach_state(0.001 * k)) for k in (1, 2, 3)]
    assert [o.truncated.tolist() for o in outcomes] == [[False, False]] * 2 + [[True, True]]
    assert not any(o.terminated.any() for o in outcomes)
    for outcome in outcomes:
        np.testing.assert_array_equal(outcome.goal, goal)  # reach keeps its goal
        assert not outcome.episode_start.any()
    # The distance term is minus the 15-D distance between fingertips and goal.
    tips = reach_state(0.003)["fingertip_positions"].reshape(2, 15)
    expected = -np.linalg.norm(tips - goal, axis=1)
    np.testing.assert_allclose(outcomes[-1].reward_terms["distance"], expected)
    again = episodes.observe(reach_state(0.0))
    assert again.episode_start.all()
    np.testing.assert_array_equal(again.reward, 0.0)
    assert not np.array_equal(again.goal, goal)  # a new goal for the new episode
    summary = episodes.record.summary()
    assert summary["episodes"] == 2 and summary["mean_length"] == 3
    expected_return = sum(float(o.reward[0]) for o in outcomes)
    assert episodes.record.returns[0] == pytest.approx(expected_return)


def test_the_episode_metric_is_published_where_episodes_end() -> None:
    """Reach's metric is final success: a goal on the fingertips' path succeeds in world 0."""
    episodes = TaskEpisodes(get_task("reach"), control_dt_s=0.04, episode_steps=2, seed=1)
    first = episodes.observe(reach_state(0.0))
    # World 0 reaches its goal exactly at the last step; world 1 stays 10 cm away.
    episodes._goal[0] = reach_state(0.002)["fingertip_positions"][0].reshape(15)
    episodes._goal[1] = first.goal[1] + 0.1
    middle = episodes.observe(reach_state(0.001))
    last = episodes.observe(reach_state(0.002))
    assert np.isnan(first.metric).all() and np.isnan(middle.metric).all()
    np.testing.assert_array_equal(last.metric, [1.0, 0.0])
    assert list(episodes.record.metrics) == [1.0, 0.0]  # the status counts the same episodes


def test_a_dropped_block_terminates_only_its_world() -> None:
    task = get_task("manipulate_block")
    episodes = TaskEpisodes(task, control_dt_s=0.04, seed=0)
    episodes.observe(block_state([RESTING[2], RESTING[2]]))
    dropped = episodes.observe(block_state([RESTING[2], PALM[2] - 0.1]))
    assert dropped.terminated.tolist() == [False, True]
    assert not dropped.truncated.any()
    assert dropped.reward_terms["drop"].tolist() == [0.0, -20.0]
    assert dropped.reward_terms["time"].tolist() == [-0.1, -0.1]
    following = episodes.observe(block_state([RESTING[2], RESTING[2]]))
    assert following.episode_start.tolist() == [False, True]
    assert following.reward[1] == 0.0
    assert list(episodes.record.metrics) == [0.0]  # no goal reached before the drop


def test_block_goals_are_counted_and_replaced_and_the_goal_clock_truncates() -> None:
    task = get_task("manipulate_block")
    episodes = TaskEpisodes(task, control_dt_s=4.0, seed=2)
    start = episodes.observe(block_state([RESTING[2]]))
    reached = episodes.observe(block_state([RESTING[2]], start.goal[0]))
    assert reached.success.tolist() == [True]
    assert reached.reward_terms["success"].tolist() == [5.0]
    assert not np.allclose(reached.goal, start.goal)  # a new goal after each success
    # Two more 4 s steps without reaching the new goal: 8 s on one goal truncates.
    episodes.observe(block_state([RESTING[2]], start.goal[0]))
    timed_out = episodes.observe(block_state([RESTING[2]], start.goal[0]))
    assert timed_out.truncated.tolist() == [True]
    assert list(episodes.record.metrics) == [1.0]  # one consecutive goal reached


def test_episode_steps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="episode_steps"):
        TaskEpisodes(get_task("reach"), control_dt_s=0.04, episode_steps=0)


def test_the_summary_covers_the_most_recent_episodes() -> None:
    from neuroloop.plugins.experiments.episodes import RECENT_EPISODES, EpisodeRecord

    record = EpisodeRecord()
    for k in range(RECENT_EPISODES + 50):
        record.add(float(k), 10, 1.0 if k >= 50 else 0.0)
    summary = record.summary()
    assert summary["episodes"] == RECENT_EPISODES + 50
    assert summary["recent"] == RECENT_EPISODES
    assert summary["mean_metric"] == 1.0  # the first 50 episodes (metric 0) have left
