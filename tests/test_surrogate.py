"""neuroloop surrogate: collect a body's responses, fit ArmNet, train a controller through
it. Tiny budgets on the arm26 body (a real MuJoCo engine process)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import jsonschema
import keras
import numpy as np
import pytest
import tensorflow as tf

from neuroloop.checker import check_engine
from neuroloop.plugins.engines.surrogate_engine import SurrogateEngine
from neuroloop.simulation import Simulation
from neuroloop.surrogate.armnet import ArmNet, Normalizer, variance_explained
from neuroloop.surrogate.config import load_surrogate_config
from neuroloop.surrogate.control import (
    ControllerNet,
    Loop,
    control_task,
    evaluate_closed_loop,
    make_trials,
    train_controller,
)
from neuroloop.surrogate.data import Body, Dataset, rest_state, smooth_inputs
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


@dataclass(frozen=True)
class Fitted:
    """The tiny surrogate config, its dataset and ArmNet folder, and fit's output."""

    config: Path
    data: Path
    armnet: Path
    stdout: str


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    """``neuroloop surrogate collect`` then ``fit`` on the tiny config (once per module)."""
    folder = tmp_path_factory.mktemp("surrogate")
    config = folder / "tiny.yaml"
    config.write_text(TINY)
    data, out = folder / "data.npz", folder / "armnet"
    collected = neuroloop("surrogate", "collect", config, "--out", data)
    assert collected.returncode == 0, collected.stderr
    result = neuroloop("surrogate", "fit", config, "--data", data, "--out", out)
    assert result.returncode == 0, result.stderr
    return Fitted(config, data, out, result.stdout)


def test_collect_then_fit_beats_the_mean_predictor(fitted: Fitted) -> None:
    dataset = Dataset.load(fitted.data)
    assert dataset.inputs.shape == (48, 30, 6) and dataset.states.shape == (48, 31, 10)
    assert dataset.names == load_surrogate_config(fitted.config).names
    # The recorded activations are the arm's response to the recorded excitations: they
    # start at rest and then follow the excitations (first-order lag, 15/50 ms).
    activations = dataset.states[..., 4:]
    np.testing.assert_array_equal(activations[:, 0], 0.0)
    lag = np.abs(activations[:, 1:] - dataset.inputs).mean()
    assert lag < 0.5 * np.abs(activations[:, 1:] - dataset.inputs[::-1]).mean()

    report = json.loads((fitted.armnet / "report.json").read_text())
    assert report["sequences"] == [36, 12]
    # Held-out: well below the MSE of predicting the training mean.
    assert report["mse"] < 0.5 * report["mean_mse"], report
    # The report is the saved net's own error on the held-out sequences (recomputed here).
    net = ArmNet.load(fitted.armnet)
    _, held_out = split(48, 0.25, 0)  # Fit.HeldOut, Fit.Seed
    states = dataset.states[held_out]
    predicted = net.predict(states[:, 0], dataset.inputs[held_out])
    normal = net.normalizer.normalize
    mse = float(np.mean((normal(states[:, 1:]) - normal(predicted)) ** 2))
    assert mse == pytest.approx(report["mse"], rel=1e-3)
    assert "hand_x" in fitted.stdout and "variance explained" in fitted.stdout
    # The weights file holds the net alone (no optimizer state).
    with h5py.File(fitted.armnet / "armnet.weights.h5") as weights:
        assert "optimizer" not in weights and "layers" in weights
    # --evaluate reports the saved net again, unchanged, without training.
    again = neuroloop(
        "surrogate",
        "fit",
        fitted.config,
        "--data",
        fitted.data,
        "--out",
        fitted.armnet,
        "--evaluate",
    )
    assert again.returncode == 0, again.stderr
    evaluated = json.loads((fitted.armnet / "report.json").read_text())
    assert evaluated["epochs"] == 0 and evaluated["mse"] == pytest.approx(report["mse"])
    # A dataset of other state variables than the config's is one line, exit 2.
    shipped = REPO / "experiments" / "surrogates" / "arm26.yaml"
    wrong = neuroloop("surrogate", "fit", shipped, "--data", fitted.data, "--out", fitted.armnet)
    assert wrong.returncode == 2
    assert "--data: expected the state variables of" in wrong.stderr.strip().splitlines()[-1]


