"""Orchestrated reach loop over gRPC against the same loop stepped in one process.

Run from the repository root::

    .venv/bin/python bench/loop_overhead.py [--worlds 1 16 64] [--steps N] [--repeats R]
                                            [--brain wide]

The loop is ``simulation_configs/shadow_hand_reach.json`` (MuJoCo ``reach`` model, a Keras
brain, the reach transceiver functions, control timestep 0.04 s = 20 physics substeps) with
``--brain`` as the brain, ``Worlds=W`` for physics and brain, no ``SimulationTimeout`` and a
fixed seed. For every W, two simulations of that config are up at once:

- orchestrated: ``Simulation(config)``, each engine in its own process, over gRPC (engines
  step concurrently, one thread each: the launcher sets ``SINGLE_THREAD_ENV``);
- in-process: ``Simulation(config, local=True)``, both engines in this process behind the
  same ``FTILoop`` and the same functions, stepped one after the other (the baseline). This
  process gets the same one-thread environment, set below before numpy, MuJoCo or
  TensorFlow load.

Each is warmed up, then timed for ``N`` control steps (``sim.step(N)``: N loop iterations);
repeats are interleaved (the order alternates) and medians are printed as control steps/s
(loop iterations/s) and world-steps/s (x W), with the ratio orchestrated / in-process
against the issue's targets (``TARGET_RATIOS``).

Beside the rates is the CPU time one control step costs, per process (read from ``/proc``,
so Linux only). On a machine shared with other work the wall-clock rates follow the load,
and when it is oversubscribed the orchestrated loop's three processes get a larger share of
the CPUs than the in-process loop's one, which flatters the ratio: the report warns when the
in-process loop got less than ``BUSY_CPU_SHARE`` of a core (its CPU time over its wall-clock
time). CPU times follow the load much less, so they show where the time goes: the
in-process engines' ``step`` calls are timed inside the in-process loop, and what that loop
costs beyond them is the rest (datapack reads and writes, transceiver functions, loop). On
two free cores the orchestrated loop could at best take ``max(physics, brain) + rest`` per
control step, the "ideal" printed with the wall-clock times.

The physical ceiling is measured too, for one world: ``mujoco.mj_step(model, data,
nstep=20)`` in a bare loop, and gymnasium-robotics' ``HandReach`` env stepped with random
actions (it reads state by joint name every step).

Default step counts keep a run with the default worlds (1, 16, 64) and repeats to about two
minutes on two idle cores (longer on a busy machine): ``DEFAULT_WORLD_STEPS`` world-steps
per timing, but at least ``MIN_STEPS`` and at most ``MAX_STEPS`` control steps (W=1: 300,
W=16: 80, W=64: 20 steps), so every timing lasts one to a few seconds. With W=64 and the
wide brain (12.7M parameters) a control step takes tens of milliseconds in the brain alone,
and as long again in physics.
"""

from __future__ import annotations

import os

# One BLAS / TensorFlow thread in this process, as the launcher gives every engine process;
# set before numpy, MuJoCo or TensorFlow is imported (neuroloop.launcher imports none).
from neuroloop.launcher import SINGLE_THREAD_ENV

os.environ.update(SINGLE_THREAD_ENV)

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import mujoco

from neuroloop.config import SimulationConfig, load_config
from neuroloop.engine import Engine
from neuroloop.local import LocalEngine
from neuroloop.plugins.engines.mujoco_engine import shipped_model_folder
from neuroloop.simulation import Simulation

REPOSITORY = Path(__file__).resolve().parent.parent
CONFIG_PATH = REPOSITORY / "simulation_configs" / "shadow_hand_reach.json"
PHYSICS = "physics"
"""Name of the MuJoCo engine in the config."""
BRAIN = "brain"
"""Name of the Keras brain engine in the config."""
ORCHESTRATOR = "orchestrator"
"""This process, in the per-process CPU times."""
MODEL_FILE = "reach.xml"
"""The reach model in gymnasium-robotics' hand assets (the config's ``Model: reach``)."""
GYM_ENV_ID = "HandReach-v3"
"""gymnasium-robotics' own reach env (1.4.2 registers v0 and v3)."""

