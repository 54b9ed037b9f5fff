"""Training throughput on ``reach`` with the ``lstm`` brain, beside the MuJoCo ceiling.

Run from the repository root::

    .venv/bin/python bench/training_throughput.py [--cycles N] [--horizon T] [--worlds W]
                                                  [--repeats R] [--minibatches 16 8 4 2]

Everything below is measured in one run, one case after the other:

- MuJoCo ceiling: the reach model (``Model`` of the recipe's MuJoCo engine, shipped with
  gymnasium-robotics) stepped with ``mujoco.mj_step(model, data, nstep=n)`` in a bare loop,
  one world, ``n = EngineTimestep / opt.timestep`` substeps per control step (0.04 s / 0.002 s
  = 20), fresh uniformly random controls in ``actuator_ctrlrange`` every control step (what an
  untrained Beta policy sends) and a reset every reach episode, in control steps/s. Timed
  before the first run, between the runs and after the second; each run is compared with
  the median of the timings just before and just after it, so that both see about the same
  load from other processes (the PASS/FAIL verdict). The same loop over this process's CPU
  time, which that load barely changes, is printed too, as what a core of its own gives.
- 2 processes: ``mpiexec -n 2 python -m neuroloop train experiments/reach.yaml`` with this
  run's overrides (``Brain=lstm``, ``Cycles``, ``Horizon``, ``Worlds``) into a temporary run
  directory, every rank with one BLAS / TensorFlow thread and no MPI variables of this
  process (``neuroloop.launcher.child_environment``, as ``neuroloop.training.mpi``
  advises); rank 0's ``progress.jsonl`` is read.
- 1 process: ``neuroloop.training.trainer.Trainer`` in this process on the same recipe and
  overrides (TensorFlow's default threads, as a plain ``neuroloop train`` gets them).
- Optimization alone: the 1-process trainer's ``_optimize`` on the chunks of its last
  cycle, once per ``Minibatches`` value (fewer minibatches = more TBPTT chunks per
  minibatch), warmed up once each, then timed ``R`` times with the order rotated.

Every cycle record holds ``env_steps_per_s`` (world-steps gathered per second per process:
all worlds' control steps over the gathering wall time, divided by the process count),
``samples_per_s`` (unmasked steps x epochs over the optimization wall time, on one rank),
``gather_s`` and ``optimize_s``. The first cycle (tracing, first calls) is skipped and the
medians of the rest are printed.

"Per process" is read as the world-steps/s of one gathering process against the ceiling of
*one* world: a process hosts ``W`` worlds in one MuJoCo engine, and that engine steps them
one after the other on one thread (``Threads`` = 1), so ``W`` worlds cost ``W`` times the
physics of one and a process can at best gather at the ceiling. The target is a ratio of at
least ``GATHER_TARGET`` (0.6). For comparison the issue quotes AngoraPy 0.11 at 31-53
steps/s with a recurrent brain on its reach task on this kind of machine (eager Keras calls,
one environment at a time); AngoraPy is not run here. The second target: optimization
samples/s grows with the minibatch size (sequences are batched, not fed one at a time).

Defaults (4 cycles of the reach recipe's worlds x horizon, 3 repeats of 4 minibatch
counts) take a few minutes on two cores. Other processes on the machine slow every case;
the 1-minute load average is printed before and after each case.
"""

from __future__ import annotations

import os

# Quiet TensorFlow's C++ start-up logging here and in the ranks (no effect on speed).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import dataclasses
import itertools
import json
import math
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from neuroloop.launcher import child_environment
from neuroloop.plugins.engines.mujoco_engine import shipped_model_folder
from neuroloop.training.gather import Rollout
from neuroloop.training.monitor import PROGRESS
from neuroloop.training.recipe import Recipe, load_recipe
from neuroloop.training.tbptt import Chunks
from neuroloop.training.trainer import Trainer

REPOSITORY = Path(__file__).resolve().parent.parent
RECIPE = REPOSITORY / "experiments" / "reach.yaml"
BRAIN = "lstm"
MUJOCO_ENGINE_TYPE = "mujoco"

