"""The block loop with 64x64 vision against the same loop without, and the cost of a frame.

Run from the repository root (EGL needed)::

    MUJOCO_GL=egl .venv/bin/python bench/vision.py [--worlds 4] [--steps 20] [--repeats 3]

Two orchestrated simulations are up at once, each engine in its own process over gRPC:

- vision: ``simulation_configs/shadow_hand_manipulate_block_vision.json`` (the physics
  engine renders a 64x64 frame of every world each control step, the cortical brain reads
  it through its visual module);
- without: the same config with no ``Camera``, the plain task functions and no ``vision``
  input (the same cortical brain without its visual module).

Each is warmed up, then timed for ``--steps`` control steps; repeats alternate the order,
and medians are printed as world-steps/s with the ratio vision / without (the issue's target
is ``TARGET_RATIO``). Then, in this process, one world of the block model: the time of one
control step of physics (``mj_step`` x substeps) beside the time of rendering one 64x64
frame from the config's camera, with MuJoCo's default scene and with shadows and
reflections off (``mjRND_SHADOW``, ``mjRND_REFLECTION``), which the engine does not set.
"""

from __future__ import annotations

import os

from neuroloop.launcher import SINGLE_THREAD_ENV

os.environ.update(SINGLE_THREAD_ENV)

import argparse
import statistics
import time
from pathlib import Path

import mujoco

from neuroloop.config import load_config
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
SCENES = (("frame, default scene", False), ("frame, no shadow/reflection", True))
"""Labels of the two render timings, and whether shadows and reflections are off."""
MS_PER_S = 1000.0


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


def timed(sim: Simulation, steps: int) -> float:
    """Control steps/s of ``steps`` loop iterations."""
    started = time.perf_counter()
    sim.step(steps)
    return steps / (time.perf_counter() - started)


def render_costs() -> dict[str, float]:
    """Milliseconds per physics control step and per 64x64 frame, in this process."""
    physics = load_config(CONFIG).engine("physics")
    model = mujoco.MjModel.from_xml_path(
        str(shipped_model_folder() / f"{physics.extra['Model']}.xml")
    )
    substeps = round(physics.timestep_ns / 1e9 / model.opt.timestep)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    settings = physics.extra["Camera"]
    camera = mujoco.MjvCamera()
    mujoco.mjv_defaultFreeCamera(model, camera)
    camera.lookat[:] = settings["LookAt"]
    camera.distance = settings["Distance"]
    camera.azimuth = settings["Azimuth"]
    camera.elevation = settings["Elevation"]
    costs = {}
    started = time.perf_counter()
    for _ in range(FRAMES):
        mujoco.mj_step(model, data, nstep=substeps)
    elapsed = time.perf_counter() - started
    costs[f"physics control step ({substeps} mj_step)"] = elapsed / FRAMES * MS_PER_S
    with mujoco.Renderer(model, settings["Height"], settings["Width"]) as renderer:
        for label, plain in SCENES:
            renderer.update_scene(data, camera=camera)
            renderer.render()  # first call: context and buffers
            started = time.perf_counter()
            for _ in range(FRAMES):
                renderer.update_scene(data, camera=camera)
                if plain:
                    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
                    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
                renderer.render()
            costs[label] = (time.perf_counter() - started) / FRAMES * MS_PER_S
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cases = {
        "vision": Simulation.from_config(CONFIG, common(args.worlds), echo_engine_output=False),
        "without": Simulation.from_config(
            CONFIG, without_vision(args.worlds), echo_engine_output=False
        ),
    }
    rates: dict[str, list[float]] = {label: [] for label in cases}
    try:
        for sim in cases.values():
            sim.start()
            sim.step(WARMUP_STEPS)
        for repeat in range(args.repeats):
            order = list(cases) if repeat % 2 == 0 else list(reversed(cases))
            for label in order:
                rates[label].append(timed(cases[label], args.steps) * args.worlds)
    finally:
        for sim in cases.values():
            sim.close()
    medians = {label: statistics.median(values) for label, values in rates.items()}
    print(f"block loop, {args.worlds} worlds, {args.steps} control steps x {args.repeats}")
    for label, rate in medians.items():
        print(f"  {label:<8} {rate:8.1f} world-steps/s")
    ratio = medians["vision"] / medians["without"]
    print(f"  vision / without: {ratio:.2f}x (target >= {TARGET_RATIO}x)")
    print(f"one world in this process, mean of {FRAMES}:")
    for label, milliseconds in render_costs().items():
        print(f"  {label:<28} {milliseconds:7.2f} ms")


if __name__ == "__main__":
    main()