DEFAULT_WORLDS = (1, 16, 64)
DEFAULT_BRAIN = "wide"
DEFAULT_REPEATS = 5
DEFAULT_WORLD_STEPS = 1280
"""World-steps per timing by default: control steps = this / W, within the bounds below."""
MIN_STEPS = 20
MAX_STEPS = 300
WARMUP_STEPS = 20
"""Control steps run once per simulation before timing (first calls, caches, allocations)."""
SEED = 0
"""Seed of the brain's initial weights and of every engine's reset."""

CEILING_STEPS = 500
"""Control steps per timing of the bare ``mj_step`` loop and of the gymnasium env."""
CEILING_WARMUP_STEPS = 20

TARGET_RATIOS = {1: 0.5, 16: 0.8}
"""Orchestrated / in-process control steps/s the issue asks for, by number of worlds."""

BUSY_CPU_SHARE = 0.75
"""Below this share of a core (CPU time / wall time) the in-process loop was held back by
other work on the machine, and the wall-clock ratios are flattered."""

NS_PER_S = 1_000_000_000
MS_PER_S = 1000.0

PROC_STAT_UTIME = 11
PROC_STAT_STIME = 12
"""Indices of utime and stime in ``/proc/PID/stat`` after the ``(comm)`` field (proc(5))."""
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def overrides(brain: str, worlds: int) -> list[str]:
    """``-o`` overrides of the reach config for one benchmark case."""
    physics = f"EngineConfigs.EngineName:{PHYSICS}.EngineExtraConfigs"
    brain_extra = f"EngineConfigs.EngineName:{BRAIN}.EngineExtraConfigs"
    return [
        "SimulationTimeout=0",
        f"{physics}.Worlds={worlds}",
        f"{brain_extra}.Worlds={worlds}",
        f"{brain_extra}.Brain={brain}",
        f"{brain_extra}.Seed={SEED}",
        # The config ships trained LSTM weights; the benchmark times a fresh --brain.
        f"{brain_extra}.Weights=null",
    ]