DEFAULT_CYCLES = 4
"""Cycles per training run; the first is skipped (tracing, first calls)."""
DEFAULT_REPEATS = 3
"""Timings per minibatch count of the optimization-alone case."""
DEFAULT_MINIBATCHES = (16, 8, 4, 2)
"""``PPO.Minibatches`` values of the optimization-alone case (chunks per minibatch grow)."""
DEFAULT_TIMEOUT_S = 900.0
"""How long the 2-process run may take before mpiexec is sent SIGTERM."""
TERMINATE_GRACE_S = 60.0
"""How long mpiexec gets to end its ranks after SIGTERM."""
PROCESSES = 2
"""Ranks of the MPI case."""

GATHER_TARGET = 0.6
"""Gathering world-steps/s per process, as a fraction of the one-world MuJoCo ceiling."""
ANGORAPY_STEPS_PER_S = (31.0, 53.0)
"""AngoraPy 0.11 gathering with a recurrent brain on reach, as quoted in the issue (not run)."""

CEILING_STEPS = 500
"""Control steps per timing of the bare ``mj_step`` loop."""
CEILING_REPEATS = 3
"""Timings of the ceiling before, between and after the training runs."""
CEILING_EPISODE_STEPS = 50
"""Control steps between resets of the ceiling's world (a reach episode: 2 s at 0.04 s)."""
CEILING_SEED = 0

OUTPUT_TAIL_CHARS = 4000
"""Characters of a failed rank's output shown in the error."""


# -- the MuJoCo ceiling --------------------------------------------------------------------------


@dataclass(frozen=True)
class Physics:
    """The reach model and its substeps per control step."""

    model: mujoco.MjModel
    substeps: int
    path: Path


def load_physics(recipe: Recipe) -> Physics:
    """The recipe's MuJoCo model (a shipped Shadow Hand model) and its substeps.

    Raises:
        ValueError: If the control timestep is not a whole multiple of the physics timestep.
    """
    config = recipe.simulation_config()
    (engine,) = [e for e in config.engines if e.type == MUJOCO_ENGINE_TYPE]
    path = shipped_model_folder() / f"{engine.extra['Model']}.xml"
    model = mujoco.MjModel.from_xml_path(str(path))
    physics_ns = round(model.opt.timestep * 1e9)
    substeps, remainder = divmod(engine.timestep_ns, physics_ns)
    if remainder or substeps < 1:
        raise ValueError(
            f"[training_throughput] expected EngineTimestep ({engine.timestep_ns} ns) to be a "
            f"whole multiple of the model's opt.timestep ({physics_ns} ns). "
            f"Received: ratio {engine.timestep_ns / physics_ns:.6g}"
        )
    return Physics(model, substeps, path)


@dataclass
class Ceiling:
    """One measurement of the ceiling: control steps/s per repeat."""

    wall: list[float]
    """Over wall-clock time: what this process got from the machine as it was loaded then."""
    cpu: list[float]
    """Over this process's CPU time: what a core of its own would give."""


def time_ceiling(physics: Physics, repeats: int) -> Ceiling:
    """Control steps/s of one world in a bare ``mj_step`` loop, one figure per repeat."""
    model, nstep = physics.model, physics.substeps
    data = mujoco.MjData(model)
    rng = np.random.default_rng(CEILING_SEED)
    low, high = model.actuator_ctrlrange.T
    controls = rng.uniform(low, high, size=(CEILING_STEPS, model.nu))
    mujoco.mj_step(model, data, nstep=nstep * CEILING_EPISODE_STEPS)  # warm-up
    ceiling = Ceiling([], [])
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        for step, ctrl in enumerate(controls):
            if step % CEILING_EPISODE_STEPS == 0:
                mujoco.mj_resetData(model, data)
            data.ctrl[:] = ctrl
            mujoco.mj_step(model, data, nstep=nstep)
        ceiling.cpu.append(CEILING_STEPS / (time.process_time() - started_cpu))
        ceiling.wall.append(CEILING_STEPS / (time.perf_counter() - started))
    return ceiling


# -- training runs -------------------------------------------------------------------------------


class ChunkKeepingTrainer(Trainer):
    """A trainer that keeps the chunks of its last cycle (for the optimization-alone case)."""

    last_chunks: Chunks | None = None

    def _chunks(
        self, rollout: Rollout, advantages: np.ndarray, returns: np.ndarray, mask: np.ndarray
    ) -> Chunks:
        chunks = super()._chunks(rollout, advantages, returns, mask)
        self.last_chunks = chunks
        return chunks


