"""The Shadow Hand closed loop: MuJoCo and Keras engines through the orchestrator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from neuroloop.gym import SimulationEnv
from neuroloop.recording import DataPackRecorder
from neuroloop.simulation import Simulation
from tests.processes import engine_processes

REPO = Path(__file__).resolve().parents[1]
REACH = REPO / "simulation_configs" / "shadow_hand_reach.json"
SHORT = ("SimulationTimeout=0.4",)
ONE_WORLD = (
    "EngineConfigs.EngineName:physics.EngineExtraConfigs.Worlds=1",
    "EngineConfigs.EngineName:brain.EngineExtraConfigs.Worlds=1",
)


def record(tmp_path: Path, name: str, **kwargs: object) -> dict[str, np.ndarray]:
    path = tmp_path / f"{name}.npz"
    with DataPackRecorder(path) as recorder:
        sim = Simulation.from_config(
            REACH, SHORT, recorder=recorder, echo_engine_output=False, seed=5, **kwargs
        )
        with sim:
            sim.run_until_timeout()
            assert sim.time_ns == 400_000_000
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files}


def test_seeded_reach_runs_repeat_exactly_and_match_the_in_process_loop(tmp_path: Path) -> None:
    first = record(tmp_path, "first")
    second = record(tmp_path, "second")
    in_process = record(tmp_path, "local", local=True)
    assert first.keys() == second.keys() == in_process.keys()
    assert "from_engine/physics/joint_positions" in first
    assert "to_engine/physics/ctrl" in first and "from_engine/brain/action" in first
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
        np.testing.assert_array_equal(first[key], in_process[key], err_msg=key)
    # The hand moves: the brain's actions reach the actuators.
    positions = first["from_engine/physics/joint_positions"]
    assert np.abs(positions[-1] - positions[0]).max() > 0.01
    ctrl = first["to_engine/physics/ctrl"]
    ctrlrange = first["from_engine/physics/actuator_ctrlrange"][0]
    assert np.all(ctrl >= ctrlrange[:, 0]) and np.all(ctrl <= ctrlrange[:, 1])
    # Constants travel once: the control range comes with the initial datapacks, not with
    # every step's reply.
    assert first["from_engine/physics/actuator_ctrlrange/time_ns"].tolist() == [0]
    assert engine_processes(os.getpid()) == []


def test_the_main_job_brain_reaches() -> None:
    """The README's main job: the committed trained brain, acting on its policy's mode."""
    with Simulation.from_config(
        REACH, ("SimulationTimeout=20.2",), echo_engine_output=False, seed=11
    ) as sim:
        sim.run_until_timeout()
        status = sim.loop.functions.last_status
    assert status["episodes"] == 36  # 4 worlds, nine 50-step episodes each
    assert status["success"] >= 0.85
    assert status["mean_return"] > 0.0  # the success bonus outweighs the distance cost


def test_an_untrained_brain_does_not_reach() -> None:
    untrained = (
        "SimulationTimeout=2.2",
        "EngineConfigs.EngineName:brain.EngineExtraConfigs.Weights=null",
    )
    with Simulation.from_config(REACH, untrained, echo_engine_output=False, seed=11) as sim:
        sim.run_until_timeout()
        status = sim.loop.functions.last_status
    assert status["episodes"] == 4  # 4 worlds, one 50-step episode each
    assert status["success"] == 0.0
    assert status["mean_return"] < 0.0


@pytest.fixture(scope="module")
def reach_env() -> Iterator[SimulationEnv]:
    env = SimulationEnv(REACH, ONE_WORLD)
    yield env
    env.close()


def test_gym_view_passes_gymnasiums_env_checker(reach_env: SimulationEnv) -> None:
    check_env(reach_env, skip_render_check=True)


def test_gym_view_episodes(reach_env: SimulationEnv) -> None:
    observation, _ = reach_env.reset(seed=1)
    assert set(observation) == {"proprioception", "touch", "goal"}
    assert observation["proprioception"].shape == (48,)
    again, _ = reach_env.reset(seed=1)
    for name in observation:
        np.testing.assert_array_equal(observation[name], again[name])
    rewards = []
    for step in range(50):
        observation, reward, terminated, truncated, _ = reach_env.step(
            reach_env.action_space.sample()
        )
        rewards.append(reward)
        assert not terminated
        assert truncated == (step == 49)  # the reach functions' 50-step episodes
    assert all(float(r) < 0 for r in rewards[1:])
    with pytest.raises(ValueError, match="action"):
        reach_env.step(np.full(20, 2.0, dtype=np.float32))


def test_gym_view_needs_one_world() -> None:
    with pytest.raises(ValueError, match="Worlds: expected 1"):
        SimulationEnv(REACH)


SELF_LAUNCHED = sorted(
    path.name
    for path in (REPO / "simulation_configs").glob("*.json")
    if "EmptyLaunchCommand" not in path.read_text()  # those need running services
)


@pytest.mark.parametrize("config", SELF_LAUNCHED)
def test_every_shipped_config_runs(config: str) -> None:
    with Simulation.from_config(
        REPO / "simulation_configs" / config, ("SimulationTimeout=0.2",), echo_engine_output=False
    ) as sim:
        sim.run_until_timeout()
        assert sim.time_ns == 200_000_000
        assert sim.loop.functions.last_status  # every shipped config reports a status