def test_the_learned_body_engine_agrees_with_the_physics_on_a_held_out_sequence(
    fitted: Fitted, tmp_path: Path
) -> None:
    surrogate = load_surrogate_config(fitted.config)
    physics = json.loads(ARM.read_text())
    physics["SimulationTimeout"] = 0
    section = physics["EngineConfigs"][0]
    extra = section["EngineExtraConfigs"]
    for key in ("Model", "Body"):
        extra[key] = str((ARM.parent / extra[key]).resolve())
    extra["Worlds"] = 4
    status = physics["StatusFunction"]
    status["FileName"] = str((ARM.parent / status["FileName"]).resolve())
    learned = json.loads(json.dumps(physics))
    learned["EngineConfigs"][0] = {
        "EngineName": "physics",
        "EngineType": "surrogate",
        "EngineTimestep": section["EngineTimestep"],
        "EngineExtraConfigs": {"ArmNet": str(fitted.armnet), "Worlds": 4},
    }
    # Excitations the surrogate never saw (another seed), from the rest posture.
    drive = smooth_inputs(np.random.default_rng(2024), 30, 4, 6, 0.01, 0.1, 3.0)
    runs = {}
    for label, document in (("physics", physics), ("learned", learned)):
        path = tmp_path / f"{label}.json"
        path.write_text(json.dumps(document))
        with Simulation.from_config(path, seed=0, echo_engine_output=False) as sim:
            body = Body(sim, surrogate)
            states = [body.state()]
            states += [body.step(drive[t]) for t in range(30)]
            if label == "learned":  # the same datapacks, whole rows (hand z at rest)
                hand = np.asarray(sim.datapack("hand_position", "physics"))
                assert hand.shape == (4, 3) and np.all(hand[:, 2] == 0.0)
        runs[label] = np.stack(states)
    np.testing.assert_allclose(runs["learned"][0], runs["physics"][0])  # the same start
    net = ArmNet.load(fitted.armnet)
    normal = net.normalizer.normalize
    mse = float(np.mean((normal(runs["learned"][1:]) - normal(runs["physics"][1:])) ** 2))
    report = json.loads((fitted.armnet / "report.json").read_text())
    # Within the fit the report gives (twice its held-out MSE: 4 sequences, not 12), and far
    # from the mean predictor's.
    assert mse < 2.0 * report["mse"] and mse < 0.25 * report["mean_mse"], (mse, report)


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


CONTROL = f"""
Simulation: {ARM}
State:
  - {{DataPack: joint_angles, Names: [shoulder_angle, elbow_angle]}}
  - {{DataPack: hand_position, Names: [hand_x, hand_y], Columns: [0, 1]}}
  - {{DataPack: hand_velocity, Names: [hand_vx, hand_vy], Columns: [0, 1]}}
Control:
  Task: {{Name: center_out, Options: {{HoldS: 0.05, ReachS: 0.15}}}}
  Position: [hand_x, hand_y]
  Velocity: [hand_vx, hand_vy]
  MovementS: 0.1
  Units: 16
  Iterations: 40
  BatchSize: 8
  LearningRate: 0.02
"""
"""Reaches of 0.2 s (20 steps) with a 16-unit controller."""


