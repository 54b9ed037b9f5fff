"""neuroloop surrogate: collect a body's responses, fit ArmNet, train a controller through
it. Tiny budgets on the arm26 body (a real MuJoCo engine process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from neuroloop.surrogate.armnet import ArmNet
from neuroloop.surrogate.config import load_surrogate_config
from neuroloop.surrogate.data import Dataset, smooth_inputs
from neuroloop.surrogate.fit import split

REPO = Path(__file__).resolve().parents[1]
ARM = REPO / "simulation_configs" / "arm26.json"

TINY = f"""
Simulation: {ARM}
SimulationOverrides: ["EngineConfigs.EngineName:physics.EngineExtraConfigs.Worlds=16"]
State:
  - {{DataPack: joint_angles, Names: [shoulder_angle, elbow_angle]}}
  - {{DataPack: hand_position, Names: [hand_x, hand_y], Columns: [0, 1]}}
  - {{DataPack: muscle_activations, Names: [a1, a2, a3, a4, a5, a6]}}
Collect: {{Sequences: 48, Steps: 30, Sharpness: 3.0,
  SimulationOverrides: ["EngineConfigs.EngineName:physics.EngineExtraConfigs.JointNoise=0.2"]}}
Fit: {{Units: 32, Epochs: 25, BatchSize: 8, LearningRate: 0.01, HeldOut: 0.25}}
"""
"""A 10-variable state, 48 sequences of 0.3 s, a 32-unit GRU."""


def neuroloop(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "neuroloop", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_smooth_inputs_stay_in_range_and_change_gradually() -> None:
    rng = np.random.default_rng(0)
    inputs = smooth_inputs(rng, 200, 5, 6, 0.01, 0.1, 2.0)
    assert inputs.shape == (200, 5, 6)
    assert inputs.min() >= 0.0 and inputs.max() <= 1.0
    # Linear between knots 0.1 s apart: a step changes an input by at most 1/10.
    assert np.abs(np.diff(inputs, axis=0)).max() <= 0.1 + 1e-12
    # Sequences differ from one another.
    assert np.abs(inputs[:, 0] - inputs[:, 1]).mean() > 0.05


def test_collect_then_fit_beats_the_mean_predictor(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    data, out = tmp_path / "data.npz", tmp_path / "armnet"
    collected = neuroloop("surrogate", "collect", config, "--out", data)
    assert collected.returncode == 0, collected.stderr
    dataset = Dataset.load(data)
    assert dataset.inputs.shape == (48, 30, 6) and dataset.states.shape == (48, 31, 10)
    assert dataset.names == load_surrogate_config(config).names
    # The recorded activations are the arm's response to the recorded excitations: they
    # start at rest and then follow the excitations (first-order lag, 15/50 ms).
    activations = dataset.states[..., 4:]
    np.testing.assert_array_equal(activations[:, 0], 0.0)
    lag = np.abs(activations[:, 1:] - dataset.inputs).mean()
    assert lag < 0.5 * np.abs(activations[:, 1:] - dataset.inputs[::-1]).mean()

    fitted = neuroloop("surrogate", "fit", config, "--data", data, "--out", out)
    assert fitted.returncode == 0, fitted.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["sequences"] == [36, 12]
    # Held-out: well below the MSE of predicting the training mean.
    assert report["mse"] < 0.5 * report["mean_mse"], report
    # The report is the saved net's own error on the held-out sequences (recomputed here).
    net = ArmNet.load(out)
    _, held_out = split(48, 0.25, 0)  # Fit.HeldOut, Fit.Seed
    states = dataset.states[held_out]
    predicted = net.predict(states[:, 0], dataset.inputs[held_out])
    normal = net.normalizer.normalize
    mse = float(np.mean((normal(states[:, 1:]) - normal(predicted)) ** 2))
    assert mse == pytest.approx(report["mse"], rel=1e-3)
    assert "hand_x" in fitted.stdout and "variance explained" in fitted.stdout


def test_the_surrogate_schema_documents_every_key() -> None:
    schema = json.loads((REPO / "neuroloop" / "schemas" / "surrogate.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)

    def objects(node: object) -> list[dict[str, object]]:
        found = []
        if isinstance(node, dict):
            if "properties" in node:
                found.append(node)
            for value in node.values():
                found += objects(value)
        elif isinstance(node, list):
            for item in node:
                found += objects(item)
        return found

    for declaring in objects(schema):
        assert declaring["additionalProperties"] is False
        properties = declaring["properties"]
        assert isinstance(properties, dict)
        required = declaring.get("required", ())
        for key, value in properties.items():
            assert "description" in value, key
            assert key in required or "default" in value, key  # type: ignore[operator]
    shipped = load_surrogate_config(REPO / "experiments" / "surrogates" / "arm26.yaml")
    assert len(shipped.names) == 32 and shipped.control is not None
