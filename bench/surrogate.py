"""ArmNet and the arm26 body: training-step cost, collection rate, learned vs physics step.

Run from the repository root::

    .venv/bin/python bench/surrogate.py --repeats 5

Three measurements, each printed with the figure it is read against:

- ArmNet training step: one ``train_on_batch`` (forward, BPTT, Adam) of batch 128 x 200
  steps, 6 inputs, the shipped 32-variable state, at GRU 256 and 1,024 units; median
  milliseconds over ``--repeats`` after a warm-up step. Beside it MotorNet's GRU policy
  step on its Arm26 effector when ``motornet`` imports (timed here, same batch and length),
  otherwise the 185-347 ms MotorNet reports for batch 128 x 200 steps, GRU 256, on an M4
  Max CPU.
- Collection: ``neuroloop surrogate collect``'s world-steps per second (control steps of
  10 ms times worlds) on the shipped config with ``--sequences`` sequences, against the
  ceiling of bare ``mujoco.mj_step`` on the same model in this process (one world, the
  five physics steps of a control step, no engine, no RPC).
- Engine step at 64 worlds: ``SurrogateEngine.step`` (the shipped ArmNet) against
  ``MujocoEngine.step`` (arm26.xml), both in this process with the same excitations set,
  median microseconds per 10 ms step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import mujoco
import numpy as np

from neuroloop.plugins.engines.mujoco_engine import MujocoEngine
from neuroloop.plugins.engines.surrogate_engine import SurrogateEngine
from neuroloop.surrogate.armnet import ArmNet, Normalizer
from neuroloop.surrogate.config import load_surrogate_config
from neuroloop.surrogate.data import collect

REPO = Path(__file__).resolve().parents[1]
SURROGATE = REPO / "experiments" / "surrogates" / "arm26.yaml"
MODEL = REPO / "experiments" / "bodies" / "arm26.xml"
SHIPPED_ARMNET = REPO / "experiments" / "surrogates" / "arm26" / "armnet"
BATCH, STEPS, INPUTS, STATE = 128, 200, 6, 32
"""The training-step shape (the issue's batch 128 x 200 steps; the arm's 6 excitations)."""
UNITS = (256, 1024)
MOTORNET_REPORTED_MS = (185.0, 347.0)
"""MotorNet's reported GRU-256 policy step, batch 128 x 200 steps, M4 Max CPU."""
WORLDS = 64
CONTROL_NS = 10_000_000


