"""The arm26 body: six MuJoCo muscles on a planar two-joint arm (experiments/bodies/arm26.xml)
published through its body description, stepped by the generic MuJoCo engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neuroloop.plugins.engines.mujoco_engine import MujocoEngine

BODIES = Path(__file__).resolve().parents[1] / "experiments" / "bodies"

CONTROL_DT_S = 0.01
CONTROL_NS = round(CONTROL_DT_S * 1e9)
PHYSICS_DT_S = 0.002
"""The MJCF's opt.timestep."""

MUSCLES = ("pectoralis", "deltoid", "brachioradialis", "tricepslat", "biceps", "tricepslong")
"""Actuator order of the model (and of ctrl)."""

TORQUE_SIGNS = {
    "pectoralis": (1, 0),
    "deltoid": (-1, 0),
    "brachioradialis": (0, 1),
    "tricepslat": (0, -1),
    "biceps": (1, 1),
    "tricepslong": (-1, -1),
}
"""Sign of the (shoulder, elbow) torque each muscle makes when it pulls; 0: it spans no such
joint. Flexors turn the joints toward larger angles."""

TAU_RISE_S = 0.015
TAU_DECAY_S = 0.05
"""The activation time constants the MJCF configures (arm26's, MotorNet's defaults)."""

POSTURE = {"shoulder": np.deg2rad(45.0), "elbow": np.deg2rad(90.0)}
"""Mid-range posture the tests start from."""


def arm_engine(worlds: int = 1, publish: dict[str, Any] | None = None) -> MujocoEngine:
    engine = MujocoEngine("arm")
    engine.initialize(
        {
            "EngineTimestep": CONTROL_DT_S,
            "EngineExtraConfigs": {
                "Model": str(BODIES / "arm26.xml"),
                "Body": str(BODIES / "arm26.yaml"),
                "Worlds": worlds,
                "JointNoise": 0.0,
                "InitialJointPositions": POSTURE,
                "Publish": publish or {},
            },
        }
    )
    engine.reset(0)
    return engine


def test_the_arm_publishes_its_state_vector() -> None:
    engine = arm_engine(worlds=3)
    shapes = {
        "joint_angles": (3, 2),
        "joint_velocities": (3, 2),
        "hand_position": (3, 3),
        "hand_velocity": (3, 3),
        "muscle_lengths": (3, 6),
        "muscle_velocities": (3, 6),
        "muscle_activations": (3, 6),
        "muscle_forces": (3, 6),
    }
    for name, shape in shapes.items():
        assert np.shape(engine.get_datapack(name)) == shape, name
    # Shoulder at the origin, upper arm 0.309 m and forearm 0.333 m (arm26's segments).
    shoulder, elbow = POSTURE["shoulder"], POSTURE["elbow"]
    expected = [
        0.309 * np.cos(shoulder) + 0.333 * np.cos(shoulder + elbow),
        0.309 * np.sin(shoulder) + 0.333 * np.sin(shoulder + elbow),
        0.0,
    ]
    np.testing.assert_allclose(engine.get_datapack("hand_position")[0], expected, atol=1e-9)
    engine.set_datapack("ctrl", np.full((3, 6), 0.3))
    for _ in range(20):
        engine.step(CONTROL_NS)
    np.testing.assert_array_equal(engine.warning_counts(), 0)
    # The hand velocity sensor agrees with the change of the hand position.
    before = engine.get_datapack("hand_position")
    velocity = engine.get_datapack("hand_velocity")
    engine.step(CONTROL_NS)
    moved = (engine.get_datapack("hand_position") - before) / CONTROL_DT_S
    np.testing.assert_allclose(moved, velocity, atol=0.05 * np.abs(velocity).max() + 1e-4)


@pytest.mark.parametrize("muscle", MUSCLES)
def test_each_muscle_makes_torque_in_the_expected_direction(muscle: str) -> None:
    # World 0 excites the muscle, world 1 rests; the difference of their actuator torques
    # after one control step (the posture has barely changed) is the muscle's own torque.
    engine = arm_engine(
        worlds=2, publish={"torques": {"joints": ["shoulder", "elbow"], "field": "qfrc_actuator"}}
    )
    ctrl = np.zeros((2, 6))
    ctrl[0, MUSCLES.index(muscle)] = 1.0
    engine.set_datapack("ctrl", ctrl)
    engine.step(CONTROL_NS)
    torques = engine.get_datapack("torques")
    own = torques[0] - torques[1]
    assert engine.get_datapack("muscle_forces")[0, MUSCLES.index(muscle)] < -50.0  # pulls
    for joint, sign in enumerate(TORQUE_SIGNS[muscle]):
        if sign:
            assert np.sign(own[joint]) == sign and abs(own[joint]) > 1.0, (muscle, own)
        else:
            assert abs(own[joint]) < 0.01 * np.abs(own).max(), (muscle, own)


def test_activations_follow_excitations_with_the_configured_time_constants() -> None:
    engine = arm_engine()
    # A step of excitation 0 -> 1 in one muscle, 1 -> 0 in another (after holding it at 1).
    engine.set_datapack("ctrl", np.array([[0.0, 1.0, 0.0, 0.0, 0.0, 0.0]]))
    for _ in range(60):
        engine.step(CONTROL_NS)
    held = float(engine.get_datapack("muscle_activations")[0, 1])
    assert held > 0.99
    engine.set_datapack("ctrl", np.array([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]))
    rise, decay = [], []
    for _ in range(10):
        engine.step(CONTROL_NS)
        act = engine.get_datapack("muscle_activations")[0]
        rise.append(act[0])
        decay.append(act[1])

    # MuJoCo's activation: da/dt = (u - a) / tau(u, a), tau scaled by activation as in
    # Millard et al. (2013): rise tau_act * (0.5 + 1.5 a), decay tau_deact / (0.5 + 1.5 a).
    # MuJoCo integrates it with an Euler step of the model's timestep; so does the truth.
    def simulate(a: float, u: float) -> list[float]:
        out, dt = [], PHYSICS_DT_S
        for _ in range(10):
            for _ in range(round(CONTROL_DT_S / dt)):
                scale = 0.5 + 1.5 * a
                tau = TAU_RISE_S * scale if u > a else TAU_DECAY_S / scale
                a += dt * (u - a) / tau
            out.append(a)
        return out

    np.testing.assert_allclose(rise, simulate(0.0, 1.0), atol=1e-9)
    np.testing.assert_allclose(decay, simulate(held, 0.0), atol=1e-9)
    # Rising is faster than decaying: the configured constants differ by more than 3x.
    assert rise[1] > 1.0 - decay[1]