@dataclass
class RunResult:
    """Medians over the measured cycles of one training run, and the ceiling next to it."""

    label: str
    processes: int
    cycles: int
    env_steps_per_s: float
    samples_per_s: float
    gather_s: float
    optimize_s: float
    load: tuple[float, float]
    ceiling: float = math.nan
    """Median of the ceiling timings just before and just after this run."""

    @property
    def ratio(self) -> float:
        """Gathering world-steps/s per process over the ceiling."""
        return self.env_steps_per_s / self.ceiling


def summarize(
    label: str, records: Sequence[Mapping[str, Any]], load: tuple[float, float]
) -> RunResult:
    """Medians of every cycle but the first."""
    measured = records[1:]
    if not measured:
        raise ValueError(f"[training_throughput] {label}: expected at least 2 cycle records")

    def median(key: str) -> float:
        return statistics.median(float(record[key]) for record in measured)

    return RunResult(
        label=label,
        processes=int(measured[0]["processes"]),
        cycles=len(measured),
        env_steps_per_s=median("env_steps_per_s"),
        samples_per_s=median("samples_per_s"),
        gather_s=median("gather_s"),
        optimize_s=median("optimize_s"),
        load=load,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to a launch (mpiexec ends its ranks, and they their engines); never SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(TERMINATE_GRACE_S)
    except subprocess.TimeoutExpired:
        print(
            f"[training_throughput] pid {process.pid} still running "
            f"{TERMINATE_GRACE_S:.0f} s after SIGTERM; not killed",
            file=sys.stderr,
        )


def run_training(
    command: Sequence[str], run_dir: Path, output: Path, label: str, timeout_s: float
) -> tuple[list[dict[str, Any]], tuple[float, float]]:
    """Run a ``neuroloop train`` command line to its end; its cycle records, and the 1-minute
    load average before and after.

    The command runs from the repository root with one BLAS / TensorFlow thread per process
    and no MPI variables of this process; its output goes to ``output``.

    Raises:
        TimeoutError: If it still runs after ``timeout_s`` (it is sent SIGTERM).
        RuntimeError: If it exits with an error (the end of its output is shown).
    """
    load_before = os.getloadavg()[0]
    with output.open("wb") as stream:
        process = subprocess.Popen(
            command,
            cwd=REPOSITORY,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
        try:
            status = process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                f"[training_throughput] {label}: still running after {timeout_s:.0f} s "
                "(--timeout); sent SIGTERM"
            ) from None
        finally:
            stop(process)
    load_after = os.getloadavg()[0]
    if status != 0:
        tail = output.read_text(errors="replace")[-OUTPUT_TAIL_CHARS:]
        raise RuntimeError(
            f"[training_throughput] {label}: exited with {status}. Output (end):\n{tail}"
        )
    lines = (run_dir / PROGRESS).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()], (load_before, load_after)


def run_mpi(overrides: Sequence[str], directory: Path, timeout_s: float) -> RunResult:
    """``mpiexec -n PROCESSES python -m neuroloop train`` and the medians of its records."""
    mpiexec = Path(sys.executable).parent / "mpiexec"
    run_dir = directory / "mpi_run"
    command = [
        str(mpiexec),
        "-n",
        str(PROCESSES),
        sys.executable,
        "-m",
        "neuroloop",
        "train",
        str(RECIPE),
        "--run-dir",
        str(run_dir),
        "--quiet",
    ]
    for override in overrides:
        command += ["-o", override]
    label = f"{PROCESSES}-process run"
    records, load = run_training(command, run_dir, directory / "mpi_output.txt", label, timeout_s)
    return summarize(f"{PROCESSES} processes (mpiexec)", records, load)


def run_in_process(recipe: Recipe, directory: Path) -> tuple[RunResult, ChunkKeepingTrainer]:
    """One process: ``Trainer.train()`` here; the trainer keeps its last cycle's chunks."""
    load_before = os.getloadavg()[0]
    trainer = ChunkKeepingTrainer(recipe, directory / "in_process_run", quiet=True)
    records = trainer.train()
    load_after = os.getloadavg()[0]
    return summarize("1 process (Trainer)", records, (load_before, load_after)), trainer


