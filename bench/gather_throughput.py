"""Gathering throughput with every core: processes, physics threads and brains, beside the
MuJoCo ceiling on one core and on two.

Run from the repository root::

    .venv/bin/python bench/gather_throughput.py [--task manipulate_block] [--brains wide lstm]
        [--cases 1x1 1x2 2x1] [--cycles N] [--horizon T] [--worlds W]

Everything below is measured in one run, one case after the other:

- MuJoCo ceiling: the task's model (``Model`` of the recipe's MuJoCo engine) stepped with
  ``mujoco.mj_step(model, data, nstep=n)`` in a bare loop, ``n`` substeps per control step,
  fresh uniformly random controls every control step and a reset every ``EPISODE_STEPS``,
  in control steps/s: in this process alone (*one core*), and in two processes that step over
  the same wall-clock window (*two cores*, their rates added). Both are timed before the
  first case and after every case; each case is compared with the median of the timings just
  before and just after it, so that both see about the same load from other processes.
- Cases ``PxT``: ``neuroloop train`` on the task's recipe with ``P`` processes (``P > 1``:
  ``mpiexec -n P``, the ``--workers P`` launch) and ``Threads = T`` in the MuJoCo engine's
  ``EngineExtraConfigs`` (threads stepping the worlds of one engine; set through the recipe's
  ``SimulationOverrides``), for each brain of ``--brains``; ``Cycles``, ``Horizon``, ``Worlds``
  as given, ``PPO.Epochs`` and ``PPO.Minibatches`` 1 (optimization is not measured here).
  Every process has one BLAS / TensorFlow thread (``neuroloop.launcher.child_environment``).
  In every process the physics engine and the brain engine are separate processes stepped
  concurrently by the loop (the brain computes the action for one observation while the
  physics advances the worlds under the previous action).

Every cycle record of rank 0 holds ``env_steps_per_s`` (world-steps gathered per second per
process); times the process count it is the case's world-steps/s, the figure printed. The
first cycle (tracing, first calls) is skipped and the median of the rest is printed, with
its ratio to the one-core and to the two-core ceiling. Target: the best case gathers at
least ``TARGET`` (0.85) x the two-core ceiling.

CPU accounting (first, for each brain): one process's gathering in this process, with every
process's CPU time counted (orchestrator, physics engine, brain engine), in CPU milliseconds
per world-step, beside the bare loop's CPU milliseconds per control step. CPU time barely
depends on the machine's load, so ``bare / total`` says, whatever the load today, what
fraction of the ceiling gathering reaches when every core is kept busy: the bound of any
arrangement of processes and threads (``--cpu-only`` prints just this).

Defaults (2 brains x 3 cases, 64 worlds per process, 3 cycles of 64 steps) take about
6 minutes on an idle two-core machine. Other processes on the machine slow every case; the
1-minute load average is printed before and after each.
"""

from __future__ import annotations

import os

# Quiet TensorFlow's C++ start-up logging in the ranks (no effect on speed).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import json
import math
import multiprocessing
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from neuroloop.training.recipe import Recipe, load_recipe

# The shared pieces of the training benchmark (this file runs as a script from bench/).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.training_throughput import Physics, load_physics, positive, run_training

REPOSITORY = Path(__file__).resolve().parent.parent
EXPERIMENTS = REPOSITORY / "experiments"
MUJOCO_ENGINE_TYPE = "mujoco"
"""The engine type whose ``Threads`` a case sets."""

DEFAULT_TASK = "manipulate_block"
DEFAULT_BRAINS = ("wide", "lstm")
DEFAULT_CASES = ("1x1", "1x2", "2x1")
DEFAULT_CYCLES = 3
"""Cycles per case; the first is skipped (tracing, first calls)."""
DEFAULT_HORIZON = 64
DEFAULT_WORLDS = 64
"""Worlds per process: with the block recipe's 16, the orchestrator's and the brain's work
per call, spread over fewer worlds, takes a larger share of each world-step."""
DEFAULT_TIMEOUT_S = 900.0
"""How long one case may take before its launcher is sent SIGTERM."""
TARGET = 0.85
"""The best case's world-steps/s as a fraction of the two-core ceiling."""

CEILING_SECONDS = 2.0
"""Length of one timing window of the ceiling."""
CEILING_START_S = 3.0
"""Delay before the two-core window opens (the pool's processes load MuJoCo meanwhile)."""
CEILING_SEED = 0
EPISODE_STEPS = 100
"""Control steps between resets of the ceiling's world."""
CEILING_PROCESSES = 2
CPU_WARMUP_STEPS = 8
"""Control steps gathered before the CPU accounting (first calls, tracing)."""
CASE = re.compile(r"^(?P<processes>\d+)x(?P<threads>\d+)$")


