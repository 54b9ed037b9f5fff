"""Center-out reaching: from a central hold, to one of targets on a circle after a go cue.

A trial: the hand holds at the centre (its position at the start of the episode) for
``hold_s``; at the go cue the target, one of ``target_count`` evenly spaced on a circle of
``radius`` around the centre, is shown; the hand has ``reach_s`` to get there. The goal is
``[W, 4]``: target x, y and centre x, y (m, world frame). Which target is visible when, and
the go cue, is the transceivers' business (``transceivers/center_out.py``); this module
holds the geometry, the reward and the reach metrics.

Reward terms:

- ``distance``: ``-|hand - target|`` in the plane (m), weight 1.
- ``success``: 1 when that distance is below ``success_distance``, weight 0.1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from neuroloop.plugins.experiments.base import (
    RewardTerms,
    State,
    Task,
    positive_int,
    positive_number,
)

N_TARGETS = 8
"""Targets on the circle, the first on the +x axis, counter-clockwise."""

RADIUS = 0.10
"""Distance (m) of the targets from the centre."""

HOLD_S = 0.2
"""Seconds the hand holds at the centre before the go cue."""

REACH_S = 0.8
"""Seconds from the go cue to the end of the trial."""

SUCCESS_DISTANCE = 0.01
"""The reach succeeds when the hand ends within this distance (m) of the target."""

PLANE = slice(0, 2)
"""The x, y columns of a 3-D position: the arm moves in the horizontal plane."""


def target_positions(center: np.ndarray, radius: float, target_count: int) -> np.ndarray:
    """Targets ``[..., target_count, 2]`` around ``center`` ``[..., 2]``, target k at angle
    ``2 pi k / target_count`` from +x."""
    angles = 2.0 * np.pi * np.arange(target_count) / target_count
    offsets = radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    return np.asarray(center, dtype=np.float64)[..., None, :] + offsets


def cue(time_s: np.ndarray | float, hold_s: float) -> np.ndarray:
    """The go cue at ``time_s`` seconds into a trial: 0 while holding, 1 from ``hold_s`` on."""
    return (np.asarray(time_s) >= hold_s).astype(np.float64)


@dataclass(frozen=True)
class ReachMetrics:
    """How one reach went, per trial (each array ``[W]``)."""

    endpoint_error: np.ndarray
    """Distance (m) from the hand to the target at the end of the trial."""
    max_deviation: np.ndarray
    """Largest distance (m) of the hand from the straight centre-target segment after the
    go cue: 0 for a perfectly straight reach."""
    path_ratio: np.ndarray
    """Path length after the go cue divided by the centre-target distance (1 = straight)."""
    time_to_target: np.ndarray
    """Seconds from the go cue to the first time the hand is within the success distance of
    the target; NaN if it never is."""
    success: np.ndarray
    """The endpoint error is below the success distance."""

    @classmethod
    def concatenate(cls, parts: Sequence[ReachMetrics]) -> ReachMetrics:
        """The trials of several ``parts`` as one."""
        fields = ("endpoint_error", "max_deviation", "path_ratio", "time_to_target", "success")
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in fields))

    def summary(self) -> dict[str, float]:
        """Means over trials (time to target over the trials that got there)."""
        reached = np.isfinite(self.time_to_target)
        return {
            "success": float(np.mean(self.success)),
            "endpoint_error": float(np.mean(self.endpoint_error)),
            "max_deviation": float(np.mean(self.max_deviation)),
            "path_ratio": float(np.mean(self.path_ratio)),
            "time_to_target": float(np.mean(self.time_to_target[reached]))
            if reached.any()
            else float("nan"),
        }


def reach_metrics(
    path: np.ndarray,
    goal: np.ndarray,
    dt_s: float,
    hold_s: float = HOLD_S,
    success_distance: float = SUCCESS_DISTANCE,
) -> ReachMetrics:
    """Metrics of hand paths ``[T, W, 2]`` (sampled every ``dt_s``, the first at time 0)
    toward goals ``[W, 4]`` (target x, y, centre x, y) with the go cue at ``hold_s``."""
    path = np.asarray(path, dtype=np.float64)[..., PLANE]
    target, center = goal[:, 0:2], goal[:, 2:4]
    go = int(np.ceil(hold_s / dt_s - 1e-9))
    reach = path[go:]
    segment = target - center
    length = np.linalg.norm(segment, axis=-1)
    along = np.clip(np.sum((reach - center) * segment, axis=-1) / length**2, 0.0, 1.0)
    closest = center + along[..., None] * segment
    deviation = np.linalg.norm(reach - closest, axis=-1).max(axis=0)
    travelled = np.linalg.norm(np.diff(reach, axis=0), axis=-1).sum(axis=0)
    distance = np.linalg.norm(reach - target, axis=-1)
    within = distance < success_distance
    first = np.argmax(within, axis=0).astype(np.float64)
    time_to_target = np.where(within.any(axis=0), first * dt_s, np.nan)
    endpoint = distance[-1]
    return ReachMetrics(
        endpoint, deviation, travelled / length, time_to_target, endpoint < success_distance
    )


class CenterOutTask(Task):
    """Reach from the centre to one of ``target_count`` targets on a circle.

    Args:
        radius: Distance (m) of the targets from the centre.
        target_count: Targets on the circle.
        hold_s: Seconds at the centre before the go cue.
        reach_s: Seconds after the go cue.
        success_distance: Distance (m) to the target under which the reach succeeds.
        reward_weights: Weights of the ``distance`` and ``success`` terms.
        episode_steps: Control steps per episode (``None``: only the task ends it).

    Raises:
        ValueError: If an option is invalid; the message names it.
    """

    name: ClassVar[str] = "center_out"
    world_datapack: ClassVar[str] = "hand_position"
    metric: ClassVar[str] = "success"
    default_reward_config: ClassVar[dict[str, float]] = {"distance": 1.0, "success": 0.1}

    def __init__(
        self,
        *,
        radius: float = RADIUS,
        target_count: int = N_TARGETS,
        hold_s: float = HOLD_S,
        reach_s: float = REACH_S,
        success_distance: float = SUCCESS_DISTANCE,
        reward_weights: Mapping[str, float] | None = None,
        episode_steps: int | None = None,
    ) -> None:
        super().__init__(reward_weights=reward_weights, episode_steps=episode_steps)
        self.radius = positive_number(self.name, "radius", radius)
        self.target_count = positive_int(self.name, "target_count", target_count)
        self.hold_s = positive_number(self.name, "hold_s", hold_s)
        self.reach_s = positive_number(self.name, "reach_s", reach_s)
        self.success_distance = positive_number(self.name, "success_distance", success_distance)

    @property
    def trial_s(self) -> float:
        """Seconds per trial: hold, then reach."""
        return self.hold_s + self.reach_s

    def goals(self, center: np.ndarray) -> np.ndarray:
        """Every target's goal around one centre ``[2]``: ``[target_count, 4]``."""
        targets = target_positions(center, self.radius, self.target_count)
        return np.concatenate([targets, np.broadcast_to(center, targets.shape)], axis=-1)

    def metrics(self, path: np.ndarray, goal: np.ndarray, dt_s: float) -> ReachMetrics:
        """Reach metrics of hand paths ``[T, W, 2 or 3]`` sampled every ``dt_s`` from the
        start of the trial, toward goals ``[W, 4]``."""
        return reach_metrics(path, goal, dt_s, self.hold_s, self.success_distance)

    def sample_goal(self, rng: np.random.Generator, state: State) -> np.ndarray:
        """A random target around each world's current hand position ``[W, 4]``."""
        center = self.array(state, "hand_position")[:, PLANE]
        choice = rng.integers(0, self.target_count, center.shape[0])
        targets = target_positions(center, self.radius, self.target_count)
        chosen = targets[np.arange(center.shape[0]), choice]
        return np.concatenate([chosen, center], axis=-1)

    def distance(self, state: State, goal: np.ndarray) -> np.ndarray:
        """Distance ``[W]`` (m) in the plane from the hand to the target."""
        hand = self.array(state, "hand_position")[:, PLANE]
        return np.linalg.norm(hand - np.asarray(goal)[:, 0:2], axis=-1)

    def reward_terms(self, prev_state: State, state: State, goal: np.ndarray) -> RewardTerms:
        distance = self.distance(state, goal)
        return {
            "distance": -distance,
            "success": (distance < self.success_distance).astype(np.float64),
        }

    def success(self, state: State, goal: np.ndarray) -> np.ndarray:
        return self.distance(state, goal) < self.success_distance