def test_a_controller_through_a_frozen_surrogate_reduces_the_straight_line_loss(
    tmp_path: Path,
) -> None:
    path = tmp_path / "control.yaml"
    path.write_text(CONTROL)
    config = load_surrogate_config(path)
    start = rest_state(config)
    np.testing.assert_allclose(start[2:4], [-0.01697, 0.45396], atol=1e-4)  # arm26.json's
    # An untrained surrogate is still a fixed differentiable body: its normalised outputs
    # scaled by 10 cm around the start state.
    keras.utils.set_random_seed(1)
    armnet = ArmNet(6, config.names, 16, 0.0, Normalizer(start, np.full(6, 0.1)), 0.01)
    frozen = [w.numpy().copy() for w in armnet.model.weights]
    task = control_task(config)
    controller, history = train_controller(config, armnet, task, start)
    assert len(history) == 5  # before training and after every 10 iterations
    assert history[-1] < 0.7 * history[0], history
    for before, after in zip(frozen, armnet.model.weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())  # the surrogate stays frozen
    # The loss is the mean squared distance from the straight-line reference (cm^2), here
    # recomputed from the rollout's own positions.
    trials = make_trials(task.goals(start[2:4]), 20, 0.01, 0.05, 0.1)
    loop = Loop(controller, armnet, [2, 3], [2, 3, 4, 5])
    initial = np.repeat(armnet.normalizer.normalize(start)[None], 8, axis=0)
    positions, inputs = loop.through_surrogate(initial, tf.constant(trials.cue, tf.float32))
    position_term = np.mean(np.sum((100 * (positions.numpy() - trials.reference)) ** 2, -1))
    total = position_term + 0.001 * np.mean(inputs.numpy() ** 2)
    assert history[-1] == pytest.approx(total, rel=1e-4)
    controller.save(tmp_path / "controller", {"loss_history": history})
    reloaded = Loop(ControllerNet.load(tmp_path / "controller"), armnet, [2, 3], [2, 3, 4, 5])
    again, _ = reloaded.through_surrogate(initial, tf.constant(trials.cue, tf.float32))
    np.testing.assert_array_equal(again.numpy(), positions.numpy())
    # Closed loop on the real arm: one world per target, paths from the centre.
    metrics, paths, goals = evaluate_closed_loop(config, armnet, controller, task)
    assert paths.shape == (21, 8, 2) and goals.shape == (8, 4)
    np.testing.assert_allclose(paths[0], np.broadcast_to(start[2:4], (8, 2)), atol=1e-9)
    np.testing.assert_allclose(
        metrics.endpoint_error, np.linalg.norm(paths[-1] - goals[:, 0:2], axis=1)
    )


def test_the_learned_body_engine_conforms(fitted: Fitted) -> None:
    section = {
        "EngineName": "physics",
        "EngineType": "surrogate",
        "EngineTimestep": 0.02,  # two ArmNet steps per engine step
        "EngineExtraConfigs": {"ArmNet": str(fitted.armnet), "Worlds": 3},
    }
    drive = {"ctrl": np.full((3, 6), 0.3)}
    bad = [("ctrl", np.zeros((3, 5))), ("ctrl", np.full((3, 6), np.nan))]
    signatures = check_engine(
        SurrogateEngine, section, timestep_ns=20_000_000, inputs=drive, bad_inputs=bad
    )
    assert {"joint_angles", "hand_position", "muscle_activations", "ctrl"} <= set(signatures)
    engine = SurrogateEngine("physics")
    with pytest.raises(ValueError, match=r"^\[physics\] initialize: expected EngineTimestep"):
        engine.initialize({**section, "EngineTimestep": 0.015})


ITERATE = f"""
Simulation: {ARM}
SimulationOverrides: ["EngineConfigs.EngineName:physics.EngineExtraConfigs.Worlds=8"]
State:
  - {{DataPack: hand_position, Names: [hand_x, hand_y], Columns: [0, 1]}}
  - {{DataPack: hand_velocity, Names: [hand_vx, hand_vy], Columns: [0, 1]}}
  - {{DataPack: muscle_activations, Names: [a1, a2, a3, a4, a5, a6]}}
Collect: {{Sequences: 16, Steps: 20, Sharpness: 3.0}}
Fit: {{Units: 16, Epochs: 3, BatchSize: 8, LearningRate: 0.01, HeldOut: 0.25}}
Control:
  Task: {{Name: center_out, Options: {{HoldS: 0.05, ReachS: 0.15}}}}
  Position: [hand_x, hand_y]
  Velocity: [hand_vx, hand_vy]
  MovementS: 0.1
  Units: 8
  Iterations: 5
  BatchSize: 8
"""
"""Two batches of 8 worlds per generation, 0.2 s reaches, tiny nets and budgets."""


