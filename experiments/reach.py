"""Reach: the thumb tip meets another fingertip above the palm; the other fingertips stay put.

The goal is a target position for each of the five fingertips ``[W, 15]`` (ff, mf, rf, lf,
th; x, y, z each, world frame), built like gymnasium-robotics' HandReach: a meeting point
above the palm is perturbed, the thumb and one randomly chosen finger of ``fingers`` are
asked to meet there (each stopping just short of it, so they do not overlap) and the other
fingertips keep their current positions; in a few episodes every fingertip is asked to stay
where it is.

Reward terms (AngoraPy's reach reward, force penalty left out):

- ``distance``: ``-|fingertips - goal|`` over the thumb and ``fingers`` (m; all five
  fingertips, 15 coordinates, by default), weight 1.
- ``success``: 1 when that distance is below ``success_distance``, weight 0.1.

The goal stays for the whole episode; ``episode_steps`` (default ``EPISODE_STEPS``) ends it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from neuroloop.plugins.experiments.base import (
    RewardTerms,
    State,
    Task,
    names_among,
    positive_number,
)

FINGERTIPS = 5
"""Fingertips in ``fingertip_positions``: ff, mf, rf, lf, th."""

FINGERS = ("ff", "mf", "rf", "lf")
"""Fingers that may meet the thumb, in ``fingertip_positions`` order (indices 0..3)."""

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

STAY = len(FINGERS)
"""``target_finger`` of a goal that asks every fingertip to stay."""

MEETING_TOLERANCE = 1.5
"""A finger meets the thumb in a goal when their goals are closer than this times the
``2 MEETING_GAP`` they are set apart."""

SUCCESS_DISTANCE = 0.02
"""Success when the 15-D distance between fingertips and goal is below this (m)."""

EPISODE_STEPS = 50
"""Control steps per episode: 2 s at a 0.04 s control timestep (as HandReach)."""


class ReachTask(Task):
    """Thumb meets a finger at a point above the palm; other fingertips stay near their start.

    Args:
        fingers: Fingers (among ``FINGERS``) that may be asked to meet the thumb; the goal
            moves only them and the thumb, and the distance counts only them and the thumb.
        success_distance: Distance (m) under which the goal counts as reached.
        reward_weights: Weights of the ``distance`` and ``success`` terms.
        episode_steps: Control steps per episode.

    Raises:
        ValueError: If an option is invalid; the message names it.
    """

    name: ClassVar[str] = "reach"
    world_datapack: ClassVar[str] = "fingertip_positions"
    metric: ClassVar[str] = "success"
    default_reward_config: ClassVar[dict[str, float]] = {"distance": 1.0, "success": 0.1}

    def __init__(
        self,
        *,
        fingers: Sequence[str] = FINGERS,
        success_distance: float = SUCCESS_DISTANCE,
        reward_weights: Mapping[str, float] | None = None,
        episode_steps: int | None = EPISODE_STEPS,
    ) -> None:
        super().__init__(reward_weights=reward_weights, episode_steps=episode_steps)
        self.fingers = names_among(self.name, "fingers", fingers, FINGERS)
        self.success_distance = positive_number(self.name, "success_distance", success_distance)
        indices = sorted(FINGERS.index(finger) for finger in self.fingers)
        self.finger_indices = np.asarray([FINGERS.index(finger) for finger in self.fingers])
        """Fingertip index of each of ``fingers``."""
        scored = [*indices, THUMB]
        self.scored: slice | np.ndarray = (
            slice(None) if len(scored) == FINGERTIPS else np.asarray(scored)
        )
        """Fingertips the distance counts: ``fingers`` and the thumb (a slice when that is
        every fingertip, which spares the per-step copy of fancy indexing)."""

    def sample_goal(self, rng: np.random.Generator, state: State) -> np.ndarray:
        """Target fingertip positions ``[W, 15]``; reads fingertip and palm positions."""
        tips = self.array(state, "fingertip_positions")
        palm = self.array(state, "palm_position")
        n_worlds = tips.shape[0]
        rows = np.arange(n_worlds)
        finger = self.finger_indices[rng.integers(0, len(self.finger_indices), n_worlds)]
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

    def conditions(self, goal: np.ndarray) -> dict[str, np.ndarray]:
        """``target_finger``: index in ``FINGERS`` of the finger asked to meet the thumb, or
        ``STAY`` (= 4) when every fingertip is asked to stay.

        The meeting finger's goal lies ``2 MEETING_GAP`` from the thumb's (both stop short of
        the meeting point); in a stay goal the fingertips keep their spread-out positions.
        """
        tips = np.asarray(goal).reshape(len(goal), FINGERTIPS, 3)
        gap = np.linalg.norm(tips[:, : len(FINGERS)] - tips[:, THUMB : THUMB + 1], axis=-1)
        nearest = gap.argmin(axis=1)
        meets = gap[np.arange(len(gap)), nearest] < MEETING_TOLERANCE * 2 * MEETING_GAP
        return {"target_finger": np.where(meets, nearest, STAY)}

    def distance(self, state: State, goal: np.ndarray) -> np.ndarray:
        """Euclidean distance ``[W]`` between the scored fingertips and their goals (m)."""
        tips = self.array(state, "fingertip_positions")
        goal = np.asarray(goal).reshape(tips.shape)
        offset = tips[:, self.scored] - goal[:, self.scored]
        return np.linalg.norm(offset.reshape(tips.shape[0], -1), axis=-1)

    def reward_terms(self, prev_state: State, state: State, goal: np.ndarray) -> RewardTerms:
        distance = self.distance(state, goal)
        return {
            "distance": -distance,
            "success": (distance < self.success_distance).astype(np.float64),
        }

    def success(self, state: State, goal: np.ndarray) -> np.ndarray:
        return self.distance(state, goal) < self.success_distance

    def goal_markers(self, state: State, goal: np.ndarray) -> np.ndarray:
        """The target position of each fingertip ``[W, 5, 3]`` (ff, mf, rf, lf, th)."""
        return np.asarray(goal).reshape(-1, FINGERTIPS, 3)
