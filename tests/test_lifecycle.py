"""A trained brain's life after training: load and step it, warm-start from it, plot seeds.

One real two-seed training batch (Pendulum-v1, two tiny cycles each) serves every test.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import neuroloop
from neuroloop.brain.trained import architecture_path, read_architecture
from neuroloop.brain.weights import flatten
from neuroloop.config import load_config
from neuroloop.plugins.engines.keras_brain import KerasBrainEngine
from neuroloop.training.checkpoint import load_checkpoint
from neuroloop.training.monitor import find_runs, group_runs
from neuroloop.training.recipe import load_recipe
from tests.processes import REPO, run_neuroloop

PENDULUM = REPO / "experiments" / "pendulum.yaml"
TINY = ("-o", "Horizon=64", "-o", "PPO.Epochs=2", "-o", "PPO.Minibatches=2")
WORLDS = 3


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lifecycle") / "batch"
    done = run_neuroloop(
        "batch", PENDULUM, "--seeds", "0", "1", "--pool", "2", "--out", out,
        "-o", "Cycles=2", *TINY,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def train_dir(batch: Path, seed: int) -> Path:
    return next(run for run in find_runs([batch]) if run.parent.name.startswith(f"seed{seed}-"))


def test_plot_of_a_two_seed_batch_shows_both_seeds(batch: Path, tmp_path: Path) -> None:
    groups = group_runs(find_runs([batch]))
    assert len(groups) == 1  # the seeds are one setting
    [(label, members)] = groups.items()
    assert len(members) == 2 and "mean of 2 seeds, 95% interval" in label
    png = tmp_path / "seeds.png"
    done = run_neuroloop("plot", batch, "--output", png)
    assert done.returncode == 0, done.stderr
    assert "mean of 2 seeds" in done.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_brain_round_trips_an_exported_brain_and_acts_like_the_engine(
    batch: Path, tmp_path: Path
) -> None:
    run = train_dir(batch, 0)
    weights = tmp_path / "pendulum.weights.h5"
    done = run_neuroloop("export", run, "--checkpoint", "latest", "--output", weights)
    assert done.returncode == 0, done.stderr
    architecture = read_architecture(weights)
    assert architecture is not None and architecture.settings["ActionDim"] == 1
    assert architecture_path(weights).name == "pendulum.brain.json"

    from_file = neuroloop.load_brain(weights)
    from_run = neuroloop.load_brain(run, which="latest")
    expected = flatten(load_checkpoint(run / "checkpoints" / "latest.npz").weights)
    for brain in (from_file, from_run):
        np.testing.assert_array_equal(flatten(brain.brain.joint.get_weights()), expected)

    # The engine built from the architecture file alone (no InputShapes restated).
    engine = KerasBrainEngine("brain")
    engine.initialize(
        {
            "EngineExtraConfigs": {
                **architecture.settings,
                "Weights": str(weights),
                "Worlds": WORLDS,
                "Deterministic": True,
            }
        }
    )
    rng = np.random.default_rng(3)
    state = None
    try:
        for _ in range(4):
            sensation = {
                name: rng.normal(size=(WORLDS, *shape)).astype(np.float32)
                for name, shape in architecture.settings["InputShapes"].items()
            }
            for name, value in sensation.items():
                engine.set_datapack(name, value)
            engine.step(20_000_000)
            action, state, outputs = from_file.step(sensation, state)
            np.testing.assert_allclose(action, engine.get_datapack("action"), rtol=1e-5)
            np.testing.assert_allclose(outputs["value"], engine.get_datapack("value"), rtol=1e-5)
    finally:
        engine.shutdown()


def test_a_recipe_warm_starts_from_initial_weights(batch: Path, tmp_path: Path) -> None:
    start = tmp_path / "seed1.weights.h5"
    done = run_neuroloop("export", train_dir(batch, 1), "--checkpoint", "latest", "--output", start)
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "warm"
    done = run_neuroloop(
        "train", PENDULUM, "--cycles", "1", "--run-dir", run_dir, "-o", f"InitialWeights={start}",
        *TINY,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"the brain starts from InitialWeights {start}" in done.stderr
    assert "parameters per module" in done.stderr and "ETA 0:00:00" in done.stderr

    # One cycle moves the weights a little from where they started, while the fresh
    # weights this seed would start from are far from them.
    architecture = read_architecture(start)
    assert architecture is not None

    def trainable(weights: list[np.ndarray]) -> np.ndarray:
        brain = architecture.build()
        brain.joint.set_weights(weights)
        return flatten([np.asarray(w) for w in brain.joint.trainable_weights])

    initial = trainable(neuroloop.load_brain(start).brain.joint.get_weights())
    trained = trainable(load_checkpoint(run_dir / "checkpoints" / "latest.npz").weights)
    recipe = load_recipe(run_dir / "recipe.json")
    keras.utils.set_random_seed(recipe.seed)
    fresh = trainable(architecture.build().joint.get_weights())
    assert np.linalg.norm(trained - initial) < 0.1 * np.linalg.norm(fresh - initial)

    # The run keeps the simulation config it ran, resolved.
    snapshot = load_config(run_dir / "simulation.json")
    extra = snapshot.engine(recipe.brain_engine).extra
    assert extra["Seed"] == recipe.seed and extra["Weights"] is None


def test_tensorboard_has_the_recipe_and_env_steps(batch: Path) -> None:
    run = train_dir(batch, 0)
    plugins, steps = set(), set()
    for events in (run / "tensorboard").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                plugins.add(value.metadata.plugin_data.plugin_name)
                if value.tag == "entropy":
                    steps.add(event.step)
    assert "hparams" in plugins
    assert steps == {64, 128}  # environment steps after cycles 1 and 2


def test_resuming_a_finished_run_says_so(batch: Path) -> None:
    run = train_dir(batch, 0)
    done = run_neuroloop("train", "--resume", run)
    assert done.returncode == 0, done.stderr
    assert f"{run} is already finished (2 of 2 cycles)" in done.stderr
    assert json.loads((run / "progress.jsonl").read_text().splitlines()[-1])["cycle"] == 2


@pytest.mark.skipif(
    platform.machine() != "x86_64", reason="TensorFlow's oneDNN notice is an x86-64 message"
)
def test_tensorflow_start_up_messages_only_with_verbose(batch: Path, tmp_path: Path) -> None:
    run = train_dir(batch, 0)
    common = ("export", run, "--checkpoint", "latest", "--output", tmp_path / "p.weights.h5")
    quiet = run_neuroloop(*common)
    verbose = run_neuroloop(*common, "--verbose")
    assert quiet.returncode == verbose.returncode == 0, quiet.stderr + verbose.stderr
    assert quiet.stderr == ""
    assert "oneDNN custom operations" in verbose.stderr
