"""Offscreen render cost per picture beside the physics step it shows, side by side.

Run from the repository root::

    .venv/bin/python bench/render.py [--worlds 1 16] [--sizes 128 256] [--steps N] [--repeats R]

For each world count W, one MuJoCo engine (the ``reach`` model with the Shadow Hand body,
control timestep 0.04 s = 20 physics substeps) is stepped in this process with random
controls. Timed, interleaved in every repeat:

- physics: one control step of all W worlds (``engine.step``), no camera;
- render SxS: the same step with ``Camera: {World: 0, Width: S, Height: S}`` (the body's
  hand-centred view, goal markers drawn), then the picture of world 0 read
  (``get_datapack("camera")``), as ``neuroloop render`` takes one per control step; the
  picture's own cost is this minus the physics step.

Medians over repeats are printed in ms per control step, with the picture's cost as a
multiple of the physics step. One world is rendered whatever W, so the picture's cost should
not grow with W while the physics step does. The OpenGL backend is the one ``neuroloop
render`` picks (``MUJOCO_GL``, else EGL, else OSMesa); on Mesa's software EGL (no GPU) the
picture is drawn on the CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from neuroloop.launcher import SINGLE_THREAD_ENV

os.environ.update(SINGLE_THREAD_ENV)

from neuroloop.render import choose_gl_backend

REPO = Path(__file__).resolve().parents[1]
CONTROL_NS = 40_000_000
"""One control step (0.04 s, 20 physics substeps of the reach model)."""
MARKERS = 5
"""Goal markers drawn, as the reach task sends (one per fingertip)."""


def make_engine(worlds: int, size: int | None):
    from neuroloop.plugins.engines.mujoco_engine import MujocoEngine

    extra = {"Model": "reach", "Body": "../experiments/bodies/shadow_hand.yaml", "Worlds": worlds}
    if size is not None:
        extra["Camera"] = {"Width": size, "Height": size, "World": 0}
    engine = MujocoEngine("physics")
    engine.initialize(
        {
            "EngineTimestep": CONTROL_NS / 1e9,
            "ConfigDirectory": str(REPO / "simulation_configs"),
            "EngineExtraConfigs": extra,
        }
    )
    engine.reset(0)
    return engine


def time_steps(engine, steps: int, render: bool, rng) -> float:
    """Seconds per control step (and picture, if ``render``)."""
    import numpy as np

    ctrlrange = engine.get_datapack("actuator_ctrlrange")
    worlds = engine.n_worlds
    if render:
        palm = engine.get_datapack("palm_position")
        engine.set_datapack("markers", np.repeat(palm[:, None], MARKERS, axis=1))
    started = time.perf_counter()
    for _ in range(steps):
        ctrl = rng.uniform(ctrlrange[:, 0], ctrlrange[:, 1], (worlds, ctrlrange.shape[0]))
        engine.set_datapack("ctrl", ctrl)
        engine.step(CONTROL_NS)
        if render:
            engine.get_datapack("camera")
    return (time.perf_counter() - started) / steps


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--steps", type=int, default=100, help="control steps per timing")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    backend = choose_gl_backend()
    print(f"MUJOCO_GL={backend}; {args.steps} control steps per timing, {args.repeats} repeats")
    rng = np.random.default_rng(0)
    for worlds in args.worlds:
        engines = {None: make_engine(worlds, None)}
        engines.update({size: make_engine(worlds, size) for size in args.sizes})
        times: dict[int | None, list[float]] = {key: [] for key in engines}
        for repeat in range(args.repeats + 1):  # the first round warms up
            order = list(engines) if repeat % 2 else list(reversed(engines))
            for key in order:
                seconds = time_steps(engines[key], args.steps, key is not None, rng)
                if repeat:
                    times[key].append(seconds)
        physics = statistics.median(times[None]) * 1e3
        print(f"W={worlds:<3} physics step           {physics:8.3f} ms")
        for size in args.sizes:
            total = statistics.median(times[size]) * 1e3
            picture = total - physics
            print(
                f"W={worlds:<3} step + picture {size}x{size} {total:8.3f} ms   picture "
                f"{picture:7.3f} ms = {picture / physics:5.2f}x the physics step"
            )
        for engine in engines.values():
            engine.shutdown()


if __name__ == "__main__":
    main()
