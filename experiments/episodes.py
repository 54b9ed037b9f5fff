"""Episodes of a task over a batch of worlds, one control step at a time.

``TaskEpisodes.observe(state)`` is called once per control step with the physics state of
every world. It keeps each world's goal, reward bookkeeping and episode clock, and says
which worlds end their episode (terminated: no bootstrapping; truncated: a limit) and which
begin a new one. A world that ends its episode at step t is reset by the physics engine
before step t+1; its state at t+1 is the first of its next episode, which gets a new goal
and no reward.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from neuroloop.plugins.experiments.base import GoalProgress, State, Task, total_reward


@dataclass(frozen=True)
class StepOutcome:
    """What one control step yields for every world (first axis = world)."""

    goal: np.ndarray
    """The goal each world pursues from this state on ``[W, G]``."""
    reward_terms: dict[str, np.ndarray]
    """Weighted reward terms ``{name: [W]}`` for the step that led to this state."""
    reward: np.ndarray
    """Their sum ``[W]``; 0 for worlds whose episode starts with this state."""
    success: np.ndarray
    """``[W]`` bool: the goal is reached in this state."""
    terminated: np.ndarray
    """``[W]`` bool: the episode ends in a terminal state (no bootstrapping)."""
    truncated: np.ndarray
    """``[W]`` bool: the episode ends by a limit (episode length, goal timeout or budget)."""
    episode_start: np.ndarray
    """``[W]`` bool: this state is the first of an episode (recurrent state starts fresh)."""
    metric: np.ndarray
    """``[W]`` float: the task metric of the episode that ends in this state; NaN where none
    ends."""

    @property
    def done(self) -> np.ndarray:
        """``[W]`` bool: the episode ends here; reset these worlds before the next step."""
        return self.terminated | self.truncated


RECENT_EPISODES = 100
"""Finished episodes the summary averages over (the most recent ones)."""


@dataclass
class EpisodeRecord:
    """Statistics of the most recent finished episodes (``RECENT_EPISODES`` of them)."""

    finished: int = 0
    """Episodes finished so far."""
    returns: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_EPISODES))
    lengths: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_EPISODES))
    metrics: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_EPISODES))

    def add(self, episode_return: float, length: int, metric: float) -> None:
        """Record one finished episode."""
        self.finished += 1
        self.returns.append(episode_return)
        self.lengths.append(length)
        self.metrics.append(metric)

    def summary(self) -> dict[str, float | int]:
        """Episodes finished; over the recent ones (``recent`` of them) the mean return and
        length and the task metric's mean and sample standard deviation."""
        if not self.returns:
            return {"episodes": 0}
        metrics = np.asarray(self.metrics)
        return {
            "episodes": self.finished,
            "recent": len(metrics),
            "mean_return": float(np.mean(self.returns)),
            "mean_length": float(np.mean(self.lengths)),
            "mean_metric": float(metrics.mean()),
            "std_metric": float(metrics.std(ddof=1)) if len(metrics) > 1 else 0.0,
        }


class TaskEpisodes:
    """Runs a task's episodes in a batch of worlds.

    Args:
        task: The task.
        control_dt_s: Seconds per control step (for goal timeouts).
        episode_steps: Control steps after which an episode is truncated, overriding the
            task's ``episode_steps`` (``None``: the task's).
        seed: Seed of the goal sampler.
        reward_config: Reward term weights overriding the task's ``reward_weights``.
    """

    def __init__(
        self,
        task: Task,
        *,
        control_dt_s: float,
        episode_steps: int | None = None,
        seed: int | None = None,
        reward_config: Mapping[str, float] | None = None,
    ) -> None:
        if episode_steps is not None and episode_steps < 1:
            raise ValueError(
                f"[{task.name}] episode_steps: expected a positive number of control steps. "
                f"Received: {episode_steps}"
            )
        self.task = task
        self.control_dt_s = control_dt_s
        self.episode_steps = episode_steps if episode_steps is not None else task.episode_steps
        self.reward_weights = task.reward_config(reward_config)
        self.rng = np.random.default_rng(seed)
        self.record = EpisodeRecord()
        self._goal: np.ndarray | None = None
        self._previous: State = {}
        self._restart = np.zeros(0, dtype=bool)
        self._progress = GoalProgress.start(0)
        self._steps = np.zeros(0, dtype=np.int64)
        self._returns = np.zeros(0)

    def restart(self, seed: int | None) -> None:
        """Start every world's episode afresh at the next observation, with a new goal seed.

        Finished-episode statistics are kept; the episodes in progress are dropped.
        """
        self.rng = np.random.default_rng(seed)
        self._goal = None

    def observe(self, state: State) -> StepOutcome:
        """Account for one control step that ended in ``state``; see the module docstring."""
        task = self.task
        n_worlds = task.n_worlds(state)
        if self._goal is None or self._goal.shape[0] != n_worlds:
            self._goal = task.sample_goal(self.rng, state)
            self._restart = np.ones(n_worlds, dtype=bool)
            self._progress = GoalProgress.start(n_worlds)
            self._steps = np.zeros(n_worlds, dtype=np.int64)
            self._returns = np.zeros(n_worlds)
        start = self._restart
        goal = self._goal
        if start.any():
            goal[start] = task.sample_goal(self.rng, state)[start]
            self._progress = self._progress.restart(start)
            self._steps[start] = 0
            self._returns[start] = 0.0

        if start.all():
            terms = {key: np.zeros(n_worlds) for key in self.reward_weights}
        else:
            previous = {
                key: np.where(_rows(start, value), value, self._previous[key])
                for key, value in state.items()
                if key in self._previous
            }
            terms = task.reward(previous, state, goal, self.reward_weights)
            terms = {key: np.where(start, 0.0, value) for key, value in terms.items()}
        reward = total_reward(terms)
        success = task.success(state, goal) & ~start
        terminated = task.terminated(state, goal) & ~start

        advanced = task.advance(self._progress, success, self.control_dt_s)
        self._progress = GoalProgress(
            np.where(start, self._progress.goals_reached, advanced.progress.goals_reached),
            np.where(start, 0.0, advanced.progress.time_on_goal_s),
        )
        new_goal = advanced.new_goal & ~start
        if new_goal.any():
            goal[new_goal] = task.sample_goal(self.rng, state)[new_goal]
        self._steps += ~start
        truncated = advanced.truncated & ~start
        if self.episode_steps is not None:
            truncated |= self._steps >= self.episode_steps
        truncated &= ~terminated
        self._returns += reward
        done = terminated | truncated
        episode_metric = np.full(n_worlds, np.nan)
        if done.any():
            metric = task.metric_value(self._progress, success)
            episode_metric[done] = np.asarray(metric, dtype=np.float64)[done]
            for world in np.flatnonzero(done):
                self.record.add(
                    float(self._returns[world]), int(self._steps[world]), float(metric[world])
                )
        self._restart = done
        self._previous = {key: np.array(value) for key, value in state.items()}
        return StepOutcome(
            goal.copy(), terms, reward, success, terminated, truncated, start, episode_metric
        )


def _rows(mask: np.ndarray, value: np.ndarray) -> np.ndarray:
    """``mask`` shaped to broadcast over the rows of ``value``."""
    return mask.reshape((-1,) + (1,) * (np.ndim(value) - 1))
