"""Evaluate a trained brain on fresh episodes, with 95% confidence intervals.

The brain is a training run's checkpoint, or exported weights (``neuroloop export``) run on
the task of a recipe.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neuroloop.brain.trained import read_architecture
from neuroloop.brain.weights import flatten
from neuroloop.datapack import DataPackIdentifier
from neuroloop.errors import UsageError
from neuroloop.recording import LAYER_PREFIX, StepRecorder
from neuroloop.simulation import Simulation
from neuroloop.tasks import build_task
from neuroloop.training.checkpoint import BEST, CHECKPOINTS, LATEST, TrainingState, load_checkpoint
from neuroloop.training.gather import Gatherer, Rollout, TrainingSignals
from neuroloop.training.recipe import Recipe, load_recipe
from neuroloop.training.trainer import RECIPE_FILE, build_recipe_brain, episode_statistics

Z_95 = 1.959964
"""Two-sided 95% quantile of the standard normal distribution."""
EVALUATION_SEED = 1_000_000_007
"""Seeds of evaluation episodes start here: never a training cycle's seed."""
NO_EPISODE_PATIENCE = 3
"""Gatherings without a finished episode after which evaluation gives up."""
BODY_VARIABLES = (
    "joint_positions",
    "fingertip_positions",
    "palm_position",
    "object_pose",
    "target_pose",
)
"""Body datapacks a recording keeps as task variables, from any engine that offers them."""
BRAIN_KEYS = ("Brain", "BrainOptions", "Distribution", "DistributionOptions", "InputShapes")
"""The brain engine's settings a recording keeps, so analysis can rebuild the brain."""


def weights_architecture(weights: Path) -> dict[str, Any]:
    """The brain engine settings in the architecture file beside ``weights`` (none: {}).

    Raises:
        UsageError: If that file is malformed.
    """
    try:
        architecture = read_architecture(weights)
    except ValueError as error:
        raise UsageError(f"--weights: {error}") from None
    return {} if architecture is None else dict(architecture.settings)


def confidence_interval(mean: float, std: float, n: int) -> tuple[float, float, int]:
    """``(mean, half-width of the normal-approximation 95% interval, n)``."""
    half = Z_95 * std / math.sqrt(n) if n > 1 else math.inf
    return mean, half, n


def load_run(run_dir: Path, which: str, command: str) -> tuple[Recipe, TrainingState]:
    """The recipe and the ``"best"`` or ``"latest"`` checkpoint of training run ``run_dir``.

    Raises:
        UsageError: If ``run_dir`` lacks the recipe or that checkpoint (``command`` is named
            in the message).
    """
    recipe_path = run_dir / RECIPE_FILE
    checkpoint = run_dir / CHECKPOINTS / (BEST if which == "best" else LATEST)
    if not recipe_path.is_file() or not checkpoint.is_file():
        raise UsageError(
            f"{command} {run_dir}: expected a training run with {RECIPE_FILE} and "
            f"{CHECKPOINTS}/{checkpoint.name}"
        )
    return load_recipe(recipe_path), load_checkpoint(checkpoint)


def evaluate(
    source: Path,
    episodes: int,
    deterministic: bool,
    which: str = "best",
    horizon: int | None = None,
    weights: Path | None = None,
    record: Path | None = None,
) -> dict[str, tuple[float, float, int]]:
    """Run ``episodes`` evaluation episodes with a trained brain.

    Args:
        source: A training run directory (its ``which`` checkpoint is evaluated), or a
            recipe file together with ``weights``.
        episodes: Episodes to finish (at least).
        deterministic: Act on the policy's mode instead of sampling.
        which: ``"best"`` or ``"latest"`` checkpoint of a run.
        horizon: Control steps per gathering (default: the recipe's Horizon); episodes
            longer than this never finish.
        weights: A ``.weights.h5`` file (``neuroloop export``) to evaluate on the task of
            the recipe ``source``; the brain is built from its ``.brain.json`` when there is
            one, else as the recipe says.
        record: An ``.npz`` file to record every step to (``neuroloop.recording.Recording``):
            inputs, actions, rewards, values, the recurrent state each step starts from,
            every layer's activations, body state and the task's conditions.

    Returns:
        ``{"return": (mean, half_width, n), METRIC: (...)}``; the task metric when the
        simulation's status function reports it with its standard deviation.

    Raises:
        UsageError: If ``source`` is neither a run nor a recipe given with ``weights``.
    """
    settings: dict[str, object] = {"Deterministic": deterministic}
    flat = None
    if weights is None:
        recipe, state = load_run(source, which, "evaluate")
        flat = flatten(state.weights)
    elif source.is_file():
        recipe = load_recipe(source)
        settings["Weights"] = str(weights.resolve())
        settings.update(weights_architecture(weights))
    else:
        raise UsageError(
            f"evaluate {source} --weights {weights}: expected a recipe file to evaluate the "
            "weights on. Received: not a file"
        )
    if record is not None:
        settings["Record"] = "all"
    config = recipe.simulation_config(brain_settings=settings)
    returns: list[float] = []
    metrics: list[float] = []
    signals = TrainingSignals(recipe.brain_engine, *recipe.signals, recipe.metric_signal)
    recorder = _open_recorder(record)
    with (
        recorder or contextlib.nullcontext(),
        Simulation(config, echo_engine_output=False) as simulation,
    ):
        brain_extra = config.engine(recipe.brain_engine).extra
        extras = [] if recorder is None else _recorded_datapacks(simulation, recipe.brain_engine)
        state_names = () if recorder is None else _state_names(recipe, brain_extra)
        gatherer = Gatherer(simulation, signals, state_names, extras)
        if flat is not None:
            gatherer.push_weights(flat)
        task = None
        if recorder is not None:
            task = (
                None
                if config.task is None
                else build_task(config.task, str(config.path), config.directory)
            )
            _record_meta(recorder, simulation, recipe.brain_engine, brain_extra, flat)
        steps = recipe.horizon if horizon is None else horizon
        cycle = 0
        while len(returns) < episodes:
            rollout = gatherer.gather(steps, EVALUATION_SEED + cycle)
            if recorder is not None:
                recorder.add(
                    _step_arrays(rollout, gatherer.last_extras, task), rollout.episode_start
                )
            finished = episode_statistics(rollout)
            returns += finished.returns
            metrics += finished.metrics
            cycle += 1
            if not returns and cycle >= NO_EPISODE_PATIENCE:
                raise UsageError(
                    f"evaluate {source}: no episode finished within {steps} control steps "
                    f"in {cycle} tries; pass a longer --horizon"
                )
    result = {"return": _interval(returns)}
    if metrics:
        result[recipe.metric] = _interval(metrics)
    return result