def median_time(run: Callable[[], Any], repeats: int) -> float:
    """Median seconds of ``run()`` over ``repeats`` calls after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def armnet_step_ms(units: int, repeats: int) -> float:
    """Milliseconds of one ArmNet training step of batch 128 x 200 steps."""
    keras.utils.set_random_seed(0)
    net = ArmNet(
        INPUTS,
        [f"s{i}" for i in range(STATE)],
        units,
        1e-4,
        Normalizer(np.zeros(1), np.ones(1)),
        0.01,
    )
    net.model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=10.0), loss="mse")
    rng = np.random.default_rng(0)
    initial = rng.normal(size=(BATCH, STATE)).astype(np.float32)
    inputs = rng.uniform(size=(BATCH, STEPS, INPUTS)).astype(np.float32)
    target = rng.normal(size=(BATCH, STEPS, STATE)).astype(np.float32)
    return 1e3 * median_time(lambda: net.model.train_on_batch([initial, inputs], target), repeats)


def motornet_step_ms(repeats: int) -> float | None:
    """MotorNet's GRU-256 policy on its Arm26 effector, one training step of batch 128 x 200
    steps (forward through the effector, BPTT, Adam) in ms; ``None`` without motornet."""
    try:
        import motornet as mn
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    effector = mn.effector.RigidTendonArm26(muscle=mn.muscle.RigidTendonHillMuscle())
    env = mn.environment.RandomTargetReach(effector=effector, max_ep_duration=STEPS * effector.dt)
    policy = torch.nn.GRU(env.observation_space.shape[0], 256, batch_first=True)
    readout = torch.nn.Linear(256, env.n_muscles)
    optimizer = torch.optim.Adam([*policy.parameters(), *readout.parameters()], lr=1e-3)

    def step() -> None:
        obs, info = env.reset(options={"batch_size": BATCH})
        hidden = torch.zeros(1, BATCH, 256)
        positions = []
        for _ in range(STEPS):
            out, hidden = policy(obs[:, None, :], hidden)
            action = torch.sigmoid(readout(out[:, 0]))
            obs, _, _, _, info = env.step(action=action)
            positions.append(info["states"]["fingertip"])
        loss = torch.mean((torch.stack(positions, 1) - info["goal"][:, None]) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return 1e3 * median_time(step, repeats)


def collection_rate(sequences: int) -> tuple[float, float]:
    """``(world-steps/s of neuroloop surrogate collect, mj_step ceiling in control steps/s)``."""
    config = load_surrogate_config(SURROGATE)
    start = time.perf_counter()
    dataset = collect(config, sequences)
    elapsed = time.perf_counter() - start
    rate = dataset.inputs.shape[0] * dataset.inputs.shape[1] / elapsed
    model = mujoco.MjModel.from_xml_path(str(MODEL))
    data = mujoco.MjData(model)
    substeps = round(CONTROL_NS / 1e9 / model.opt.timestep)
    rng = np.random.default_rng(0)
    controls = rng.uniform(size=(2000, model.nu))

    def bare() -> None:
        for ctrl in controls:
            data.ctrl[:] = ctrl
            mujoco.mj_step(model, data, nstep=substeps)

    ceiling = len(controls) / median_time(bare, 3)
    return rate, ceiling


def engine_step_us(repeats: int) -> tuple[float, float]:
    """``(learned-body, physics)`` microseconds per 10 ms step at 64 worlds."""
    learned = SurrogateEngine("physics")
    learned.initialize(
        {
            "EngineTimestep": 0.01,
            "EngineExtraConfigs": {"ArmNet": str(SHIPPED_ARMNET), "Worlds": WORLDS},
        }
    )
    physics = MujocoEngine("physics")
    physics.initialize(
        {
            "EngineTimestep": 0.01,
            "ConfigDirectory": str(REPO / "simulation_configs"),
            "EngineExtraConfigs": {
                "Model": "../experiments/bodies/arm26.xml",
                "Body": "../experiments/bodies/arm26.yaml",
                "Worlds": WORLDS,
            },
        }
    )
    ctrl = np.random.default_rng(0).uniform(size=(WORLDS, 6))
    timings = []
    for engine in (learned, physics):
        engine.set_datapack("ctrl", ctrl)

        def run(engine: Any = engine) -> None:
            for _ in range(50):
                engine.step(CONTROL_NS)

        timings.append(1e6 * median_time(run, repeats) / 50)
        engine.shutdown()
    return timings[0], timings[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sequences", type=int, default=256, help="collected sequences")
    args = parser.parse_args()

    print(f"ArmNet training step, batch {BATCH} x {STEPS} steps (median of {args.repeats}):")
    for units in UNITS:
        print(f"  GRU {units:>5}: {armnet_step_ms(units, args.repeats):8.1f} ms")
    motornet = motornet_step_ms(args.repeats)
    if motornet is None:
        low, high = MOTORNET_REPORTED_MS
        print(
            f"  MotorNet GRU 256 (reported, M4 Max CPU; motornet not installed): "
            f"{low:.0f}-{high:.0f} ms"
        )
    else:
        print(f"  MotorNet GRU 256 policy on Arm26 (measured here): {motornet:8.1f} ms")

    rate, ceiling = collection_rate(args.sequences)
    print(f"collect, {args.sequences} sequences of 1 s: {rate:,.0f} world-steps/s")
    print(f"  bare mj_step ceiling (one world, 5 physics steps per control step): {ceiling:,.0f}")
    print(f"  ratio collect / ceiling: {rate / ceiling:.2f}")

    learned, physics = engine_step_us(args.repeats)
    print(
        f"engine step at {WORLDS} worlds: learned body {learned:,.0f} us, physics {physics:,.0f} us"
    )
    print(f"  ratio learned / physics: {learned / physics:.2f}")


if __name__ == "__main__":
    main()
