"""The generic MuJoCo engine: any MJCF runs with no Python written; shipped bodies declare
what their transceivers read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neuroloop.config import load_config
from neuroloop.local import LocalEngine
from neuroloop.plugins.engines.mujoco_engine import MujocoEngine
from neuroloop.recording import DataPackRecorder
from neuroloop.simulation import Simulation

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CONFIGS = sorted((REPO / "simulation_configs").glob("*.json"))

ARM_MJCF = """
<mujoco model="two_link_arm">
  <compiler angle="radian"/>
  <option timestep="0.002"/>
  <default>
    <joint type="hinge" axis="0 0 1" limited="true" damping="0.5"/>
    <muscle ctrllimited="true" ctrlrange="0 1"/>
  </default>
  <worldbody>
    <body name="upper_arm">
      <joint name="shoulder" range="-1.5 1.5"/>
      <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03" mass="1.5"/>
      <body name="forearm" pos="0.3 0 0">
        <joint name="elbow" range="-0.5 2.5"/>
        <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.025" mass="1"/>
        <site name="hand" pos="0.3 0 0"/>
      </body>
    </body>
  </worldbody>
  <tendon>
    <fixed name="shoulder_flexor"><joint joint="shoulder" coef="-0.04"/></fixed>
    <fixed name="shoulder_extensor"><joint joint="shoulder" coef="0.04"/></fixed>
    <fixed name="elbow_flexor"><joint joint="elbow" coef="-0.03"/></fixed>
    <fixed name="elbow_extensor"><joint joint="elbow" coef="0.03"/></fixed>
    <fixed name="biarticular_flexor">
      <joint joint="shoulder" coef="-0.02"/><joint joint="elbow" coef="-0.02"/>
    </fixed>
    <fixed name="biarticular_extensor">
      <joint joint="shoulder" coef="0.02"/><joint joint="elbow" coef="0.02"/>
    </fixed>
  </tendon>
  <actuator>
    <muscle name="shoulder_flexor" tendon="shoulder_flexor" lengthrange="-0.06 0.06"/>
    <muscle name="shoulder_extensor" tendon="shoulder_extensor" lengthrange="-0.06 0.06"/>
    <muscle name="elbow_flexor" tendon="elbow_flexor" lengthrange="-0.075 0.015"/>
    <muscle name="elbow_extensor" tendon="elbow_extensor" lengthrange="-0.015 0.075"/>
    <muscle name="biarticular_flexor" tendon="biarticular_flexor" lengthrange="-0.08 0.04"/>
    <muscle name="biarticular_extensor" tendon="biarticular_extensor" lengthrange="-0.04 0.08"/>
  </actuator>
</mujoco>
"""
"""A planar two-link arm (shoulder, elbow) with six MuJoCo muscles on fixed tendons: a
flexor and an extensor per joint and a biarticular pair. A flexor tendon shortens as its
joint angle grows, so a flexor's pull (negative force) turns the joints positive."""

FLEXOR_EXCITATION = 0.6
"""Constant excitation of the shoulder and elbow flexors."""

TONE = 0.05
"""Constant excitation of the other four muscles."""

EXCITATION = np.array([FLEXOR_EXCITATION, TONE, FLEXOR_EXCITATION, TONE, TONE, TONE])
"""ctrl in actuator order."""

ACTIVATION_TOLERANCE = 1e-3
"""After 1 s, MuJoCo's first-order activation (time constants 10 ms up, 40 ms down) has
reached the excitation to within this."""

CONTROL_DT_S = 0.02
SIMULATED_S = 1.0


def arm_config(tmp_path: Path) -> Path:
    """A config for the arm: no Body file, one inline Publish group, no functions."""
    (tmp_path / "arm.xml").write_text(ARM_MJCF)
    config = {
        "SimulationName": "muscle_arm",
        "SimulationTimeout": SIMULATED_S,
        "SimulationTimestep": CONTROL_DT_S,
        "EngineConfigs": [
            {
                "EngineName": "physics",
                "EngineType": "mujoco",
                "EngineTimestep": CONTROL_DT_S,
                "EngineExtraConfigs": {
                    "Model": "arm.xml",
                    "Worlds": 2,
                    "JointNoise": 0.0,
                    "Publish": {"hand_position": {"sites": "hand"}},
                },
            }
        ],
    }
    path = tmp_path / "muscle_arm.json"
    path.write_text(json.dumps(config))
    return path


