"""Free reach: bring the thumb tip to a target fingertip, wherever they meet.

The goal is a one-hot choice of the target finger ``[W, 4]`` (ff, mf, rf, lf), drawn among
``fingers``.

Reward terms (AngoraPy's free reach reward, force penalty left out):

- ``distance``: ``-|thumb tip - target fingertip|`` (m), weight 1: the closer, the better.
- ``success``: 1 when that distance is below ``SUCCESS_DISTANCE``, weight 0.1.
- ``zone``: ``-sum(max(0, ZONE_RADIUS - |thumb tip - other fingertip|))`` over the three other
  fingers, weight 0.01: other fingertips are penalised for entering a zone around the thumb.
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
from neuroloop.plugins.experiments.reach import EPISODE_STEPS, FINGERS, THUMB

TARGET_FINGERS = 4
"""Fingers the thumb may have to meet: ff, mf, rf, lf (indices 0..3 of the fingertips)."""

SUCCESS_DISTANCE = 0.02
"""Success when the thumb tip is closer than this to the target fingertip (m)."""

ZONE_RADIUS = 0.06015
"""Radius (m) of the zone around the thumb tip that other fingertips are penalised inside
(AngoraPy: the thumb-forefinger distance of its initial pose)."""


class FreeReachTask(Task):
    """Thumb tip meets a chosen fingertip anywhere; other fingertips keep out of its way.

    Args:
        success_distance: Thumb-target distance (m) under which the goal counts as reached.
        zone_radius: Radius (m) of the penalty zone around the thumb tip.
        fingers: Fingers (among ``FINGERS``) the target is drawn from.
        reward_weights: Weights of the ``distance``, ``success`` and ``zone`` terms.
        episode_steps: Control steps per episode.

    Raises:
        ValueError: If an option is invalid; the message names it.
    """

    name: ClassVar[str] = "freereach"
    world_datapack: ClassVar[str] = "fingertip_positions"
    metric: ClassVar[str] = "success"
    default_reward_config: ClassVar[dict[str, float]] = {
        "distance": 1.0,
        "success": 0.1,
        "zone": 0.01,
    }

    def __init__(
        self,
        *,
        success_distance: float = SUCCESS_DISTANCE,
        zone_radius: float = ZONE_RADIUS,
        fingers: Sequence[str] = FINGERS,
        reward_weights: Mapping[str, float] | None = None,
        episode_steps: int | None = EPISODE_STEPS,
    ) -> None:
        super().__init__(reward_weights=reward_weights, episode_steps=episode_steps)
        self.success_distance = positive_number(self.name, "success_distance", success_distance)
        self.zone_radius = positive_number(self.name, "zone_radius", zone_radius)
        self.fingers = names_among(self.name, "fingers", fingers, FINGERS)
        self.finger_indices = np.asarray([FINGERS.index(finger) for finger in self.fingers])
        """Fingertip index of each of ``fingers``."""

    def sample_goal(self, rng: np.random.Generator, state: State) -> np.ndarray:
        """A one-hot target finger ``[W, 4]``, uniformly chosen among ``fingers``."""
        n_worlds = self.n_worlds(state)
        target = self.finger_indices[rng.integers(0, len(self.finger_indices), n_worlds)]
        return np.eye(TARGET_FINGERS)[target]

    def target(self, goal: np.ndarray) -> np.ndarray:
        """Fingertip index ``[W]`` of the target finger encoded by one-hot ``goal``.

        Raises:
            ValueError: If ``goal`` is not one-hot ``[W, 4]``.
        """
        goal = np.asarray(goal)
        if goal.ndim != 2 or goal.shape[1] != TARGET_FINGERS or np.any(goal.sum(axis=1) != 1):
            raise ValueError(
                f"[{self.name}] goal: expected one-hot rows of shape [W, {TARGET_FINGERS}]. "
                f"Received: shape {goal.shape}"
            )
        return np.argmax(goal, axis=1)

    def thumb_distances(self, state: State) -> np.ndarray:
        """Distance ``[W, 4]`` from the thumb tip to each other fingertip (m)."""
        tips = self.array(state, "fingertip_positions")
        return np.linalg.norm(tips[:, :THUMB] - tips[:, THUMB : THUMB + 1], axis=-1)

    def reward_terms(self, prev_state: State, state: State, goal: np.ndarray) -> RewardTerms:
        distances = self.thumb_distances(state)
        target = self.target(goal)
        is_target = np.eye(TARGET_FINGERS, dtype=bool)[target]
        to_target = distances[np.arange(distances.shape[0]), target]
        intrusion = np.where(is_target, 0.0, np.maximum(0.0, self.zone_radius - distances))
        return {
            "distance": -to_target,
            "success": (to_target < self.success_distance).astype(np.float64),
            "zone": -intrusion.sum(axis=1),
        }

    def success(self, state: State, goal: np.ndarray) -> np.ndarray:
        distances = self.thumb_distances(state)
        return distances[np.arange(distances.shape[0]), self.target(goal)] < self.success_distance
