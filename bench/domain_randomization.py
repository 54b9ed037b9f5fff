"""Cost of domain randomisation on the block loop: world-steps/s with and without, side by side.

Run from the repository root::

    .venv/bin/python bench/domain_randomization.py [--worlds 16] [--steps 200] [--repeats 5]
        [--episode-steps 50]

Two MuJoCo engines run the block model of
``simulation_configs/shadow_hand_manipulate_block_dr.json`` (touch sensors, Shadow Hand body,
control step 0.04 s) in this process, one with that config's
``DomainRandomization`` and one without it (its copy with the key removed). Each control
step does what gathering does: random controls in, one step of all W worlds, the block
task's observations out (joint positions and velocities, touch, object pose and velocities,
fingertips), and a restart (``reset_worlds``) of every world whose episode of
``--episode-steps`` steps ends (staggered, so W / episode-steps worlds restart per step,
each drawing new parameters). Repeats alternate off and on; medians are printed, with the
ratio on / off.

Also printed: one ``reset(seed)`` of all worlds (each draws and applies its randomisation,
``mj_setConst`` included when masses change) with and without, and the memory and time of
one world's model copy (resident memory grown by 64 copies).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from neuroloop.launcher import SINGLE_THREAD_ENV

os.environ.update(SINGLE_THREAD_ENV)

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "simulation_configs" / "shadow_hand_manipulate_block_dr.json"
OBSERVATIONS = (
    "joint_positions",
    "joint_velocities",
    "touch",
    "object_pose",
    "object_velocities",
    "fingertip_positions",
)
"""What the block task's functions read every step."""
COPIES = 64
"""Model copies made to measure one copy's memory."""
STATUS = "/proc/self/status"


def physics_section() -> dict[str, Any]:
    config = json.loads(CONFIG.read_text(encoding="utf-8"))
    section = next(e for e in config["EngineConfigs"] if e["EngineName"] == "physics")
    return {**section, "ConfigDirectory": str(CONFIG.parent)}


def make_engine(section: dict[str, Any], worlds: int, randomize: bool):
    from neuroloop.plugins.engines.mujoco_engine import MujocoEngine

    extra = dict(section["EngineExtraConfigs"], Worlds=worlds)
    if not randomize:
        extra.pop("DomainRandomization")
    engine = MujocoEngine("physics")
    engine.initialize({**section, "EngineExtraConfigs": extra})
    engine.reset(0)
    return engine


def run(engine, steps: int, episode_steps: int, rng: np.random.Generator) -> float:
    """World-steps per second of ``steps`` control steps of the gathering loop."""
    worlds = engine.n_worlds
    ranges = engine.get_datapack("actuator_ctrlrange")
    timestep_ns = engine.substeps * round(float(engine.world_model(0).opt.timestep) * 1e9)
    started = time.perf_counter()
    for step in range(steps):
        engine.set_datapack("ctrl", rng.uniform(ranges[:, 0], ranges[:, 1], (worlds, len(ranges))))
        engine.step(timestep_ns)
        for name in OBSERVATIONS:
            engine.get_datapack(name)
        ending = (np.arange(worlds) + step) % episode_steps == 0
        engine.set_datapack("reset_worlds", ending)
    return worlds * steps / (time.perf_counter() - started)


def resident_bytes() -> int:
    for line in Path(STATUS).read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in {STATUS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worlds", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--episode-steps", type=int, default=50)
    args = parser.parse_args()

    section = physics_section()
    engines = {flag: make_engine(section, args.worlds, flag) for flag in (False, True)}
    rates: dict[bool, list[float]] = {False: [], True: []}
    resets: dict[bool, list[float]] = {False: [], True: []}
    rng = np.random.default_rng(0)
    for repeat in range(args.repeats):
        for flag, engine in engines.items():
            engine.reset(repeat)
            rates[flag].append(run(engine, args.steps, args.episode_steps, rng))
            started = time.perf_counter()
            engine.reset(repeat + 1)
            resets[flag].append((time.perf_counter() - started) / args.worlds)

    model = engines[True].world_model(0)
    before = resident_bytes()
    started = time.perf_counter()
    copies = [copy.copy(model) for _ in range(COPIES)]
    copy_s = (time.perf_counter() - started) / len(copies)
    per_copy = (resident_bytes() - before) / len(copies)

    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    print(
        f"block loop, {args.worlds} worlds, {args.steps} steps x {args.repeats} repeats, "
        f"episodes of {args.episode_steps} steps (medians)"
    )
    print(f"  world-steps/s without randomisation: {off:9.1f}")
    print(f"  world-steps/s with randomisation:    {on:9.1f}")
    print(f"  ratio with / without:                {on / off:9.3f}")
    reset_off, reset_on = statistics.median(resets[False]), statistics.median(resets[True])
    print(f"  reset per world: {reset_off * 1e3:.3f} ms without, {reset_on * 1e3:.3f} ms with")
    print(
        f"  one world's model copy (made once, at initialize): {per_copy / 2**20:.2f} MiB, "
        f"{copy_s * 1e3:.1f} ms"
    )
    for engine in engines.values():
        engine.shutdown()


if __name__ == "__main__":
    main()
