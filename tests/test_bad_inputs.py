"""Bad input is one line naming the file, key or option and what was expected, exit 2."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from neuroloop.errors import ConfigError
from neuroloop.training.recipe import load_recipe
from tests.processes import REPO, run_neuroloop

PENDULUM = REPO / "experiments" / "pendulum.yaml"
REACH = REPO / "experiments" / "reach.yaml"
PENDULUM_PD = REPO / "simulation_configs" / "pendulum_pd.json"


@pytest.mark.parametrize(
    ("recipe", "override", "message"),
    [
        (PENDULUM, "PPO.Gamma=1.5", r"PPO\.Gamma: expected a number > 0 and <= 1"),
        (PENDULUM, "Seed=18446744073709551616", r"Seed: expected an integer >= 0 and <= 4294"),
        (PENDULUM, "PPO.ChunkLength=5000", r"PPO\.ChunkLength: expected at most Horizon \(1024\)"),
        (PENDULUM, "PPO.Minibatches=500", r"PPO\.Minibatches: expected at most the 64 TBPTT"),
        (REACH, "Metric=sucess", r"Metric: expected 'mean_return' or the metric of the config's"),
        (PENDULUM, "Metric=success", r"Signals\.Metric\.Engine: expected an engine of pendulum"),
        (PENDULUM, 'Signals.Reward={"Name": "reward", "Engine": "enf"}', r"Signals\.Reward\.Eng"),
        (PENDULUM, "Brain=lsmt", r"Brain: expected an installed brain"),
    ],
)
def test_bad_recipe_values_name_their_key(recipe: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_recipe(recipe, [override])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", PENDULUM_PD, "--steps", "-5"), "argument --steps: expected an integer >= 1"),
        (("run", PENDULUM_PD, "--seed", str(2**64)), "argument --seed: expected an integer in"),
        (("train", REACH, "-o", "Metric=sucess"), "Metric: expected 'mean_return' or the metric"),
    ],
)
def test_bad_command_lines_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run_neuroloop(*args, timeout=120)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def broken(:\n", "bad.py, line 1: loading it raised SyntaxError: invalid syntax"),
        (
            "x = 1\nimport no_such_module_here\n",
            "bad.py, line 2: loading it raised ModuleNotFoundError: No module named",
        ),
    ],
)
def test_a_function_file_that_fails_to_load_is_one_line(
    tmp_path: Path, source: str, message: str
) -> None:
    (tmp_path / "bad.py").write_text(source)
    config = {
        "SimulationName": "bad_functions",
        "EngineConfigs": [
            {"EngineName": "env", "EngineType": "gymnasium", "EngineTimestep": 0.05,
             "EngineExtraConfigs": {"EnvId": "Pendulum-v1"}},
        ],
        "DataPackProcessingFunctions": [{"Name": "bad", "FileName": "bad.py"}],
    }  # fmt: skip
    (tmp_path / "sim.json").write_text(json.dumps(config))
    result = run_neuroloop("run", tmp_path / "sim.json", "--steps", "2", timeout=120)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_gymnasium_id_that_would_import_a_module_is_refused(tmp_path: Path) -> None:
    config = {
        "SimulationName": "imports",
        "EngineConfigs": [
            {"EngineName": "env", "EngineType": "gymnasium",
             "EngineExtraConfigs": {"EnvId": "antigravity:Fly-v0"}},
        ],
    }  # fmt: skip
    (tmp_path / "sim.json").write_text(json.dumps(config))
    result = run_neuroloop("run", tmp_path / "sim.json", "--steps", "1", timeout=120)
    assert result.returncode == 2, result.stderr
    assert "EngineExtraConfigs.EnvId: expected a non-empty string matching '^[^:]+$'" in (
        result.stderr
    )


def test_more_worlds_than_memory_holds_are_refused_before_allocation() -> None:
    worlds = "EngineConfigs.EngineName:physics.EngineExtraConfigs.Worlds=100000000"
    result = run_neuroloop("run", "shadow_hand_reach", "-o", worlds, "--steps", "1", timeout=120)
    assert result.returncode == 2, result.stderr
    assert "EngineExtraConfigs.Worlds: expected at most" in result.stderr
    assert "Received: Worlds=100000000" in result.stderr


def test_an_engine_address_whose_port_is_taken_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_neuroloop(
            "engine", "--engine", "neuroloop.plugins.engines.gymnasium_engine:GymnasiumEngine",
            "--name", "env", "--address", address, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"[env] cannot bind {address}: the port is taken" in result.stderr
    assert "Traceback" not in result.stderr
