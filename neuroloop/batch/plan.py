"""The runs of a batch: one directory each, its command, its resolved config."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from neuroloop.batch.sweep import Sweep
from neuroloop.errors import ConfigError, UsageError
from neuroloop.training.checkpoint import CHECKPOINTS, LATEST

SIMULATION = "simulation"
TRAINING = "training"
RUNS = "runs"
"""Subdirectory of a batch's directory that holds one directory per run."""
RUN_FILE = "run.json"
EXIT_FILE = "exit.json"
DONE_MARKER = "DONE"
STDOUT_LOG = "stdout.log"
STDERR_LOG = "stderr.log"
TRAIN_DIR = "train"
LATEST_CHECKPOINT = f"{CHECKPOINTS}/{LATEST}"
"""A training run resumes from this checkpoint."""
RESOLVED_FILES = {SIMULATION: "config.json", TRAINING: "recipe.json"}
DIGEST_CHARS = 8


@dataclass(frozen=True)
class Run:
    """One simulation or training run of a batch."""

    run_id: str
    """``seed<S>-<hash>``: the name of the run's directory, stable for the same settings."""
    kind: str
    """``"simulation"`` (``neuroloop run``) or ``"training"`` (``neuroloop train``)."""
    target: Path
    """The simulation config or training recipe, absolute."""
    seed: int
    """``--seed`` of the run."""
    settings: tuple[str, ...]
    """The run's own ``PATH=VALUE`` overrides (from the grid or an extra run)."""
    overrides: tuple[str, ...]
    """Every ``-o`` override of the run: the sweep's common ones, then ``settings``."""
    directory: Path
    """The run's directory, absolute."""
    command: tuple[str, ...]
    """The command that runs it (for training with workers, an ``mpiexec`` line)."""
    metric: str | None
    """Status key (simulation) or progress key (training) to report; None: the default."""
    workers: int = 1
    """MPI ranks of a training run."""

    @property
    def train_dir(self) -> Path:
        """Where a training run writes its checkpoints and progress."""
        return self.directory / TRAIN_DIR

    def resume_command(self) -> tuple[str, ...]:
        """The command, plus ``--resume`` if an unfinished training run left a checkpoint."""
        if self.kind == TRAINING and (self.train_dir / LATEST_CHECKPOINT).is_file():
            return (*self.command, "--resume", str(self.train_dir))
        return self.command

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "target": str(self.target),
            "seed": self.seed,
            "settings": list(self.settings),
            "overrides": list(self.overrides),
            "directory": str(self.directory),
            "command": list(self.command),
            "metric": self.metric,
            "workers": self.workers,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Run:
        return cls(
            run_id=data["run_id"],
            kind=data["kind"],
            target=Path(data["target"]),
            seed=data["seed"],
            settings=tuple(data["settings"]),
            overrides=tuple(data["overrides"]),
            directory=Path(data["directory"]),
            command=tuple(data["command"]),
            metric=data["metric"],
            workers=data["workers"],
        )


