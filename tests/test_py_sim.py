"""NRP-core's py_sim engine: small NRP-style experiments on MuJoCo, Gymnasium and OpenSim,
each checked against the same model stepped directly or against its closed-form motion."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gymnasium
import pytest

from neuroloop.config.model import load_config
from neuroloop.errors import ConfigError
from neuroloop.simulation import Simulation
from tests.processes import FIXTURES, engine_processes

EXAMPLES = FIXTURES / "nrp_examples"
MUJOCO_DT_S = 0.002
BLOCK_MASS_KG = 2.0
FORCE_N = 3.0
TIP_OFFSET_M = 0.05
ARM_INERTIA = 1.0
ARM_CONTROL = 2.0


def run(config: Path, names: dict[str, list[str]]) -> dict[str, Any]:
    """Run ``config`` to its timeout; return the named datapacks as ``{engine/name: value}``."""
    with Simulation.from_config(config, echo_engine_output=False) as sim:
        sim.run_until_timeout()
        values = {f"{e}/{n}": sim.datapack(n, e) for e, ns in names.items() for n in ns}
    assert engine_processes(os.getpid()) == []
    return values


def test_a_py_sim_mujoco_experiment_moves_the_block_as_newton_says() -> None:
    values = run(EXAMPLES / "py_sim_mujoco" / "simulation_config.json", {"slider": ["positions"]})
    positions = values["slider/positions"]
    assert positions["joints"] == ["rail"]
    # MuJoCo's Euler integrator is semi-implicit: v += a dt, then x += v dt. After k pushed
    # physics steps from rest, x = a dt^2 k (k + 1) / 2 with a = F / m = 1.5 m/s^2.
    k = positions["pushed_ns"] // round(MUJOCO_DT_S * 1e9)
    assert k >= 10
    expected_x = FORCE_N / BLOCK_MASS_KG * MUJOCO_DT_S**2 * k * (k + 1) / 2
    assert positions["qpos"] == [pytest.approx(expected_x, rel=1e-9)]
    # The tip site sits 5 cm ahead of the block's centre, read after the step.
    assert positions["tip"] == pytest.approx([TIP_OFFSET_M + expected_x, 0.0, 0.0], abs=1e-12)
    assert positions["sim_time"] == pytest.approx(positions["pushed_ns"] / 1e9, abs=1e-6)


def test_a_py_sim_gym_experiment_matches_the_environment_stepped_directly() -> None:
    config = EXAMPLES / "py_sim_gym" / "simulation_config.json"
    history = run(config, {"car": ["history"]})["car/history"]
    steps = history["steps"]
    assert len(steps) >= 5
    # The transceiver function pushed the car the way it moved: right from rest, then on.
    assert {step["action"] for step in steps} <= {0, 2} and steps[0]["action"] in (1, 2)
    env = gymnasium.make("MountainCar-v0")
    observation, _ = env.reset(
        seed=json.loads(config.read_text())["EngineConfigs"][0]["EngineExtraConfigs"]["Seed"]
    )
    assert history["initial"] == pytest.approx(observation.tolist())
    for step in steps:
        observation, reward, terminated, _, _ = env.step(step["action"])
        assert step["observation"] == pytest.approx(observation.tolist())
        assert (step["reward"], step["done"]) == (reward, terminated)
    env.close()


def test_a_py_sim_opensim_experiment_turns_the_arm_as_newton_says(tmp_path: Path) -> None:
    opensim = pytest.importorskip("opensim", reason="the opensim extra is not installed")
    model_file = tmp_path / "arm.osim"
    write_arm_model(opensim, model_file)
    source = EXAMPLES / "py_sim_opensim"
    config = tmp_path / "simulation_config.json"
    config.write_text(
        json.dumps(
            {
                "SimulationTimeout": 0.2,
                "SimulationTimestep": 0.01,
                "EngineConfigs": [
                    {
                        "EngineType": "py_sim",
                        "EngineName": "arm",
                        "PythonFileName": str(source / "arm.py"),
                        "WorldFileName": "arm.osim",
                        "Simulator": "Opensim",
                        "EngineExtraConfigs": {"Integrator accuracy": 1e-7},
                    }
                ],
                "DataPackProcessingFunctions": [
                    {"Name": "torque", "FileName": str(source / "torque.py")}
                ],
            }
        )
    )
    joints = run(config, {"arm": ["joints"]})["arm/joints"]
    assert joints["forces"] == ["torque"]
    # A torque u on a unit inertia about the pin, from rest, no gravity: theta = u t^2 / 2.
    driven_s = joints["driven_ns"] / 1e9
    assert driven_s >= 0.15
    assert joints["shoulder"] == pytest.approx(
        ARM_CONTROL / ARM_INERTIA * driven_s**2 / 2, rel=1e-4
    )
    assert joints["speed"] == pytest.approx(ARM_CONTROL / ARM_INERTIA * driven_s, rel=1e-4)


def test_a_py_sim_bullet_experiment_matches_pybullet_stepped_directly() -> None:
    bullet = pytest.importorskip("pybullet", reason="the bullet extra is not installed")
    data = pytest.importorskip("pybullet_data", reason="the bullet extra is not installed")
    source = EXAMPLES / "py_sim_bullet"
    state = run(source / "simulation_config.json", {"lift": ["state"]})["lift/state"]
    assert state["joints"] == ["slide"] and len(state["commands"]) >= 5
    # The same world stepped here, with the motor commands the script sent, step by step.
    client = bullet.connect(bullet.DIRECT)
    try:
        bullet.setGravity(0, 0, -9.8, physicsClientId=client)
        bullet.setAdditionalSearchPath(data.getDataPath(), physicsClientId=client)
        bullet.loadURDF("plane.urdf", physicsClientId=client)
        lift = bullet.loadURDF(str(source / "lift.urdf"), physicsClientId=client)
        for velocity in state["commands"]:
            bullet.setJointMotorControl2(
                lift, 0, bullet.VELOCITY_CONTROL, targetPosition=0.0, targetVelocity=velocity,
                force=100.0, positionGain=1.0, velocityGain=1.0, maxVelocity=0.0,
                physicsClientId=client,
            )  # fmt: skip
            bullet.setTimeStep(0.01, physicsClientId=client)
            bullet.stepSimulation(physicsClientId=client)
        expected = bullet.getJointState(lift, 0, physicsClientId=client)[0]
    finally:
        bullet.disconnect(client)
    assert state["slide"] == expected
    # And the motor did its job: about 0.5 m/s for the run's 0.1 s.
    assert state["slide"] == pytest.approx(0.5 * state["time"], rel=0.1)


def write_arm_model(opensim: Any, path: Path) -> None:
    """One rigid arm on a pin joint (unit inertia about it), turned by a coordinate actuator."""
    opensim.Logger.removeFileSink()  # no opensim.log in the working directory
    model = opensim.Model()
    model.setName("arm")
    model.setGravity(opensim.Vec3(0, 0, 0))
    inertia = opensim.Inertia(ARM_INERTIA, ARM_INERTIA, ARM_INERTIA)
    body = opensim.Body("upper_arm", 1.0, opensim.Vec3(0, 0, 0), inertia)
    origin = opensim.Vec3(0, 0, 0)
    joint = opensim.PinJoint("shoulder", model.getGround(), origin, origin, body, origin, origin)
    joint.updCoordinate().setName("shoulder_angle")
    model.addBody(body)
    model.addJoint(joint)
    actuator = opensim.CoordinateActuator("shoulder_angle")
    actuator.setName("torque")
    actuator.setOptimalForce(1.0)
    model.addForce(actuator)
    model.finalizeConnections()
    model.printToXML(str(path))


def test_an_openai_world_is_an_environment_id_and_other_worlds_are_files(tmp_path: Path) -> None:
    config = load_config(EXAMPLES / "py_sim_gym" / "simulation_config.json")
    assert config.engines[0].section["WorldFileName"] == "MountainCar-v0"
    source = EXAMPLES / "py_sim_mujoco"
    document = json.loads((source / "simulation_config.json").read_text())
    document["EngineConfigs"][0]["PythonFileName"] = str(source / "slider.py")
    document["EngineConfigs"][0]["WorldFileName"] = "missing.xml"
    (tmp_path / "simulation_config.json").write_text(json.dumps(document))
    with pytest.raises(ConfigError, match=r"WorldFileName: expected an existing file"):
        load_config(tmp_path / "simulation_config.json")
    document["EngineConfigs"][0]["Simulator"] = "Gazebo"
    (tmp_path / "simulation_config.json").write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="Simulator"):
        load_config(tmp_path / "simulation_config.json")


def test_sim_manager_calls_with_bad_arguments_say_what_was_expected() -> None:
    from neuroloop.plugins.engines.py_sim_engine import SimulatorManager

    world = EXAMPLES / "py_sim_mujoco" / "slider.xml"
    mujoco_sim = SimulatorManager(
        {"Simulator": "Mujoco", "WorldFileName": str(world), "EngineExtraConfigs": {}}
    )
    with pytest.raises(
        ValueError, match=r"expected 1 controls, one per actuator\. Received: shape \(2,\)"
    ):
        mujoco_sim.run_step([1.0, 2.0], 2_000_000)
    with pytest.raises(ValueError, match="whole multiple of the physics timestep 2000000 ns"):
        mujoco_sim.run_step([1.0], 3_000_000)
    with pytest.raises(ValueError, match="no site named 'nose'"):
        mujoco_sim.get_model_property("nose", "site_xpos")
    assert mujoco_sim.get_model_property("block", "body_mass") == pytest.approx(BLOCK_MASS_KG)
    gym_sim = SimulatorManager(
        {"Simulator": "OpenAI", "WorldFileName": "MountainCar-v0", "EngineExtraConfigs": {}}
    )
    with pytest.raises(ValueError, match=r"expected an action in Discrete\(3\)\. Received: 5"):
        gym_sim.run_step(5, 10_000_000)
    with pytest.raises(ValueError, match=r"expected an action in Discrete\(3\)\. Received: None"):
        gym_sim.run_step(None, 10_000_000)
    with pytest.raises(ValueError, match="expected 'Property'"):
        gym_sim.get_model_properties("Joint")
    gym_sim.shutdown()
    with pytest.raises(ValueError, match="Gymnasium environment id"):
        SimulatorManager({"Simulator": "OpenAI", "WorldFileName": "NoSuchEnv-v9"})


def test_nrp_core_py_sim_offers_the_script_bases_and_the_manager() -> None:
    from neuroloop.plugins.engines import py_sim_engine
    from neuroloop.script_engine import EngineScript, GrpcEngineScript

    namespace: dict[str, Any] = {}
    exec("from nrp_core.engines.py_sim import *", namespace)
    assert namespace["PySimEngineScript"] is py_sim_engine.PySimEngineScript
    assert issubclass(namespace["PySimEngineScript"], EngineScript)
    assert issubclass(namespace["PySimGrpcEngineScript"], GrpcEngineScript)
    assert namespace["SimulatorManager"] is py_sim_engine.SimulatorManager


def test_bullet_actions_take_forces_torques_and_reset_to_the_start() -> None:
    pytest.importorskip("pybullet", reason="the bullet extra is not installed")
    from neuroloop.plugins.engines.py_sim_engine import SimulatorManager

    world = EXAMPLES / "py_sim_bullet" / "lift.urdf"
    sim = SimulatorManager({"Simulator": "Bullet", "WorldFileName": str(world)})
    try:
        start = sim.get_model_property("slide", "Joint")[0]
        free = {"Joint": [{"controlMode": "VELOCITY_CONTROL", "force": 0.0}]}
        push = {**free, "Force": [{"forceObj": [0, 0, 30.0]}], "Torque": [{"torqueObj": [0, 0, 1]}]}
        for _ in range(10):
            sim.run_step(push, 10_000_000)
        # 30 N up on 1 kg against 9.8 m/s^2 down: the carriage rises.
        assert sim.get_model_property("slide", "Joint")[0] > start + 0.005
        assert sim.get_sim_time() == pytest.approx(0.1)
        sim.reset()
        assert sim.get_model_property("slide", "Joint")[0] == start
        assert sim.get_sim_time() == 0.0
        with pytest.raises(ValueError, match="expected an action dict"):
            sim.run_step([1.0], 10_000_000)
        with pytest.raises(ValueError, match="no Link named 'chassis'"):
            sim.get_model_property("chassis", "Link")
    finally:
        sim.shutdown()