# -- the MuJoCo ceiling --------------------------------------------------------------------------


def step_window(path: str, substeps: int, start_at: float, seconds: float) -> float:
    """Control steps/s of one world in a bare ``mj_step`` loop over one wall-clock window.

    The loop starts at ``start_at`` (``time.time()``; at once if that has passed) and runs
    whole control steps until ``seconds`` later.
    """
    model = mujoco.MjModel.from_xml_path(path)
    data = mujoco.MjData(model)
    rng = np.random.default_rng(CEILING_SEED)
    low, high = model.actuator_ctrlrange.T
    controls = rng.uniform(low, high, size=(EPISODE_STEPS, model.nu))
    mujoco.mj_step(model, data, nstep=substeps * 10)  # warm-up
    time.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    steps = 0
    while time.perf_counter() - started < seconds:
        for ctrl in controls:
            data.ctrl[:] = ctrl
            mujoco.mj_step(model, data, nstep=substeps)
        mujoco.mj_resetData(model, data)
        steps += len(controls)
    return steps / (time.perf_counter() - started)


@dataclass(frozen=True)
class Ceiling:
    """One timing of the ceiling, control steps/s."""

    one_core: float
    two_cores: float
    """The two processes' rates added."""


def time_ceiling(physics: Physics, pool: ProcessPoolExecutor) -> Ceiling:
    """The ceiling in this process, then in two pool processes over one shared window."""
    one = step_window(str(physics.path), physics.substeps, 0.0, CEILING_SECONDS)
    start_at = time.time() + CEILING_START_S
    futures = [
        pool.submit(step_window, str(physics.path), physics.substeps, start_at, CEILING_SECONDS)
        for _ in range(CEILING_PROCESSES)
    ]
    return Ceiling(one, sum(future.result() for future in futures))


# -- CPU accounting ------------------------------------------------------------------------------


def bare_cpu_ms(physics: Physics) -> float:
    """CPU milliseconds of one control step of the bare ``mj_step`` loop (one world)."""
    model = mujoco.MjModel.from_xml_path(str(physics.path))
    data = mujoco.MjData(model)
    low, high = model.actuator_ctrlrange.T
    controls = np.random.default_rng(CEILING_SEED).uniform(low, high, (EPISODE_STEPS, model.nu))
    started, steps = time.process_time(), 0
    while time.process_time() - started < CEILING_SECONDS:
        for ctrl in controls:
            data.ctrl[:] = ctrl
            mujoco.mj_step(model, data, nstep=physics.substeps)
        mujoco.mj_resetData(model, data)
        steps += len(controls)
    return 1e3 * (time.process_time() - started) / steps


@dataclass(frozen=True)
class CpuBudget:
    """CPU milliseconds per world-step of one gathering process and its engines."""

    brain: str
    roles: dict[str, float]
    """``orchestrator`` (this process, all its threads) and each engine process by name."""
    bare: float
    """The bare loop's CPU milliseconds per control step, timed just after."""

    @property
    def total(self) -> float:
        return sum(self.roles.values())

    @property
    def bound(self) -> float:
        """The fraction of the ceiling any number of busy cores can reach with this budget."""
        return self.bare / self.total


def cpu_budget(recipe: Recipe, brain: str, overrides: Sequence[str], horizon: int) -> CpuBudget:
    """Gather ``horizon`` steps in this process and count every process's CPU time.

    CPU time, unlike wall-clock time, barely depends on what else runs on the machine: the
    budget says what fraction of the MuJoCo ceiling gathering can reach when every core is
    kept busy (``bare / total``), whatever the load today.
    """
    # Here, not at the top: the ceiling's pool processes import this module too.
    from neuroloop.simulation import Simulation
    from neuroloop.training.gather import Gatherer, TrainingSignals, process_cpu_seconds
    from neuroloop.training.trainer import build_recipe_brain

    recipe = load_recipe(recipe.path, [*overrides, f"Brain={brain}"])
    config = recipe.simulation_config()
    model = build_recipe_brain(recipe, config.engine(recipe.brain_engine).extra)
    signals = TrainingSignals(recipe.brain_engine, *recipe.signals, recipe.metric_signal)
    with Simulation(config, echo_engine_output=False) as simulation:
        gatherer = Gatherer(simulation, signals, model.state_names)
        gatherer.gather(CPU_WARMUP_STEPS, CEILING_SEED)
        pids = {name: process.pid for name, process in simulation.processes.items()}
        before = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
        started = time.process_time()
        gatherer.gather(horizon, CEILING_SEED + 1)
        roles = {"orchestrator": time.process_time() - started}
        roles.update({name: process_cpu_seconds(pid) - before[name] for name, pid in pids.items()})
    world_steps = recipe.worlds * (horizon + 1)
    return CpuBudget(
        brain,
        {name: 1e3 * seconds / world_steps for name, seconds in roles.items()},
        bare_cpu_ms(load_physics(recipe)),
    )


