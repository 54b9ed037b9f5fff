"""The training monitor: one JSON line per cycle, TensorBoard scalars, a progress line.

Every cycle appends one JSON object to ``RUN_DIR/progress.jsonl`` and writes its numeric
entries as TensorBoard scalars under ``RUN_DIR/tensorboard``, against environment steps; the
recipe's values go to TensorBoard's hyperparameter tab. ``plot_runs`` draws the learning
curves of runs or batches into a PNG, the seeds of one setting as their mean and 95%
interval.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PROGRESS = "progress.jsonl"
TENSORBOARD = "tensorboard"
KIB = 1024
CURVES = {
    "mean_return": "mean return\n(episodes ending in the cycle)",
    "metric": "",
    "policy_loss": "policy loss",
    "value_loss": "value loss",
    "entropy": "policy entropy",
    "approx_kl": "approximate KL\n(old to new policy)",
}
"""Entries ``plot_runs`` draws, one panel each when the runs have them, with their axis
labels (the metric's is its name in the runs' records)."""
RECIPE_FILE = "recipe.json"
BATCH_FILE = "batch.json"
CONFIDENCE = 0.95
"""Two-sided coverage of the interval drawn around the mean of several seeds."""


def peak_memory_mib() -> float:
    """Peak resident memory of this process and its finished children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / KIB


