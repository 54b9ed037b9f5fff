"""The common shape of a task: goals, reward terms, success, termination, goal bookkeeping.

A task is an object built with its options and reward weights, e.g.
``ReachTask(fingers=("ff",), reward_weights={"success": 5.0})``; ``__init__`` validates them.

A task works on *states*: mappings from physics datapack names (``fingertip_positions``,
``object_pose``, ``palm_position``, ...; see ``bodies/shadow_hand.yaml``) to numpy arrays
whose first axis is the world. Everything is batched over worlds ``W``:

- ``sample_goal(rng, state) -> [W, G]``
- ``reward(prev_state, state, goal) -> {term: [W]}``: terms weighted by the task's
  ``reward_weights``, by name, so each can be logged; ``total_reward`` sums them. A weight of
  0 ablates a term; terms the weights leave out keep the task's default weight.
- ``success(state, goal) -> [W] bool`` and ``terminated(state, goal) -> [W] bool``
- ``advance(progress, success, dt_s) -> GoalStep``: which worlds need a new goal and which
  episodes are truncated (goal timeout, goal budget).
- ``goal_observation(state, goal) -> [W, n]``: what the policy's ``goal`` modality holds
  (the goal itself unless the task adds more), and ``control``: how the body's transceiver
  turns actions into actuator targets (``ControlSettings``).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple, TypeAlias

import numpy as np

from neuroloop.errors import OptionError

TIME_TOLERANCE_S = 1e-9
"""Slack when comparing accumulated control time with a goal timeout (float rounding)."""

State: TypeAlias = Mapping[str, np.ndarray]
"""Physics datapacks by name, first axis = world."""

RewardTerms: TypeAlias = dict[str, np.ndarray]
"""Weighted reward terms by name, each ``[W]`` float64."""


@dataclass(frozen=True)
class GoalProgress:
    """Per-world goal bookkeeping for one episode."""

    goals_reached: np.ndarray
    """Goals reached so far in the episode ``[W]`` (int64); the CGR metric."""
    time_on_goal_s: np.ndarray
    """Seconds spent on the current goal ``[W]`` (float64)."""

    @classmethod
    def start(cls, n_worlds: int) -> GoalProgress:
        """Bookkeeping at the start of an episode in ``n_worlds`` worlds."""
        return cls(np.zeros(n_worlds, dtype=np.int64), np.zeros(n_worlds, dtype=np.float64))

    def restart(self, worlds: np.ndarray) -> GoalProgress:
        """Bookkeeping with the episodes of the worlds in boolean mask ``worlds`` restarted."""
        return GoalProgress(
            np.where(worlds, 0, self.goals_reached),
            np.where(worlds, 0.0, self.time_on_goal_s),
        )


@dataclass(frozen=True)
class ControlSettings:
    """How actions become actuator targets (position servos), applied by the transceiver.

    By default (absolute control) the action, mapped onto each actuator's control range, is
    the target. With ``relative_scale`` the mapped action's offset from the range's centre,
    times the scale, is added to the previous target (gymnasium-robotics' relative control,
    but accumulated on the target); each episode starts from the actuators' positions. With
    ``smoothing`` ``a`` the sent target is ``a * previous + (1 - a) * commanded``.
    """

    relative_scale: float | None = None
    """Fraction of the offset added per control step; ``None``: absolute targets."""
    smoothing: float = 0.0
    """Exponential smoothing factor in ``[0, 1)``; 0: none."""

    @property
    def absolute(self) -> bool:
        """Whether targets are the mapped actions themselves (no state between steps)."""
        return self.relative_scale is None and self.smoothing == 0.0


class GoalStep(NamedTuple):
    """What ``Task.advance`` decided for one control step, per world."""

    progress: GoalProgress
    """Updated bookkeeping."""
    new_goal: np.ndarray
    """``[W]`` bool: sample a new goal for these worlds (the previous one was reached)."""
    truncated: np.ndarray
    """``[W]`` bool: the episode ends by a limit (goal timeout, goal budget), not a terminal."""


def _state_array(state: State, name: str, task: str) -> np.ndarray:
    if name not in state:
        raise ValueError(
            f"[{task}] expected the state to hold datapack {name!r}. Received: {sorted(state)}"
        )
    return np.asarray(state[name], dtype=np.float64)


class Task(abc.ABC):
    """A task: goal sampling, a reward prototype with weights, success and termination.

    Args:
        reward_weights: Weights of reward terms, overriding ``default_reward_config``.
        episode_steps: Control steps after which an episode is truncated (``None``: only the
            task's own limits end it).

    Raises:
        ValueError: If a reward weight names no term or is not a finite number, or
            ``episode_steps`` is not a positive integer.
    """

    name: ClassVar[str]
    """Registry name, e.g. ``"reach"``."""
    world_datapack: ClassVar[str]
    """A per-world datapack the task always reads; its first axis counts the worlds."""
    metric: ClassVar[str]
    """Name of the task's performance metric, e.g. ``"consecutive_goals_reached"``."""
    default_reward_config: ClassVar[Mapping[str, float]]
    """Default weight of every reward term; also the complete list of term names."""
    goal_timeout_s: ClassVar[float | None] = None
    """Seconds allowed per goal before the episode is truncated (``None``: no limit)."""
    max_goals: ClassVar[int | None] = None
    """Goals per episode before it is truncated (``None``: no limit)."""
    new_goal_on_success: ClassVar[bool] = False
    """Whether reaching a goal draws the next one (otherwise the goal stays for the episode)."""
    goal_is_orientation: ClassVar[bool] = False
    """Whether the goal is an object orientation quaternion ``[W, 4]`` (w, x, y, z)."""
    control: ControlSettings = ControlSettings()
    """How actions become actuator targets; a task may set its own from its options."""

    def __init__(
        self,
        *,
        reward_weights: Mapping[str, float] | None = None,
        episode_steps: int | None = None,
    ) -> None:
        self.reward_weights: dict[str, float] = dict(self.default_reward_config)
        self.reward_weights = self.reward_config(reward_weights)
        if episode_steps is not None:
            positive_int(self.name, "episode_steps", episode_steps)
        self.episode_steps = episode_steps

    @abc.abstractmethod
    def sample_goal(self, rng: np.random.Generator, state: State) -> np.ndarray:
        """Draw one goal per world ``[W, G]`` given the current state."""

    @abc.abstractmethod
    def reward_terms(self, prev_state: State, state: State, goal: np.ndarray) -> RewardTerms:
        """Unweighted reward terms ``{name: [W]}``, one per key of ``default_reward_config``."""

    @abc.abstractmethod
    def success(self, state: State, goal: np.ndarray) -> np.ndarray:
        """``[W]`` bool: the goal is reached in this state."""

    def goal_observation(self, state: State, goal: np.ndarray) -> np.ndarray:
        """What the policy's ``goal`` modality holds ``[W, n]``. Default: the goal itself."""
        return np.asarray(goal, dtype=np.float64).reshape(self.n_worlds(state), -1)

    def goal_markers(self, state: State, goal: np.ndarray) -> np.ndarray | None:
        """Where a picture shows the goal: positions ``[W, M, 3]`` (m, world frame) drawn as
        markers, or ``None`` (the default) when the goal is not a place."""
        return None

    def goal_pose(self, state: State, goal: np.ndarray) -> np.ndarray | None:
        """Pose ``[W, 7]`` (position, quaternion w x y z) of the body's goal marker object,
        or ``None`` (the default) when the task has no such object."""
        return None

    def conditions(self, goal: np.ndarray) -> dict[str, np.ndarray]:
        """Categorical task variables that the goal ``[W, G]`` implies, ``{name: [W] int}``
        (for analysis: ``neuroloop evaluate --record``). Default: none."""
        return {}

    def terminated(self, state: State, goal: np.ndarray) -> np.ndarray:
        """``[W]`` bool: the state is terminal (no bootstrapping). Default: never."""
        return np.zeros(self.n_worlds(state), dtype=bool)

    def reward_config(self, config: Mapping[str, float] | None = None) -> dict[str, float]:
        """The task's ``reward_weights`` updated with ``config``.

        Raises:
            ValueError: If ``config`` names a term this task does not have, or a weight is
                not a finite number.
        """
        weights = dict(self.reward_weights)
        for key, value in (config or {}).items():
            if key not in weights:
                raise TaskOptionError(
                    self.name, "reward config", f"terms among {sorted(weights)}", key, key=key
                )
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not np.isfinite(value)
            ):
                raise TaskOptionError(
                    self.name, "reward config", f"a finite number for {key!r}", value, key=key
                )
            weights[key] = float(value)
        return weights

    def reward(
        self,
        prev_state: State,
        state: State,
        goal: np.ndarray,
        config: Mapping[str, float] | None = None,
    ) -> RewardTerms:
        """Weighted reward terms ``{name: weight * term}``, each ``[W]`` float64.

        Args:
            prev_state: The state before the control step.
            state: The state after the control step.
            goal: The goal in force during the step ``[W, G]``.
            config: Term weights overriding the task's ``reward_weights`` (e.g. to ablate).
        """
        weights = self.reward_config(config)
        terms = self.reward_terms(prev_state, state, goal)
        return {key: weights[key] * np.asarray(terms[key], dtype=np.float64) for key in weights}

    def advance(self, progress: GoalProgress, success: np.ndarray, dt_s: float) -> GoalStep:
        """Count a control step of ``dt_s`` seconds: goals reached, new goals, truncation.

        A world that reached its goal counts it and, if ``new_goal_on_success``, gets a new
        goal with its goal clock restarted. An episode is truncated when the current goal has
        run for ``goal_timeout_s`` or ``max_goals`` goals have been reached.
        """
        success = np.asarray(success, dtype=bool)
        time_on_goal = progress.time_on_goal_s + dt_s
        if self.new_goal_on_success:
            reached = progress.goals_reached + success
            new_goal = success.copy()
        else:
            reached = np.maximum(progress.goals_reached, success.astype(np.int64))
            new_goal = np.zeros(success.shape, dtype=bool)
        truncated = np.zeros(success.shape, dtype=bool)
        if self.max_goals is not None:
            truncated |= reached >= self.max_goals
            new_goal &= ~truncated
        time_on_goal = np.where(new_goal, 0.0, time_on_goal)
        if self.goal_timeout_s is not None:
            truncated |= time_on_goal >= self.goal_timeout_s - TIME_TOLERANCE_S
        return GoalStep(GoalProgress(reached, time_on_goal), new_goal, truncated)

    def metric_value(self, progress: GoalProgress, success: np.ndarray) -> np.ndarray:
        """The task metric per world at the end of an episode. Default: final success."""
        return np.asarray(success, dtype=np.float64)

    def n_worlds(self, state: State) -> int:
        """Number of worlds in ``state``: the first axis of its ``world_datapack``."""
        return int(self.array(state, self.world_datapack).shape[0])

    def array(self, state: State, name: str) -> np.ndarray:
        """Datapack ``name`` of ``state`` as float64, with a clear error when it is missing."""
        return _state_array(state, name, self.name)


class TaskOptionError(OptionError):
    """A task option or reward weight is invalid (``owner`` is the task's name)."""


def positive_number(task: str, option: str, value: object) -> float:
    """``value`` as a float, or a ``ValueError`` unless it is a finite number > 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not np.isfinite(value)
        or value <= 0
    ):
        raise TaskOptionError(task, option, "a finite number > 0", value)
    return float(value)


def positive_int(task: str, option: str, value: object) -> int:
    """``value``, or a ``ValueError`` unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TaskOptionError(task, option, "an integer >= 1", value)
    return value


def names_among(task: str, option: str, value: object, known: Sequence[str]) -> tuple[str, ...]:
    """``value`` as a tuple of distinct names from ``known``, at least one, or a ``ValueError``."""
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or not value
        or len(set(value)) != len(value)
        or any(name not in known for name in value)
    ):
        raise TaskOptionError(
            task, option, f"a non-empty list of distinct names among {list(known)}", value
        )
    return tuple(value)


def total_reward(terms: RewardTerms) -> np.ndarray:
    """Sum of weighted reward terms ``[W]``."""
    return np.sum(np.stack(list(terms.values())), axis=0)
