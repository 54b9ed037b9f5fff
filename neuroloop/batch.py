"""Batch launch: many simulations or training runs from one file and a sweep.

A sweep is seeds x a grid of ``-o`` overrides (every combination of the grid's values, each
with every seed), plus any extra runs it lists. The runs go through a bounded local process
pool, or into a SLURM job-array script::

    neuroloop batch simulation_configs/pendulum_pd.json --seeds 0 1 2 3 \\
        --grid 'SimulationTimeout=[5, 10]' --pool 2 --metric episode_return
    neuroloop batch experiments/reach.yaml --sweep sweep.yaml --workers 4 --slurm runs/reach_sweep

From Python::

    runs = plan("simulation_configs/pendulum_pd.json", Sweep(seeds=(0, 1), grid={...}), out)
    results = run_batch(runs, pool=2)
    print(format_summary(results))

A sweep file (YAML or JSON)::

    seeds: [0, 1, 2, 3]
    grid:                      # every combination of these values, with every seed
      SimulationTimeout: [5, 10]
    overrides: [SimulationTimestep=0.05]   # -o overrides for every run
    include:                   # extra runs outside the grid
      - seed: 7
        overrides: {SimulationTimeout: 20}

Every run has its own directory ``OUT/runs/RUN_ID`` (the run id is ``seed<S>-<hash of its
settings>``, so the same run keeps its directory when the sweep grows)::

    run.json      the run: seed, settings, the command that runs it
    config.json   the resolved simulation config (recipe.json for a training run)
    stdout.log    stderr.log
    exit.json     exit status, start time (Unix seconds) and wall time
    DONE          marker: the run exited 0; running the batch again skips it
    train/        a training run's directory (checkpoints, progress.jsonl); an unfinished
                  run with a checkpoint resumes from it

Local runs and SLURM tasks write the same files, so ``neuroloop batch --report OUT`` (or
:func:`collect`) summarises either. Simulations and engines need no port planning: every
engine binds a free port (or its configured Unix socket) and announces it.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neuroloop.errors import ConfigError, UsageError
from neuroloop.launcher import signal_group
from neuroloop.training.checkpoint import CHECKPOINTS, LATEST
from neuroloop.training.monitor import PROGRESS

SIMULATION = "simulation"
TRAINING = "training"
RUNS = "runs"
"""Subdirectory of a batch's directory that holds one directory per run."""
BATCH_FILE = "batch.json"
SUMMARY_FILE = "summary.json"
SLURM_SCRIPT = "batch.sbatch"
RUN_FILE = "run.json"
EXIT_FILE = "exit.json"
DONE_MARKER = "DONE"
STDOUT_LOG = "stdout.log"
STDERR_LOG = "stderr.log"
TRAIN_DIR = "train"
LATEST_CHECKPOINT = f"{CHECKPOINTS}/{LATEST}"
"""A training run resumes from this checkpoint."""
RESOLVED_FILES = {SIMULATION: "config.json", TRAINING: "recipe.json"}
SWEEP_KEYS = ("seeds", "grid", "overrides", "include")
DIGEST_CHARS = 8
POLL_S = 0.2
STOP_GRACE_S = 10.0
"""How long an interrupted run gets between SIGTERM and SIGKILL (it stops its engines)."""
EXIT_RUNS_FAILED = 1
"""``neuroloop batch`` exit status when a run failed (2 is a usage error, 130 Ctrl-C)."""
NOT_SHOWN = "-"


# --- sweeps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sweep:
    """Which runs a batch has: seeds x every combination of the grid, plus extra runs."""

    seeds: tuple[int, ...] = (0,)
    """Seeds; each grid combination runs once with each."""
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    """Override PATH -> the values it takes, e.g. ``{"SimulationTimeout": [5, 10]}``."""
    overrides: tuple[str, ...] = ()
    """``PATH=VALUE`` overrides applied to every run, before its own settings."""
    include: tuple[tuple[int, Mapping[str, Any]], ...] = ()
    """Extra runs outside the grid: ``(seed, {PATH: VALUE})``."""

    def settings(self) -> list[tuple[int, tuple[str, ...]]]:
        """Every run's seed and its own ``PATH=VALUE`` settings, grid order first."""
        axes = [[override(path, value) for value in values] for path, values in self.grid.items()]
        runs = [(seed, combo) for combo in itertools.product(*axes) for seed in self.seeds]
        extra = [
            (seed, tuple(override(path, value) for path, value in values.items()))
            for seed, values in self.include
        ]
        return runs + extra


