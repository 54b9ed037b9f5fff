"""Collecting a body's responses: random smooth inputs in, state sequences out.

A dataset holds ``inputs`` ``[N, T, n]`` (the input applied during each control step),
``states`` ``[N, T + 1, S]`` (the state before the first step, then after each step), the
state variables' ``names`` and the control timestep ``dt_s``. It is stored as a plain
``.npz`` archive (no pickled objects).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuroloop.config import SimulationConfig
from neuroloop.datapack import DataPackValue
from neuroloop.errors import ConfigError, UsageError
from neuroloop.simulation import Simulation
from neuroloop.surrogate.config import StateBlock, SurrogateConfig

NO_TIMEOUT = "SimulationTimeout=0"
"""Collecting runs the simulation for as many steps as it needs."""


@dataclass(frozen=True)
class Dataset:
    """Input and state sequences of a body."""

    inputs: np.ndarray
    """``[N, T, n]`` float32: the input applied during each control step."""
    states: np.ndarray
    """``[N, T + 1, S]`` float32: the state before the first step, then after each."""
    names: tuple[str, ...]
    """The state variables' names."""
    dt_s: float
    """Control timestep (s)."""

    def save(self, path: str | Path) -> None:
        """Write the dataset to an ``.npz`` archive."""
        np.savez(
            path,
            inputs=self.inputs,
            states=self.states,
            names=np.array(self.names),
            dt_s=np.float64(self.dt_s),
        )

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        """Read a dataset that ``save`` wrote.

        Raises:
            UsageError: If the file is missing or is not such a dataset.
        """
        try:
            with np.load(path, allow_pickle=False) as archive:
                return cls(
                    archive["inputs"],
                    archive["states"],
                    tuple(str(name) for name in archive["names"]),
                    float(archive["dt_s"]),
                )
        except (OSError, KeyError, ValueError) as error:
            raise UsageError(
                f"expected a surrogate dataset (.npz from neuroloop surrogate collect). "
                f"Received: {path} ({error})"
            ) from None


def smooth_inputs(
    rng: np.random.Generator,
    steps: int,
    worlds: int,
    size: int,
    dt_s: float,
    knot_interval_s: float,
    sharpness: float,
) -> np.ndarray:
    """Random smooth inputs ``[steps, worlds, size]`` in [0, 1].

    Each input passes through random knots every ``knot_interval_s`` (values ``u **
    sharpness``, ``u`` uniform in [0, 1]), linearly in between; the first knot sits a random
    fraction of an interval before time 0, so knots do not line up across sequences.
    """
    phase = rng.uniform(0.0, 1.0, (worlds, 1))
    knots = math.ceil(steps * dt_s / knot_interval_s) + 2
    values = rng.uniform(0.0, 1.0, (knots, worlds, size)) ** sharpness
    position = np.arange(steps)[:, None] * dt_s / knot_interval_s + phase.T  # [steps, W]
    below = np.floor(position).astype(np.int64)
    fraction = (position - below)[..., None]
    world = np.arange(worlds)[None, :]
    return values[below, world] * (1.0 - fraction) + values[below + 1, world] * fraction


def state_vector(values: Mapping[str, DataPackValue], blocks: Sequence[StateBlock]) -> np.ndarray:
    """The state vector ``[W, S]`` of every world from the body's datapacks."""
    parts = []
    for block in blocks:
        array = np.asarray(values[block.datapack], dtype=np.float64)
        array = array.reshape(array.shape[0], -1)
        parts.append(array if block.columns is None else array[:, list(block.columns)])
    return np.concatenate(parts, axis=1)


def engine_worlds(simulation: SimulationConfig, engine: str, where: str) -> int:
    """The body engine's number of worlds (``EngineExtraConfigs.Worlds``, default 1).

    Raises:
        ConfigError: If the simulation config has no engine of that name.
    """
    names = [section.name for section in simulation.engines]
    if engine not in names:
        raise ConfigError(where, "Engine", f"an engine of {simulation.path} ({names})", engine)
    return int(simulation.engine(engine).extra.get("Worlds", 1))