class Monitor:
    """Writes the per-cycle record of a run.

    Args:
        run_dir: The run's directory.
        total_cycles: Cycles the run will do (for the progress line).
        quiet: No progress line.
    """

    def __init__(
        self,
        run_dir: Path,
        total_cycles: int,
        quiet: bool = False,
        hparams: Mapping[str, bool | int | float | str] | None = None,
    ) -> None:
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp

        self.path = run_dir / PROGRESS
        self.total_cycles = total_cycles
        self.quiet = quiet
        self._writer = tf.summary.create_file_writer(str(run_dir / TENSORBOARD))
        self._started = time.monotonic()
        self._first_cycle: int | None = None
        if hparams:
            with self._writer.as_default():
                hp.hparams(dict(hparams))
            self._writer.flush()

    def log(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` (which must hold ``cycle``) and print the progress line."""
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(_strict(record), allow_nan=False) + "\n")
        _write_scalars(self._writer, record)
        cycle = int(record["cycle"])
        if self._first_cycle is None:
            self._first_cycle = cycle - 1  # cycles done before this process (a resume)
        per_cycle = (time.monotonic() - self._started) / max(cycle - self._first_cycle, 1)
        if not self.quiet:
            eta = per_cycle * max(self.total_cycles - cycle, 0)
            line = _progress_line(record, self.total_cycles)
            print(f"{line}  ETA {_duration(eta)}", file=sys.stderr, flush=True)


def _write_scalars(writer: Any, record: Mapping[str, Any]) -> None:
    """Write the numeric entries of ``record`` as TensorBoard scalars at its env steps (its
    cycle when it has none)."""
    import tensorflow as tf

    with writer.as_default(step=int(record.get("env_steps", record["cycle"]))):
        for key, value in _scalars(record):
            tf.summary.scalar(key, value)
    writer.flush()


def _strict(value: Any) -> Any:
    """``value`` with non-finite floats as None, so the line is strict JSON."""
    if isinstance(value, Mapping):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _scalars(record: Mapping[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    found = []
    for key, value in record.items():
        if isinstance(value, Mapping):
            found += _scalars(value, f"{prefix}{key}/")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value):
                found.append((f"{prefix}{key}", float(value)))
    return found


def _progress_line(record: Mapping[str, Any], total: int) -> str:
    cycle = int(record["cycle"])
    width = 20
    done = round(width * cycle / max(total, 1))
    bar = "#" * done + "." * (width - done)
    parts = [f"[{bar}] cycle {cycle}/{total}"]
    for key, label, fmt in (
        ("env_steps", "steps", ",d"),
        ("mean_return", "return", ".3f"),
        ("metric", "metric", ".3f"),
        ("env_steps_per_s", "steps/s", ",.0f"),
    ):
        value = record.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            parts.append(f"{label} {value:{fmt}}")
    return "  ".join(parts)


def _duration(seconds: float) -> str:
    """``h:mm:ss``."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def read_progress(run_dir: Path) -> list[dict[str, Any]]:
    """The per-cycle records of a run."""
    path = run_dir / PROGRESS
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: expected a training run with {PROGRESS}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reconcile_progress(run_dir: Path, cycle: int, record: Mapping[str, Any] | None) -> None:
    """Make ``progress.jsonl`` hold exactly cycles 1..``cycle`` of the checkpoint resumed from.

    The trainer writes a cycle's checkpoint, then its line: a kill between the two loses the
    line, which ``record`` (the checkpoint's copy) restores, in TensorBoard too; lines of
    later cycles (a run resumed from an older checkpoint because the newer ones were
    damaged) are dropped, as that run repeats those cycles. The file is replaced atomically.

    Args:
        run_dir: The run's directory.
        cycle: The checkpoint's last cycle.
        record: That cycle's progress record, if the checkpoint holds one.
    """
    path = run_dir / PROGRESS
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    kept: dict[int, str] = {}
    for line in lines:
        try:
            logged = int(json.loads(line)["cycle"])
        except json.JSONDecodeError:
            continue  # empty, or cut by a kill in mid-write
        if logged <= cycle:
            kept.setdefault(logged, line)
    if cycle not in kept and record is not None and cycle > 0:
        kept[cycle] = json.dumps(_strict(record), allow_nan=False)
        import tensorflow as tf

        writer = tf.summary.create_file_writer(str(run_dir / TENSORBOARD))
        _write_scalars(writer, record)
        writer.close()
    reconciled = [kept[c] for c in sorted(kept)]
    if reconciled != lines:
        temporary = path.with_suffix(".jsonl.tmp")
        temporary.write_text("".join(line + "\n" for line in reconciled), encoding="utf-8")
        temporary.replace(path)


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """The training run directories in ``paths``: runs themselves, batch directories
    (``neuroloop batch --out``) or any folders holding runs.

    Raises:
        FileNotFoundError: If a path holds no training run.
    """
    runs: list[Path] = []
    for path in paths:
        if (path / PROGRESS).is_file():
            found = [path]
        else:
            found = sorted(progress.parent for progress in path.rglob(PROGRESS))
        if not found:
            raise FileNotFoundError(
                f"{path}: expected a training run (with {PROGRESS}), a batch directory or a "
                "folder holding runs"
            )
        runs += [run for run in found if run not in runs]
    return runs


def _setting(run: Path) -> str:
    """What makes runs one setting: their recipe apart from its Seed (else the run itself)."""
    path = run / RECIPE_FILE
    if not path.is_file():
        return str(run.resolve())
    recipe = {k: v for k, v in json.loads(path.read_text()).items() if k != "Seed"}
    return json.dumps(recipe, sort_keys=True)


def _flat(document: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in document.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value)
    return flat


def distinct_labels(paths: Sequence[Path]) -> list[str]:
    """The shortest trailing parts of ``paths`` that tell them apart (whole paths if none)."""
    parts = [path.resolve().parts for path in paths]
    for length in range(1, max((len(p) for p in parts), default=1) + 1):
        labels = ["/".join(p[-length:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(path) for path in paths]


def group_runs(runs: Sequence[Path]) -> dict[str, list[Path]]:
    """Runs by setting, each setting labelled by the recipe values that set it apart (or by
    its distinct path), with its number of seeds."""
    groups: dict[str, list[Path]] = {}
    for run in runs:
        groups.setdefault(_setting(run), []).append(run)
    settings = [_flat(json.loads(key)) if key.startswith("{") else {} for key in groups]
    differing = sorted(
        {k for flat in settings for k in flat if len({f.get(k) for f in settings}) > 1}
        - {"Simulation", "Name"}
    )
    paths = distinct_labels(
        [members[0] if len(members) == 1 else members[0].parent for members in groups.values()]
    )
    labelled = {}
    for members, flat, path in zip(groups.values(), settings, paths, strict=True):
        shown = ", ".join(f"{k}={flat[k]}" for k in differing if k in flat)
        label = shown or path
        if len(members) > 1:
            label += f" (mean of {len(members)} seeds, {CONFIDENCE:.0%} interval)"
        labelled[label] = members
    return labelled


def _mean_and_interval(curves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds and the half-width of its Student-t interval, per point."""
    from scipy import stats

    stacked = np.stack(curves)
    n = stacked.shape[0]
    mean = stacked.mean(axis=0)
    if n < 2:
        return mean, np.zeros_like(mean)
    quantile = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1))
    return mean, quantile * stacked.std(axis=0, ddof=1) / math.sqrt(n)


@dataclass(frozen=True)
class EvaluatedPoint:
    """One ``neuroloop evaluate --json`` result: the checkpoint's environment steps (``None``
    for a brain that is not a run's checkpoint: weights, or a recipe's untrained brain) and
    the evaluated metric's mean with its 95% interval."""

    env_steps: int | None
    mean: float
    half_width: float
    label: str


def read_evaluations(files: Sequence[Path]) -> list[EvaluatedPoint]:
    """The metric of each ``neuroloop evaluate --json`` file, at its checkpoint's steps.

    Points are labelled by run, sampled or deterministic actions, control steps per gathering
    (episodes longer than that are not counted) and config overrides.

    Raises:
        ValueError: If a file is not such a result (names the file and what was expected).
    """
    points = []
    for file in files:
        try:
            report = json.loads(Path(file).read_text())
            evaluated = report["evaluated"]
            env_steps = None if "env_steps" not in evaluated else int(evaluated["env_steps"])
            [metric] = [k for k in report if k not in ("return", "evaluated")]
            mean = float(report[metric]["mean"])
            half = report[metric]["ci95_half_width"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"{file}: expected the --json of neuroloop evaluate with a task metric "
                f"({type(error).__name__}: {error})"
            ) from None
        policy = "deterministic" if evaluated.get("deterministic") else "sampled"
        brain = Path(evaluated.get("source", "")).name
        if "weights" in evaluated:
            weights = evaluated["weights"]
            brain += f" with {Path(weights).name}" if weights else " untrained"
        shown = [brain, policy]
        if "horizon" in evaluated:
            shown.append(f"{evaluated['horizon']} steps")
        shown += evaluated.get("overrides", [])
        points.append(EvaluatedPoint(env_steps, mean, float(half or 0.0), ", ".join(shown)))
    return points


def plot_runs(
    paths: Sequence[Path], output: Path, evaluations: Sequence[EvaluatedPoint] = ()
) -> Path:
    """Draw the learning curves of the runs in ``paths`` into the PNG ``output``.

    Runs whose recipes differ only in their Seed are one setting: drawn as the mean over
    seeds with its 95% interval (Student t), against environment steps. ``evaluations``
    (``read_evaluations``) are drawn on the metric's panel: a run's checkpoints as points with
    their 95% intervals, joined by label; other brains (weights, an untrained brain) as
    dashed levels with their intervals shaded.

    Raises:
        FileNotFoundError: If a path holds no training run.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = group_runs(find_runs(paths))
    records = {run: read_progress(run) for members in groups.values() for run in members}
    every = [record for rs in records.values() for record in rs]
    keys = [k for k in CURVES if any(k in record for record in every)]
    metric_names = sorted({str(r["metric_name"]) for r in every if "metric_name" in r})
    figure, axes = plt.subplots(len(keys), 1, figsize=(8, 2.6 * len(keys)), squeeze=False)
    for axis, key in zip(axes[:, 0], keys, strict=True):
        for label, members in groups.items():
            curves = [_curve(records[run], key) for run in members]
            cycles = min(len(steps) for steps, _ in curves)
            if cycles == 0:
                continue
            steps = curves[0][0][:cycles]
            mean, half = _mean_and_interval([values[:cycles] for _, values in curves])
            (line,) = axis.plot(steps, mean, label=label)
            if len(members) > 1:
                axis.fill_between(
                    steps, mean - half, mean + half, color=line.get_color(), alpha=0.2
                )
        if key == "metric":
            _draw_evaluations(axis, evaluations)
        axis.set_ylabel(CURVES[key] or " / ".join(metric_names) or "task metric")
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("environment steps")
    axes[0, 0].legend(loc="best", fontsize="small")
    figure.tight_layout()
    legends = [axis.get_legend() for axis in axes[:, 0] if axis.get_legend() is not None]
    figure.savefig(output, dpi=100, bbox_inches="tight", bbox_extra_artists=legends)
    plt.close(figure)
    return output


def _draw_evaluations(axis: Any, evaluations: Sequence[EvaluatedPoint]) -> None:
    """Evaluated points by label, in order of environment steps, with 95% intervals."""
    labels: dict[str, list[EvaluatedPoint]] = {}
    for point in evaluations:
        labels.setdefault(point.label, []).append(point)
    for label, points in labels.items():
        if points[0].env_steps is None:  # not a checkpoint: a level to compare with
            for point in points:
                # An empty line takes the next colour of the cycle and stands in the legend.
                (line,) = axis.plot([], [], linestyle="--", label=f"evaluate: {label}")
                axis.axhline(point.mean, linestyle="--", color=line.get_color())
                low, high = point.mean - point.half_width, point.mean + point.half_width
                axis.axhspan(low, high, color=line.get_color(), alpha=0.15)
            continue
        points.sort(key=lambda point: point.env_steps or 0)
        axis.errorbar(
            [p.env_steps for p in points],
            [p.mean for p in points],
            yerr=[p.half_width for p in points],
            marker="o",
            capsize=3,
            label=f"evaluate: {label}",
        )
    if labels:  # beside the panel (the levels and points fill it), outside tight_layout
        legend = axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
        legend.set_in_layout(False)


def _curve(records: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Environment steps and ``key`` of each cycle (NaN where a cycle has no value)."""
    steps = np.array([float(r["env_steps"]) for r in records])
    values = np.array([float(r[key]) if _finite(r.get(key)) else math.nan for r in records])
    return steps, values


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
