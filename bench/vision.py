"""The block loop with 64x64 vision against the same loop without, and the cost of a frame.

Run from the repository root (EGL needed)::

    MUJOCO_GL=egl .venv/bin/python bench/vision.py [--worlds 4] [--steps 20] [--repeats 3]
        [--lp-threads N] [--default-scene]

Two orchestrated simulations are up at once, each engine in its own process over gRPC:

- vision: ``simulation_configs/shadow_hand_manipulate_block_vision.json`` (the physics
  engine renders a 64x64 frame of every world each control step with its ``Fast`` camera
  and coarse meshes; the cortical brain reads it through its visual module);
- without: the same config with no ``Camera``, the plain task functions and no ``vision``
  input (the same cortical brain without its visual module).

Each is warmed up, then timed for ``--steps`` control steps; repeats alternate the order,
and medians are printed as world-steps/s with the ratio vision / without (the issue's target
is ``TARGET_RATIO``) and what vision adds to a world-step. On a shared machine wall rates
swing with other work, so the CPU time each loop used (this process and its engine
processes, from ``/proc``) is printed too: the ratio of CPU work per world-step, which the
rate ratio approaches when the loops are CPU-bound (the engines overlap on two cores, so it
is not exact). Then, in this process, one world
of the block model: the time of one control step of physics (``mj_step`` x substeps) beside
the time of one 64x64 frame of the config's camera drawn by the engine's ``WorldCamera``,
with MuJoCo's default scene, with ``Fast``, and with ``Fast`` and the config's ``MeshCell``
(as the engine draws it): wall and CPU time per frame (CPU includes llvmpipe's rasterizer
threads) and the wall time of each stage (scene update, GL draw calls, pixel read; llvmpipe
rasterizes at the read). ``--lp-threads`` sets ``LP_NUM_THREADS`` (the
rasterizer threads of Mesa's llvmpipe; 0 draws in the calling thread) for both parts;
``--default-scene`` times the vision loop with MuJoCo's default scene (the camera before
``Fast`` and ``MeshCell``).
"""

from __future__ import annotations

import os

from neuroloop.launcher import SINGLE_THREAD_ENV

os.environ.update(SINGLE_THREAD_ENV)

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import mujoco
import yaml

from neuroloop.config import load_config
from neuroloop.plugins.engines.mujoco_camera import STAGES, CameraSettings, WorldCamera
from neuroloop.plugins.engines.mujoco_engine import shipped_model_folder
from neuroloop.simulation import Simulation

REPOSITORY = Path(__file__).resolve().parent.parent
CONFIG = REPOSITORY / "simulation_configs" / "shadow_hand_manipulate_block_vision.json"
PLAIN_FUNCTIONS = "../transceivers/shadow_hand_task_functions.py"
PHYSICS = "EngineConfigs.EngineName:physics.EngineExtraConfigs"
BRAIN = "EngineConfigs.EngineName:brain.EngineExtraConfigs"
TARGET_RATIO = 0.3
WARMUP_STEPS = 5
FRAMES = 50
"""Frames rendered per in-process timing."""
MS_PER_S = 1000.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
USER_TIME, SYSTEM_TIME = 11, 12
"""Fields utime and stime of ``/proc/PID/stat``, counted after the command's ``)``."""
FRAME_CASES: dict[str, dict[str, Any]] = {
    "default scene": {"Fast": False, "MeshCell": None},
    "Fast": {"MeshCell": None},
    "Fast, MeshCell": {},
}
"""In-process frame timings: changes to the config's ``Camera`` (which has both)."""


def common(worlds: int) -> list[str]:
    return ["SimulationTimeout=0", f"{PHYSICS}.Worlds={worlds}", f"{BRAIN}.Worlds={worlds}"]


def without_vision(worlds: int) -> list[str]:
    """Overrides that turn the vision config into the same loop without vision."""
    config = load_config(CONFIG)
    shapes = dict(config.engine("brain").extra["InputShapes"])
    del shapes["vision"]
    shape_items = ", ".join(f'"{name}": {list(shape)}' for name, shape in shapes.items())
    return [
        *common(worlds),
        f"{PHYSICS}.Camera=null",
        f"{BRAIN}.InputShapes={{{shape_items}}}",
        f"DataPackProcessingFunctions.Name:manipulate_block.FileName={PLAIN_FUNCTIONS}",
        f"StatusFunction.FileName={PLAIN_FUNCTIONS}",
    ]


def cpu_seconds(sim: Simulation) -> float:
    """CPU seconds used so far by this process and by ``sim``'s engine processes (Linux)."""
    total = time.process_time()
    for process in sim.processes.values():
        stat = Path(f"/proc/{process.pid}/stat").read_text(encoding="ascii")
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[USER_TIME]) + int(fields[SYSTEM_TIME])) / CLOCK_TICKS
    return total


def timed(sim: Simulation, steps: int) -> tuple[float, float]:
    """Wall and CPU seconds (orchestrator and engines) of ``steps`` loop iterations."""
    wall, cpu = time.perf_counter(), cpu_seconds(sim)
    sim.step(steps)
    return time.perf_counter() - wall, cpu_seconds(sim) - cpu


