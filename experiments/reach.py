"""Reach: the thumb tip meets another fingertip above the palm; the other fingertips stay put.

The goal is a target position for each of the five fingertips ``[W, 15]`` (ff, mf, rf, lf,
th; x, y, z each, world frame), built like gymnasium-robotics' HandReach: a meeting point
above the palm is perturbed, the thumb and one randomly chosen finger are asked to meet
there (each stopping just short of it, so they do not overlap) and the other fingertips keep
their current positions; in a few episodes every fingertip is asked to stay where it is.

Reward terms (AngoraPy's reach reward, force penalty left out):

- ``distance``: ``-|fingertips - goal|`` over all 15 coordinates (m), weight 1.
- ``success``: 1 when that distance is below ``SUCCESS_DISTANCE``, weight 0.1.

The goal stays for the whole episode; the orchestrator's episode length ends it.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from neuroloop.plugins.experiments.base import RewardTerms, State, Task

FINGERTIPS = 5
"""Fingertips in ``fingertip_positions``: ff, mf, rf, lf, th."""

THUMB = 4
"""Index of the thumb in ``fingertip_positions``."""

MEETING_POINT_OFFSET = (0.0, -0.09, 0.05)
"""Meeting point relative to the palm body (m, world frame; the shipped hand's fingers
point along -y and its palm faces +z)."""

MEETING_POINT_NOISE = 0.005
"""Standard deviation (m) of the Gaussian perturbation of the meeting point."""

MEETING_GAP = 0.005
"""Distance (m) short of the meeting point at which each of the two fingertips stops."""

STAY_PROBABILITY = 0.1
"""Chance that a goal asks every fingertip to stay where it is."""

SUCCESS_DISTANCE = 0.02
"""Success when the 15-D distance between fingertips and goal is below this (m)."""


class ReachTask(Task):
    """Thumb meets a finger at a point above the palm; other fingertips stay near their start.

    Args:
        success_distance: Distance (m) under which the goal counts as reached.
    """

    name: ClassVar[str] = "reach"
    world_datapack: ClassVar[str] = "fingertip_positions"
    metric: ClassVar[str] = "success"
    default_reward_config: ClassVar[dict[str, float]] = {"distance": 1.0, "success": 0.1}

    def __init__(self, success_distance: float = SUCCESS_DISTANCE) -> None:
        self.success_distance = success_distance

    def sample_goal(self, rng: np.random.Generator, state: State) -> np.ndarray:
        """Target fingertip positions ``[W, 15]``; reads fingertip and palm positions."""
        tips = self.array(state, "fingertip_positions")
        palm = self.array(state, "palm_position")
        n_worlds = tips.shape[0]
        rows = np.arange(n_worlds)
        finger = rng.integers(0, THUMB, n_worlds)
        meeting = palm + np.asarray(MEETING_POINT_OFFSET)
        meeting = meeting + rng.normal(scale=MEETING_POINT_NOISE, size=meeting.shape)
        goal = tips.copy()
        for index in (np.full(n_worlds, THUMB), finger):
            start = tips[rows, index]
            direction = meeting - start
            direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
            goal[rows, index] = meeting - MEETING_GAP * direction
        stay = rng.uniform(size=n_worlds) < STAY_PROBABILITY
        goal[stay] = tips[stay]
        return goal.reshape(n_worlds, FINGERTIPS * 3)

    def distance(self, state: State, goal: np.ndarray) -> np.ndarray:
        """Euclidean distance ``[W]`` between all fingertip positions and the goal (m)."""
        tips = self.array(state, "fingertip_positions")
        return np.linalg.norm(tips.reshape(tips.shape[0], -1) - goal, axis=-1)

    def reward_terms(self, prev_state: State, state: State, goal: np.ndarray) -> RewardTerms:
        distance = self.distance(state, goal)
        return {
            "distance": -distance,
            "success": (distance < self.success_distance).astype(np.float64),
        }

    def success(self, state: State, goal: np.ndarray) -> np.ndarray:
        return self.distance(state, goal) < self.success_distance
