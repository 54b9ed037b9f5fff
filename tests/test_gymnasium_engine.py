"""The Gymnasium engine, in process and over gRPC, against Gymnasium stepped directly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest

from neuroloop.engine import EngineHost
from neuroloop.errors import EngineError
from neuroloop.plugins.engines.gymnasium_engine import GymnasiumEngine
from neuroloop.simulation import Simulation

PENDULUM = Path(__file__).resolve().parents[1] / "simulation_configs" / "pendulum_pd.json"
MS = 1_000_000
PENDULUM_DT_NS = 50 * MS
PENDULUM_MAX_STEPS = 200
"""Pendulum-v1 truncates its episodes after 200 environment steps."""
UPRIGHT_COS = 0.95


def pendulum(timestep_s: float = 0.05) -> EngineHost:
    host = EngineHost(GymnasiumEngine("env"))
    host.initialize({"EngineTimestep": timestep_s, "EngineExtraConfigs": {"EnvId": "Pendulum-v1"}})
    return host


@pytest.fixture
def host() -> Iterator[EngineHost]:
    engine = pendulum()
    yield engine
    engine.shutdown()


@pytest.fixture
def skipping_host() -> Iterator[EngineHost]:
    """Pendulum-v1 (dt 0.05 s) at an EngineTimestep of 0.1 s: two env steps per engine step."""
    engine = pendulum(0.1)
    yield engine
    engine.shutdown()


def action(torque: float) -> np.ndarray:
    return np.array([torque], dtype=np.float32)


def rollout(host: EngineHost, seed: int, torques: np.ndarray) -> list[np.ndarray]:
    host.reset(seed)
    observations = []
    for torque in torques:
        _, values = host.step([("action", action(torque))], PENDULUM_DT_NS, ["observation"])
        observations.append(values["observation"])
    return observations


def test_seeded_reset_is_deterministic_and_matches_gymnasium(host: EngineHost) -> None:
    torques = np.linspace(-2.0, 2.0, 15)
    first = rollout(host, 7, torques)
    np.testing.assert_array_equal(rollout(host, 7, torques), first)
    assert not np.array_equal(rollout(host, 8, torques)[0], first[0])

    host.reset(7)
    env = gymnasium.make("Pendulum-v1")
    observation, _ = env.reset(seed=7)
    np.testing.assert_array_equal(host.step([], 0, ["observation"])[1]["observation"], observation)
    env.close()


def test_frame_skip_repeats_the_action_and_sums_rewards(skipping_host: EngineHost) -> None:
    env = gymnasium.make("Pendulum-v1")
    env.reset(seed=11)
    skipping_host.reset(11)
    for torque in np.linspace(-2.0, 2.0, 10):
        _, got = skipping_host.step(
            [("action", action(torque))], 100 * MS, ["observation", "reward", "episode_return"]
        )
        reward = 0.0
        for _ in range(2):
            observation, step_reward, *_ = env.step(action(torque))
            reward += float(step_reward)
        np.testing.assert_array_equal(got["observation"], observation)
        assert got["reward"] == reward
    assert skipping_host.time_ns == 1_000_000_000

    # A step's own timestep decides how many env steps it takes: 50 ms is one.
    _, got = skipping_host.step([], PENDULUM_DT_NS, ["observation"])
    observation, *_ = env.step(action(2.0))
    np.testing.assert_array_equal(got["observation"], observation)
    env.close()


def test_engine_timestep_not_a_multiple_of_dt_names_both() -> None:
    with pytest.raises(ValueError) as caught:
        pendulum(0.07)
    assert str(caught.value) == (
        "[env] EngineTimestep: expected a whole multiple of the environment's dt = 0.05 s. "
        "Received: EngineTimestep=0.07 s"
    )


def test_a_step_that_is_not_a_multiple_of_dt_changes_nothing(host: EngineHost) -> None:
    host.reset(0)
    before = host.step([], 0, ["observation"])[1]["observation"]
    with pytest.raises(ValueError, match=r"dt = 0\.05 s\. Received: EngineTimestep=0\.07 s"):
        host.step([], 70 * MS, [])
    assert host.time_ns == 0
    np.testing.assert_array_equal(host.step([], 0, ["observation"])[1]["observation"], before)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros(2, dtype=np.float32), "expected shape (1,). Received: shape (2,)"),
        (np.float32(1.0), "expected shape (1,). Received: shape ()"),
        (action(np.nan), "expected finite values. Received: [nan]"),
        (["left"], "expected numbers of dtype float32. Received: ['left']"),
    ],
)
def test_bad_actions_are_clear_errors_naming_engine_and_datapack(
    host: EngineHost, value: Any, message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        host.step([("action", value)], PENDULUM_DT_NS, [])
    assert str(caught.value).startswith(f"[env] datapack 'action': {message}")
    assert host.time_ns == 0


def test_episodes_restart_after_truncation(skipping_host: EngineHost) -> None:
    skipping_host.reset(3)
    names = ["truncated", "terminated", "episode", "episode_return", "reward"]
    episode_return = 0.0
    for step in range(1, PENDULUM_MAX_STEPS // 2 + 1):
        _, values = skipping_host.step([], 100 * MS, names)
        episode_return += values["reward"]
        assert values["truncated"] == (step == PENDULUM_MAX_STEPS // 2)
        assert not values["terminated"] and values["episode"] == 0
    assert values["episode_return"] == pytest.approx(episode_return)

    _, values = skipping_host.step([], 100 * MS, names)
    assert not values["truncated"]
    assert values["episode"] == 1
    assert values["episode_return"] == values["reward"]


def test_unknown_environment_is_a_clear_error() -> None:
    engine = GymnasiumEngine("env")
    with pytest.raises(ValueError, match=r"^\[env\] EngineExtraConfigs\.EnvId: .*Nope"):
        engine.initialize({"EngineTimestep": 0.05, "EngineExtraConfigs": {"EnvId": "Nope-v0"}})
    with pytest.raises(ValueError, match=r"^\[env\] EngineExtraConfigs\.EnvId: expected"):
        engine.initialize({"EngineTimestep": 0.05, "EngineExtraConfigs": {}})


# --- over gRPC -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def controlled() -> Iterator[Simulation]:
    """pendulum_pd with no timeout: the controller transceiver drives a real engine process."""
    with Simulation.from_config(PENDULUM, ["SimulationTimeout=0"], echo_engine_output=False) as sim:
        yield sim


@pytest.mark.parametrize("seed", [2, 3, 4, 5, 10])
def test_the_controller_swings_the_pendulum_up_and_balances_it(
    controlled: Simulation, seed: int
) -> None:
    controlled.reset(seed)
    first = controlled.datapack("observation", "env")
    assert first[0] < 0.1  # for these seeds Pendulum-v1 starts at least 84 degrees off upright
    controlled.step(PENDULUM_MAX_STEPS)
    assert controlled.time_ns == PENDULUM_MAX_STEPS * PENDULUM_DT_NS
    observation = controlled.datapack("observation", "env")
    assert observation[0] > UPRIGHT_COS
    assert abs(observation[2]) < 0.1
    status = controlled.loop.functions.last_status
    assert status["upright"] is True and status["episode"] == 0
    assert controlled.datapack("truncated", "env")

    # The 201st step starts episode 1 by itself.
    controlled.step(1)
    assert controlled.datapack("episode", "env") == 1
    assert not controlled.datapack("truncated", "env")


def test_seeded_reset_over_grpc_matches_gymnasium(controlled: Simulation) -> None:
    env = gymnasium.make("Pendulum-v1")
    initial, _ = env.reset(seed=5)
    env.close()
    runs = []
    for _ in range(2):
        controlled.reset(5)
        np.testing.assert_array_equal(controlled.datapack("observation", "env"), initial)
        controlled.step(10)
        runs.append(controlled.datapack("observation", "env"))
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.fixture(scope="module")
def uncontrolled() -> Iterator[Simulation]:
    """pendulum_pd at 0.1 s steps without its controller: actions come from the test."""
    with Simulation.from_config(
        PENDULUM,
        [
            "SimulationTimeout=0",
            "SimulationTimestep=0.1",
            "EngineConfigs.EngineName:env.EngineTimestep=0.1",
            "DataPackProcessingFunctions[0].IsActive=false",
        ],
        echo_engine_output=False,
    ) as sim:
        yield sim


def test_frame_skip_over_grpc_matches_gymnasium(uncontrolled: Simulation) -> None:
    env = gymnasium.make("Pendulum-v1")
    env.reset(seed=11)
    uncontrolled.reset(11)
    for torque in (2.0, -1.0, 0.5):
        uncontrolled.set_datapack("action", "env", action(torque))
        uncontrolled.step()
        reward = 0.0
        for _ in range(2):
            observation, step_reward, *_ = env.step(action(torque))
            reward += float(step_reward)
        np.testing.assert_array_equal(uncontrolled.datapack("observation", "env"), observation)
        assert uncontrolled.datapack("reward", "env") == reward
    env.close()


def test_bad_actions_over_grpc_name_engine_and_datapack(uncontrolled: Simulation) -> None:
    uncontrolled.reset(0)
    uncontrolled.set_datapack("action", "env", np.zeros(2, dtype=np.float32))
    with pytest.raises(EngineError) as caught:
        uncontrolled.step()
    assert str(caught.value) == "[env] datapack 'action': expected shape (1,). Received: shape (2,)"
    uncontrolled.reset(0)
    uncontrolled.set_datapack("action", "env", action(np.nan))
    with pytest.raises(EngineError, match=r"^\[env\] datapack 'action': expected finite"):
        uncontrolled.step()
    # After a reset the simulation runs on.
    uncontrolled.reset(0)
    uncontrolled.set_datapack("action", "env", action(1.0))
    uncontrolled.step(2)
    assert uncontrolled.time_ns == 200 * MS
    assert uncontrolled.datapack("episode", "env") == 0