def frame_costs(changes: dict[str, Any]) -> dict[str, float]:
    """Milliseconds per frame of the config's camera on one world of the block model.

    The engine's own camera (``WorldCamera``) renders ``FRAMES`` frames; the result is its
    wall time per frame, this process's CPU time per frame (llvmpipe's threads included),
    and the wall time of each stage.
    """
    physics = load_config(CONFIG).engine("physics")
    model = mujoco.MjModel.from_xml_path(
        str(shipped_model_folder() / f"{physics.extra['Model']}.xml")
    )
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    body = yaml.safe_load((CONFIG.parent / physics.extra["Body"]).read_text(encoding="utf-8"))
    camera = {**physics.extra["Camera"], **changes}
    worlds = WorldCamera(model, CameraSettings.merge(camera, body["View"]), "[bench]")
    try:
        worlds.render([data], None, lambda world: None)  # first frame: buffers, shaders
        worlds.seconds = dict.fromkeys(STAGES, 0.0)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(FRAMES):
            worlds.render([data], None, lambda world: None)
        costs = {
            "wall": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu,
            **worlds.seconds,
        }
    finally:
        worlds.close()
    return {label: seconds / FRAMES * MS_PER_S for label, seconds in costs.items()}


def physics_cost() -> tuple[int, float]:
    """Substeps and milliseconds of one control step of one world, in this process."""
    physics = load_config(CONFIG).engine("physics")
    model = mujoco.MjModel.from_xml_path(
        str(shipped_model_folder() / f"{physics.extra['Model']}.xml")
    )
    substeps = round(physics.timestep_ns / 1e9 / model.opt.timestep)
    data = mujoco.MjData(model)
    started = time.perf_counter()
    for _ in range(FRAMES):
        mujoco.mj_step(model, data, nstep=substeps)
    return substeps, (time.perf_counter() - started) / FRAMES * MS_PER_S


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--lp-threads",
        type=int,
        default=None,
        help="LP_NUM_THREADS for llvmpipe here and in the physics engine (default: the config's)",
    )
    parser.add_argument(
        "--default-scene",
        action="store_true",
        help="the vision loop's camera without Fast and MeshCell (MuJoCo's default scene)",
    )
    args = parser.parse_args()
    vision = common(args.worlds)
    if args.default_scene:
        vision += [f"{PHYSICS}.Camera.Fast=false", f"{PHYSICS}.Camera.MeshCell=null"]
    if args.lp_threads is not None:
        os.environ["LP_NUM_THREADS"] = str(args.lp_threads)
        environment = ["MUJOCO_GL=egl", f"LP_NUM_THREADS={args.lp_threads}"]
        vision.append(f"EngineConfigs.EngineName:physics.EngineEnvParams={json.dumps(environment)}")
    cases = {
        "vision": Simulation.from_config(CONFIG, vision, echo_engine_output=False),
        "without": Simulation.from_config(
            CONFIG, without_vision(args.worlds), echo_engine_output=False
        ),
    }
    seconds: dict[str, list[tuple[float, float]]] = {label: [] for label in cases}
    try:
        for sim in cases.values():
            sim.start()
            sim.step(WARMUP_STEPS)
        for repeat in range(args.repeats):
            order = list(cases) if repeat % 2 == 0 else list(reversed(cases))
            for label in order:
                seconds[label].append(timed(cases[label], args.steps))
    finally:
        for sim in cases.values():
            sim.close()
    world_steps = args.steps * args.worlds
    rates = {
        label: statistics.median(world_steps / wall for wall, _ in values)
        for label, values in seconds.items()
    }
    cpu = {
        label: sum(used for _, used in values) / (world_steps * args.repeats) * MS_PER_S
        for label, values in seconds.items()
    }
    threads = os.environ.get("LP_NUM_THREADS", "unset (llvmpipe: one per core)")
    scene = "default scene" if args.default_scene else "the config's camera"
    print(
        f"block loop, {args.worlds} worlds, {args.steps} control steps x {args.repeats}, "
        f"vision with {scene}, MUJOCO_GL={os.environ.get('MUJOCO_GL')}, "
        f"LP_NUM_THREADS {threads}"
    )
    for label, rate in rates.items():
        print(
            f"  {label:<8} {rate:8.1f} world-steps/s (median); CPU {cpu[label]:6.2f} ms per "
            f"world-step (orchestrator + engines, all repeats)"
        )
    ratio = rates["vision"] / rates["without"]
    print(f"  vision / without: {ratio:.2f}x (target >= {TARGET_RATIO}x)")
    extra = (1 / rates["vision"] - 1 / rates["without"]) * MS_PER_S
    print(f"  vision's extra per world-step (frame, transfer, visual module): {extra:.1f} ms")
    print(
        f"  by CPU used, without / vision: {cpu['without'] / cpu['vision']:.2f}x "
        f"(vision adds {cpu['vision'] - cpu['without']:.2f} ms of CPU per world-step)"
    )
    substeps, physics = physics_cost()
    print(f"one world in this process, mean of {FRAMES}:")
    print(f"  physics control step ({substeps} mj_step)    {physics:7.2f} ms")
    for label, changes in FRAME_CASES.items():
        costs = frame_costs(changes)
        stages = ", ".join(f"{stage} {costs[stage]:.2f}" for stage in STAGES)
        print(
            f"  frame, {label:<15} wall {costs['wall']:6.2f} ms, CPU {costs['cpu']:6.2f} ms "
            f"(wall by stage: {stages})"
        )


if __name__ == "__main__":
    main()
