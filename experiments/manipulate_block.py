"""Block manipulation: turn a cube in the hand to a goal orientation, goal after goal.

The goal is a target orientation of the cube ``[W, 4]`` (quaternion w, x, y, z), drawn
uniformly over all rotations (``goal_rotation="xyz"``) or, as in gymnasium-robotics'
``HandManipulateBlockRotateZ`` (``target_rotation="z"``), as a rotation about the world's
vertical of the cube's initial orientation (the model's, which is the identity) by an angle
uniform in ``[-pi, pi)`` (``goal_rotation="z"``). Position is not part of the goal.

Success is an orientation error within ``success_rotation``: 0.4 rad as in OpenAI's Dactyl
(the default); gymnasium-robotics and MuJoCo Playground use 0.1 rad (set the option, or
``neuroloop evaluate --set Task.Options.SuccessRotation=0.1`` to count a policy's goals at
that tolerance).

Reward terms (AngoraPy's / OpenAI's in-hand reorientation reward), weights as magnitudes:

- ``progress``: decrease of the rotation distance to the goal during the step (rad), weight 1.
- ``success``: 1 when the rotation distance is at most ``success_rotation`` and the cube is
  in the hand (not dropped), weight 5.
- ``drop``: -1 when the cube has fallen below the palm, weight 20.
- ``time``: -1 every step, weight 0.1.

A reached goal is replaced by a new one (``new_goal_on_success``), with ``GOAL_TIMEOUT_S``
allowed per goal and at most ``MAX_GOALS`` per episode (both truncate the episode). A drop
terminates it. The metric is the number of consecutive goals reached (CGR).

Each episode starts with the cube turned about the vertical by a uniform random yaw: the
block config's ``RotationNoise`` on ``object:joint`` (the MuJoCo engine draws it, seeded,
at every reset).

Options that make the task easier to learn (all off by default):

- ``observe_object``: the policy's ``goal`` modality also holds the cube's position relative
  to the palm, its orientation and the rotation from it to the goal (Dactyl's policy sees the
  cube's pose, estimated from cameras); otherwise only the value network sees the cube
  (``asymmetric``: its velocities and the rotation to the goal).
- ``relative_control`` and ``action_smoothing``: ``ControlSettings`` of the transceiver.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from neuroloop.plugins.experiments.base import (
    ControlSettings,
    GoalProgress,
    RewardTerms,
    State,
    Task,
    TaskOptionError,
    positive_number,
)
from neuroloop.plugins.experiments.rotations import (
    quat_difference,
    random_quaternions,
    random_z_rotations,
    rotation_distance,
)

SUCCESS_ROTATION = 0.4
"""Success when the cube is within this rotation distance (rad) of the goal."""

GOAL_MARKER_OFFSET = (0.1, 0.0, 0.0)
"""Where the goal-orientation marker cube is shown, relative to the cube (m, world frame):
beside it, as gymnasium-robotics shows a goal whose position is ignored, so it never hides
the cube."""

GOAL_TIMEOUT_S = 8.0
"""Seconds allowed per goal."""

MAX_GOALS = 50
"""Goals per episode."""

DROP_DEPTH = 0.05
"""The cube is dropped when its centre is this far (m) below the palm body's origin (it
rests about 0.027 m above it and falls to about 0.115 m below it, on the floor)."""

POSITION = slice(0, 3)
"""Position columns of ``object_pose``."""

ORIENTATION = slice(3, 7)
"""Quaternion columns of ``object_pose``."""

GOAL_ROTATIONS = ("xyz", "z")
"""Goal orientations: any rotation, or rotations about the vertical only."""

OBJECT_GOAL_SIZE = 15
"""Entries of the ``goal`` modality with ``observe_object``: goal (4), cube position relative
to the palm (3), cube orientation (4), rotation from the cube to the goal (4)."""


class ManipulateBlockTask(Task):
    """In-hand reorientation of a cube.

    Args:
        success_rotation: Rotation distance (rad) at or under which a goal counts as reached.
        drop_depth: Depth (m) below the palm at which the cube counts as dropped.
        reward_weights: Weights of the ``progress``, ``success``, ``drop`` and ``time`` terms.
        episode_steps: Control steps per episode (``None``: the task's own limits).
        goal_rotation: ``"xyz"`` (any orientation) or ``"z"`` (rotations about the vertical).
        observe_object: Put the cube's pose and the rotation to the goal in the policy's
            ``goal`` modality (``OBJECT_GOAL_SIZE`` entries instead of 4).
        relative_control: ``ControlSettings.relative_scale`` (``None``: absolute targets).
        action_smoothing: ``ControlSettings.smoothing``, in ``[0, 1)``.

    Raises:
        ValueError: If an option is invalid; the message names it.
    """

    name: ClassVar[str] = "manipulate_block"
    world_datapack: ClassVar[str] = "object_pose"
    metric: ClassVar[str] = "consecutive_goals_reached"
    default_reward_config: ClassVar[dict[str, float]] = {
        "progress": 1.0,
        "success": 5.0,
        "drop": 20.0,
        "time": 0.1,
    }
    goal_timeout_s: ClassVar[float | None] = GOAL_TIMEOUT_S
    max_goals: ClassVar[int | None] = MAX_GOALS
    new_goal_on_success: ClassVar[bool] = True
    goal_is_orientation: ClassVar[bool] = True

    def __init__(
        self,
        *,
        success_rotation: float = SUCCESS_ROTATION,
        drop_depth: float = DROP_DEPTH,
        reward_weights: Mapping[str, float] | None = None,
        episode_steps: int | None = None,
        goal_rotation: str = "xyz",
        observe_object: bool = False,
        relative_control: float | None = None,
        action_smoothing: float = 0.0,
    ) -> None:
        super().__init__(reward_weights=reward_weights, episode_steps=episode_steps)
        self.success_rotation = positive_number(self.name, "success_rotation", success_rotation)
        self.drop_depth = positive_number(self.name, "drop_depth", drop_depth)
        if goal_rotation not in GOAL_ROTATIONS:
            raise TaskOptionError(
                self.name, "goal_rotation", f"one of {list(GOAL_ROTATIONS)}", goal_rotation
            )
        self.goal_rotation = goal_rotation
        if not isinstance(observe_object, bool):
            raise TaskOptionError(self.name, "observe_object", "true or false", observe_object)
        self.observe_object = observe_object
        if relative_control is not None:
            relative_control = positive_number(self.name, "relative_control", relative_control)
        if (
            isinstance(action_smoothing, bool)
            or not isinstance(action_smoothing, int | float)
            or not 0.0 <= action_smoothing < 1.0
        ):
            raise TaskOptionError(
                self.name, "action_smoothing", "a number in [0, 1)", action_smoothing
            )
        self.control = ControlSettings(relative_control, float(action_smoothing))

    def sample_goal(self, rng: np.random.Generator, state: State) -> np.ndarray:
        """A random target orientation per world ``[W, 4]`` (see ``goal_rotation``)."""
        if self.goal_rotation == "z":
            return random_z_rotations(rng, self.n_worlds(state))
        return random_quaternions(rng, self.n_worlds(state))

    def goal_observation(self, state: State, goal: np.ndarray) -> np.ndarray:
        """The goal ``[W, 4]``, or with ``observe_object`` ``[W, OBJECT_GOAL_SIZE]``: the goal,
        the cube's position relative to the palm, its orientation (``w >= 0``) and the
        rotation from it to the goal (``w >= 0``)."""
        goal = np.asarray(goal, dtype=np.float64)
        if not self.observe_object:
            return goal
        pose = self.array(state, "object_pose")
        orientation = pose[:, ORIENTATION]
        orientation = np.where(orientation[:, :1] < 0.0, -orientation, orientation)
        position = pose[:, POSITION] - self.array(state, "palm_position")
        return np.concatenate(
            [goal, position, orientation, quat_difference(goal, orientation)], axis=1
        )

    def rotation_distance(self, state: State, goal: np.ndarray) -> np.ndarray:
        """Angle ``[W]`` (rad) between the cube's orientation and the goal."""
        return rotation_distance(self.array(state, "object_pose")[:, ORIENTATION], goal)

    def dropped(self, state: State) -> np.ndarray:
        """``[W]`` bool: the cube's centre is more than ``drop_depth`` below the palm."""
        height = self.array(state, "object_pose")[:, POSITION][:, 2]
        palm = self.array(state, "palm_position")[:, 2]
        return height < palm - self.drop_depth

    def reward_terms(self, prev_state: State, state: State, goal: np.ndarray) -> RewardTerms:
        before = self.rotation_distance(prev_state, goal)
        after = self.rotation_distance(state, goal)
        return {
            "progress": before - after,
            "success": self.success(state, goal).astype(np.float64),
            "drop": -self.dropped(state).astype(np.float64),
            "time": -np.ones_like(after),
        }

    def success(self, state: State, goal: np.ndarray) -> np.ndarray:
        """``[W]`` bool: within ``success_rotation`` of the goal with the cube in the hand."""
        return (self.rotation_distance(state, goal) <= self.success_rotation) & ~self.dropped(state)

    def terminated(self, state: State, goal: np.ndarray) -> np.ndarray:
        return self.dropped(state)

    def goal_pose(self, state: State, goal: np.ndarray) -> np.ndarray:
        """The goal orientation shown beside the cube: ``GOAL_MARKER_OFFSET`` from it."""
        position = self.array(state, "object_pose")[:, POSITION] + np.asarray(GOAL_MARKER_OFFSET)
        return np.concatenate([position, np.asarray(goal, dtype=np.float64)], axis=1)

    def metric_value(self, progress: GoalProgress, success: np.ndarray) -> np.ndarray:
        """Consecutive goals reached in the episode ``[W]``."""
        return progress.goals_reached.astype(np.float64)