def test_a_muscle_arm_runs_with_no_python_written(tmp_path: Path) -> None:
    recording = tmp_path / "arm.npz"
    with DataPackRecorder(recording) as recorder:
        sim = Simulation.from_config(arm_config(tmp_path), recorder=recorder, local=True, seed=0)
        with sim:
            sim.loop.request("physics", ["act", "qpos", "hand_position", "time"])
            sim.set_datapack("ctrl", "physics", np.tile(EXCITATION, (2, 1)))
            sim.run_until_timeout()
            link = sim.clients["physics"]
            assert isinstance(link, LocalEngine)
            engine = link.host.engine
            assert isinstance(engine, MujocoEngine)
            np.testing.assert_array_equal(engine.warning_counts(), 0)  # no MuJoCo warnings
    with np.load(recording) as archive:
        act = archive["from_engine/physics/act"]
        qpos = archive["from_engine/physics/qpos"]
        hand = archive["from_engine/physics/hand_position"]
        time = archive["from_engine/physics/time"]
    steps = round(SIMULATED_S / CONTROL_DT_S)  # recorded after every control step
    assert act.shape == (steps, 2, 6) and qpos.shape == (steps, 2, 2)
    np.testing.assert_allclose(time[-1], SIMULATED_S)
    # Activations (at rest, 0, before the first step) rise monotonically toward the
    # constant excitation.
    assert np.all((act[0] > 0.0) & (act[0] < EXCITATION))
    assert np.all(np.diff(act, axis=0) >= 0.0)
    np.testing.assert_allclose(act[-1], np.tile(EXCITATION, (2, 1)), atol=ACTIVATION_TOLERANCE)
    # The active flexors turn both joints positive (from 0), so the hand, 0.6 m out along
    # x at rest, swings toward +y and in toward the shoulder.
    assert np.all(qpos[-1] > 0.1)
    assert np.all(hand[-1, :, 1] > 0.1) and np.all(hand[-1, :, 0] < 0.6)
    # Identical worlds with no noise stay identical.
    np.testing.assert_array_equal(qpos[:, 0], qpos[:, 1])


def test_a_missing_declared_element_names_the_group(tmp_path: Path) -> None:
    (tmp_path / "arm.xml").write_text(ARM_MJCF)
    engine = MujocoEngine("physics")
    config = {
        "EngineTimestep": CONTROL_DT_S,
        "WorldFileName": str(tmp_path / "arm.xml"),
        "EngineExtraConfigs": {"Publish": {"wrist": {"sites": ["hand", "wrist"]}}},
    }
    with pytest.raises(ValueError, match=r"\[physics\] initialize: Publish\.wrist\.sites: .*"):
        engine.initialize(config)
    bad = {**config, "EngineExtraConfigs": {"Worlds": 0}}
    with pytest.raises(
        ValueError,
        match=r"^\[physics\] initialize: EngineExtraConfigs\.Worlds: expected an integer >= 1",
    ):
        engine.initialize(bad)


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=[p.name for p in SHIPPED_CONFIGS])
def test_shipped_physics_engines_publish_what_their_functions_read(path: Path) -> None:
    config = load_config(path)
    functions = Simulation(config)._load_functions()
    for section in config.engines:
        if section.type != "mujoco":
            continue
        # Rendering needs the OpenGL backend the config asks its engine process for
        # (EngineEnvParams MUJOCO_GL), which this process cannot switch to: the camera is
        # left out here, and its `camera` datapack is what a Camera adds (tests/test_vision.py
        # renders the vision configs in engine processes).
        extra = dict(section.section["EngineExtraConfigs"])
        camera = extra.pop("Camera", None)
        settings = {**section.section, "EngineExtraConfigs": extra}
        engine = MujocoEngine(section.name)
        engine.initialize(settings)
        engine.shutdown()
        published = {*engine.datapack_names, *(() if camera is None else ("camera",))}
        read = {*functions.requested(section.name), *functions.requested(section.name, True)}
        assert read <= published, sorted(read - published)
        # Constants travel once: control ranges are not fetched with every step.
        assert "actuator_ctrlrange" not in functions.requested(section.name)