@dataclass
class MinibatchCase:
    """Optimization alone with one ``PPO.Minibatches`` value."""

    minibatches: int
    chunks_per_minibatch: float
    samples: float
    """Unmasked steps x epochs of one ``_optimize`` call."""
    seconds: list[float] = field(default_factory=list)

    @property
    def samples_per_s(self) -> float:
        return self.samples / statistics.median(self.seconds)


@dataclass
class OptimizationResult:
    """The optimization-alone case: one fixed set of chunks, several minibatch counts."""

    cases: list[MinibatchCase]
    n_chunks: int
    chunk_len: int
    epochs: int
    load: tuple[float, float]


def time_optimization(
    trainer: ChunkKeepingTrainer, minibatch_counts: Sequence[int], repeats: int
) -> OptimizationResult:
    """Time ``trainer._optimize`` on its last chunks with each ``PPO.Minibatches`` value.

    Every count is run once untimed first (a new minibatch shape is traced, or the trace
    relaxed, then), then timed ``repeats`` times, the order rotating between repeats.
    """
    chunks = trainer.last_chunks
    if chunks is None:
        raise ValueError("[training_throughput] optimization: the trainer has run no cycle")
    recipe = trainer.recipe
    samples = float(chunks.mask.sum()) * recipe.ppo.epochs
    cases = [
        MinibatchCase(count, chunks.n_chunks / count, samples)
        for count in minibatch_counts
        if count <= chunks.n_chunks
    ]
    if not cases:
        raise ValueError(
            f"[training_throughput] --minibatches: expected counts <= {chunks.n_chunks} "
            f"(the chunks of one cycle). Received: {list(minibatch_counts)}"
        )
    load_before = os.getloadavg()[0]

    def optimize(case: MinibatchCase, chunks: Chunks) -> float:
        ppo = dataclasses.replace(recipe.ppo, minibatches=case.minibatches)
        trainer.recipe = dataclasses.replace(recipe, ppo=ppo)
        started = time.perf_counter()
        trainer._optimize(chunks)
        return time.perf_counter() - started

    try:
        for case in cases:
            optimize(case, chunks)
        for repeat in range(repeats):
            shift = repeat % len(cases)
            for case in [*cases[shift:], *cases[:shift]]:
                case.seconds.append(optimize(case, chunks))
    finally:
        trainer.recipe = recipe
    load_after = os.getloadavg()[0]
    return OptimizationResult(
        cases, chunks.n_chunks, chunks.chunk_len, recipe.ppo.epochs, (load_before, load_after)
    )


