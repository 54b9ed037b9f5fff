"""Evaluate a trained brain on fresh episodes, with 95% confidence intervals.

The brain is a training run's checkpoint, or exported weights (``neuroloop export``) run on
the task of a recipe.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from neuroloop.brain.trained import read_architecture
from neuroloop.brain.weights import flatten
from neuroloop.errors import UsageError
from neuroloop.simulation import Simulation
from neuroloop.training.checkpoint import BEST, CHECKPOINTS, LATEST, TrainingState, load_checkpoint
from neuroloop.training.gather import Gatherer, TrainingSignals
from neuroloop.training.recipe import Recipe, load_recipe
from neuroloop.training.trainer import RECIPE_FILE, episode_statistics

Z_95 = 1.959964
"""Two-sided 95% quantile of the standard normal distribution."""
EVALUATION_SEED = 1_000_000_007
"""Seeds of evaluation episodes start here: never a training cycle's seed."""
NO_EPISODE_PATIENCE = 3
"""Gatherings without a finished episode after which evaluation gives up."""


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
    config = recipe.simulation_config(brain_settings=settings)
    returns: list[float] = []
    metrics: list[float] = []
    signals = TrainingSignals(recipe.brain_engine, *recipe.signals, recipe.metric_signal)
    with Simulation(config, echo_engine_output=False) as simulation:
        gatherer = Gatherer(simulation, signals)
        if flat is not None:
            gatherer.push_weights(flat)
        steps = recipe.horizon if horizon is None else horizon
        cycle = 0
        while len(returns) < episodes:
            rollout = gatherer.gather(steps, EVALUATION_SEED + cycle)
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


def _interval(values: list[float]) -> tuple[float, float, int]:
    """The mean of ``values`` with the half-width of its 95% confidence interval."""
    array = np.asarray(values, dtype=np.float64)
    spread = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return confidence_interval(float(array.mean()), spread, len(array))