def _open_recorder(path: Path | None) -> StepRecorder | None:
    if path is None:
        return None
    try:
        return StepRecorder(path)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(
            f"--record: expected a file that can be written. Received: {path} ({error.strerror})"
        ) from None


def _state_names(recipe: Recipe, extra: Mapping[str, Any]) -> tuple[str, ...]:
    return build_recipe_brain(recipe, extra).state_names


def _recorded_datapacks(simulation: Simulation, brain: str) -> list[DataPackIdentifier]:
    """The brain's layer activations and every engine's body variables."""
    found = [
        DataPackIdentifier(name, engine)
        for engine, names in simulation.datapack_names.items()
        for name in names
        if (engine == brain and name.startswith(LAYER_PREFIX))
        or (engine != brain and name in BODY_VARIABLES)
    ]
    return found


def _record_meta(
    recorder: StepRecorder,
    simulation: Simulation,
    brain: str,
    extra: Mapping[str, Any],
    flat: np.ndarray | None,
) -> None:
    """What analysis needs to rebuild the brain: its settings, weights and control step."""
    settings = {key: extra[key] for key in BRAIN_KEYS if key in extra}
    settings["ActionDim"] = extra["ActionDim"]
    recorder.meta("brain", json.dumps(settings))
    weights = flat if flat is not None else simulation.datapack("weights", brain)
    recorder.meta("weights", np.asarray(weights, dtype=np.float32))
    recorder.meta("control_step_s", np.array(simulation.config.timestep_ns / 1e9))


def _step_arrays(
    rollout: Rollout, extras: dict[str, np.ndarray], task: Any
) -> dict[str, np.ndarray]:
    """One gathering's arrays ``[T + 1, W, ...]`` under their recording keys."""
    arrays = {f"input/{name}": value for name, value in rollout.observations.items()}
    arrays["action"] = rollout.actions
    arrays["reward"] = rollout.rewards
    arrays["log_prob"] = rollout.log_probs
    # The state each step started from: zero where an episode starts (the brain zeroes it).
    carried = ~rollout.episode_start[..., np.newaxis]
    arrays.update({f"state/{name}": value * carried for name, value in rollout.states.items()})
    for key, value in extras.items():
        name = key.rsplit("/", 1)[-1]
        if name.startswith(LAYER_PREFIX):
            arrays[f"layer/{name.removeprefix(LAYER_PREFIX)}"] = value
        else:
            arrays[f"task/{name}"] = value
    arrays["value"] = rollout.values
    goal = rollout.observations.get("goal")
    if goal is not None and task is not None:
        arrays["task/goal"] = goal
        flat = goal.reshape(-1, goal.shape[-1])
        for name, labels in task.conditions(flat).items():
            arrays[f"task/{name}"] = np.asarray(labels).reshape(goal.shape[:2])
    return arrays


def _interval(values: list[float]) -> tuple[float, float, int]:
    """The mean of ``values`` with the half-width of its 95% confidence interval."""
    array = np.asarray(values, dtype=np.float64)
    spread = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return confidence_interval(float(array.mean()), spread, len(array))
