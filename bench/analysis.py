"""Cost of recording a brain, and of ``neuroloop analyze`` on the shipped reach brain.

Run from the repository root::

    .venv/bin/python bench/analysis.py [--worlds 16] [--steps 100] [--repeats 3]
                                       [--episodes 50] [--skip-analyze] [--output DIR]

1. Recording overhead. ``simulation_configs/shadow_hand_reach.json`` (trained LSTM,
   ``Worlds=W``, no timeout, fixed seed) is brought up twice, side by side, each engine in
   its own process over gRPC: once as shipped, once with the brain's
   ``EngineExtraConfigs.Record: all`` and every ``layer:*`` datapack fetched with each step
   (what ``neuroloop evaluate --record`` asks for). Each is warmed up, then timed for
   ``--steps`` control steps; repeats alternate the order; the medians' ratio
   (recording / plain) is printed against ``TARGET_RATIO``.
2. ``neuroloop analyze experiments/trained/reach_lstm.weights.h5 --recipe reach --episodes
   N``: its wall-clock time (recording the episodes, then every analysis) against
   ``TARGET_ANALYZE_S``, with the time the analyses alone took (``metrics.json``).

Wall-clock times follow the machine's load; the ratio of part 1 is measured in one run, so
both loops see the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from neuroloop.config import load_config
from neuroloop.simulation import Simulation

REPOSITORY = Path(__file__).resolve().parent.parent
CONFIG_PATH = REPOSITORY / "simulation_configs" / "shadow_hand_reach.json"
BRAIN = "brain"
SEED = 0
WARMUP_STEPS = 10
TARGET_RATIO = 0.8
"""Recording every layer keeps at least this share of the plain loop's speed (issue 10)."""
TARGET_ANALYZE_S = 300.0
"""``neuroloop analyze`` on 50 episodes finishes within this on two cores (issue 10)."""
LAYER_PREFIX = "layer:"


def overrides(worlds: int, record: bool) -> list[str]:
    """``-o`` overrides of the reach config for one loop."""
    brain = f"EngineConfigs.EngineName:{BRAIN}.EngineExtraConfigs"
    physics = "EngineConfigs.EngineName:physics.EngineExtraConfigs"
    chosen = [
        "SimulationTimeout=0",
        f"{physics}.Worlds={worlds}",
        f"{brain}.Worlds={worlds}",
        f"{brain}.Seed={SEED}",
    ]
    return [*chosen, f"{brain}.Record=all"] if record else chosen


def time_steps(simulation: Simulation, steps: int) -> float:
    """Control steps per second over ``steps`` steps."""
    started = time.perf_counter()
    simulation.step(steps)
    return steps / (time.perf_counter() - started)


def recording_overhead(worlds: int, steps: int, repeats: int) -> tuple[float, float, int]:
    """Median control steps/s of the plain and the recording loop, and the layers recorded."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    recorded = 0
    with ExitStack() as stack:
        loops = {}
        for record in (False, True):
            config = load_config(CONFIG_PATH, overrides(worlds, record))
            simulation = stack.enter_context(
                Simulation(config, echo_engine_output=False, seed=SEED)
            )
            layers = [n for n in simulation.datapack_names[BRAIN] if n.startswith(LAYER_PREFIX)]
            if record:
                simulation.loop.request(BRAIN, layers)
                recorded = len(layers)
            simulation.step(WARMUP_STEPS)
            loops[record] = simulation
        for repeat in range(repeats):
            order = (False, True) if repeat % 2 == 0 else (True, False)
            for record in order:
                rates[record].append(time_steps(loops[record], steps))
    return statistics.median(rates[False]), statistics.median(rates[True]), recorded


def _children_cpu_s() -> float:
    """CPU seconds (user + system) of the finished child processes and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def analyze_time(episodes: int, output: Path | None) -> tuple[float, float | None, int]:
    """Wall-clock seconds of ``neuroloop analyze`` on the reach brain, the analyses' own
    seconds, and its exit status; the report goes to ``output`` (default: a temporary
    folder)."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = str(output or scratch)
        command = [
            str(Path(sys.executable).parent / "neuroloop"),
            "analyze",
            str(REPOSITORY / "experiments" / "trained" / "reach_lstm.weights.h5"),
            "--recipe",
            "reach",
            "--episodes",
            str(episodes),
            "-o",
            folder,
        ]
        started = time.perf_counter()
        cpu_before = _children_cpu_s()
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        seconds = time.perf_counter() - started
        print(f"neuroloop analyze used {_children_cpu_s() - cpu_before:.0f} s of CPU time")
        metrics = Path(folder) / "metrics.json"
        analysis_s = json.loads(metrics.read_text())["seconds"] if metrics.is_file() else None
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
        else:
            print(done.stdout)
        return seconds, analysis_s, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--skip-analyze", action="store_true")
    parser.add_argument("--output", type=Path, help="keep the analyze report in this folder")
    args = parser.parse_args()

    plain, recording, layers = recording_overhead(args.worlds, args.steps, args.repeats)
    ratio = recording / plain
    print(f"reach loop, W={args.worlds}, {args.steps} steps x {args.repeats} repeats (medians)")
    print(f"  plain                   {plain:8.1f} control steps/s")
    print(f"  Record: all ({layers} layers) {recording:8.1f} control steps/s")
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    print(f"  ratio recording/plain   {ratio:8.2f}  ({verdict} the target >= {TARGET_RATIO})")
    if args.skip_analyze:
        return 0
    seconds, analysis_s, status = analyze_time(args.episodes, args.output)
    verdict = "meets" if status == 0 and seconds <= TARGET_ANALYZE_S else "misses"
    print(
        f"neuroloop analyze, {args.episodes} episodes: {seconds:.0f} s wall clock "
        f"(analyses alone {analysis_s} s; exit {status}); {verdict} the target "
        f"<= {TARGET_ANALYZE_S:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