def override(path: str, value: Any) -> str:
    """The ``-o`` text that sets ``path`` to ``value`` (a string only quoted if it must be)."""
    if isinstance(value, str):
        try:
            plain = yaml.safe_load(value) == value
        except yaml.YAMLError:
            plain = False
        return f"{path}={value}" if plain else f"{path}={json.dumps(value)}"
    return f"{path}={json.dumps(value)}"


def parse_grid(texts: Sequence[str]) -> dict[str, list[Any]]:
    """``["SimulationTimeout=[5, 10]", "EngineConfigs[0].EngineTimestep=0.02"]`` -> a grid.

    A value that is a YAML/JSON list gives the values; anything else is the one value.

    Raises:
        UsageError: If an entry is not ``PATH=VALUES``.
    """
    grid: dict[str, list[Any]] = {}
    for text in texts:
        path, equals, raw = text.partition("=")
        if not equals or not path.strip():
            raise UsageError(
                f"--grid: expected PATH=[VALUE, ...], e.g. 'SimulationTimeout=[5, 10]'. "
                f"Received: {text!r}"
            )
        try:
            values = yaml.safe_load(raw)
        except yaml.YAMLError:
            values = raw
        grid[path.strip()] = values if isinstance(values, list) else [values]
    return grid


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep file (YAML or JSON; see the module docstring).

    Raises:
        ConfigError: Naming the file and key, if the file is unreadable or malformed.
    """
    label = str(path)
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(label, "", "a readable sweep file", str(error.strerror)) from None
    except yaml.YAMLError as error:
        raise ConfigError(label, "", "valid YAML or JSON", str(error)) from None
    if not isinstance(document, dict):
        raise ConfigError(label, "", f"an object with keys {', '.join(SWEEP_KEYS)}", repr(document))
    unknown = sorted(set(document) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(
            label, unknown[0], f"only the keys {', '.join(SWEEP_KEYS)}", f"key={unknown[0]!r}"
        )
    seeds = document.get("seeds", [0])
    if not _is_list_of(seeds, int):
        raise ConfigError(label, "seeds", "a list of integers", f"seeds={seeds!r}")
    grid = document.get("grid", {})
    if not isinstance(grid, dict):
        raise ConfigError(label, "grid", "an object of PATH: [VALUE, ...]", f"grid={grid!r}")
    overrides = document.get("overrides", [])
    if not _is_list_of(overrides, str):
        raise ConfigError(
            label, "overrides", "a list of PATH=VALUE strings", f"overrides={overrides!r}"
        )
    include = document.get("include", [])
    if not isinstance(include, list):
        raise ConfigError(label, "include", "a list of runs", f"include={include!r}")
    extra = []
    for index, entry in enumerate(include):
        where = f"include[{index}]"
        if not isinstance(entry, dict) or set(entry) - {"seed", "overrides"}:
            raise ConfigError(
                label, where, "an object with keys seed and overrides", f"{where}={entry!r}"
            )
        seed, values = entry.get("seed", seeds[0] if seeds else 0), entry.get("overrides", {})
        if not isinstance(seed, int) or not isinstance(values, dict):
            raise ConfigError(
                label,
                where,
                "seed: an integer, overrides: an object of PATH: VALUE",
                f"{where}={entry!r}",
            )
        extra.append((seed, values))
    return Sweep(
        seeds=tuple(seeds),
        grid={
            path: values if isinstance(values, list) else [values] for path, values in grid.items()
        },
        overrides=tuple(overrides),
        include=tuple(extra),
    )


def _is_list_of(value: Any, kind: type) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, kind) and not isinstance(item, bool) for item in value
    )


# --- runs --------------------------------------------------------------------------------


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
    _write_json(run.directory / RUN_FILE, run.to_json())
    resolved = run.directory / RESOLVED_FILES[run.kind]
    try:
        document = resolved_document(run)
    except ConfigError as error:
        resolved.unlink(missing_ok=True)
        return str(error)
    _write_json(resolved, document)
    return None


def _write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically (read-only mappings become objects)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(value, indent=2, default=dict) + "\n", encoding="utf-8")
    partial.replace(path)


# --- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """What a run left in its directory."""

    run: Run
    exit_status: int | None
    """The run's exit status (negative: killed by that signal); None: it has not ended."""
    started_s: float | None
    """When it started, in Unix seconds."""
    wall_s: float | None
    """Wall-clock seconds the run took."""
    metric: Mapping[str, Any]
    """The reported metric (``name: value``); every status entry when none was chosen."""
    error: str | None
    """Why it failed: the last line its process wrote to stderr (or why it did not start)."""
    skipped: bool = False
    """It had finished before, so this batch did not run it again."""

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def state(self) -> str:
        """``ok``, ``skipped``, ``exit N``, ``signal N``, ``not started`` or ``pending``."""
        if self.exit_status is None:
            return "not started" if self.error else "pending"
        if self.exit_status == 0:
            return "skipped" if self.skipped else "ok"
        if self.exit_status < 0:
            return f"signal {-self.exit_status}"
        return f"exit {self.exit_status}"

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run.run_id,
            "seed": self.run.seed,
            "settings": list(self.run.settings),
            "state": self.state,
            "exit_status": self.exit_status,
            "started_s": self.started_s,
            "wall_s": self.wall_s,
            "metric": dict(self.metric),
            "error": self.error,
            "directory": str(self.run.directory),
        }