# -- the cases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """``processes`` gathering processes, ``threads`` MuJoCo threads each, one brain."""

    brain: str
    processes: int
    threads: int

    @property
    def label(self) -> str:
        return f"{self.brain} {self.processes}x{self.threads}"


@dataclass
class CaseResult:
    """Medians over the measured cycles of one case, and the ceilings next to it."""

    case: Case
    world_steps_per_s: float
    gather_s: float
    load: tuple[float, float]
    one_core: float = math.nan
    two_cores: float = math.nan


def case_command(case: Case, recipe: Recipe, run_dir: Path, overrides: Sequence[str]) -> list[str]:
    """The ``neuroloop train`` command line of a case (under mpiexec for several processes)."""
    threads = f"EngineConfigs.EngineType:{MUJOCO_ENGINE_TYPE}.EngineExtraConfigs.Threads="
    simulation_overrides = [*recipe.simulation_overrides, f"{threads}{case.threads}"]
    command = [sys.executable, "-m", "neuroloop", "train", str(recipe.path)]
    command += ["--run-dir", str(run_dir), "--quiet"]
    for override in [
        *overrides,
        f"Brain={case.brain}",
        f"SimulationOverrides={json.dumps(simulation_overrides)}",
    ]:
        command += ["-o", override]
    if case.processes == 1:
        return command
    mpiexec = Path(sys.executable).parent / "mpiexec"
    return [str(mpiexec), "-n", str(case.processes), *command]


def run_case(
    case: Case, recipe: Recipe, overrides: Sequence[str], directory: Path, timeout_s: float
) -> CaseResult:
    """Train ``case`` briefly; the median world-steps/s of its cycles after the first."""
    slug = case.label.replace(" ", "_")
    run_dir = directory / slug
    command = case_command(case, recipe, run_dir, overrides)
    records, load = run_training(command, run_dir, directory / f"{slug}.txt", case.label, timeout_s)
    measured = records[1:]
    if not measured:
        raise RuntimeError(f"[gather_throughput] {case.label}: expected 2 or more cycles")
    return CaseResult(
        case,
        world_steps_per_s=statistics.median(
            float(r["env_steps_per_s"]) * int(r["processes"]) for r in measured
        ),
        gather_s=statistics.median(float(r["gather_s"]) for r in measured),
        load=load,
    )


# -- the report ----------------------------------------------------------------------------------


def print_budgets(args: argparse.Namespace, budgets: Sequence[CpuBudget]) -> None:
    print(
        f"\nCPU accounting: {args.task}, one process gathering W={args.worlds} worlds x "
        f"{args.horizon} steps, 1 MuJoCo thread; CPU ms per world-step by process"
    )
    roles = list(budgets[0].roles)
    print(
        f"{'brain':<8} "
        + " ".join(f"{role:>12}" for role in roles)
        + f" {'total':>7} {'bare':>6} {'bare/total':>10} {'>= ' + str(TARGET):>7}"
    )
    for budget in budgets:
        print(
            f"{budget.brain:<8} "
            + " ".join(f"{budget.roles[role]:12.3f}" for role in roles)
            + f" {budget.total:7.3f} {budget.bare:6.3f} {budget.bound:10.2f} "
            + f"{'PASS' if budget.bound >= TARGET else 'FAIL':>7}"
        )
    print(
        "(bare: the bare mj_step loop's CPU ms per control step; bare/total: the fraction of "
        "the ceiling gathering reaches on any number of cores when every core is kept busy)"
    )


