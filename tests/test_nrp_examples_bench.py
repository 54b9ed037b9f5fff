"""bench/nrp_examples.py: finds NRP-core simulation configs and classifies their runs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from bench.nrp_examples import export_examples, run_config, simulation_configs
from tests.processes import FIXTURES


def nrp_core_tree(root: Path) -> Path:
    """A small NRP-core-like checkout: one runnable experiment, one unsupported config, an
    engine's own config and a file that is not JSON."""
    experiment = root / "examples" / "tf_exchange"
    shutil.copytree(FIXTURES / "nrp", experiment)
    gazebo = {"SimulationName": "husky", "EngineConfigs": [{"EngineType": "gazebo_grpc"}]}
    (experiment / "gazebo.json").write_text(json.dumps(gazebo))
    (experiment / "engine_async_conf.json").write_text(json.dumps({"Timestep": 0.01}))
    (experiment / "notes.json").write_text("not json")
    return root


def test_configs_are_found_and_classified(tmp_path: Path) -> None:
    examples = nrp_core_tree(tmp_path / "nrp-core") / "examples"
    found = [path.name for path in simulation_configs(examples)]
    assert "engine_async_conf.json" not in found and "notes.json" not in found
    assert {"gazebo.json", "simulation_config.json", "graph_config.json"} <= set(found)
    ran = run_config(examples / "tf_exchange" / "simulation_config.json", examples, 60, None)
    assert (ran.config, ran.result, ran.detail) == (
        "tf_exchange/simulation_config.json",
        "ran",
        "ended by status function",
    )
    refused = run_config(examples / "tf_exchange" / "gazebo.json", examples, 60, None)
    assert refused.result == "unsupported"
    assert "NRP-core's Gazebo engine is not supported by neuroloop" in refused.detail


def test_examples_are_exported_from_a_git_directory(tmp_path: Path) -> None:
    checkout = nrp_core_tree(tmp_path / "checkout")
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "examples"], check=True)
    subprocess.run([*git, "commit", "-qm", "examples"], check=True)
    exported = export_examples(checkout / ".git", tmp_path / "copy")
    source = checkout / "examples" / "tf_exchange" / "engine_1.py"
    assert (exported / "tf_exchange" / "engine_1.py").read_bytes() == source.read_bytes()
    assert len(simulation_configs(exported)) == len(simulation_configs(checkout / "examples"))