def collect(run: Run, skipped: bool = False) -> RunResult:
    """Read a run's result from its directory (written by a local run or a SLURM task)."""
    try:
        ended = json.loads((run.directory / EXIT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return RunResult(run, None, None, None, {}, None)
    status = int(ended["exit_status"])
    error = None
    if status != 0:
        error = _last_line(run.directory / STDERR_LOG) or f"{_describe_status(status)}, no stderr"
    return RunResult(
        run, status, ended["started_s"], ended["wall_s"], read_metric(run), error, skipped
    )


def read_metric(run: Run) -> dict[str, Any]:
    """The metric a run reported: from ``neuroloop run``'s summary, or training progress."""
    if run.kind == TRAINING:
        try:
            record = json.loads(_read_lines(run.train_dir / PROGRESS)[-1])
        except (IndexError, ValueError):  # no cycle finished, or the last line was cut
            return {}
        if run.metric is None:
            return {
                record.get("metric_name", "metric"): record.get("metric"),
                "cycle": record["cycle"],
            }
        return {run.metric: record.get(run.metric), "cycle": record["cycle"]}
    status = summary_status(_read_lines(run.directory / STDOUT_LOG))
    if run.metric is None:
        return status
    return {run.metric: status.get(run.metric)}


def summary_status(lines: Sequence[str]) -> dict[str, Any]:
    """What the status function reported, from the summary ``neuroloop run`` prints.

    The entries are the ``KEY VALUE`` lines after ``ended by``; numbers become numbers.
    """
    status: dict[str, Any] = {}
    ended = False
    for line in lines:
        if line.startswith("ended by"):
            ended = True
        elif ended and line.strip():
            key, _, value = line.strip().partition(" ")
            status[key] = _number_or_text(value.strip())
    return status


def _number_or_text(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _last_line(path: Path) -> str | None:
    lines = [line.strip() for line in _read_lines(path) if line.strip()]
    return lines[-1] if lines else None


def _describe_status(status: int) -> str:
    return f"killed by signal {-status}" if status < 0 else f"exit status {status}"


# --- running locally ---------------------------------------------------------------------


def execute(run: Run, stop: threading.Event | None = None) -> RunResult:
    """Run one run unless it finished before; write its logs, exit status and marker.

    Args:
        run: The run.
        stop: When set, the run's process group gets SIGTERM (then SIGKILL after
            STOP_GRACE_S); ``neuroloop run`` and ``neuroloop train`` stop their engines.
    """
    if (run.directory / DONE_MARKER).is_file():
        return collect(run, skipped=True)
    try:
        prepare(run)
        (run.directory / EXIT_FILE).unlink(missing_ok=True)
        with (
            (run.directory / STDOUT_LOG).open("w") as stdout,
            (run.directory / STDERR_LOG).open("w") as stderr,
        ):
            started_s = time.time()
            started = time.monotonic()
            process = subprocess.Popen(
                run.resume_command(),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            status = _wait(process, stop)
            wall_s = time.monotonic() - started
    except OSError as error:
        return RunResult(run, None, None, None, {}, f"cannot start: {error}")
    ended = {"exit_status": status, "started_s": round(started_s, 3), "wall_s": round(wall_s, 3)}
    _write_json(run.directory / EXIT_FILE, ended)
    if status == 0:
        (run.directory / DONE_MARKER).touch()
    return collect(run)


def _wait(process: subprocess.Popen[bytes], stop: threading.Event | None) -> int:
    """Wait for ``process``; on ``stop``, SIGTERM its group, then SIGKILL after a grace."""
    while stop is None or not stop.is_set():
        try:
            return process.wait(POLL_S)
        except subprocess.TimeoutExpired:
            continue
    signal_group(process.pid, signal.SIGTERM)
    try:
        return process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        signal_group(process.pid, signal.SIGKILL)
        return process.wait()


def run_batch(
    runs: Sequence[Run],
    pool: int = 1,
    *,
    between: Callable[[], None] | None = None,
    progress: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Run every run not finished before, at most ``pool`` at a time.

    Args:
        runs: The runs, e.g. from :func:`plan`.
        pool: How many runs at once.
        between: Called about every POLL_S seconds; if it raises (e.g. KeyboardInterrupt on
            Ctrl-C), the running runs are stopped, no new one starts, and it propagates.
        progress: Called with each run's result as it ends (or is skipped).

    Returns:
        One result per run, in the order of ``runs``; failed runs included.
    """
    if pool < 1:
        raise UsageError(f"--pool: expected at least 1. Received: {pool}")
    stop = threading.Event()
    with ThreadPoolExecutor(pool, thread_name_prefix="batch") as executor:
        futures = [executor.submit(execute, run, stop) for run in runs]
        pending: set[Future[RunResult]] = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    if progress is not None:
                        progress(future.result())
                if between is not None:
                    between()
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise
    return [future.result() for future in futures]


# --- SLURM -------------------------------------------------------------------------------


def write_slurm(
    runs: Sequence[Run], out_dir: str | Path, sbatch: Sequence[str] = ()
) -> tuple[Path, list[str]]:
    """Write a SLURM job-array script with one task per run, and every run's directory.

    Task ``i`` runs ``runs[i]``, writing the files a local run writes (a finished task exits
    at once when the array is submitted again). A training run with workers asks for that
    many tasks and runs its ``mpiexec`` line.

    Args:
        runs: The runs (all of one kind and worker count, as :func:`plan` makes them).
        out_dir: The batch's directory; the script is ``out_dir/batch.sbatch``.
        sbatch: More ``#SBATCH`` options, ``KEY=VALUE`` or ``KEY`` (``time=02:00:00``).

    Returns:
        The script's path, and the config errors of runs that will fail.

    Raises:
        ValueError: If ``runs`` is empty.
    """
    if not runs:
        raise ValueError("write_slurm: expected at least one run. Received: runs=[]")
    directory = Path(out_dir).resolve()
    problems = [f"{run.run_id}: {problem}" for run in runs if (problem := prepare(run))]
    first = runs[0]
    logs = directory / "slurm"
    logs.mkdir(parents=True, exist_ok=True)
    options = [
        f"--job-name=neuroloop-{first.target.stem}",
        f"--array=0-{len(runs) - 1}",
        f"--ntasks={first.workers}",
        f"--output={logs}/%A_%a.out",
        *(f"--{option.lstrip('-')}" for option in sbatch),
    ]
    lines = [
        "#!/bin/bash",
        f"# neuroloop batch: {len(runs)} {first.kind} runs of {first.target}",
        f"# Submit: sbatch {directory / SLURM_SCRIPT}",
        f"# Results, once the tasks ended: neuroloop batch --report {directory}",
        *(f"#SBATCH {option}" for option in options),
        "set -u",
        f"cd {shlex.quote(os.getcwd())}",
        'case "${SLURM_ARRAY_TASK_ID:?submit this script with sbatch}" in',
    ]
    for index, run in enumerate(runs):
        lines += [
            f"  {index}) run={shlex.quote(str(run.directory))}",
            f"     command=({shlex.join(run.command)}) ;;",
        ]
    lines += [
        f'  *) echo "no task $SLURM_ARRAY_TASK_ID in this array (0-{len(runs) - 1})" >&2; '
        "exit 2 ;;",
        "esac",
        f'if [ -e "$run/{DONE_MARKER}" ]; then echo "$run: finished before, skipped"; exit 0; fi',
    ]
    if first.kind == TRAINING:
        lines.append(
            f'if [ -e "$run/{TRAIN_DIR}/{LATEST_CHECKPOINT}" ]; then '
            f'command+=(--resume "$run/{TRAIN_DIR}"); fi'
        )
    lines += [
        f'rm -f "$run/{EXIT_FILE}"',
        "started=$(date +%s%N)",
        f'"${{command[@]}}" < /dev/null > "$run/{STDOUT_LOG}" 2> "$run/{STDERR_LOG}"',
        "status=$?",
        "ms=$(( ($(date +%s%N) - started) / 1000000 )) start_ms=$(( started / 1000000 ))",
        'printf \'{"exit_status": %d, "started_s": %d.%03d, "wall_s": %d.%03d}\\n\' '
        '"$status" $((start_ms / 1000)) $((start_ms % 1000)) $((ms / 1000)) $((ms % 1000)) '
        f'> "$run/{EXIT_FILE}"',
        f'if [ "$status" -eq 0 ]; then touch "$run/{DONE_MARKER}"; fi',
        'exit "$status"',
    ]
    script = directory / SLURM_SCRIPT
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    script.chmod(0o755)
    return script, problems


# --- summary -----------------------------------------------------------------------------


def format_summary(results: Sequence[RunResult]) -> str:
    """A table: run, seed, settings, metric, wall time, state and error, then the totals."""
    header = ("run", "seed", "settings", "metric", "wall s", "state", "error")
    rows = [header] + [
        (
            result.run.run_id,
            str(result.run.seed),
            " ".join(result.run.settings) or NOT_SHOWN,
            _format_metric(result.metric),
            f"{result.wall_s:.1f}" if result.wall_s is not None else NOT_SHOWN,
            result.state,
            result.error or "",
        )
        for result in results
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        for row in rows
    ]
    ok = sum(result.ok for result in results)
    skipped = sum(result.ok and result.skipped for result in results)
    pending = sum(result.state == "pending" for result in results)
    failed = len(results) - ok - pending
    totals = f"{len(results)} runs: {ok} ok ({skipped} skipped, finished before), {failed} failed"
    return "\n".join(
        [*(line.rstrip() for line in lines), totals + (f", {pending} pending" if pending else "")]
    )


def _format_metric(metric: Mapping[str, Any]) -> str:
    shown = [f"{key}={_format_value(value)}" for key, value in metric.items()]
    return " ".join(shown) or NOT_SHOWN


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return NOT_SHOWN if value is None else str(value)


def write_batch(runs: Sequence[Run], out_dir: str | Path) -> None:
    """Record the batch's runs in ``out_dir/batch.json`` (what ``--report`` reads)."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    _write_json(directory / BATCH_FILE, {"runs": [run.run_id for run in runs]})


def write_summary(results: Sequence[RunResult], out_dir: str | Path) -> Path:
    """Write every result as JSON to ``out_dir/summary.json``."""
    path = Path(out_dir) / SUMMARY_FILE
    _write_json(path, [result.to_json() for result in results])
    return path


def load_batch(out_dir: str | Path) -> list[Run]:
    """The runs of the batch last planned in ``out_dir``.

    Raises:
        UsageError: If ``out_dir`` holds no batch.
    """
    directory = Path(out_dir)
    try:
        ids = json.loads((directory / BATCH_FILE).read_text(encoding="utf-8"))["runs"]
        return [
            Run.from_json(json.loads((directory / RUNS / run_id / RUN_FILE).read_text()))
            for run_id in ids
        ]
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(
            f"--report: expected a batch directory written by neuroloop batch. "
            f"Received: {directory} ({error})"
        ) from None


# --- the command -------------------------------------------------------------------------


def add_command(commands: argparse._SubParsersAction, between: Callable[[], None]) -> None:
    """Add ``neuroloop batch`` to the ``neuroloop`` command.

    Args:
        commands: The ``neuroloop`` command's subparsers.
        between: Called while runs are under way; raises to stop them (Ctrl-C, SIGTERM).
    """
    batch = commands.add_parser(
        "batch",
        help="run a sweep (seeds x a grid of -o overrides) of simulations or training runs",
        description="Run many simulations or training runs locally with a bounded process "
        "pool, or write a SLURM job-array script. Exit status 1 if a run failed.",
    )
    batch.add_argument("target", nargs="?", help="simulation config or training recipe")
    batch.add_argument("--seeds", type=int, nargs="+", metavar="SEED", help="seeds (default 0)")
    batch.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="PATH=[V,...]",
        help="an override and its values, e.g. 'SimulationTimeout=[5, 10]'; repeat for more",
    )
    batch.add_argument("--sweep", type=Path, help="sweep file (seeds, grid, overrides, include)")
    batch.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override for every run",
    )
    batch.add_argument("--metric", help="status or progress key to report (default: all/recipe)")
    batch.add_argument("--workers", type=int, default=1, help="MPI ranks per training run")
    batch.add_argument("--pool", type=int, default=1, help="runs at once (default 1)")
    batch.add_argument("--out", type=Path, help="batch directory (default runs/batch_NAME)")
    batch.add_argument("--slurm", type=Path, metavar="OUT_DIR", help="write a SLURM array job")
    batch.add_argument(
        "--sbatch",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="#SBATCH option for --slurm, e.g. time=02:00:00 (repeat for more)",
    )
    batch.add_argument("--report", type=Path, metavar="OUT_DIR", help="summarise a batch")
    batch.set_defaults(handler=lambda args: _batch(args, between))


def _batch(args: argparse.Namespace, between: Callable[[], None]) -> int:
    if args.report is not None:
        if args.target is not None:
            raise UsageError("--report: expected no config or recipe with it")
        results = [collect(run) for run in load_batch(args.report)]
        print(format_summary(results))
        write_summary(results, args.report)
        return 0 if all(result.ok for result in results) else EXIT_RUNS_FAILED
    if args.target is None:
        raise UsageError("batch: expected a simulation config or training recipe, or --report")
    if args.slurm is not None and args.out is not None:
        raise UsageError("--slurm: OUT_DIR is the batch directory; expected no --out with it")
    if args.sbatch and args.slurm is None:
        raise UsageError(f"--sbatch: expected --slurm OUT_DIR with it. Received: {args.sbatch}")
    sweep = load_sweep(args.sweep) if args.sweep is not None else Sweep()
    sweep = Sweep(
        seeds=tuple(args.seeds) if args.seeds else sweep.seeds,
        grid={**sweep.grid, **parse_grid(args.grid)},
        overrides=(*sweep.overrides, *args.override),
        include=sweep.include,
    )
    out = args.slurm or args.out or Path(RUNS) / f"batch_{Path(args.target).stem}"
    runs = plan(args.target, sweep, out, workers=args.workers, metric=args.metric)
    write_batch(runs, out)
    if args.slurm is not None:
        script, problems = write_slurm(runs, args.slurm, args.sbatch)
        for problem in problems:
            print(f"[batch] warning: {problem}", file=sys.stderr)
        print(f"wrote {script}: {len(runs)} tasks (sbatch {script})")
        return 0

    def report(result: RunResult) -> None:
        if result.skipped:
            detail = ": finished before"
        elif result.ok:
            detail = f" in {result.wall_s:.1f} s"
        else:
            detail = f": {result.error}"
        print(f"[batch] {result.run.run_id} {result.state}{detail}", file=sys.stderr, flush=True)

    print(f"[batch] {len(runs)} runs, {args.pool} at a time, in {out}", file=sys.stderr)
    try:
        results = run_batch(runs, args.pool, between=between, progress=report)
    except KeyboardInterrupt:
        print(format_summary([collect(run) for run in runs]))
        raise
    print(format_summary(results))
    print(f"summary: {write_summary(results, out)}")
    return 0 if all(result.ok for result in results) else EXIT_RUNS_FAILED