def test_iterate_keeps_every_generation_and_prints_the_table(tmp_path: Path) -> None:
    config = tmp_path / "iterate.yaml"
    config.write_text(ITERATE)
    out = tmp_path / "generations"
    result = neuroloop("surrogate", "iterate", config, "--generations", 3, "--out", out)
    assert result.returncode == 0, result.stderr
    table = json.loads((out / "generations.json").read_text())
    fit = np.asarray(table["variance_explained"])
    assert fit.shape == (3, 3, 2)  # ArmNet generation x data generation x (hand_x, hand_y)
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["ArmNet", "data", "0"]
    for g in range(3):
        row = next(line for line in lines if line.startswith(f"gen {g} ") and "%" in line)
        shown = [float(cell) for cell in row.split()[2:] if cell != "%"]
        np.testing.assert_allclose(shown, 100 * fit[g].ravel(), atol=0.006)
    # The table's numbers are each saved ArmNet's fit on each saved dataset's held-out split
    # (each generation's own net: generation 0's row is not the last net's).
    data1 = Dataset.load(out / "gen1" / "data.npz")
    _, held_out = split(16, 0.25, 0)
    states = data1.states[held_out]
    truth = states[:, 1:, 0]
    for g in (0, 2):
        net = ArmNet.load(out / f"gen{g}" / "armnet")
        predicted = net.predict(states[:, 0], data1.inputs[held_out])[..., 0]
        explained = 1 - np.sum((truth - predicted) ** 2) / np.sum((truth - truth.mean()) ** 2)
        assert explained == pytest.approx(fit[g, 1, 0], abs=1e-4)
    assert not np.allclose(fit[0], fit[2])
    # --resume keeps complete generations: nothing is retrained, the table is the same.
    again = neuroloop("surrogate", "iterate", config, "--generations", 3, "--out", out, "--resume")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count(": kept from ") == 3
    assert again.stdout == result.stdout
    # Generations 1 and 2 are reaches of the previous controller from the centre: every
    # sequence starts at rest, with inputs in [0, 1].
    start = rest_state(load_surrogate_config(config))
    for g in (1, 2):
        data = Dataset.load(out / f"gen{g}" / "data.npz")
        assert data.inputs.shape == (16, 20, 6) and data.states.shape == (16, 21, 10)
        np.testing.assert_allclose(data.states[:, 0], np.broadcast_to(start, (16, 10)), atol=1e-5)
        assert 0.0 <= data.inputs.min() and data.inputs.max() <= 1.0
        assert ControllerNet.load(out / f"gen{g}" / "controller").units == 8
    # Generation 1 continues from generation 0's ArmNet: different weights, same normaliser.
    nets = [ArmNet.load(out / f"gen{g}" / "armnet") for g in range(2)]
    np.testing.assert_array_equal(nets[0].normalizer.mean, nets[1].normalizer.mean)
    assert not np.array_equal(nets[0].model.get_weights()[0], nets[1].model.get_weights()[0])


def test_the_shipped_generation_0_armnet_predicts_the_arm_on_fresh_sequences(
    tmp_path: Path,
) -> None:
    """ArmNet 0 against the MuJoCo arm on sequences it never saw (another seed): the hand's
    path explained as well as on its own held-out data, within a small sample's spread."""
    config = REPO / "experiments" / "surrogates" / "arm26.yaml"
    data = tmp_path / "fresh.npz"
    collected = neuroloop(
        "surrogate", "collect", config, "--out", data, "--sequences", 64, "-o", "Collect.Seed=7"
    )
    assert collected.returncode == 0, collected.stderr
    dataset = Dataset.load(data)
    net = ArmNet.load(REPO / "experiments" / "surrogates" / "arm26" / "armnet_gen0")
    predicted = net.predict(dataset.states[:, 0], dataset.inputs)
    explained = dict(
        zip(net.names, variance_explained(dataset.states[:, 1:], predicted), strict=True)
    )
    # 99.34 % and 99.07 % on the 410 held-out generation-0 sequences; 99.35 % and 99.20 % here.
    assert explained["hand_x"] > 0.985 and explained["hand_y"] > 0.98, explained
    # The untrained net of the same shape explains nothing of the hand's path.
    untrained = ArmNet(net.n_inputs, net.names, net.units, 0.0, net.normalizer, net.dt_s)
    baseline = variance_explained(
        dataset.states[:, 1:], untrained.predict(dataset.states[:, 0], dataset.inputs)
    )
    assert baseline[net.names.index("hand_x")] < 0.5