def detect_kind(target: Path) -> str:
    """``"simulation"`` for a config with EngineConfigs, ``"training"`` for a recipe.

    Raises:
        ConfigError: If the file is unreadable or is neither.
    """
    label = str(target)
    try:
        document = yaml.safe_load(target.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(
            label, "", "a simulation config or training recipe file", str(error.strerror)
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError(label, "", "valid JSON or YAML", str(error)) from None
    keys = sorted(document) if isinstance(document, dict) else []
    if "EngineConfigs" in keys:
        return SIMULATION
    if "Simulation" in keys:
        return TRAINING
    raise ConfigError(
        label,
        "",
        "a simulation config (with EngineConfigs) or a training recipe (with Simulation)",
        f"keys {keys}" if keys else repr(document),
    )


def plan(
    target: str | Path,
    sweep: Sweep,
    out_dir: str | Path,
    *,
    workers: int = 1,
    metric: str | None = None,
    python: str = sys.executable,
) -> list[Run]:
    """The runs of a batch, in sweep order (a run listed twice is kept once).

    Args:
        target: A simulation config (runs ``neuroloop run``) or a training recipe (runs
            ``neuroloop train``).
        sweep: Seeds, grid and extra runs.
        out_dir: The batch's directory; runs go to ``out_dir/runs/RUN_ID``.
        workers: MPI ranks per training run (``mpiexec -n workers``).
        metric: The status (simulation) or progress (training) key the summary reports;
            None: every status entry of a simulation, the recipe's ``Metric`` for training.
        python: The interpreter the runs use.

    Raises:
        ConfigError: If ``target`` is neither a simulation config nor a training recipe.
        UsageError: If ``workers`` is not 1 for a simulation, or less than 1, or the sweep
            has no runs (no seeds, or a grid key without values).
    """
    file = Path(target).resolve()
    kind = detect_kind(file)
    if workers < 1 or (kind == SIMULATION and workers != 1):
        raise UsageError(
            f"--workers: expected 1 for a simulation config, at least 1 for a training recipe. "
            f"Received: workers={workers} for {target}"
        )
    runs: dict[str, Run] = {}
    root = Path(out_dir).resolve() / RUNS
    for seed, settings in sweep.settings():
        overrides = (*sweep.overrides, *settings)
        key = json.dumps([kind, str(file), seed, overrides, workers])
        run_id = f"seed{seed}-{hashlib.sha256(key.encode()).hexdigest()[:DIGEST_CHARS]}"
        directory = root / run_id
        command = _command(kind, file, seed, overrides, directory, workers, python)
        runs.setdefault(
            run_id,
            Run(run_id, kind, file, seed, settings, overrides, directory, command, metric, workers),
        )
    if not runs:
        raise UsageError(
            f"batch: expected a sweep with at least one run. Received: seeds={list(sweep.seeds)}, "
            f"grid={dict(sweep.grid)}"
        )
    return list(runs.values())


def _command(
    kind: str,
    target: Path,
    seed: int,
    overrides: Sequence[str],
    directory: Path,
    workers: int,
    python: str,
) -> tuple[str, ...]:
    options = [item for text in overrides for item in ("-o", text)]
    if kind == SIMULATION:
        simulate = (python, "-m", "neuroloop", "run", str(target), "--seed", str(seed), "--quiet")
        return (*simulate, *options)
    train = [
        *(python, "-m", "neuroloop", "train", str(target), "--seed", str(seed)),
        *("--run-dir", str(directory / TRAIN_DIR), "--quiet", *options),
    ]
    if workers == 1:
        return tuple(train)
    return (_mpiexec(python), "-n", str(workers), *train)


def _mpiexec(python: str) -> str:
    """The mpiexec next to ``python`` (the mpich wheel's), else the one on PATH."""
    beside = Path(python).parent / "mpiexec"
    return str(beside) if beside.is_file() else "mpiexec"


def resolved_document(run: Run) -> Mapping[str, Any]:
    """The run's simulation config or training recipe with its overrides, defaults filled.

    Raises:
        ConfigError: If the overrides do not fit or the result is invalid.
    """
    # Imported here: the neuroloop command's parser imports this module for every command.
    if run.kind == SIMULATION:
        from neuroloop.config import load_config

        return load_config(run.target, run.overrides).document
    from neuroloop.training.recipe import load_recipe

    return load_recipe(run.target, [*run.overrides, f"Seed={run.seed}"]).document


def prepare(run: Run) -> str | None:
    """Write the run's directory: ``run.json`` and its resolved config.

    Returns:
        None, or the config error that will fail the run (it is run anyway, so that the
        error is reported where every run's result is).
    """
    run.directory.mkdir(parents=True, exist_ok=True)
    write_json(run.directory / RUN_FILE, run.to_json())
    resolved = run.directory / RESOLVED_FILES[run.kind]
    try:
        document = resolved_document(run)
    except ConfigError as error:
        resolved.unlink(missing_ok=True)
        return str(error)
    write_json(resolved, document)
    return None


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically (read-only mappings become objects)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(value, indent=2, default=dict) + "\n", encoding="utf-8")
    partial.replace(path)
