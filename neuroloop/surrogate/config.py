"""Surrogate configs: the strict schema, then frozen dataclasses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from neuroloop.config import SimulationConfig, load_config, load_document
from neuroloop.errors import ConfigError

SURROGATE_SCHEMA = "surrogate"


@dataclass(frozen=True)
class StateBlock:
    """Columns of one datapack in the state vector."""

    datapack: str
    """The body engine's datapack."""
    names: tuple[str, ...]
    """One variable name per column taken."""
    columns: tuple[int, ...] | None
    """Columns taken; ``None``: all."""


@dataclass(frozen=True)
class CollectSettings:
    """The ``Collect`` section."""

    sequences: int
    """Sequences to collect."""
    steps: int
    """Control steps per sequence."""
    knot_interval_s: float
    """Seconds between the random knots of each input."""
    sharpness: float
    """Knot values are ``u ** sharpness``, ``u`` uniform in [0, 1]."""
    overrides: tuple[str, ...]
    """-o overrides of the simulation config while collecting."""
    seed: int
    """Seed of inputs and resets."""


@dataclass(frozen=True)
class FitSettings:
    """The ``Fit`` section."""

    units: int
    """GRU units."""
    epochs: int
    """Passes over the training sequences."""
    batch_size: int
    """Sequences per gradient step."""
    learning_rate: float
    """Adam learning rate."""
    l2: float
    """L2 penalty on every weight matrix."""
    schedule: str
    """Learning-rate schedule: ``constant`` or ``cosine``."""
    clip_norm: float
    """Global gradient norm clip."""
    held_out: float
    """Fraction of sequences held out."""
    seed: int
    """Seed of split, weights and batches."""


@dataclass(frozen=True)
class ControlSettings:
    """The ``Control`` section."""

    task_name: str
    """The task's name or spec."""
    task_options: Mapping[str, Any]
    """Its options (CamelCase)."""
    position: tuple[str, ...]
    """State variables of the effector's position."""
    velocity: tuple[str, ...]
    """State variables of its velocity."""
    movement_s: float
    """Duration of the minimum-jerk reference."""
    units: int
    """Controller GRU units."""
    iterations: int
    """Gradient steps."""
    batch_size: int
    """Trials per gradient step."""
    learning_rate: float
    """Adam learning rate."""
    effort: float
    """Weight of the mean squared input."""
    noise: float
    """Standard deviation of the input noise while training."""
    clip_norm: float
    """Global gradient norm clip."""
    seed: int
    """Seed of weights and target draws."""


@dataclass(frozen=True)
class SurrogateConfig:
    """A loaded surrogate config (see the schema for each key's meaning and default)."""

    path: Path
    """The config file."""
    simulation: Path
    """The body's simulation config."""
    overrides: tuple[str, ...]
    """-o overrides of the simulation config."""
    engine: str
    """The body engine's name."""
    input: str
    """The input datapack."""
    state: tuple[StateBlock, ...]
    """The state vector's blocks, in order."""
    collect: CollectSettings
    fit: FitSettings
    control: ControlSettings | None
    """``None`` when the config has no ``Control`` section."""

    @property
    def names(self) -> tuple[str, ...]:
        """Every state variable's name, in state-vector order."""
        return tuple(name for block in self.state for name in block.names)

    def simulation_config(self, more: Sequence[str] = ()) -> SimulationConfig:
        """The body's simulation config with the config's overrides and ``more``."""
        return load_config(self.simulation, [*self.overrides, *more])

    def indices(self, names: Sequence[str], key: str) -> list[int]:
        """Positions of ``names`` in the state vector.

        Raises:
            ConfigError: Naming ``key``, if a name is not a state variable.
        """
        missing = [name for name in names if name not in self.names]
        if missing:
            raise ConfigError(
                str(self.path), key, f"state variables among {list(self.names)}", str(missing)
            )
        return [self.names.index(name) for name in names]


def load_surrogate_config(path: str | Path, overrides: Sequence[str] = ()) -> SurrogateConfig:
    """Read, validate and resolve a surrogate config.

    Raises:
        ConfigError: If the file breaks the schema, its simulation config is missing, or a
            block's names do not match its columns, naming the file and key.
    """
    document, blame = load_document(path, SURROGATE_SCHEMA, overrides)
    label = str(path)
    simulation = Path(path).resolve().parent / document["Simulation"]
    if not simulation.is_file():
        raise blame(ConfigError(label, "Simulation", "a simulation config file", str(simulation)))
    blocks = []
    for index, block in enumerate(document["State"]):
        columns = block["Columns"]
        if columns is not None and len(columns) != len(block["Names"]):
            raise blame(
                ConfigError(
                    label,
                    f"State[{index}].Names",
                    f"one name per column ({len(columns)})",
                    str(block["Names"]),
                )
            )
        blocks.append(
            StateBlock(
                block["DataPack"],
                tuple(block["Names"]),
                None if columns is None else tuple(columns),
            )
        )
    names = [name for block in blocks for name in block.names]
    if len(set(names)) != len(names):
        raise blame(ConfigError(label, "State", "distinct variable names", str(names)))
    collect, fit = document["Collect"], document["Fit"]
    control = document.get("Control")
    config = SurrogateConfig(
        path=Path(path),
        simulation=simulation,
        overrides=tuple(document["SimulationOverrides"]),
        engine=document["Engine"],
        input=document["Input"],
        state=tuple(blocks),
        collect=CollectSettings(
            collect["Sequences"],
            collect["Steps"],
            float(collect["KnotInterval"]),
            float(collect["Sharpness"]),
            tuple(collect["SimulationOverrides"]),
            collect["Seed"],
        ),
        fit=FitSettings(
            fit["Units"],
            fit["Epochs"],
            fit["BatchSize"],
            float(fit["LearningRate"]),
            float(fit["L2"]),
            fit["Schedule"],
            float(fit["ClipNorm"]),
            float(fit["HeldOut"]),
            fit["Seed"],
        ),
        control=None
        if control is None
        else ControlSettings(
            control["Task"]["Name"],
            MappingProxyType(dict(control["Task"]["Options"])),
            tuple(control["Position"]),
            tuple(control["Velocity"]),
            float(control["MovementS"]),
            control["Units"],
            control["Iterations"],
            control["BatchSize"],
            float(control["LearningRate"]),
            float(control["Effort"]),
            float(control["Noise"]),
            float(control["ClipNorm"]),
            control["Seed"],
        ),
    )
    if config.control is not None:
        config.indices(config.control.position, "Control.Position")
        config.indices(config.control.velocity, "Control.Velocity")
    return config
