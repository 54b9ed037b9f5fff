"""Training recipes: a strict YAML/JSON schema, then frozen dataclasses.

A recipe names the simulation config that gathers experience and sets the brain, the
number of worlds and the PPO settings (``neuroloop/schemas/recipe.schema.json`` documents
every key and its default). ``Recipe.simulation_config()`` loads the simulation config
with the recipe's settings written into its engines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from neuroloop.brain.spec import absolute_spec, spec_problem
from neuroloop.config import SimulationConfig, load_config, load_document
from neuroloop.datapack import DataPackIdentifier
from neuroloop.errors import ConfigError
from neuroloop.shipped import WEIGHTS
from neuroloop.tasks import task_class

RECIPE_SCHEMA = "recipe"
MEAN_RETURN = "mean_return"
"""The metric that is the mean episode return itself."""
DEFAULT_BRAIN = "lstm"
"""The brain when neither the recipe nor its config's brain engine names one."""
DEFAULT_DISTRIBUTION = "beta"
"""The distribution when neither the recipe nor its config's brain engine names one."""
WORLD_ENGINE_TYPES = ("mujoco", "gymnasium", "keras_brain")
"""Engine types whose ``EngineExtraConfigs.Worlds`` the recipe's ``Worlds`` sets."""


@dataclass(frozen=True)
class PPOSettings:
    """The recipe's ``PPO`` section."""

    gamma: float
    """Discount factor."""
    lam: float
    """GAE lambda."""
    clip_epsilon: float
    """Clip range of the probability ratio."""
    value_clip: float | None
    """Clip range of the value update (None: unclipped)."""
    value_coef: float
    """Weight of the value loss."""
    entropy_coef: float
    """Weight of the entropy bonus."""
    epochs: int
    """Passes over each cycle's experience."""
    minibatches: int
    """Minibatches per epoch (whole TBPTT chunks)."""
    learning_rate: float
    """Adam learning rate."""
    learning_rate_schedule: str
    """``constant`` or ``linear`` (annealed to 0 over the recipe's cycles)."""
    max_grad_norm: float
    """Global gradient norm clip."""
    chunk_length: int
    """Truncated BPTT chunk length."""


