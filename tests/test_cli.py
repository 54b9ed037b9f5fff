"""The `neuroloop` command with tiny budgets: summaries, records, seeds, overrides, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PENDULUM = ROOT / "simulation_configs" / "pendulum_pd.json"
CONTROLLER = ROOT / "transceivers" / "pendulum_controller.py"
STATUS = ROOT / "transceivers" / "pendulum_status.py"
STEP_NS = 50_000_000
"""pendulum_pd's SimulationTimestep and EngineTimestep, 0.05 s."""


def neuroloop(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "neuroloop", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_with_steps_and_a_jsonl_record(tmp_path: Path) -> None:
    record = tmp_path / "out.jsonl"
    run = neuroloop("run", PENDULUM, "--steps", "50", "--record", record, "--quiet")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "simulation   pendulum_pd"
    assert lines[1] == "simulated    2.500 s in 50 loop steps"
    assert "ended by     --steps" in lines
    # Functions read observation, episode and episode_return: 3 datapacks at the start and
    # after each of 50 steps; the controller sends one action per step.
    assert f"recorded     {51 * 3 + 50} datapacks to {record}" in lines
    assert run.stderr == ""

    entries = read_jsonl(record)
    actions = [e for e in entries if (e["direction"], e["name"]) == ("to_engine", "action")]
    observations = [
        e for e in entries if (e["direction"], e["name"]) == ("from_engine", "observation")
    ]
    assert [e["time_ns"] for e in actions] == [k * STEP_NS for k in range(50)]
    assert [e["time_ns"] for e in observations] == [k * STEP_NS for k in range(51)]
    assert {e["engine"] for e in entries} == {"env"}
    for action in actions:
        assert action["value"]["dtype"] == "<f4" and action["value"]["shape"] == [1]
        assert -2.0 <= action["value"]["data"][0] <= 2.0
    for observation in observations:
        assert observation["value"]["dtype"] == "<f4" and observation["value"]["shape"] == [3]
        cos, sin, _ = observation["value"]["data"]
        assert cos**2 + sin**2 == pytest.approx(1.0, abs=1e-5)


def test_run_with_an_npz_record(tmp_path: Path) -> None:
    record = tmp_path / "out.npz"
    run = neuroloop("run", PENDULUM, "--steps", "50", "--record", record, "--quiet")
    assert run.returncode == 0, run.stderr
    with np.load(record, allow_pickle=False) as arrays:
        assert arrays["to_engine/env/action"].shape == (50, 1)
        assert arrays["to_engine/env/action"].dtype == np.float32
        assert arrays["from_engine/env/observation"].shape == (51, 3)
        assert arrays["from_engine/env/episode"].tolist() == [0] * 51
        np.testing.assert_array_equal(
            arrays["to_engine/env/action/time_ns"], np.arange(50) * STEP_NS
        )
        np.testing.assert_array_equal(
            arrays["from_engine/env/observation/time_ns"], np.arange(51) * STEP_NS
        )


def test_the_same_seed_gives_the_same_record_over_grpc(tmp_path: Path) -> None:
    records = [tmp_path / name for name in ("a.jsonl", "b.jsonl", "c.jsonl")]
    for record, seed in zip(records, ("3", "3", "4"), strict=True):
        run = neuroloop("run", PENDULUM, "--steps", "20", "--seed", seed, "--record", record)
        assert run.returncode == 0, run.stderr
    first, again, other = (read_jsonl(record) for record in records)
    # One start-of-run block of datapacks, from the seeded state: 21 observations.
    assert sum(e["name"] == "observation" for e in first) == 21
    assert first == again
    assert first != other


def test_a_seeded_full_run_swings_the_pendulum_up(tmp_path: Path) -> None:
    record = tmp_path / "run.jsonl"
    run = neuroloop("run", PENDULUM, "--seed", "3", "--quiet", "--record", record)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "simulated    10.000 s in 200 loop steps" in lines
    assert "ended by     SimulationTimeout" in lines
    assert "upright      True" in lines
    assert "episode      0" in lines
    observations = [entry for entry in read_jsonl(record) if entry["name"] == "observation"]
    assert observations[0]["value"]["data"][0] < 0  # seed 3 starts below the horizontal
    assert observations[-1]["time_ns"] == 200 * STEP_NS
    assert observations[-1]["value"]["data"][0] > 0.95


def test_overrides_from_the_command_line(tmp_path: Path) -> None:
    run = neuroloop(
        "run",
        PENDULUM,
        "-o",
        "SimulationTimeout=0.5",
        "-o",
        "SimulationTimestep=0.1",
        "--override",
        "EngineConfigs.EngineName:env.EngineTimestep=0.1",
        "--quiet",
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "simulated    0.500 s in 5 loop steps" in lines
    assert "ended by     SimulationTimeout" in lines


def write_config(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    document: dict[str, Any] = {
        "SimulationName": "bad",
        "SimulationTimeout": 0.5,
        "SimulationTimestep": 0.05,
        "EngineConfigs": [
            {
                "EngineName": "env",
                "EngineType": "gymnasium",
                "EngineTimestep": 0.05,
                "EngineExtraConfigs": {"EnvId": "Pendulum-v1"},
            }
        ],
        "DataPackProcessingFunctions": [{"Name": "controller", "FileName": str(CONTROLLER)}],
        "StatusFunction": {"Name": "status", "FileName": str(STATUS)},
    }
    change(document)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    return path


def unknown_key(document: dict[str, Any]) -> None:
    document["SimulatonTimeout"] = 1


def wrong_type(document: dict[str, Any]) -> None:
    document["EngineConfigs"][0]["EngineTimestep"] = "fast"


def missing_function_file(document: dict[str, Any]) -> None:
    document["DataPackProcessingFunctions"][0]["FileName"] = "missing.py"


def duplicate_engine(document: dict[str, Any]) -> None:
    document["EngineConfigs"].append(dict(document["EngineConfigs"][0]))


def function_naming_a_missing_engine(document: dict[str, Any]) -> None:
    document["DataPackProcessingFunctions"][0]["FileName"] = "to_physics.py"


def status_naming_a_missing_engine(document: dict[str, Any]) -> None:
    document["StatusFunction"]["FileName"] = "to_physics.py"


TO_PHYSICS = """\
from neuroloop.datapack import DataPackIdentifier
from neuroloop.functions import EngineDataPack, StatusFunction, TransceiverFunction


@EngineDataPack(keyword="observation", id=DataPackIdentifier("observation", "env"))
@TransceiverFunction("physics")
def to_physics(observation):
    return []


@EngineDataPack(keyword="contact", id=DataPackIdentifier("contact", "physics"))
@StatusFunction()
def status(contact):
    return False, []
"""


@pytest.mark.parametrize(
    ("change", "where", "detail"),
    [
        (unknown_key, "SimulatonTimeout", "did you mean 'SimulationTimeout'?"),
        (wrong_type, "EngineConfigs[0].EngineTimestep", 'Received: EngineTimestep="fast"'),
        (missing_function_file, "DataPackProcessingFunctions[0].FileName", "missing.py"),
        (duplicate_engine, "EngineConfigs[1].EngineName", 'EngineName="env", already used'),
        (function_naming_a_missing_engine, "DataPackProcessingFunctions[0]", "engine='physics'"),
        (status_naming_a_missing_engine, "StatusFunction", "engine='physics'"),
    ],
)
def test_bad_configs_are_one_clear_line_and_exit_2(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], where: str, detail: str
) -> None:
    (tmp_path / "to_physics.py").write_text(TO_PHYSICS)
    config = write_config(tmp_path, change)
    run = neuroloop("run", config)
    assert run.returncode == 2
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    [line] = run.stderr.splitlines()
    assert line.startswith(f"neuroloop run: error: {config}: {where}: expected ")
    assert detail in line


def test_malformed_json_names_file_and_position(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"EngineConfigs": [}\n')
    run = neuroloop("run", config)
    assert run.returncode == 2
    assert run.stderr == (
        f"neuroloop run: error: {config}: line 1, column 20: expected valid JSON. "
        "Received: Expecting value\n"
    )


def test_an_engine_rejecting_its_config_is_one_clear_line_and_exit_2() -> None:
    run = neuroloop("run", PENDULUM, "-o", "EngineConfigs.EngineName:env.EngineTimestep=0.07")
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr == (
        "neuroloop run: error: [env] EngineTimestep: expected a whole multiple of the "
        "environment's dt = 0.05 s. Received: EngineTimestep=0.07 s\n"
    )


def test_a_bad_override_is_blamed_on_the_override() -> None:
    run = neuroloop("run", PENDULUM, "-o", "SimulationTimestep=-1")
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert line.startswith(
        f"neuroloop run: error: {PENDULUM} (override 'SimulationTimestep=-1'): "
        "SimulationTimestep: expected a number > 0"
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "nonexistent.module:X",
            "engine 'nonexistent.module:X': expected an importable module. "
            "Received: No module named 'nonexistent'",
        ),
        (
            "numpy:ndarray",
            "engine 'numpy:ndarray': expected a subclass of neuroloop.engine.Engine. "
            "Received: <class 'numpy.ndarray'>",
        ),
    ],
)
def test_engine_command_with_an_unusable_engine_is_a_clear_error(spec: str, message: str) -> None:
    run = neuroloop("engine", "--engine", spec, "--name", "x")
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr == f"neuroloop engine: error: {message}\n"


@pytest.mark.parametrize("suffix", [".jsonl", ".npz"])
def test_an_unwritable_record_path_stops_before_the_simulation(suffix: str, tmp_path: Path) -> None:
    record = tmp_path / "missing" / f"out{suffix}"
    run = neuroloop("run", PENDULUM, "--steps", "50", "--record", record, "--quiet")
    assert run.returncode == 2
    assert run.stdout == ""  # no simulation ran, so no summary
    assert run.stderr.splitlines() == [
        f"neuroloop run: error: --record: expected a file that can be written. "
        f"Received: {record} (No such file or directory)"
    ]
