"""Gathering: run an orchestrated simulation with the current brain and record experience.

The gatherer sits in the orchestrator. Per control step it keeps what the config's
functions sent the brain (the Sensation, through the loop's ``observe_sent`` hook), what the
brain answered (action, log-probability, value, its recurrent state by name) and the
training signals the
functions produced (reward, terminated, truncated; looked up among preprocessed datapacks
first, then engine datapacks). Every cycle starts from a seeded reset of
the simulation, so a cycle is determined by the weights and its seed (which is what lets a
resumed run repeat the cycle an uninterrupted run would have done); its rollout holds
``T + 1`` observation-aligned steps, time-major, the last one only bootstrapping the values.
See ``neuroloop.training.advantages`` for the layout.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from neuroloop.datapack import DataPackIdentifier, DataPackValue
from neuroloop.errors import ConfigError
from neuroloop.sensation import MODALITIES
from neuroloop.simulation import Simulation

BRAIN_OUTPUTS = ("action", "log_prob", "value")
"""Datapacks the gatherer fetches from the brain engine with every step (and its state)."""
REWARD = DataPackIdentifier("reward", "physics")
TERMINATED = DataPackIdentifier("terminated", "physics")
TRUNCATED = DataPackIdentifier("truncated", "physics")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used (Linux ``/proc``).

    Returns:
        NaN where ``/proc`` is missing or the process has gone.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # After the command name in parentheses: utime and stime are fields 14 and 15.
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    metric: DataPackIdentifier | None = None
    """The task metric of each episode that ends at the observation ``[W]`` (NaN elsewhere);
    ``None``: not gathered."""


@dataclass(frozen=True)
class Rollout:
    """One cycle of experience, time-major: ``[T + 1, W, ...]`` for ``W`` worlds."""

    observations: dict[str, np.ndarray]
    """Sensation modalities sent to the brain, ``{modality: [T + 1, W, ...]}`` float32."""
    actions: np.ndarray
    """The brain's samples ``[T + 1, W, A]``."""
    log_probs: np.ndarray
    """Their log-probabilities under the gathering policy ``[T + 1, W]``."""
    values: np.ndarray
    """Value estimates ``[T + 1, W]``."""
    rewards: np.ndarray
    """Reward on arriving at each observation ``[T + 1, W]`` (0 at episode starts)."""
    terminated: np.ndarray
    """``[T + 1, W]`` bool."""
    truncated: np.ndarray
    """``[T + 1, W]`` bool."""
    episode_start: np.ndarray
    """``[T + 1, W]`` bool: the brain started a fresh recurrent state at this observation."""
    states: dict[str, np.ndarray]
    """The brain's recurrent state carried into each step, ``{state name: [T + 1, W, units]}``
    (empty for a feed-forward brain). At an episode start the brain zeroes it first."""
    metrics: np.ndarray | None = None
    """The task metric of the episodes that end at each observation ``[T + 1, W]`` (NaN
    where none ends); ``None`` when the signals name no metric."""

    @property
    def horizon(self) -> int:
        """``T``: transitions in the rollout."""
        return self.rewards.shape[0] - 1


@dataclass
class _Step:
    observations: dict[str, np.ndarray]
    episode_start: np.ndarray
    action: np.ndarray
    log_prob: np.ndarray
    value: np.ndarray
    state_before: dict[str, np.ndarray]
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    metric: np.ndarray | None
    extras: dict[str, np.ndarray]


class Gatherer:
    """Steps a simulation one control step at a time and assembles rollouts.

    Args:
        simulation: A started simulation whose SimulationTimestep is the brain's
            EngineTimestep (one loop step per control step).
        signals: Where the brain and the training signals are.
        state_names: The brain's recurrent state datapacks (``Brain.state_names``).
        extras: More datapacks to keep at every step (``last_extras``), e.g. for a recording.

    Raises:
        ConfigError: If the simulation timestep is not the brain's timestep.
    """

    def __init__(
        self,
        simulation: Simulation,
        signals: TrainingSignals = TrainingSignals(),
        state_names: Sequence[str] = (),
        extras: Sequence[DataPackIdentifier] = (),
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
        self.state_names = tuple(state_names)
        self.extras = tuple(extras)
        self.last_extras: dict[str, np.ndarray] = {}
        """The ``extras`` of the last gathering, ``{"engine/name": [T + 1, W, ...]}``, each
        read when its observation was made (e.g. body state, layer activations)."""
        self._sent: Mapping[str, DataPackValue] = {}
        simulation.loop.observe_sent(signals.brain, self._receive)
        simulation.loop.request(signals.brain, [*BRAIN_OUTPUTS, *self.state_names])
        for identifier in self.extras:
            if identifier.name in simulation.datapack_names.get(identifier.engine_name, ()):
                simulation.loop.request(identifier.engine_name, [identifier.name])
        self.last_cpu_s = math.nan
        """CPU seconds the last gathering took in this process (every thread) and in the
        engine processes the simulation started (NaN where they cannot be read)."""
        self._last: _Step | None = None
        self._state: dict[str, np.ndarray] | None = None
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
        cpu_before = self._cpu_seconds()
        steps = [self._control_step() for _ in range(horizon + 1)]
        self.last_cpu_s = self._cpu_seconds() - cpu_before
        self.last_extras = {
            key: np.stack([s.extras[key] for s in steps]) for key in steps[0].extras
        }
        return _stack(steps)

    def _cpu_seconds(self) -> float:
        """CPU seconds so far of this process and of the simulation's engine processes."""
        engines = self.simulation.processes.values()
        return time.process_time() + sum(process_cpu_seconds(p.pid) for p in engines)

    def _receive(self, time_ns: int, sent: Mapping[str, DataPackValue]) -> None:
        self._sent = sent

    def _control_step(self) -> _Step:
        simulation = self.simulation
        self._sent = {}
        simulation.step(1)
        sent = self._sent
        brain = self.signals.brain
        outputs = {
            name: simulation.datapack(name, brain) for name in (*BRAIN_OUTPUTS, *self.state_names)
        }
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
        state_after = {name: np.asarray(outputs[name]) for name in self.state_names}
        # Carried in from the previous step (zeros at the first); the brain engine zeroes it
        # where an episode starts, and so does make_chunks.
        state_before = (
            self._state
            if self._state is not None
            else {name: np.zeros_like(value) for name, value in state_after.items()}
        )
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
            metric=(
                None
                if self.signals.metric is None
                else self._signal(self.signals.metric, worlds).astype(np.float64)
            ),
            extras={f"{i.engine_name}/{i.name}": self._extra(i) for i in self.extras},
        )
        self._last = step
        return step

    def _previous_final(self, worlds: int) -> np.ndarray:
        if self._last is None:
            return np.ones(worlds, dtype=bool)
        return self._last.terminated | self._last.truncated

    def _signal(self, identifier: DataPackIdentifier, worlds: int) -> np.ndarray:
        return np.broadcast_to(self._extra(identifier), (worlds,)).copy()

    def _extra(self, identifier: DataPackIdentifier) -> np.ndarray:
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
        return np.asarray(value)


def _stack(steps: Sequence[_Step]) -> Rollout:
    def along_time(values: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack(values)  # time-major: [T + 1, W, ...]

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
        metrics=(
            None
            if any(s.metric is None for s in steps)
            else along_time([s.metric for s in steps if s.metric is not None])
        ),
        states={
            name: along_time([s.state_before[name] for s in steps])
            for name in steps[0].state_before
        },
    )