# -- the report ----------------------------------------------------------------------------------


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def print_report(
    args: argparse.Namespace,
    physics: Physics,
    ceilings: Sequence[Ceiling],
    runs: Sequence[RunResult],
    optimization: OptimizationResult,
    load: tuple[float, float],
) -> None:
    print(
        f"\ntraining throughput: reach, {BRAIN} brain, W={args.worlds} worlds per process, "
        f"horizon {args.horizon}, medians of {args.cycles - 1} cycles (first of "
        f"{args.cycles} skipped)"
    )
    print(
        f"1-minute load average at start / end: {load[0]:.2f} / {load[1]:.2f} "
        f"({os.cpu_count()} CPUs)"
    )
    wall = statistics.median([rate for ceiling in ceilings for rate in ceiling.wall])
    cpu = statistics.median([rate for ceiling in ceilings for rate in ceiling.cpu])
    moments = " -> ".join(f"{statistics.median(ceiling.wall):.0f}" for ceiling in ceilings)
    print(
        f"\nMuJoCo ceiling, 1 world: mj_step(nstep={physics.substeps}) on {physics.path.name}, "
        f"random ctrl: {wall:.0f} control steps/s wall-clock (before, between, after the "
        f"runs: {moments}); {cpu:.0f}/s of its own CPU time"
    )
    header = (
        f"{'case':<22} {'load':>11} {'ceiling':>7} {'world-steps/s/proc':>18} {'x ceiling':>9} "
        f"{'>= ' + str(GATHER_TARGET):>7} {'x CPU ceiling':>13} {'gather s':>8} {'optim s':>7} "
        f"{'samples/s/proc':>14} {'samples/s all':>13}"
    )
    print(f"\n{header}")
    for run in runs:
        print(
            f"{run.label:<22} {run.load[0]:5.2f}/{run.load[1]:<5.2f} {run.ceiling:7.0f} "
            f"{run.env_steps_per_s:18.0f} {run.ratio:9.2f} "
            f"{verdict(run.ratio >= GATHER_TARGET):>7} {run.env_steps_per_s / cpu:13.2f} "
            f"{run.gather_s:8.2f} {run.optimize_s:7.2f} "
            f"{run.samples_per_s:14.0f} {run.samples_per_s * run.processes:13.0f}"
        )
    print(
        "(load: 1-minute load average before/after the run; ceiling: median of the wall-clock "
        "ceiling timings just before and after it; x CPU ceiling: against the CPU-time ceiling)"
    )
    low, high = ANGORAPY_STEPS_PER_S
    slowest = min(run.env_steps_per_s for run in runs)
    print(
        f"AngoraPy 0.11, recurrent brain, reach (quoted from the issue, not run): "
        f"{low:.0f}-{high:.0f} steps/s per process; the slowest case here gathers "
        f"{slowest / high:.0f}x-{slowest / low:.0f}x that"
    )

    cases = optimization.cases
    print(
        f"\noptimization alone (1 process): the last cycle's {optimization.n_chunks} chunks x "
        f"{optimization.chunk_len} steps, {optimization.epochs} epochs per pass, median of "
        f"{args.repeats} (load {optimization.load[0]:.2f} / {optimization.load[1]:.2f})"
    )
    print(f"{'Minibatches':>11} {'chunks/minibatch':>16} {'s per pass':>10} {'samples/s':>10}")
    for case in cases:
        print(
            f"{case.minibatches:>11} {case.chunks_per_minibatch:16.1f} "
            f"{statistics.median(case.seconds):10.2f} {case.samples_per_s:10.0f}"
        )
    rates = [case.samples_per_s for case in cases]
    if len(rates) < 2:
        print("target samples/s grows with minibatch size: n/a (give --minibatches 2 or more)")
        return
    grows = all(later > earlier for earlier, later in itertools.pairwise(rates))
    print(
        f"target samples/s grows with minibatch size: {verdict(grows)} "
        f"(largest / smallest minibatch: {rates[-1] / rates[0]:.2f}x)"
    )


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1. Received: {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--cycles", type=positive, default=DEFAULT_CYCLES, help="cycles per training run (>= 2)"
    )
    parser.add_argument("--horizon", type=positive, help="control steps per world per cycle")
    parser.add_argument("--worlds", type=positive, help="worlds per gathering process")
    parser.add_argument(
        "--repeats", type=positive, default=DEFAULT_REPEATS, help="optimization timings"
    )
    parser.add_argument(
        "--minibatches",
        type=positive,
        nargs="+",
        default=list(DEFAULT_MINIBATCHES),
        help="PPO.Minibatches values of the optimization-alone case",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="limit of the 2-process run (s)"
    )
    args = parser.parse_args(argv)
    if args.cycles < 2:
        parser.error("--cycles must be >= 2 (the first cycle is not measured)")
    base = load_recipe(RECIPE)
    args.horizon = args.horizon or base.horizon
    args.worlds = args.worlds or base.worlds
    overrides = [
        f"Brain={BRAIN}",
        f"Cycles={args.cycles}",
        f"Horizon={args.horizon}",
        f"Worlds={args.worlds}",
    ]
    recipe = load_recipe(RECIPE, overrides)
    counts = sorted(set(args.minibatches), reverse=True)

    load_start = os.getloadavg()[0]
    physics = load_physics(recipe)
    ceilings = [time_ceiling(physics, CEILING_REPEATS)]
    with tempfile.TemporaryDirectory(prefix="neuroloop-bench-") as directory:
        # The MPI case first: this process initialises MPI (a singleton) in Trainer().
        mpi = run_mpi(overrides, Path(directory), args.timeout)
        ceilings.append(time_ceiling(physics, CEILING_REPEATS))
        single, trainer = run_in_process(recipe, Path(directory))
        ceilings.append(time_ceiling(physics, CEILING_REPEATS))
        optimization = time_optimization(trainer, counts, args.repeats)
    load_end = os.getloadavg()[0]
    mpi.ceiling = statistics.median([*ceilings[0].wall, *ceilings[1].wall])
    single.ceiling = statistics.median([*ceilings[1].wall, *ceilings[2].wall])
    print_report(args, physics, ceilings, [single, mpi], optimization, (load_start, load_end))
    return 0


if __name__ == "__main__":
    sys.exit(main())
