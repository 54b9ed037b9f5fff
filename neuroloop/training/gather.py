"""Gathering: run an orchestrated simulation with the current brain and record experience.

The gatherer sits in the orchestrator. Per control step it keeps what the config's
functions sent the brain (the Sensation, as the recorder hook sees it), what the brain
answered (action, log-probability, value, recurrent state) and the training signals the
functions produced (reward, terminated, truncated; looked up among preprocessed datapacks
first, then engine datapacks). Every cycle starts from a seeded reset of
the simulation, so a cycle is determined by the weights and its seed (which is what lets a
resumed run repeat the cycle an uninterrupted run would have done); its rollout holds
``T + 1`` observation-aligned steps, the last one only bootstrapping the values. See
``neuroloop.training.advantages`` for the layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from neuroloop.datapack import DataPackIdentifier, DataPackValue
from neuroloop.errors import ConfigError
from neuroloop.sensation import MODALITIES
from neuroloop.simulation import Simulation

BRAIN_OUTPUTS = ("action", "log_prob", "value", "state")
"""Datapacks the gatherer fetches from the brain engine with every step."""
REWARD = DataPackIdentifier("reward", "physics")
TERMINATED = DataPackIdentifier("terminated", "physics")
TRUNCATED = DataPackIdentifier("truncated", "physics")


@dataclass(frozen=True)
class TrainingSignals:
    """Where the gatherer finds the brain and the training signals in a simulation."""

    brain: str = "brain"
    """The brain engine's name."""
    reward: DataPackIdentifier = REWARD
    """Reward on arriving at each observation ``[W]``."""
    terminated: DataPackIdentifier = TERMINATED
    """The observation is terminal ``[W]``."""
    truncated: DataPackIdentifier = TRUNCATED
    """The observation ends its episode by a limit ``[W]``."""


@dataclass(frozen=True)
class Rollout:
    """One cycle of experience, batch-major: ``[W, T + 1, ...]`` for ``W`` worlds."""

    observations: dict[str, np.ndarray]
    """Sensation modalities sent to the brain, ``{modality: [W, T + 1, ...]}`` float32."""
    actions: np.ndarray
    """The brain's samples ``[W, T + 1, A]``."""
    log_probs: np.ndarray
    """Their log-probabilities under the gathering policy ``[W, T + 1]``."""
    values: np.ndarray
    """Value estimates ``[W, T + 1]``."""
    rewards: np.ndarray
    """Reward on arriving at each observation ``[W, T + 1]`` (0 at episode starts)."""
    terminated: np.ndarray
    """``[W, T + 1]`` bool."""
    truncated: np.ndarray
    """``[W, T + 1]`` bool."""
    episode_start: np.ndarray
    """``[W, T + 1]`` bool: the brain started a fresh recurrent state at this observation."""
    states: np.ndarray
    """The brain's recurrent state before each step ``[W, T + 1, S]`` (flat, ``S`` may be 0)."""

    @property
    def horizon(self) -> int:
        """``T``: transitions in the rollout."""
        return self.rewards.shape[1] - 1


@dataclass
class _Step:
    observations: dict[str, np.ndarray]
    episode_start: np.ndarray
    action: np.ndarray
    log_prob: np.ndarray
    value: np.ndarray
    state_before: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


@dataclass
class _BrainInbox:
    """The recorder hook: the datapacks most recently sent to the brain."""

    brain: str
    latest: dict[str, DataPackValue] = field(default_factory=dict)

    def record(
        self, time_ns: int, direction: str, engine: str, name: str, value: DataPackValue
    ) -> None:
        if engine == self.brain and direction == "to_engine":
            self.latest[name] = value


