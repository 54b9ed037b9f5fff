"""A block-reorientation run resumed from its checkpoint repeats the next cycle exactly.

The block task draws more at random than reach does (goal orientations, the cube's initial
yaw, a new goal after each success), so its resumption is checked on its own: one run of
two cycles beside a run stopped after one cycle and resumed for the second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroloop.training.checkpoint import load_checkpoint
from tests.processes import REPO, progress, run_neuroloop

BLOCK = REPO / "experiments" / "manipulate_block.yaml"
SMALL = (
    "-o",
    "Worlds=2",
    "-o",
    "Horizon=16",
    "-o",
    "Brain=mlp",
    "-o",
    "PPO.Epochs=1",
    "-o",
    "PPO.Minibatches=1",
    "-o",
    "PPO.ChunkLength=8",
    "--quiet",
)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("block") / "two"
    done = run_neuroloop("train", BLOCK, "--cycles", "2", "--run-dir", run_dir, *SMALL)
    assert done.returncode == 0, done.stderr
    return run_dir


def test_a_resumed_block_run_repeats_the_next_cycle(uninterrupted: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "resumed"
    first = run_neuroloop("train", BLOCK, "--cycles", "1", "--run-dir", run_dir, *SMALL)
    assert first.returncode == 0, first.stderr
    second = run_neuroloop("train", "--resume", run_dir, "--cycles", "2", "--quiet")
    assert second.returncode == 0, second.stderr
    whole, resumed = progress(uninterrupted), progress(run_dir)
    assert [record["cycle"] for record in resumed] == [1, 2]
    for key in ("mean_return", "policy_loss", "value_loss", "entropy", "approx_kl", "metric"):
        assert resumed[1][key] == whole[1][key], key
    a = load_checkpoint(uninterrupted / "checkpoints" / "latest.npz")
    b = load_checkpoint(run_dir / "checkpoints" / "latest.npz")
    for x, y in zip(a.weights + a.optimizer, b.weights + b.optimizer, strict=True):
        np.testing.assert_array_equal(x, y)