class Body:
    """The body engine of a running simulation, stepped one control step at a time.

    Args:
        sim: The started simulation.
        config: The surrogate config (engine, input and state datapacks).
    """

    def __init__(self, sim: Simulation, config: SurrogateConfig) -> None:
        self.sim = sim
        self.config = config
        self.names = sorted({block.datapack for block in config.state})
        sim.loop.request(config.engine, self.names)

    def state(self) -> np.ndarray:
        """The current state vector ``[W, S]``."""
        engine = self.config.engine
        values = {name: self.sim.datapack(name, engine) for name in self.names}
        return state_vector(values, self.config.state)

    def step(self, inputs: np.ndarray) -> np.ndarray:
        """Apply ``inputs`` ``[W, n]`` for one control step; the state after it ``[W, S]``."""
        self.sim.set_datapack(self.config.input, self.config.engine, inputs)
        self.sim.step()
        return self.state()


def collect(
    config: SurrogateConfig,
    sequences: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Drive the body with random smooth inputs and record its state sequences.

    Args:
        config: The surrogate config.
        sequences: Overrides ``Collect.Sequences``.
        progress: Called with (sequences done, sequences wanted) after every batch.
    """
    settings = config.collect
    wanted = sequences or settings.sequences
    simulation = config.simulation_config([*settings.overrides, NO_TIMEOUT])
    worlds = engine_worlds(simulation, config.engine, str(config.path))
    dt_s = simulation.timestep_ns / 1e9
    rng = np.random.default_rng(settings.seed)
    inputs, states = [], []
    with Simulation(simulation, echo_engine_output=False) as sim:
        body = Body(sim, config)
        size = int(np.shape(sim.datapack(config.input, config.engine))[1])
        for batch in range(math.ceil(wanted / worlds)):
            sim.reset(settings.seed * 1_000_003 + batch)
            drive = smooth_inputs(
                rng,
                settings.steps,
                worlds,
                size,
                dt_s,
                settings.knot_interval_s,
                settings.sharpness,
            )
            trajectory = [body.state()]
            for step in range(settings.steps):
                trajectory.append(body.step(drive[step]))
            inputs.append(np.swapaxes(drive, 0, 1))
            states.append(np.swapaxes(np.stack(trajectory), 0, 1))
            if progress is not None:
                progress(min((batch + 1) * worlds, wanted), wanted)
    return Dataset(
        np.concatenate(inputs)[:wanted].astype(np.float32),
        np.concatenate(states)[:wanted].astype(np.float32),
        config.names,
        dt_s,
    )


def rest_datapacks(config: SurrogateConfig) -> dict[str, np.ndarray]:
    """The state datapacks of world 0 after a reset with seed 0 (whole rows, every column):
    the body at its configured initial posture, where reaches start."""
    simulation = config.simulation_config([NO_TIMEOUT])
    with Simulation(simulation, echo_engine_output=False, seed=0) as sim:
        body = Body(sim, config)
        return {name: np.asarray(sim.datapack(name, config.engine))[0] for name in body.names}


def rest_state(config: SurrogateConfig) -> np.ndarray:
    """The state vector ``[S]`` of ``rest_datapacks``."""
    rest = rest_datapacks(config)
    return state_vector({name: row[None] for name, row in rest.items()}, config.state)[0]


def body_description(config: SurrogateConfig) -> dict[str, Any]:
    """What an engine serving the surrogate needs to publish the body's own datapacks: the
    input's name, each state block (datapack, columns, names) and every state datapack's
    whole row at rest (the columns the surrogate does not model keep these values)."""
    return {
        "input": config.input,
        "blocks": [
            {
                "datapack": block.datapack,
                "columns": None if block.columns is None else list(block.columns),
                "names": list(block.names),
            }
            for block in config.state
        ],
        "rest": {name: row.tolist() for name, row in rest_datapacks(config).items()},
    }