@dataclass(frozen=True)
class Recipe:
    """A loaded training recipe (see the schema for each key's meaning and default)."""

    path: Path
    """The recipe file."""
    name: str
    """Name of the run."""
    simulation: Path
    """The simulation config that gathers experience."""
    simulation_overrides: tuple[str, ...]
    """-o overrides for the simulation config."""
    brain_engine: str
    """The brain engine's name."""
    brain: str
    """The brain spec (a name, or a builder file spec made absolute)."""
    brain_options: Mapping[str, Any]
    """Builder options."""
    config_brain: str | None
    """The brain the simulation config's brain engine names (absolute builder file), if any:
    the recipe trains ``brain`` in its place when the two differ."""
    distribution: str
    """Policy distribution."""
    distribution_options: Mapping[str, Any]
    """Distribution options."""
    initial_weights: Path | None
    """Weights the brain starts from (a warm start), or None for fresh weights."""
    config_weights: str | None
    """The ``Weights`` the simulation config's brain engine names, which training does not
    use (the trainer says so)."""
    worlds: int
    """Worlds per gathering process."""
    horizon: int
    """Control steps per world per cycle."""
    cycles: int
    """Gather-optimize cycles."""
    seed: int
    """Run seed."""
    signals: tuple[DataPackIdentifier, DataPackIdentifier, DataPackIdentifier]
    """Reward, terminated and truncated datapacks."""
    metric_signal: DataPackIdentifier | None
    """The datapack with each finished episode's task metric; ``None`` for ``mean_return``."""
    ppo: PPOSettings
    """PPO settings."""
    normalize_rewards: bool
    """Scale rewards by the running return standard deviation."""
    checkpoint_every: int
    """Periodic checkpoint interval in cycles."""
    metric: str
    """Key of the task metric in the status report."""
    document: Mapping[str, Any]
    """The resolved recipe (defaults filled, absolute simulation path), saved with checkpoints."""

    def simulation_config(
        self, seed_offset: int = 0, brain_settings: Mapping[str, Any] | None = None
    ) -> SimulationConfig:
        """The simulation config with the recipe's brain, worlds and seed written in.

        Args:
            seed_offset: Added to the brain's sampling seed (e.g. the MPI rank), so that
                processes gather different experience.
            brain_settings: More EngineExtraConfigs for the brain (e.g. Deterministic).
        """
        plain = load_config(self.simulation, self.simulation_overrides)
        types = {engine.name: engine.type for engine in plain.engines}
        if types.get(self.brain_engine) != "keras_brain":
            raise ConfigError(
                str(self.path),
                "BrainEngine",
                f"the name of a keras_brain engine in {self.simulation.name}",
                f"BrainEngine={self.brain_engine!r} (engines: {types})",
            )
        select = f"EngineConfigs.EngineName:{self.brain_engine}.EngineExtraConfigs"
        extra = {
            "Brain": self.brain,
            "BrainOptions": dict(self.brain_options),
            "Distribution": self.distribution,
            "DistributionOptions": dict(self.distribution_options),
            "Seed": self.seed + seed_offset,
            # Training starts from the recipe's fresh brain and gathers by sampling, whatever
            # trained weights or deterministic mode the config sets up for plain runs.
            "Weights": None,
            "Deterministic": False,
            **(brain_settings or {}),
        }
        # Training decides how long simulations run; the config's SimulationTimeout is for runs.
        overrides = ["SimulationTimeout=0", *self.simulation_overrides]
        overrides += [f"{select}.{key}={json.dumps(value)}" for key, value in extra.items()]
        overrides += [
            f"EngineConfigs.EngineName:{engine.name}.EngineExtraConfigs.Worlds={self.worlds}"
            for engine in plain.engines
            if engine.type in WORLD_ENGINE_TYPES
        ]
        return load_config(self.simulation, overrides)


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read, override, validate and freeze a training recipe.

    Raises:
        ConfigError: If the recipe is malformed (unknown key, wrong type, ...) or its
            simulation config does not exist.
    """
    file = Path(path).resolve()
    document, blame = load_document(path, RECIPE_SCHEMA, overrides)
    simulation = (file.parent / document["Simulation"]).resolve()
    if not simulation.is_file():
        raise blame(
            ConfigError(str(path), "Simulation", "an existing simulation config", str(simulation))
        )
    document["Simulation"] = str(simulation)
    config = load_config(simulation, document["SimulationOverrides"])
    config_brain = _fill_brain(document, file.parent, config)
    initial_weights = _initial_weights(document, file.parent, path)
    _check_brain(document, path, config_brain)
    try:
        _check_consistency(document, str(path), config)
    except ConfigError as error:
        raise blame(error) from None
    ppo = document["PPO"]
    signals = document["Signals"]
    return Recipe(
        path=file,
        name=document["Name"],
        simulation=simulation,
        simulation_overrides=tuple(document["SimulationOverrides"]),
        brain_engine=document["BrainEngine"],
        brain=document["Brain"],
        brain_options=MappingProxyType(document["BrainOptions"]),
        config_brain=config_brain,
        distribution=document["Distribution"],
        distribution_options=MappingProxyType(document["DistributionOptions"]),
        initial_weights=initial_weights,
        config_weights=next(
            (e.extra.get("Weights") for e in config.engines if e.name == document["BrainEngine"]),
            None,
        ),
        worlds=document["Worlds"],
        horizon=document["Horizon"],
        cycles=document["Cycles"],
        seed=document["Seed"],
        signals=tuple(  # type: ignore[arg-type]
            DataPackIdentifier(signals[key]["Name"], signals[key]["Engine"])
            for key in ("Reward", "Terminated", "Truncated")
        ),
        metric_signal=(
            None
            if document["Metric"] == MEAN_RETURN
            else DataPackIdentifier(signals["Metric"]["Name"], signals["Metric"]["Engine"])
        ),
        ppo=PPOSettings(
            gamma=ppo["Gamma"],
            lam=ppo["Lambda"],
            clip_epsilon=ppo["ClipEpsilon"],
            value_clip=ppo["ValueClip"],
            value_coef=ppo["ValueCoef"],
            entropy_coef=ppo["EntropyCoef"],
            epochs=ppo["Epochs"],
            minibatches=ppo["Minibatches"],
            learning_rate=ppo["LearningRate"],
            learning_rate_schedule=ppo["LearningRateSchedule"],
            max_grad_norm=ppo["MaxGradNorm"],
            chunk_length=ppo["ChunkLength"],
        ),
        normalize_rewards=document["Normalize"]["Rewards"],
        checkpoint_every=document["Checkpoint"]["Every"],
        metric=document["Metric"],
        document=MappingProxyType(document),
    )


def _fill_brain(document: dict[str, Any], directory: Path, config: SimulationConfig) -> str | None:
    """Take the brain the recipe leaves open (``null``) from the config's brain engine.

    A builder file is made absolute, relative to the file that names it, so the brain engine
    and the trainer build the same brain.

    Returns:
        The config's brain spec (absolute), or ``None`` if its brain engine names none.
    """
    engine = next((e for e in config.engines if e.name == document["BrainEngine"]), None)
    extra = dict(engine.extra) if engine is not None else {}
    config_brain = extra.get("Brain")
    if isinstance(config_brain, str):
        config_brain = absolute_spec(config_brain, config.directory)
    if document["Brain"] is None:
        document["Brain"] = config_brain or DEFAULT_BRAIN
        if document["BrainOptions"] is None:
            document["BrainOptions"] = extra.get("BrainOptions") or {}
    else:
        document["Brain"] = absolute_spec(document["Brain"], directory)
    if document["Distribution"] is None:
        document["Distribution"] = extra.get("Distribution") or DEFAULT_DISTRIBUTION
        if document["DistributionOptions"] is None:
            document["DistributionOptions"] = extra.get("DistributionOptions") or {}
    document["BrainOptions"] = document["BrainOptions"] or {}
    document["DistributionOptions"] = document["DistributionOptions"] or {}
    return config_brain


def _initial_weights(document: dict[str, Any], directory: Path, path: str | Path) -> Path | None:
    """``InitialWeights`` made absolute (relative to the recipe), checked to exist.

    Raises:
        ConfigError: If it names no ``.weights.h5`` file.
    """
    given = document["InitialWeights"]
    if given is None:
        return None
    weights = (directory / given).resolve()
    suffix = WEIGHTS.suffixes[0]
    if not weights.is_file() or not weights.name.endswith(suffix):
        raise ConfigError(str(path), "InitialWeights", f"an existing {suffix} file", str(weights))
    document["InitialWeights"] = str(weights)
    return weights


def _check_brain(document: Mapping[str, Any], path: str | Path, config_brain: str | None) -> None:
    """Raise ``ConfigError`` naming where the brain came from if it cannot be found."""
    problem = spec_problem(document["Brain"])
    if problem is not None:
        where = "Brain" if document["Brain"] != config_brain else "Brain (from the config)"
        raise ConfigError(
            str(path),
            where,
            "an installed brain, 'path/to/file.py:builder' or 'module:builder'",
            f"Brain={document['Brain']!r}: {problem}",
        )


def _check_consistency(document: Mapping[str, Any], path: str, config: SimulationConfig) -> None:
    """What the schema cannot say: settings that must agree with each other and the config.

    Raises:
        ConfigError: Naming the key, if a signal names no engine of the config, the metric
            is not the task's, or the PPO chunking cannot be met.
    """
    engines = [engine.name for engine in config.engines]
    keys = ["Reward", "Terminated", "Truncated"]
    if document["Metric"] != MEAN_RETURN:
        keys.append("Metric")
        if config.task is not None:
            task_metric = getattr(task_class(config.task.name, config.directory), "metric", None)
            if document["Metric"] != task_metric:
                raise ConfigError(
                    path,
                    "Metric",
                    f"{MEAN_RETURN!r} or the metric of the config's task {task_metric!r}",
                    f"Metric={document['Metric']!r}",
                )
    for key in keys:
        engine = document["Signals"][key]["Engine"]
        if engine not in engines:
            raise ConfigError(
                path,
                f"Signals.{key}.Engine",
                f"an engine of {config.path.name} {engines}"
                + (
                    f" (or Metric: {MEAN_RETURN}, which needs no signal)" if key == "Metric" else ""
                ),
                f"Engine={engine!r}",
            )
    ppo, horizon = document["PPO"], document["Horizon"]
    if ppo["ChunkLength"] > horizon:
        raise ConfigError(
            path, "PPO.ChunkLength", f"at most Horizon ({horizon})", f"{ppo['ChunkLength']}"
        )
    # Chunks never cross an episode start, so a world yields at least this many.
    chunks = document["Worlds"] * math.ceil(horizon / ppo["ChunkLength"])
    if ppo["Minibatches"] > chunks:
        raise ConfigError(
            path,
            "PPO.Minibatches",
            f"at most the {chunks} TBPTT chunks of a cycle (Worlds x ceil(Horizon / "
            "ChunkLength)) per process",
            f"{ppo['Minibatches']}",
        )
