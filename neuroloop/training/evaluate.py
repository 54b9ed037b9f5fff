"""Evaluate a trained brain on fresh episodes, with 95% confidence intervals.

The brain is a training run's checkpoint, or exported weights (``neuroloop export``) run on
the task of a recipe. A task metric that counts (every episode's value an integer, such as
consecutive goals reached) is also reported as a distribution: mean, median, the central
95% of episodes and a histogram (``CountDistribution``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
from neuroloop.training.checkpoint import (
    CHECKPOINTS,
    PERIODIC_GLOB,
    TrainingState,
    checkpoint_file,
    load_checkpoint,
)
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
HISTOGRAM_ROWS = 51
"""Most rows of a count histogram (CGR's 0..50 fit); wider ranges share rows."""
HISTOGRAM_WIDTH = 40
"""Characters of the longest histogram bar."""


@dataclass(frozen=True)
class CountDistribution:
    """The distribution of an integer count over episodes (e.g. consecutive goals reached)."""

    n: int
    """Episodes."""
    mean: float
    median: float
    interval_95: tuple[int, int]
    """The 2.5th and 97.5th percentiles (values that occurred): 95% of episodes lie within."""
    histogram: tuple[tuple[int, int, int], ...]
    """Rows ``(low, high, episodes)``: episodes whose count is in ``[low, high]``."""

    def lines(self, name: str) -> list[str]:
        """The distribution as text: a summary line, then a histogram row per bin."""
        lines = [
            f"{name} distribution over {self.n} episodes: mean {self.mean:.2f}, median "
            f"{self.median:g}, 95% of episodes in [{self.interval_95[0]}, {self.interval_95[1]}]"
        ]
        most = max(count for _, _, count in self.histogram)
        for low, high, count in self.histogram:
            label = f"{low}" if low == high else f"{low}-{high}"
            bar = "#" * math.ceil(HISTOGRAM_WIDTH * count / most) if count else ""
            lines.append(f"  {label:>9} | {bar:<{HISTOGRAM_WIDTH}} {count}")
        return lines

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the distribution."""
        return {
            "n": self.n,
            "mean": self.mean,
            "median": self.median,
            "interval_95": list(self.interval_95),
            "histogram": [
                {"low": low, "high": high, "episodes": count} for low, high, count in self.histogram
            ],
        }


def count_distribution(values: Sequence[float]) -> CountDistribution | None:
    """The distribution of ``values`` when every one is a finite integer (else ``None``)."""
    array = np.asarray(values, dtype=np.float64)
    if not len(array) or not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
        return None
    counts = array.astype(np.int64)
    low, high = int(counts.min()), int(counts.max())
    width = math.ceil((high - low + 1) / HISTOGRAM_ROWS)
    rows = tuple(
        (
            start,
            min(start + width - 1, high),
            int(np.sum((counts >= start) & (counts < start + width))),
        )
        for start in range(low, high + 1, width)
    )
    lower, upper = np.percentile(counts, [2.5, 97.5], method="inverted_cdf")
    return CountDistribution(
        len(counts),
        float(counts.mean()),
        float(np.median(counts)),
        (int(lower), int(upper)),
        rows,
    )


@dataclass(frozen=True)
class Evaluation:
    """What ``evaluate`` measured."""

    intervals: dict[str, tuple[float, float, int]]
    """``{"return": (mean, half_width, n), METRIC: (...)}``: means with the half-width of
    their normal-approximation 95% confidence interval."""
    distributions: dict[str, CountDistribution]
    """Count metrics' distributions by name (``count_distribution``)."""
    values: dict[str, list[float]]
    """Every finished episode's return and metric, by name."""
    evaluated: dict[str, Any] = field(default_factory=dict)
    """What was evaluated, how: the source, the checkpoint with its cycle and environment
    steps (a run's), the weights file, ``deterministic``, ``horizon`` and ``overrides``."""

    def lines(self) -> list[str]:
        """The evaluation as terminal text."""
        lines = [
            f"{name:<12} {mean:.4f} ± {half:.4f} (95% CI, {n} episodes)"
            for name, (mean, half, n) in self.intervals.items()
        ]
        for name, distribution in self.distributions.items():
            lines += distribution.lines(name)
        return lines

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: per quantity its mean, CI half-width, episodes, values and, for
        counts, the distribution."""
        report: dict[str, Any] = {}
        for name, (mean, half, n) in self.intervals.items():
            report[name] = {
                "mean": mean,
                "ci95_half_width": half if math.isfinite(half) else None,
                "episodes": n,
                "values": self.values[name],
            }
            if name in self.distributions:
                report[name]["distribution"] = self.distributions[name].to_json()
        if self.evaluated:
            report["evaluated"] = self.evaluated
        return report


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
    """The recipe and the checkpoint ``which`` of training run ``run_dir``.

    ``which`` is ``"best"``, ``"latest"`` or a cycle number (that cycle's periodic
    checkpoint).

    Raises:
        UsageError: If ``run_dir`` lacks the recipe or that checkpoint (``command`` is named
            in the message).
    """
    recipe_path = run_dir / RECIPE_FILE
    checkpoint = checkpoint_file(run_dir, which)
    if not recipe_path.is_file() or not checkpoint.is_file():
        periodic = sorted(path.name for path in (run_dir / CHECKPOINTS).glob(PERIODIC_GLOB))
        kept = (
            f" (it has {len(periodic)} periodic checkpoints, {periodic[0]} to {periodic[-1]})"
            if periodic
            else ""
        )
        raise UsageError(
            f"{command} {run_dir}: expected a training run with {RECIPE_FILE} and "
            f"{CHECKPOINTS}/{checkpoint.name}{kept}"
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
    overrides: Sequence[str] = (),
) -> Evaluation:
    """Run ``episodes`` evaluation episodes with a trained brain.

    Args:
        source: A training run directory (its ``which`` checkpoint is evaluated), or a
            recipe file: with ``weights`` those, else the brain its training starts from
            (its ``InitialWeights``, or its seed's untrained brain: a baseline).
        episodes: Episodes to finish (at least).
        deterministic: Act on the policy's mode instead of sampling.
        which: ``"best"``, ``"latest"`` or a cycle number (a periodic checkpoint) of a run.
        horizon: Control steps per gathering (default: the recipe's Horizon); episodes
            longer than this never finish.
        weights: A ``.weights.h5`` file (``neuroloop export``) to evaluate on the task of
            the recipe ``source``; the brain is built from its ``.brain.json`` when there is
            one, else as the recipe says.
        record: An ``.npz`` file to record every step to (``neuroloop.recording.Recording``):
            inputs, actions, rewards, values, the recurrent state each step starts from,
            every layer's activations, body state and the task's conditions.
        overrides: Simulation config overrides (``PATH=VALUE``, as the recipe's
            ``SimulationOverrides``), e.g. ``Task.Options.SuccessRotation=0.1`` to count goals
            at a tighter tolerance than training did.

    Returns:
        The return's and the task metric's means with 95% confidence intervals (the metric
        when the recipe's metric signal reports one), and the distribution of a metric that
        counts.

    Raises:
        UsageError: If ``source`` is neither a run nor a recipe given with ``weights``.
    """
    settings: dict[str, object] = {"Deterministic": deterministic}
    evaluated: dict[str, Any] = {"source": str(source)}
    flat = None
    if weights is None and not source.is_file():
        recipe, state = load_run(source, which, "evaluate")
        flat = flatten(state.weights)
        evaluated.update(checkpoint=which, cycle=state.cycle, env_steps=state.env_steps)
    elif source.is_file():
        recipe = load_recipe(source)
        weights = weights or recipe.initial_weights  # else the brain its training starts from
        evaluated["weights"] = None if weights is None else str(weights)
        if weights is not None:
            settings["Weights"] = str(weights.resolve())
            settings.update(weights_architecture(weights))
    else:
        raise UsageError(
            f"evaluate {source} --weights {weights}: expected a recipe file to evaluate the "
            "weights on. Received: not a file"
        )
    if record is not None:
        settings["Record"] = "all"
    if overrides:
        recipe = dataclasses.replace(
            recipe, simulation_overrides=(*recipe.simulation_overrides, *overrides)
        )
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
        evaluated.update(deterministic=deterministic, horizon=steps, overrides=list(overrides))
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
    intervals = {"return": _interval(returns)}
    values = {"return": returns}
    distributions = {}
    if metrics:
        intervals[recipe.metric] = _interval(metrics)
        values[recipe.metric] = metrics
        distribution = count_distribution(metrics)
        if distribution is not None:
            distributions[recipe.metric] = distribution
    return Evaluation(intervals, distributions, values, evaluated)


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
