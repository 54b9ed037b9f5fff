"""A brain of the user's own (a Keras file, not a registered name) trains, evaluates, exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroloop.brain.weights import flatten
from neuroloop.errors import ConfigError
from neuroloop.plugins.engines.keras_brain import KerasBrainEngine
from neuroloop.training.checkpoint import load_checkpoint
from neuroloop.training.recipe import load_recipe
from tests.processes import run_neuroloop as neuroloop

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
CUSTOM = FIXTURES / "custom_brain_pendulum.yaml"
PENDULUM = REPO / "experiments" / "pendulum.yaml"


@pytest.fixture(scope="module")
def custom_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "custom"
    result = neuroloop("train", CUSTOM, "--workers", "2", "--run-dir", run_dir, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"brain {FIXTURES / 'custom_brain.py'}:build" in result.stderr
    assert "replaces the simulation config's mlp" in result.stderr
    return run_dir


def test_a_custom_brain_file_trains_under_two_mpi_processes(custom_run: Path) -> None:
    state = load_checkpoint(custom_run / "checkpoints" / "latest.npz")
    assert state.cycle == 2
    # The GRU of custom_brain.py with units=8: its kernels are in the checkpoint.
    shapes = {tuple(array.shape) for array in state.weights}
    assert (3, 24) in shapes and (8, 24) in shapes, shapes


def test_a_custom_brain_evaluates_and_exports(custom_run: Path, tmp_path: Path) -> None:
    result = neuroloop(
        "evaluate", custom_run, "--episodes", "1", "--horizon", "200", "--checkpoint", "latest"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("return ")
    output = tmp_path / "custom.weights.h5"
    result = neuroloop("export", custom_run, "--output", output, "--checkpoint", "latest")
    assert result.returncode == 0, result.stderr

    engine = KerasBrainEngine("brain")
    engine.initialize(
        {
            "EngineExtraConfigs": {
                "Brain": f"{FIXTURES / 'custom_brain.py'}:build",
                "BrainOptions": {"units": 8},
                "InputShapes": {"proprioception": [3]},
                "ActionDim": 1,
                "Weights": str(output),
            }
        }
    )
    state = load_checkpoint(custom_run / "checkpoints" / "latest.npz")
    np.testing.assert_array_equal(engine.get_datapack("weights"), flatten(state.weights))


def test_a_recipe_without_brain_trains_the_configs_brain() -> None:
    recipe = load_recipe(PENDULUM, ["Brain=null", "Distribution=null"])
    assert (recipe.brain, recipe.distribution) == ("mlp", "beta")
    assert recipe.config_brain == "mlp"


def test_an_unknown_brain_is_one_clear_line_on_every_rank() -> None:
    with pytest.raises(ConfigError, match=r"Brain: expected an installed brain.*'lsmt'"):
        load_recipe(PENDULUM, ["Brain=lsmt"])
    result = neuroloop("train", PENDULUM, "-o", "Brain=lsmt", "--workers", "2", "--cycles", "1")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "no installed brain 'lsmt'" in result.stderr