class Gatherer:
    """Steps a simulation one control step at a time and assembles rollouts.

    Args:
        simulation: A started simulation whose SimulationTimestep is the brain's
            EngineTimestep (one loop step per control step).
        signals: Where the brain and the training signals are.

    Raises:
        ConfigError: If the simulation timestep is not the brain's timestep.
    """

    def __init__(
        self, simulation: Simulation, signals: TrainingSignals = TrainingSignals()
    ) -> None:
        config = simulation.config
        brain = config.engine(signals.brain)
        if brain.timestep_ns != config.timestep_ns:
            raise ConfigError(
                str(config.path),
                "SimulationTimestep",
                f"the brain's EngineTimestep ({brain.timestep_ns / 1e9:g} s), so that one loop "
                "step is one control step",
                f"SimulationTimestep={config.timestep_ns / 1e9:g}",
            )
        self.simulation = simulation
        self.signals = signals
        self.inbox = _BrainInbox(signals.brain)
        simulation.loop.recorder = _Tee(simulation.loop.recorder, self.inbox)
        simulation.loop.request(signals.brain, BRAIN_OUTPUTS)
        self._last: _Step | None = None
        self._state: np.ndarray | None = None
        self._weights: np.ndarray | None = None

    def push_weights(self, flat: np.ndarray) -> None:
        """Have the brain use these weights (``flat_weights`` layout) from the next gather on."""
        self._weights = np.asarray(flat, dtype=np.float32)

    def gather(self, horizon: int, seed: int) -> Rollout:
        """Reset with ``seed``, run ``horizon`` control steps, return ``horizon + 1`` steps."""
        self.simulation.reset(seed)
        if self._weights is not None:
            # Sent with the brain's first step after the reset, before that step runs.
            self.simulation.set_datapack("weights", self.signals.brain, self._weights)
        self._last = None
        self._state = None
        return _stack([self._control_step() for _ in range(horizon + 1)])

    def _control_step(self) -> _Step:
        simulation = self.simulation
        self.inbox.latest.clear()
        simulation.step(1)
        sent = dict(self.inbox.latest)
        brain = self.signals.brain
        outputs = {name: simulation.datapack(name, brain) for name in BRAIN_OUTPUTS}
        answered = sorted(name for name, value in outputs.items() if value is not None)
        if len(answered) < len(outputs) or not sent:
            raise ConfigError(
                str(simulation.config.path),
                "DataPackProcessingFunctions",
                f"functions that send the brain {brain!r} its Sensation at every control step",
                f"sent {sorted(sent)}, brain answered {answered}",
            )
        observations = {
            name: np.asarray(value, dtype=np.float32)
            for name, value in sent.items()
            if name in MODALITIES
        }
        worlds = np.asarray(outputs["value"]).shape[0]
        reward, terminated, truncated = (
            self._signal(identifier, worlds)
            for identifier in (self.signals.reward, self.signals.terminated, self.signals.truncated)
        )
        previous = self._previous_final(worlds)
        episode_start = np.asarray(sent.get("episode_start", previous), dtype=bool)
        state_after = np.asarray(outputs["state"], dtype=np.float32).reshape(worlds, -1)
        if self._state is None:
            self._state = np.zeros_like(state_after)
        state_before = np.where(episode_start[:, None], 0.0, self._state).astype(np.float32)
        self._state = state_after
        step = _Step(
            observations=observations,
            episode_start=episode_start,
            action=np.asarray(outputs["action"]),
            log_prob=np.asarray(outputs["log_prob"], dtype=np.float32),
            value=np.asarray(outputs["value"], dtype=np.float32),
            state_before=state_before,
            reward=reward.astype(np.float32),
            terminated=terminated.astype(bool),
            truncated=truncated.astype(bool),
        )
        self._last = step
        return step

    def _previous_final(self, worlds: int) -> np.ndarray:
        if self._last is None:
            return np.ones(worlds, dtype=bool)
        return self._last.terminated | self._last.truncated

    def _signal(self, identifier: DataPackIdentifier, worlds: int) -> np.ndarray:
        datapack = self.simulation.loop.store.latest(identifier)
        if datapack is None or datapack.data is None:
            if identifier.name not in self.simulation.loop.requested.get(
                identifier.engine_name, []
            ):
                self.simulation.loop.request(identifier.engine_name, [identifier.name])
            value = self.simulation.datapack(identifier.name, identifier.engine_name)
        else:
            value = datapack.data
        if value is None:
            raise ConfigError(
                str(self.simulation.config.path),
                "DataPackProcessingFunctions",
                f"a datapack {identifier} with the training signal, one value per world",
                "nothing",
            )
        return np.broadcast_to(np.asarray(value), (worlds,)).copy()


class _Tee:
    """Sends recorder calls to two recorders (the user's, if any, and the gatherer's)."""

    def __init__(self, first: object, second: _BrainInbox) -> None:
        self.first = first
        self.second = second

    def record(
        self, time_ns: int, direction: str, engine: str, name: str, value: DataPackValue
    ) -> None:
        if self.first is not None:
            self.first.record(time_ns, direction, engine, name, value)  # type: ignore[attr-defined]
        self.second.record(time_ns, direction, engine, name, value)


def _stack(steps: Sequence[_Step]) -> Rollout:
    def along_time(values: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack(values, axis=1)

    names = steps[0].observations.keys()
    return Rollout(
        observations={name: along_time([s.observations[name] for s in steps]) for name in names},
        actions=along_time([s.action for s in steps]),
        log_probs=along_time([s.log_prob for s in steps]),
        values=along_time([s.value for s in steps]),
        rewards=along_time([s.reward for s in steps]),
        terminated=along_time([s.terminated for s in steps]),
        truncated=along_time([s.truncated for s in steps]),
        episode_start=along_time([s.episode_start for s in steps]),
        states=along_time([s.state_before for s in steps]),
    )
