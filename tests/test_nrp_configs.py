"""NRP-core configs: valid NRP-core keys keep their meaning, unsupported features are named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from neuroloop.config import SIMULATION_SCHEMA, load_config
from neuroloop.config.schema import load_schema
from neuroloop.errors import ConfigError
from neuroloop.simulation import Simulation
from tests.processes import FIXTURES, run_neuroloop

NRP = FIXTURES / "nrp"


def nrp_config(tmp_path: Path, change: dict[str, Any] | None = None, **engine: Any) -> Path:
    """The fixture experiment copied to ``tmp_path``, with top-level keys ``change`` and keys
    ``engine`` added to its first engine (python_1)."""
    for file in NRP.iterdir():
        shutil.copy(file, tmp_path)
    document = json.loads((NRP / "simulation_config.json").read_text())
    document.update(change or {})
    document["EngineConfigs"][0].update(engine)
    path = tmp_path / "simulation_config.json"
    path.write_text(json.dumps(document))
    return path


def test_valid_nrp_core_keys_are_accepted_with_their_meaning(tmp_path: Path) -> None:
    path = nrp_config(
        tmp_path,
        {
            "SimDescription": "two engines",
            "DataPackProcessor": "tf",
            "ProcessLauncherType": "Basic",
            "ExternalProcesses": [{"ProcCmd": "sleep 30"}, {"ProcCmd": "sleep 30"}],
        },
        EngineCommandTimeout=0,
        RegistrationServerAddress="localhost:9001",
        ServerOptions="{'workers': 1}",
        dumps=3,
        simulationID="run-7",
        EngineNumber=2,
        WorldFileName="CartPole-v1",
    )
    config = load_config(path)
    python_1, python_2 = config.engines
    assert python_1.command_timeout_s is None  # 0: no timeout, as in NRP-core
    assert python_2.command_timeout_s == 30.0
    assert [process.name for process in config.external_processes] == ["sleep#0", "sleep#1"]
    # Custom keys reach the engine's section, which its script reads as self._config.
    assert python_1.section["dumps"] == 3 and python_1.section["simulationID"] == "run-7"
    assert python_1.section["EngineNumber"] == 2  # not a misspelt EngineName
    # A script's WorldFileName is the script's to read: a file, or e.g. a Gym id.
    assert python_1.section["WorldFileName"] == "CartPole-v1"
    assert "dumps" not in python_2.section


def test_custom_keys_reach_the_script_of_a_running_engine(tmp_path: Path) -> None:
    (tmp_path / "engine_1.py").write_text(
        (NRP / "engine_1.py")
        .read_text()
        .replace('"steps": 0}', '"steps": 0, "dumps": self._config["dumps"]}')
    )
    for file in NRP.iterdir():
        if file.name != "engine_1.py":
            shutil.copy(file, tmp_path)
    document = json.loads((NRP / "simulation_config.json").read_text())
    document["EngineConfigs"][0].update(
        dumps=3,
        EngineCommandTimeout=0,  # 0: no timeout
        # NRP-core's own server of the engine, behind a display wrapper: neuroloop's server.
        EngineProcCmd="/usr/xpra-entrypoint.sh python_json_engine.py",
        EngineProcStartParams=["--loglevel=info"],
    )
    document["StatusFunction"] = None
    (tmp_path / "custom.json").write_text(json.dumps(document))
    python_1 = load_config(tmp_path / "custom.json").engines[0]
    assert (python_1.proc_cmd, python_1.proc_start_params) == ("", ())
    with Simulation.from_config(tmp_path / "custom.json", echo_engine_output=False) as sim:
        assert sim.datapack("clock", "python_1") == {"time": 0, "steps": 0, "dumps": 3}
        sim.run_loop(2)  # steps without a deadline
        assert sim.datapack("clock", "python_1") == {"time": 20_000_000, "steps": 2}


def test_an_inactive_status_function_is_not_run(tmp_path: Path) -> None:
    path = nrp_config(tmp_path)
    document = json.loads(path.read_text())
    document["StatusFunction"]["IsActive"] = False
    path.write_text(json.dumps(document))
    with Simulation.from_config(path, echo_engine_output=False) as sim:
        sim.run_until_timeout()
        assert sim.time_ns == 1_000_000_000  # SimulationTimeout, not the status function


def test_a_misspelt_engine_key_is_still_refused_with_a_hint(tmp_path: Path) -> None:
    path = nrp_config(tmp_path, EngineTimestepp=0.02)
    with pytest.raises(ConfigError, match="did you mean 'EngineTimestep'"):
        load_config(path)


SUPPORTED = ", ".join(
    load_schema(SIMULATION_SCHEMA)["$defs"]["engine"]["properties"]["EngineType"]["enum"]
)
"""The engine types the schema lists (python_json, python_grpc, ...)."""

UNSUPPORTED = [
    (
        {},
        {"EngineType": "gazebo_grpc", "GazeboWorldFile": "world.sdf"},
        f"EngineConfigs[0].EngineType: expected an engine type neuroloop supports ({SUPPORTED}). "
        'Received: EngineType="gazebo_grpc": NRP-core\'s Gazebo engine is not supported by '
        "neuroloop",
    ),
    (
        {},
        {"EngineType": "edlut_grpc_engine", "NetworkFile": "net.cfg"},
        "NRP-core's EDLUT engine is not supported",
    ),
    (
        {},
        {"EngineLaunchCommand": {"LaunchType": "DockerLauncher", "ImageName": "nrp"}},
        "EngineConfigs[0].EngineLaunchCommand.LaunchType: expected a launch type neuroloop "
        'supports (BasicFork, EmptyLaunchCommand). Received: LaunchType="DockerLauncher": '
        "NRP-core's DockerLauncher (engines in Docker containers) is not supported by neuroloop",
    ),
    ({"ROSNode": {}}, {}, "ROSNode={}: ROS (NRP-core's ROS node) is not supported"),
    ({"MQTTNode": {}}, {}, "MQTT (NRP-core's MQTT client) is not supported"),
    (
        {"SimulationLoop": "EventLoop"},
        {},
        "NRP-core's EventLoop with engines (run beside it, asynchronously) is not supported",
    ),
    ({"ProcessLauncherType": "Docker"}, {}, 'ProcessLauncherType="Docker" is not supported'),
]


@pytest.mark.parametrize(("change", "engine", "message"), UNSUPPORTED)
def test_an_unsupported_engine_type_or_feature_is_named_before_any_key_hint(
    tmp_path: Path, change: dict[str, Any], engine: dict[str, Any], message: str
) -> None:
    path = nrp_config(tmp_path, change, **engine)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert message in str(raised.value)
    assert "did you mean" not in str(raised.value)


def test_an_unsupported_engine_is_named_even_in_a_file_with_a_repeated_key(
    tmp_path: Path,
) -> None:
    path = nrp_config(tmp_path, EngineType="gazebo_grpc")
    text = path.read_text().replace(
        '"EngineName"', '"EngineTimestep": 0.01, "EngineTimestep": 0.02, "EngineName"', 1
    )
    path.write_text(text)
    with pytest.raises(ConfigError, match="Gazebo engine is not supported"):
        load_config(path)


@pytest.mark.parametrize(
    ("key", "source", "error"),
    [
        ("PythonFileName", "import no_such_module\n", "ModuleNotFoundError: No module named"),
        ("FileName", "from nrp_core import *\ndef broken(:\n", "SyntaxError: invalid syntax"),
        (
            "PythonFileName",
            "import tvb.simulator\n",
            "No module named 'tvb': TVB (The Virtual Brain) is not supported by neuroloop",
        ),
        (
            "FileName",
            "import pyNN.spiNNaker as sim\n",
            "No module named 'pyNN': SpiNNaker (NRP-core's pyNN.spiNNaker nodes) is not "
            "supported by neuroloop",
        ),
        (
            "PythonFileName",
            "from nrp_core.engines.py_sim.ConvertLib import for_json_dump\n",
            "No module named 'nrp_core.engines.py_sim.ConvertLib'; 'nrp_core.engines.py_sim' is "
            "not a package: NRP-core's py_sim training library (stable-baselines3 on PyTorch) "
            "is not supported by neuroloop",
        ),
    ],
)
def test_a_failing_user_file_is_one_line_naming_the_file_and_exit_2(
    tmp_path: Path, key: str, source: str, error: str
) -> None:
    path = nrp_config(tmp_path)
    (tmp_path / "broken.py").write_text(source)
    document = json.loads(path.read_text())
    section = (
        document["EngineConfigs"][0]
        if key == "PythonFileName"
        else document["DataPackProcessingFunctions"][0]
    )
    section[key] = "broken.py"
    path.write_text(json.dumps(document))
    run = run_neuroloop("run", path, "--quiet", timeout=60)
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert f"{tmp_path / 'broken.py'}, line" in line and error in line