def print_report(
    args: argparse.Namespace,
    physics: Physics,
    ceilings: Sequence[Ceiling],
    results: Sequence[CaseResult],
    load: tuple[float, float],
) -> None:
    print(
        f"\ngathering throughput: {args.task}, W={args.worlds} worlds per process, horizon "
        f"{args.horizon}, medians of {args.cycles - 1} cycles (first of {args.cycles} skipped)"
    )
    print(
        f"1-minute load average at start / end: {load[0]:.2f} / {load[1]:.2f} "
        f"({os.cpu_count()} CPUs)"
    )
    ones = " -> ".join(f"{c.one_core:.0f}" for c in ceilings)
    twos = " -> ".join(f"{c.two_cores:.0f}" for c in ceilings)
    print(
        f"\nMuJoCo ceiling: mj_step(nstep={physics.substeps}) on {physics.path.name}, random "
        f"ctrl, control steps/s wall-clock, before the first case and after each:\n"
        f"  one core (this process):             {ones}\n"
        f"  two cores (two processes, same time): {twos}"
    )
    header = (
        f"{'case (brain PxT)':<18} {'load':>11} {'1-core':>7} {'2-core':>7} "
        f"{'world-steps/s':>13} {'x 1-core':>8} {'x 2-core':>8} {'gather s':>8}"
    )
    print(f"\n{header}")
    for result in results:
        print(
            f"{result.case.label:<18} {result.load[0]:5.2f}/{result.load[1]:<5.2f} "
            f"{result.one_core:7.0f} {result.two_cores:7.0f} {result.world_steps_per_s:13.0f} "
            f"{result.world_steps_per_s / result.one_core:8.2f} "
            f"{result.world_steps_per_s / result.two_cores:8.2f} {result.gather_s:8.2f}"
        )
    print(
        "(PxT: P processes, T MuJoCo threads each; load: 1-minute load average before/after; "
        "ceilings: medians of the timings just before and just after the case)"
    )
    if max(max(result.load) for result in results) > (os.cpu_count() or 1):
        print(
            "load above the core count: a case with more processes gets a larger share of the "
            "machine than the ceiling's processes, so its wall-clock ratios read high; the CPU "
            "accounting above is the figure that holds"
        )
    best = max(results, key=lambda r: r.world_steps_per_s / r.two_cores)
    ratio = best.world_steps_per_s / best.two_cores
    verdict = "PASS" if ratio >= TARGET else "FAIL"
    print(f"best: {best.case.label} at {ratio:.2f}x the two-core ceiling (>= {TARGET}: {verdict})")


def parse_case(text: str) -> tuple[int, int]:
    match = CASE.match(text)
    if match is None or min(int(match["processes"]), int(match["threads"])) < 1:
        raise argparse.ArgumentTypeError(f"expected PxT with P, T >= 1, e.g. 2x1. Received: {text}")
    return int(match["processes"]), int(match["threads"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--task", default=DEFAULT_TASK, help="recipe name in experiments/ (a .yaml file)"
    )
    parser.add_argument("--brains", nargs="+", default=list(DEFAULT_BRAINS))
    parser.add_argument(
        "--cases",
        type=parse_case,
        nargs="+",
        default=[parse_case(c) for c in DEFAULT_CASES],
        help="PxT: P processes (mpiexec ranks), T MuJoCo threads each",
    )
    parser.add_argument("--cycles", type=positive, default=DEFAULT_CYCLES)
    parser.add_argument("--horizon", type=positive, default=DEFAULT_HORIZON)
    parser.add_argument(
        "--worlds", type=positive, default=DEFAULT_WORLDS, help="worlds per process"
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="per case (s)")
    parser.add_argument(
        "--cpu-only", action="store_true", help="only the CPU accounting (no wall-clock cases)"
    )
    args = parser.parse_args(argv)
    if args.cycles < 2:
        parser.error("--cycles must be >= 2 (the first cycle is not measured)")
    path = EXPERIMENTS / f"{args.task}.yaml"
    if not path.is_file():
        parser.error(f"--task: expected a recipe {path}. Received: {args.task}")
    recipe = load_recipe(path)
    overrides = [
        f"Cycles={args.cycles}",
        f"Horizon={args.horizon}",
        f"Worlds={args.worlds}",
        "PPO.Epochs=1",
        "PPO.Minibatches=1",
    ]
    cases = [Case(brain, p, t) for brain in args.brains for p, t in args.cases]
    physics = load_physics(recipe)

    budgets = [cpu_budget(recipe, brain, overrides, args.horizon) for brain in args.brains]
    print_budgets(args, budgets)
    if args.cpu_only:
        return 0
    load_start = os.getloadavg()[0]
    results = []
    context = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(CEILING_PROCESSES, mp_context=context) as pool,
        tempfile.TemporaryDirectory(prefix="neuroloop-gather-") as directory,
    ):
        time_ceiling(physics, pool)  # warm-up: the pool's processes start and load MuJoCo
        ceilings = [time_ceiling(physics, pool)]
        for case in cases:
            result = run_case(case, recipe, overrides, Path(directory), args.timeout)
            ceilings.append(time_ceiling(physics, pool))
            before, after = ceilings[-2:]
            result.one_core = statistics.median([before.one_core, after.one_core])
            result.two_cores = statistics.median([before.two_cores, after.two_cores])
            results.append(result)
            print(
                f"[gather_throughput] {case.label}: {result.world_steps_per_s:.0f} world-steps/s",
                file=sys.stderr,
            )
    print_report(args, physics, ceilings, results, (load_start, os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