def default_steps(worlds: int) -> int:
    """Control steps per timing when ``--steps`` is not given."""
    return max(MIN_STEPS, min(MAX_STEPS, DEFAULT_WORLD_STEPS // worlds))


def substeps(config: SimulationConfig, model: mujoco.MjModel) -> int:
    """Physics substeps per control step; ``ValueError`` if not a whole number."""
    (engine,) = [e for e in config.engines if e.name == PHYSICS]
    physics_ns = round(model.opt.timestep * NS_PER_S)
    count, remainder = divmod(engine.timestep_ns, physics_ns)
    if remainder or count < 1:
        raise ValueError(
            f"[loop_overhead] expected EngineTimestep ({engine.timestep_ns} ns) to be a whole "
            f"multiple of the model's opt.timestep ({physics_ns} ns)"
        )
    return count


def process_cpu_s(pid: int) -> float:
    """CPU time (user + system, every thread) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[PROC_STAT_UTIME]) + int(fields[PROC_STAT_STIME])) / CLOCK_TICKS_PER_S


@dataclass
class LoopCase:
    """One simulation of the loop and its timings, one entry per repeat."""

    label: str
    sim: Simulation
    rates: list[float] = field(default_factory=list)
    """Control steps/s."""
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)
    """CPU milliseconds per control step of this process and of each engine process."""

    def time_once(self, steps: int) -> None:
        def cpu_now() -> dict[str, float]:
            engines = {name: process_cpu_s(p.pid) for name, p in self.sim.processes.items()}
            return {ORCHESTRATOR: time.process_time(), **engines}

        first = self.sim.iteration
        cpu_started = cpu_now()
        started = time.perf_counter()
        self.sim.step(steps)
        elapsed = time.perf_counter() - started
        cpu_used = {name: seconds - cpu_started[name] for name, seconds in cpu_now().items()}
        if self.sim.iteration - first != steps:
            raise RuntimeError(
                f"[loop_overhead] {self.label}: expected {steps} loop iterations. "
                f"Received: {self.sim.iteration - first} (did the status function end the run?)"
            )
        self.rates.append(steps / elapsed)
        for name, seconds in cpu_used.items():
            self.cpu_ms.setdefault(name, []).append(seconds / steps * MS_PER_S)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def mean_cpu_ms(self) -> dict[str, float]:
        """CPU per control step over all repeats (a mean, like ``StepTimer``'s)."""
        return {name: statistics.fmean(values) for name, values in self.cpu_ms.items()}


@dataclass
class WorldsResult:
    """Everything measured for one number of worlds (rates: control steps/s; times: ms)."""

    worlds: int
    steps: int
    orchestrated: float
    in_process: float
    orchestrated_cpu_ms: dict[str, float]
    """CPU per control step of the orchestrator and of each engine process."""
    in_process_cpu_ms: float
    physics_ms: float
    """CPU per ``physics.step`` in the in-process loop."""
    brain_ms: float
    """CPU per ``brain.step`` in the in-process loop."""

    @property
    def ratio(self) -> float:
        return self.orchestrated / self.in_process

    @property
    def rest_ms(self) -> float:
        """In-process loop CPU beyond the engines' steps: datapacks, functions, loop."""
        return self.in_process_cpu_ms - self.physics_ms - self.brain_ms

    @property
    def in_process_cpu_share(self) -> float:
        """CPU time / wall-clock time of the in-process loop: 1 when it had a core to itself."""
        return self.in_process_cpu_ms * self.in_process / MS_PER_S

    @property
    def ideal_ms(self) -> float:
        """Orchestrated wall time per control step with the engines in parallel, no overhead."""
        return max(self.physics_ms, self.brain_ms) + self.rest_ms


def local_engine(sim: Simulation, name: str) -> Engine:
    """The Engine object behind an in-process simulation's engine ``name``."""
    link = sim.clients[name]
    if not isinstance(link, LocalEngine):
        raise TypeError(f"[loop_overhead] expected {name!r} to run in-process")
    return link.host.engine


class StepTimer:
    """Takes the place of an in-process engine's ``step`` and adds up its CPU time.

    Args:
        engine: The engine whose ``step`` to time from now on.
    """

    def __init__(self, engine: Engine) -> None:
        self.cpu_s = 0.0
        self.calls = 0
        self._step = engine.step
        engine.step = self  # type: ignore[method-assign]

    def __call__(self, timestep_ns: int) -> None:
        started = time.process_time()
        self._step(timestep_ns)
        self.cpu_s += time.process_time() - started
        self.calls += 1

    @property
    def cpu_ms(self) -> float:
        """Mean CPU milliseconds per step so far."""
        return self.cpu_s / max(self.calls, 1) * MS_PER_S


def measure_worlds(brain: str, worlds: int, steps: int, repeats: int) -> WorldsResult:
    """Time the orchestrated and the in-process loop at ``worlds`` worlds, interleaved."""
    config = load_config(CONFIG_PATH, overrides(brain, worlds))
    with ExitStack() as stack:
        orchestrated = LoopCase(
            "orchestrated",
            stack.enter_context(Simulation(config, seed=SEED, echo_engine_output=False)),
        )
        in_process = LoopCase(
            "in-process", stack.enter_context(Simulation(config, seed=SEED, local=True))
        )
        cases = [orchestrated, in_process]
        for case in cases:
            case.sim.step(WARMUP_STEPS)
        physics_timer, brain_timer = (
            StepTimer(local_engine(in_process.sim, name)) for name in (PHYSICS, BRAIN)
        )
        for repeat in range(repeats):
            for case in cases if repeat % 2 == 0 else cases[::-1]:
                case.time_once(steps)
    return WorldsResult(
        worlds=worlds,
        steps=steps,
        orchestrated=orchestrated.rate,
        in_process=in_process.rate,
        orchestrated_cpu_ms=orchestrated.mean_cpu_ms,
        in_process_cpu_ms=in_process.mean_cpu_ms[ORCHESTRATOR],
        physics_ms=physics_timer.cpu_ms,
        brain_ms=brain_timer.cpu_ms,
    )


def mj_step_rate(model: mujoco.MjModel, nstep: int, repeats: int) -> float:
    """Control steps/s of a bare ``mj_step(model, data, nstep)`` loop, one world (median)."""
    data = mujoco.MjData(model)
    mujoco.mj_step(model, data, nstep=nstep * CEILING_WARMUP_STEPS)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(CEILING_STEPS):
            mujoco.mj_step(model, data, nstep=nstep)
        rates.append(CEILING_STEPS / (time.perf_counter() - started))
    return statistics.median(rates)


def gymnasium_rate(repeats: int) -> tuple[float, int]:
    """Control steps/s of gymnasium-robotics' HandReach with random actions (median).

    Episodes end by the env's time limit (50 steps) and are reset inside the timing, as the
    loop resets its worlds every 50 steps. Returns the rate and the env's substeps.
    """
    import gymnasium
    import gymnasium_robotics

    gymnasium.register_envs(gymnasium_robotics)
    env = gymnasium.make(GYM_ENV_ID)
    try:
        env.action_space.seed(SEED)
        env.reset(seed=SEED)

        def run(steps: int) -> None:
            for _ in range(steps):
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                if terminated or truncated:
                    env.reset()

        run(CEILING_WARMUP_STEPS)
        rates = []
        for _ in range(repeats):
            started = time.perf_counter()
            run(CEILING_STEPS)
            rates.append(CEILING_STEPS / (time.perf_counter() - started))
        return statistics.median(rates), int(getattr(env.unwrapped, "n_substeps", 0))
    finally:
        env.close()


def verdict(result: WorldsResult) -> tuple[str, str]:
    """The target column and PASS / FAIL (``-`` where the issue sets no target)."""
    target = TARGET_RATIOS.get(result.worlds)
    if target is None:
        return "-", "-"
    return f">= {target:.2f}", "PASS" if result.ratio >= target else "FAIL"


def print_rates(results: Sequence[WorldsResult]) -> None:
    print("control steps/s (loop iterations/s) and world-steps/s")
    header = (
        f"{'':12} | {'orchestrated (gRPC)':^19} | {'in-process':^19} | orchestrated / in-process\n"
        f"{'worlds steps':12} | {'steps/s':>8} {'world-st/s':>10} | {'steps/s':>8} "
        f"{'world-st/s':>10} | {'ratio':>5} {'target':>7} {'':>4}"
    )
    print(header)
    print("-" * len(header.splitlines()[-1]))
    for r in results:
        target, passed = verdict(r)
        print(
            f"{r.worlds:>6} {r.steps:>5} | "
            f"{r.orchestrated:>8.1f} {r.orchestrated * r.worlds:>10.0f} | "
            f"{r.in_process:>8.1f} {r.in_process * r.worlds:>10.0f} | "
            f"{r.ratio:>5.2f} {target:>7} {passed:>4}"
        )


def print_cpu(results: Sequence[WorldsResult]) -> None:
    print("\nCPU ms per control step (mean over the repeats)")
    header = (
        f"{'':6} | {'engine.step':^15} | {'in-process loop':^15} | "
        f"{'orchestrated loop, by process':^38} | {'orch -':>6}\n"
        f"{'worlds':>6} | {PHYSICS:>7} {BRAIN:>7} | {'total':>7} {'rest':>7} | "
        f"{ORCHESTRATOR:>12} {PHYSICS:>7} {BRAIN:>7} {'total':>8} | {'in-pr':>6}"
    )
    print(header)
    print("-" * len(header.splitlines()[-1]))
    for r in results:
        by_process = r.orchestrated_cpu_ms
        total = sum(by_process.values())
        print(
            f"{r.worlds:>6} | {r.physics_ms:>7.2f} {r.brain_ms:>7.2f} | "
            f"{r.in_process_cpu_ms:>7.2f} {r.rest_ms:>7.2f} | {by_process[ORCHESTRATOR]:>12.2f} "
            f"{by_process[PHYSICS]:>7.2f} {by_process[BRAIN]:>7.2f} {total:>8.2f} | "
            f"{total - r.in_process_cpu_ms:>6.2f}"
        )
    print(
        "engine.step: in the in-process loop; rest = in-process total - physics - brain\n"
        "(datapack reads and writes, transceiver functions, loop)"
    )


def print_wall(results: Sequence[WorldsResult]) -> None:
    print("\nwall-clock ms per control step")
    header = (
        f"{'worlds':>6} | {'in-process':>10} {'CPU share':>9} {'orchestrated':>12} | "
        f"{'ideal':>6} {'orch - ideal':>12}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        orchestrated_ms = MS_PER_S / r.orchestrated
        print(
            f"{r.worlds:>6} | {MS_PER_S / r.in_process:>10.2f} {r.in_process_cpu_share:>9.2f} "
            f"{orchestrated_ms:>12.2f} | {r.ideal_ms:>6.2f} {orchestrated_ms - r.ideal_ms:>12.2f}"
        )
    print(
        "CPU share = in-process CPU / wall time; ideal = max(physics, brain) + rest: both "
        "engines in\nparallel, no RPC cost"
    )
    busy = [r.worlds for r in results if r.in_process_cpu_share < BUSY_CPU_SHARE]
    if busy:
        print(
            f"WARNING: the in-process loop got less than {BUSY_CPU_SHARE:.2f} of a core at "
            f"worlds={busy}: the machine was busy,\nwhich favours the orchestrated loop (three "
            "processes against one); compare the CPU times"
        )


def print_ceilings(
    results: Sequence[WorldsResult], ceilings: Sequence[tuple[str, float]], nstep: int
) -> None:
    print(f"\nphysics ceiling, 1 world, {nstep} substeps per control step")
    one = next((r for r in results if r.worlds == 1), None)
    rows = list(ceilings)
    if one is not None:
        rows += [("orchestrated loop, 1 world", one.orchestrated)]
        rows += [("in-process loop, 1 world", one.in_process)]
    width = max(len(label) for label, _ in rows)
    for label, rate in rows:
        print(f"  {label:<{width}}  {rate:8.1f} control steps/s")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1. Received: {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--worlds", type=positive, nargs="+", default=list(DEFAULT_WORLDS))
    parser.add_argument(
        "--steps",
        type=positive,
        help=f"control steps per timing (default: {DEFAULT_WORLD_STEPS} / W, "
        f"within [{MIN_STEPS}, {MAX_STEPS}])",
    )
    parser.add_argument("--repeats", type=positive, default=DEFAULT_REPEATS)
    parser.add_argument("--brain", default=DEFAULT_BRAIN, help="a registered brain")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    config = load_config(CONFIG_PATH, overrides(args.brain, 1))
    model = mujoco.MjModel.from_xml_path(str(shipped_model_folder() / MODEL_FILE))
    nstep = substeps(config, model)
    gym_rate, gym_substeps = gymnasium_rate(args.repeats)
    ceilings = [
        (f"mujoco.mj_step(model, data, nstep={nstep})", mj_step_rate(model, nstep, args.repeats)),
        (f"gymnasium-robotics {GYM_ENV_ID} ({gym_substeps} substeps)", gym_rate),
    ]
    results = []
    for worlds in args.worlds:
        steps = args.steps or default_steps(worlds)
        print(f"measuring {worlds} worlds, {steps} steps x {args.repeats} repeats ...", flush=True)
        results.append(measure_worlds(args.brain, worlds, steps, args.repeats))
    load_after = os.getloadavg()[0]

    print(
        f"\nreach loop: MuJoCo 'reach' + '{args.brain}' brain + reach transceivers, "
        f"{nstep} physics substeps per control step"
    )
    print(
        f"median of {args.repeats} interleaved repeats; 1-minute load average before / after: "
        f"{load_before:.2f} / {load_after:.2f} ({os.cpu_count()} CPUs)\n"
    )
    print_rates(results)
    print_cpu(results)
    print_wall(results)
    print_ceilings(results, ceilings, nstep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
